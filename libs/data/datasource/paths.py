"""From what a user passes as ``paths`` to the list of files a read covers.

``paths`` is one path or a list; each is a file, a directory (listed recursively, skipping
hidden and ``_``-prefixed entries as Ray does, so ``_SUCCESS``, ``.ipynb_checkpoints`` and the
writers' temporary files are never read), or a glob. Only local paths (``local://`` and
``file://`` prefixes accepted) unless a pyarrow ``filesystem=`` is given, which is then used
for listing and opening (without globs). This runs on the driver: it lists, it never reads.
"""
from __future__ import annotations

import glob
import os
import urllib.parse
from dataclasses import dataclass, field
from typing import Iterable

import pyarrow.fs as pafs

LOCAL_PREFIXES = ("local://", "file://")
HIVE_NULL = "__HIVE_DEFAULT_PARTITION__"  # Hive's name for a null partition value
_GLOB_CHARS = ("*", "?", "[")


@dataclass(frozen=True)
class FileInfo:
    """A file a read covers: its path, size on disk, and its hive partition values (if any)."""

    path: str
    size: int
    partition: dict = field(default_factory=dict, hash=False, compare=True)


def strip_scheme(path: str) -> str:
    """``local:///a/b`` and ``file:///a/b`` -> ``/a/b``; other schemes are a clear error."""
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"a path must be a str or os.PathLike, got {type(path).__name__}: {path!r}")
    path = os.fspath(path)
    for prefix in LOCAL_PREFIXES:
        if path.startswith(prefix):
            return path[len(prefix):]
    if "://" in path:
        scheme = path.split("://", 1)[0]
        raise ValueError(f"{path!r}: Juno Data reads and writes local files only ({scheme}:// is not supported); "
                         "copy the data to a local or shared file system, or pass a pyarrow filesystem= "
                         "with a path inside it")
    return path


def as_path_list(paths) -> list[str]:
    """One path or a list of them, as a non-empty list of str."""
    if isinstance(paths, (str, os.PathLike)):
        return [strip_scheme(paths)]
    if isinstance(paths, Iterable):
        out = [strip_scheme(p) for p in paths]
        if not out:
            raise ValueError("paths is an empty list; give at least one file, directory or glob")
        return out
    raise TypeError(f"paths must be a path (str) or a list of paths, got {type(paths).__name__}")


def has_extension(path: str, extensions: list[str] | None) -> bool:
    if not extensions:
        return True
    lower = path.lower()
    return any(lower.endswith("." + ext.lower().lstrip(".")) for ext in extensions)


def is_hidden(relative: str) -> bool:
    """A path under a listed directory that Ray would skip: any part starting with "." or "_"."""
    return any(part.startswith((".", "_")) for part in relative.replace(os.sep, "/").split("/") if part)


def hive_partition(relative_dir: str) -> dict:
    """``year=2020/month=1`` -> {"year": "2020", "month": "1"} (values stay strings, as in Ray)."""
    values = {}
    for part in relative_dir.replace(os.sep, "/").split("/"):
        if "=" in part:
            key, value = part.split("=", 1)
            value = urllib.parse.unquote(value)
            values[urllib.parse.unquote(key)] = None if value == HIVE_NULL else value
    return values


def expand_paths(paths, *, file_extensions: list[str] | None = None, filesystem: pafs.FileSystem | None = None,
                 partitioning: str | None = None) -> list[FileInfo]:
    """The files ``paths`` names, in a stable order (each argument's files sorted, arguments in order).

    A path that does not exist is a FileNotFoundError naming it; an empty directory gives no files;
    ``file_extensions`` keeps files whose name ends with one of them (case-insensitive), and when
    it removes every file found the error says so (a misspelt extension is the usual cause).
    """
    if file_extensions is not None:
        if isinstance(file_extensions, str):
            file_extensions = [file_extensions]
        if not all(isinstance(e, str) for e in file_extensions):
            raise TypeError(f"file_extensions must be a list of str, got {file_extensions!r}")
    if partitioning not in (None, "hive"):
        raise ValueError(f"partitioning must be None or \"hive\", got {partitioning!r}")
    fs = filesystem or pafs.LocalFileSystem()
    found: list[FileInfo] = []
    for path in as_path_list(paths):
        found.extend(_expand_one(path, fs, local=filesystem is None, hive=partitioning == "hive"))
    kept = [f for f in found if has_extension(f.path, file_extensions)]
    if found and not kept:
        shown = ", ".join(os.path.basename(f.path) for f in found[:3]) + (" ..." if len(found) > 3 else "")
        raise ValueError(f"none of the {len(found)} files found ({shown}) has an extension in {file_extensions}; "
                         "pass file_extensions=None to read them all")
    return kept


def _expand_one(path: str, fs: pafs.FileSystem, *, local: bool, hive: bool) -> list[FileInfo]:
    if any(c in path for c in _GLOB_CHARS) and fs.get_file_info(path).type == pafs.FileType.NotFound:
        if not local:
            raise ValueError(f"{path!r}: globs are supported on the local file system only, not with filesystem=")
        return _expand_glob(path, fs, hive=hive)
    if local:
        path = os.path.abspath(os.path.expanduser(path))
    info = fs.get_file_info(path)
    if info.type == pafs.FileType.NotFound:
        raise FileNotFoundError(f"no such file or directory: {path!r}")
    if info.type == pafs.FileType.Directory:
        return _list_directory(path, fs, hive=hive)
    return [FileInfo(path, info.size or 0)]


def _list_directory(root: str, fs: pafs.FileSystem, *, hive: bool) -> list[FileInfo]:
    out = []
    for info in fs.get_file_info(pafs.FileSelector(root, recursive=True)):
        if info.type != pafs.FileType.File:
            continue
        relative = os.path.relpath(info.path, root)
        if is_hidden(relative):
            continue
        partition = hive_partition(os.path.dirname(relative)) if hive else {}
        out.append(FileInfo(info.path, info.size or 0, partition))
    return sorted(out, key=lambda f: f.path)


def _expand_glob(pattern: str, fs: pafs.FileSystem, *, hive: bool) -> list[FileInfo]:
    pattern = os.path.abspath(os.path.expanduser(pattern))
    matches = sorted(glob.glob(pattern, recursive=True))  # glob itself skips hidden names
    if not matches:
        raise FileNotFoundError(f"no file matches the glob {pattern!r}")
    out = []
    for match in matches:
        if os.path.isdir(match):
            out.extend(_list_directory(match, fs, hive=hive))
        else:
            partition = hive_partition(os.path.dirname(match)) if hive else {}
            out.append(FileInfo(match, os.path.getsize(match), partition))
    return out

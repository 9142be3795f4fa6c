"""``Checkpoint``: a directory of files a run saved, on local disk or any pyarrow filesystem.

A checkpoint is just a path and a filesystem, so it pickles small and any process can open it;
``to_directory``/``as_directory`` bring the files to local disk when they live elsewhere. The older
``from_dict``/``to_dict`` forms keep small state in one pickled file inside the directory.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import uuid
from typing import Any, Iterator

import cloudpickle

_DICT_FILE = "dict_checkpoint.pkl"
_METADATA_FILE = ".metadata.json"


def resolve_filesystem(path: str, filesystem: Any = None) -> tuple[Any, str]:
    """``(pyarrow filesystem, path within it)`` for a local path or a URI (``s3://...``, ``file://...``)."""
    import pyarrow.fs as pafs

    if filesystem is not None:
        return filesystem, path
    if "://" in path:
        return pafs.FileSystem.from_uri(path)
    return pafs.LocalFileSystem(), os.path.abspath(os.path.expanduser(path))


def is_local(filesystem: Any) -> bool:
    import pyarrow.fs as pafs

    return isinstance(filesystem, pafs.LocalFileSystem)


def write_dict(directory: str, data: dict) -> str:
    """Pickle ``data`` into ``directory`` where ``Checkpoint.to_dict`` finds it; returns the directory."""
    with open(os.path.join(directory, _DICT_FILE), "wb") as f:
        cloudpickle.dump(data, f)
    return directory


class Checkpoint:
    """Files saved by a run: ``Checkpoint.from_directory(d)`` in the loop, ``checkpoint.as_directory()`` to read."""

    def __init__(self, path: str | os.PathLike, filesystem: Any = None) -> None:
        self.filesystem, self.path = resolve_filesystem(os.fspath(path), filesystem)

    # ------------------------------------------------------------------ making one
    @classmethod
    def from_directory(cls, path: str | os.PathLike) -> "Checkpoint":
        path = os.fspath(path)
        if "://" not in path and not os.path.isdir(os.path.expanduser(path)):
            raise FileNotFoundError(f"Checkpoint.from_directory({path!r}): no such directory. Save the checkpoint's "
                                    "files into an existing directory first (for example tempfile.mkdtemp()).")
        return cls(path)

    @classmethod
    def from_dict(cls, data: dict) -> "Checkpoint":
        """Ray's older form for small state: ``data`` is pickled into a fresh temporary directory."""
        if not isinstance(data, dict):
            raise TypeError(f"Checkpoint.from_dict expects a dict, got {type(data).__name__}.")
        return cls(write_dict(tempfile.mkdtemp(prefix="juno_checkpoint_"), data))

    # ------------------------------------------------------------------ reading one
    def to_dict(self) -> dict:
        with self.as_directory() as directory:
            file = os.path.join(directory, _DICT_FILE)
            if not os.path.exists(file):
                raise ValueError(f"{self!r} was not made by Checkpoint.from_dict, so it has no dict to return; "
                                 "read its files with checkpoint.as_directory().")
            with open(file, "rb") as f:
                return cloudpickle.load(f)

    def to_directory(self, path: str | os.PathLike | None = None) -> str:
        """Copy the files to ``path`` (a new temporary directory by default) and return it."""
        self._check_exists()
        target = os.fspath(path) if path is not None else os.path.join(
            tempfile.gettempdir(), f"juno_checkpoint_{uuid.uuid4().hex[:12]}")
        os.makedirs(target, exist_ok=True)
        if is_local(self.filesystem):
            shutil.copytree(self.path, target, dirs_exist_ok=True)
        else:
            import pyarrow.fs as pafs

            pafs.copy_files(self.path, target, source_filesystem=self.filesystem,
                            destination_filesystem=pafs.LocalFileSystem())
        return target

    @contextlib.contextmanager
    def as_directory(self) -> Iterator[str]:
        """A local directory with the files: the checkpoint itself when it is on local disk (read it, don't
        change it), else a temporary copy removed afterwards."""
        if is_local(self.filesystem):
            self._check_exists()
            yield self.path
            return
        directory = self.to_directory()
        try:
            yield directory
        finally:
            shutil.rmtree(directory, ignore_errors=True)

    # ------------------------------------------------------------------ metadata
    def get_metadata(self) -> dict:
        try:
            with self.filesystem.open_input_stream(f"{self.path}/{_METADATA_FILE}") as f:
                return json.loads(f.read().decode())
        except FileNotFoundError:
            return {}

    def set_metadata(self, metadata: dict) -> None:
        text = json.dumps(metadata)  # fails here, naming the value, if it is not JSON
        with self.filesystem.open_output_stream(f"{self.path}/{_METADATA_FILE}") as f:
            f.write(text.encode())

    def update_metadata(self, metadata: dict) -> None:
        self.set_metadata({**self.get_metadata(), **metadata})

    # ------------------------------------------------------------------ plumbing
    def _check_exists(self) -> None:
        import pyarrow.fs as pafs

        if self.filesystem.get_file_info(self.path).type != pafs.FileType.Directory:
            raise FileNotFoundError(f"{self!r}: its directory no longer exists (deleted, or on another machine's "
                                    "local disk). Keep checkpoint directories until the run has reported them.")

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, Checkpoint) and other.path == self.path
                and type(other.filesystem) is type(self.filesystem))

    def __hash__(self) -> int:
        return hash(self.path)

    def __repr__(self) -> str:
        where = "" if is_local(self.filesystem) else f", filesystem={type(self.filesystem).__name__}"
        return f"Checkpoint(path={self.path!r}{where})"

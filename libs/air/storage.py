"""Where a run lives: ``storage_path/name/`` on local disk or any pyarrow filesystem.

A run's folder holds its state for restoring (``trainer.pkl``, ``run_state.json``), rank 0's reports
(``result.json``, one JSON line each) and its checkpoints (``checkpoint_000003/``). Workers on the
driver's machine, or writing to a filesystem every node reaches (a URI), put checkpoint files there
themselves; a worker on another node with a local storage path packs them into one archive that
travels through the object store, so no shared file system is needed.
"""
from __future__ import annotations

import io
import json
import os
import shutil
import tarfile
import tempfile
import uuid
from typing import Any

from juno.air.checkpoint import Checkpoint, is_local, resolve_filesystem
from juno.air.config import CheckpointConfig


class StorageError(OSError):
    """The storage path cannot be written or read."""


class StorageContext:
    """One run's folder and the operations on it; picklable, so workers get a copy."""

    def __init__(self, storage_path: str, name: str, filesystem: Any = None) -> None:
        self.storage_path = storage_path
        self.name = name
        self.filesystem, root = resolve_filesystem(storage_path, filesystem)
        self.run_path = f"{root.rstrip('/')}/{name}"

    @property
    def local(self) -> bool:
        return is_local(self.filesystem)

    def ensure_writable(self) -> None:
        """Create the run's folder now, so an unwritable path fails before any worker starts."""
        probe = f"{self.run_path}/.juno_write_probe_{uuid.uuid4().hex[:8]}"
        try:
            self.filesystem.create_dir(self.run_path, recursive=True)
            with self.filesystem.open_output_stream(probe) as f:
                f.write(b"ok")
            self.filesystem.delete_file(probe)
        except Exception as e:  # noqa: BLE001 - any filesystem error means the same to the user
            raise StorageError(f"The run's storage path {self.run_path!r} cannot be written ({type(e).__name__}: "
                               f"{e}). Pass a writable directory or URI as RunConfig(storage_path=...).") from e

    def checkpoint_path(self, index: int) -> str:
        return f"{self.run_path}/checkpoint_{index:06d}"

    # ------------------------------------------------------------------ small files
    def write_bytes(self, relative: str, data: bytes) -> None:
        """Write a file whole: to a temporary name, then renamed, so a crash never leaves half a state file."""
        path, tmp = f"{self.run_path}/{relative}", f"{self.run_path}/.{relative}.{uuid.uuid4().hex[:8]}.tmp"
        self.filesystem.create_dir(self.run_path, recursive=True)
        with self.filesystem.open_output_stream(tmp) as f:
            f.write(data)
        self.filesystem.move(tmp, path)

    def read_bytes(self, relative: str) -> bytes | None:
        try:
            with self.filesystem.open_input_stream(f"{self.run_path}/{relative}") as f:
                return f.read()
        except (FileNotFoundError, OSError):
            return None

    def append_line(self, relative: str, record: dict) -> None:
        """Append one JSON line (rank 0's report) to ``relative``; local disk appends in place."""
        line = json.dumps(record, default=_json_default) + "\n"
        if self.local:
            os.makedirs(self.run_path, exist_ok=True)
            with open(f"{self.run_path}/{relative}", "a") as f:
                f.write(line)
            return
        old = self.read_bytes(relative) or b""
        self.write_bytes(relative, old + line.encode())

    def delete_dir(self, path: str) -> None:
        try:
            self.filesystem.delete_dir(path)
        except (FileNotFoundError, OSError):
            pass

    # ------------------------------------------------------------------ checkpoint files
    def persist_directory(self, local_dir: str, dest: str) -> None:
        """Copy a local directory's files into ``dest`` (merged with what other ranks put there)."""
        if not os.path.isdir(local_dir):
            raise FileNotFoundError(f"The checkpoint directory {local_dir!r} no longer exists: keep it until "
                                    "report() returns (report copies it).")
        if self.local:
            shutil.copytree(local_dir, dest, dirs_exist_ok=True)
            return
        import pyarrow.fs as pafs

        self.filesystem.create_dir(dest, recursive=True)
        pafs.copy_files(local_dir, dest, source_filesystem=pafs.LocalFileSystem(),
                        destination_filesystem=self.filesystem)

    def persist_archive(self, archive: bytes, dest: str) -> None:
        """Unpack an archive made by :func:`pack_directory` into ``dest``."""
        if self.local:
            os.makedirs(dest, exist_ok=True)
            unpack_archive(archive, dest)
            return
        with tempfile.TemporaryDirectory(prefix="juno_ckpt_") as tmp:
            unpack_archive(archive, tmp)
            self.persist_directory(tmp, dest)

    def checkpoint(self, path: str) -> Checkpoint:
        return Checkpoint(path, self.filesystem if not self.local else None)

    def __repr__(self) -> str:
        return f"StorageContext({self.run_path!r})"


def pack_directory(path: str) -> bytes:
    """Every file under ``path`` in one uncompressed tar archive (checkpoints are mostly incompressible)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        tar.add(path, arcname=".")
    return buffer.getvalue()


def unpack_archive(archive: bytes, dest: str) -> None:
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r") as tar:
        tar.extractall(dest, filter="data")


def _json_default(value: Any) -> Any:
    """Metrics are mostly numbers, but numpy and torch scalars and odd objects must not break the log."""
    item = getattr(value, "item", None)
    if callable(item):
        try:
            return item()
        except (TypeError, ValueError):
            pass
    return repr(value)


# ============================================================================ which checkpoints stay
def metric_value(metrics: dict, attribute: str) -> Any:
    """``metrics[attribute]``, where ``"a/b"`` also finds ``metrics["a"]["b"]``."""
    if attribute in metrics:
        return metrics[attribute]
    value: Any = metrics
    for part in attribute.split("/"):
        if not isinstance(value, dict) or part not in value:
            raise KeyError(attribute)
        value = value[part]
    return value


class CheckpointManager:
    """The checkpoints a run keeps, decided by its ``CheckpointConfig``. Pure bookkeeping: it says
    which paths to delete and the caller deletes them."""

    def __init__(self, config: CheckpointConfig | None = None) -> None:
        self.config = config or CheckpointConfig()
        self.entries: list[dict] = []  # {"index", "path", "metrics"}, oldest first

    def register(self, index: int, path: str, metrics: dict) -> list[str]:
        """Record a new checkpoint; return the paths that are no longer kept."""
        attribute = self.config.checkpoint_score_attribute
        if attribute is not None:
            try:
                metric_value(metrics, attribute)
            except KeyError:
                raise ValueError(f"CheckpointConfig(checkpoint_score_attribute={attribute!r}), but the report "
                                 f"that came with checkpoint {index} has no such metric (it has "
                                 f"{sorted(metrics)}). Report it with every checkpoint.") from None
        self.entries.append({"index": index, "path": path, "metrics": metrics})
        keep = self._kept()
        dropped = [e["path"] for e in self.entries if e["index"] not in keep]
        self.entries = [e for e in self.entries if e["index"] in keep]
        return dropped

    def _kept(self) -> set[int]:
        n = self.config.num_to_keep
        if n is None or len(self.entries) <= n:
            return {e["index"] for e in self.entries}
        ranked = sorted(self.entries, key=self._score, reverse=True)
        return {e["index"] for e in ranked[:n]} | {self.entries[-1]["index"]}

    def _score(self, entry: dict) -> tuple:
        attribute = self.config.checkpoint_score_attribute
        if attribute is None:
            return (entry["index"],)
        value = metric_value(entry["metrics"], attribute)
        sign = 1 if self.config.checkpoint_score_order == "max" else -1
        return (sign * float(value), entry["index"])

    @property
    def latest(self) -> dict | None:
        return self.entries[-1] if self.entries else None

    @property
    def best(self) -> dict | None:
        return max(self.entries, key=self._score) if self.entries else None

    def state(self) -> list[dict]:
        return [dict(e) for e in self.entries]

    def load_state(self, entries: list[dict]) -> None:
        self.entries = [dict(e) for e in entries]

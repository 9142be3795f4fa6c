"""Per-node shared-memory object store: one file per object under /dev/shm.

Writers create an object's file once (write-then-rename, so readers never see a
partial object); every process on the node maps it read-only. Files vanish when
their owner frees the object or the node stops. Capacity accounting and
spilling belong to the node manager.
"""
from __future__ import annotations

import mmap
import os
import shutil
import tempfile

from juno.store import format as fmt

SHM_ROOT = "/dev/shm" if os.path.isdir("/dev/shm") else tempfile.gettempdir()
_IOV_MAX = 512


def store_dir_for(session_name: str, node_name: str) -> str:
    return os.path.join(SHM_ROOT, f"juno-{session_name}-{node_name}")


class SharedMemoryStore:
    """Reads and writes objects in one node's store directory."""

    def __init__(self, directory: str):
        self.directory = directory

    def create_dir(self) -> None:
        os.makedirs(self.directory, mode=0o700, exist_ok=True)

    def remove_dir(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)

    def path(self, object_id: bytes) -> str:
        return os.path.join(self.directory, object_id.hex())

    def contains(self, object_id: bytes) -> bool:
        return os.path.exists(self.path(object_id))

    def write(self, object_id: bytes, flags: int, data: bytes, buffers: list) -> int:
        """Write an object; returns its size in bytes."""
        pieces, total = fmt.to_iovecs(flags, data, buffers)
        final = self.path(object_id)
        tmp = final + ".tmp"
        fd = os.open(tmp, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600)
        try:
            written = 0
            for i in range(0, len(pieces), _IOV_MAX):
                chunk = pieces[i : i + _IOV_MAX]
                expect = sum(memoryview(p).nbytes for p in chunk)
                n = os.writev(fd, chunk)
                while n < expect:  # short write: finish piece by piece
                    flat = b"".join(bytes(p) for p in chunk)
                    n += os.write(fd, flat[n:])
                written += expect
        except BaseException:
            os.close(fd)
            _unlink(tmp)
            raise
        os.close(fd)
        os.rename(tmp, final)
        return written

    def write_blob(self, object_id: bytes, blob: bytes) -> None:
        final = self.path(object_id)
        tmp = final + ".tmp"
        with open(tmp, "wb") as f:
            f.write(blob)
        os.rename(tmp, final)

    def read(self, object_id: bytes) -> memoryview:
        """A read-only view of the object's bytes, valid while referenced."""
        fd = os.open(self.path(object_id), os.O_RDONLY)
        try:
            size = os.fstat(fd).st_size
            mapping = mmap.mmap(fd, size, access=mmap.ACCESS_READ)
        finally:
            os.close(fd)
        return memoryview(mapping)

    def size(self, object_id: bytes) -> int:
        return os.path.getsize(self.path(object_id))

    def delete(self, object_id: bytes) -> None:
        _unlink(self.path(object_id))


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass

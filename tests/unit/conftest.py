"""Fixtures shared by the unit tests (no processes, no cluster)."""
import pytest


@pytest.fixture
def store(tmp_path):
    """A node's object store of 8 pages (its shared memory and spill folder under tmp_path)."""
    from juno.store.allocator import PAGE
    from juno.store.object_store import ObjectStore

    s = ObjectStore(str(tmp_path / "shm"), 8 * PAGE, spill_dir=str(tmp_path / "spill"))
    yield s
    s.close()

"""serialize()'s shortcut for plain numeric numpy arrays gives what the general path gives."""
import numpy as np

from juno.owner import serialization
from juno.object_ref import ObjectRef


def general_path(value):
    buffers = []
    return serialization._dumps(value, buffers.append), buffers


def test_a_numeric_array_pickles_to_the_same_bytes_with_its_buffer_out_of_band():
    for a in (np.arange(1 << 16, dtype=np.int64), np.zeros((3, 4), dtype=[("x", "i4"), ("y", "f8")]),
              np.ones((8, 8), dtype=np.float32).T):
        s = serialization.serialize(a)
        data, buffers = general_path(a)
        assert s.data == data and s.contained_refs == []
        assert [b.nbytes for b in s.buffers] == [b.raw().nbytes for b in buffers]
        back, is_error = serialization.deserialize_bytes(s.to_bytes())
        assert not is_error and back.dtype == a.dtype and np.array_equal(back, a)


def test_object_arrays_and_subclasses_take_the_general_path():
    ref = ObjectRef(b"r" * 28, "ipc:///me", _count=False)
    holding = np.array([ref, 1], dtype=object)
    assert serialization.serialize(holding).contained_refs == [ref]  # its refs are still recorded

    class Tagged(np.ndarray):
        pass

    tagged = np.arange(4).view(Tagged)
    back, _ = serialization.deserialize_bytes(serialization.serialize(tagged).to_bytes())
    assert type(back).__name__ == "Tagged"


def test_values_serialize_while_another_thread_is_still_importing_numpy_or_torch(monkeypatch):
    """Workers import numpy (and torch) lazily: a thread may serialize while another is halfway through
    the import, when sys.modules already holds a module without ``ndarray``/``Tensor``. A task's
    result (or error) must still pickle; it used to raise AttributeError, and the call was lost."""
    import sys
    import types

    monkeypatch.setitem(sys.modules, "numpy", types.ModuleType("numpy"))  # partially initialised
    monkeypatch.setitem(sys.modules, "torch", types.ModuleType("torch"))
    for value in ({"reports": [1, 2]}, ([], False), ValueError("boom")):
        back, _ = serialization.deserialize_bytes(serialization.serialize(value).to_bytes())
        assert type(back) is type(value)

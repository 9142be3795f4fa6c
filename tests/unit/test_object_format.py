"""The serialized-object layout shared by inline values and shared-memory files."""
import pickle

import numpy as np
import pytest

from juno import serialization
from juno.store import format as fmt


def test_inline_round_trip_of_plain_values():
    for value in (1, "x", {"a": [1, 2, (3, None)]}, b"\x00" * 10):
        blob = serialization.serialize(value).to_bytes()
        assert serialization.deserialize_bytes(blob) == (value, False)


def test_error_flag_survives():
    blob = serialization.serialize(ValueError("no"), error=True).to_bytes()
    value, is_error = serialization.deserialize_bytes(blob)
    assert is_error and isinstance(value, ValueError)


def test_numpy_buffers_are_aligned_and_out_of_band():
    arr = np.arange(100_000, dtype=np.float64)
    s = serialization.serialize(arr)
    assert len(s.buffers) == 1 and len(s.data) < 1000  # the array's bytes are not in the pickle
    blob = s.to_bytes()
    _, offsets, total = fmt.layout(len(s.data), [arr.nbytes])
    assert offsets[0] % fmt.ALIGN == 0 and total == len(blob)
    _, _, buffers = fmt.unpack(memoryview(blob))
    assert bytes(buffers[0]) == arr.tobytes()
    out, _ = serialization.deserialize_bytes(blob)
    assert np.array_equal(out, arr)


def test_bad_magic_is_rejected():
    with pytest.raises(ValueError, match="magic"):
        fmt.unpack(memoryview(b"XXXX" + bytes(40)))


def test_unpicklable_value_is_explained():
    import threading

    text = serialization.describe_unpicklable({"ok": 1, "lock": threading.Lock()}, "argument 0 of f")
    assert "argument 0 of f" in text and "'lock'" in text and "lock" in text.lower()
    assert serialization.describe_unpicklable([1, 2], "x") == ""


def test_pickle_protocol_5_is_used():
    s = serialization.serialize([1, 2, 3])
    assert s.data[:2] == b"\x80\x05"
    assert pickle.loads(s.data) == [1, 2, 3]

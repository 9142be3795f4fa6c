"""The serialized-object layout shared by inline values and shared-memory files."""
import pickle

import numpy as np
import pytest

from juno.owner import serialization
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


def test_a_large_buffer_starts_at_its_sources_page_offset_and_reads_back():
    """A copy whose destination sits just past its source modulo 4096 runs at a third of the
    speed on some CPUs: a large buffer is laid out at its source's page offset (rounded down to
    64 bytes); small ones stay packed, every buffer 64-byte aligned, and the bytes round-trip."""
    backing = np.zeros(3 << 20, dtype=np.uint8)
    for shift in (0, 16, 64, 200, 4000):
        big = backing[shift: shift + (2 << 20)]
        big[:] = np.arange(big.nbytes, dtype=np.uint64).astype(np.uint8)
        small = memoryview(b"s" * 1000)
        pieces, total = fmt.to_iovecs(0, b"pickle", [small, memoryview(big)])
        blob = b"".join(bytes(p) for p in pieces)
        assert len(blob) == total
        flags, data, (got_small, got_big) = fmt.unpack(memoryview(blob))
        assert bytes(data) == b"pickle" and bytes(got_small) == b"s" * 1000
        assert np.array_equal(np.frombuffer(got_big, dtype=np.uint8), big)
        _, offsets, _ = fmt.layout(len(b"pickle"), [1000, big.nbytes], fmt.source_page_offsets([small, memoryview(big)]))
        assert offsets[0] % fmt.ALIGN == 0 and offsets[0] < fmt.PAGE  # small: packed after the pickle
        assert offsets[1] % fmt.PAGE == big.ctypes.data % fmt.PAGE // fmt.ALIGN * fmt.ALIGN

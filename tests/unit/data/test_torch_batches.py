"""numpy batches to torch tensors: dtypes, shapes, copies of read-only arrays, clear errors."""
import numpy as np
import pytest
import torch

from juno.data.torch_batches import TorchConverter, resolve_device


def test_dtypes_one_for_all_or_per_column():
    batch = {"a": np.arange(3), "b": np.ones((3, 2, 2), dtype=np.float64)}
    out = TorchConverter(torch.float32)(batch)
    assert out["a"].dtype == out["b"].dtype == torch.float32 and out["b"].shape == (3, 2, 2)
    out = TorchConverter({"b": torch.float16})(batch)
    assert out["a"].dtype == torch.int64 and out["b"].dtype == torch.float16


def test_read_only_arrays_are_copied_so_in_place_ops_are_safe():
    stored = np.arange(4)
    stored.flags.writeable = False
    tensor = TorchConverter()({"x": stored})["x"]
    tensor += 1
    assert stored.tolist() == [0, 1, 2, 3]


def test_ragged_tensor_columns_become_lists_of_tensors():
    ragged = np.empty(2, dtype=object)
    ragged[0], ragged[1] = np.zeros(2), np.zeros(3)
    assert [t.shape for t in TorchConverter()({"r": ragged})["r"]] == [(2,), (3,)]


def test_clear_errors():
    with pytest.raises(TypeError, match="column 's' holds str values"):
        TorchConverter()({"s": np.array(["a", "b"], dtype=object)})
    with pytest.raises(TypeError, match="column 's' is of numpy dtype <U1"):
        TorchConverter()({"s": np.array(["a", "b"])})
    with pytest.raises(ValueError, match="columns the data does not have: \\['z'\\]"):
        TorchConverter({"z": torch.float32})({"a": np.arange(2)})
    with pytest.raises(ValueError, match="cannot be used together"):
        TorchConverter(torch.float32, collate_fn=lambda b: b)
    with pytest.raises(ValueError, match="device must be"):
        resolve_device("gpu-please")


def test_collate_fn_builds_the_batch():
    assert TorchConverter(collate_fn=lambda b: torch.tensor(b["a"]).sum())({"a": np.arange(4)}).item() == 6


def test_auto_device_is_the_cpu_without_a_gpu():
    if not torch.cuda.is_available():
        assert resolve_device("auto") == torch.device("cpu")

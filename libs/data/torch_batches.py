"""numpy batches to torch tensors, for ``iter_torch_batches`` (torch is imported only here).

Blocks are read zero-copy from the object store, so their arrays are read-only views of memory
other batches (and later epochs in this process) read too; a tensor made on them would let an
in-place op (``x /= 255``) change the stored data. A read-only array is therefore copied once;
arrays that a batch across block edges already owns are used as they are.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

import juno


class TorchConverter:
    """Turns one numpy batch (dict of column -> ndarray) into a dict of tensors on a device."""

    def __init__(self, dtypes=None, device: Any = "auto", collate_fn: Callable | None = None):
        import torch

        self._torch = torch
        if collate_fn is not None and not callable(collate_fn):
            raise TypeError(f"collate_fn must be a function of a numpy batch, got {collate_fn!r}")
        if collate_fn is not None and dtypes is not None:
            raise ValueError("collate_fn and dtypes cannot be used together: convert the dtypes inside collate_fn")
        if dtypes is not None and not isinstance(dtypes, (torch.dtype, dict)):
            raise TypeError(f"dtypes must be a torch.dtype or a dict of column name -> torch.dtype, got {dtypes!r}")
        if isinstance(dtypes, dict):
            bad = {k: v for k, v in dtypes.items() if not isinstance(v, torch.dtype)}
            if bad:
                raise TypeError(f"dtypes must map column names to torch dtypes; not dtypes: {bad!r}")
        self._dtypes = dtypes
        self._collate_fn = collate_fn
        self._device = resolve_device(device)
        self._checked_columns = False

    def __call__(self, batch: dict[str, np.ndarray]) -> Any:
        if self._collate_fn is not None:
            return _move(self._collate_fn(batch), self._device, self._torch)
        if isinstance(self._dtypes, dict) and not self._checked_columns:
            missing = sorted(set(self._dtypes) - set(batch))
            if missing:
                raise ValueError(f"dtypes names columns the data does not have: {missing}; "
                                 f"its columns are {sorted(batch)}")
            self._checked_columns = True
        return {name: self._column(name, values) for name, values in batch.items()}

    def _column(self, name: str, values: np.ndarray):
        dtype = self._dtypes.get(name) if isinstance(self._dtypes, dict) else self._dtypes
        if values.dtype == object:
            if len(values) and all(isinstance(v, np.ndarray) for v in values):  # ragged tensors: one per row
                return [self._tensor(v, dtype) for v in values]
            kinds = sorted({type(v).__name__ for v in values[:100]})
            raise TypeError(f"column {name!r} holds {', '.join(kinds)} values, which torch tensors cannot hold; "
                            "drop it (ds.drop_columns) or pass collate_fn to build the batch yourself")
        if values.dtype.kind in "USM":
            raise TypeError(f"column {name!r} is of numpy dtype {values.dtype}, which torch tensors cannot hold; "
                            "drop it (ds.drop_columns) or pass collate_fn to build the batch yourself")
        return self._tensor(values, dtype)

    def _tensor(self, values: np.ndarray, dtype):
        if not values.flags.writeable:
            values = values.copy()
        return self._torch.from_numpy(values).to(dtype=dtype, device=self._device)


def resolve_device(device: Any):
    """``"auto"``: the GPU juno gave this worker when torch can use it, else the CPU."""
    import torch

    if device == "auto":
        if juno.is_initialized() and juno.get_gpu_ids() and torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise ValueError(f"device must be 'auto', 'cpu', 'cuda', 'cuda:<n>' or a torch.device, got {device!r} "
                         f"({e})") from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} but torch sees no GPU here; use device='auto' or 'cpu', or run this "
                         "loop in a task or actor with num_gpus")
    return resolved


def _move(value: Any, device, torch) -> Any:
    """A collate_fn's tensors (alone or in dicts, lists, tuples) on ``device``."""
    if isinstance(value, torch.Tensor):
        return value.to(device)
    if isinstance(value, dict):
        return {k: _move(v, device, torch) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_move(v, device, torch) for v in value)
    return value

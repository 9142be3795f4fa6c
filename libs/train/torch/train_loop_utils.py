"""Ray Train's ``ray.train.torch`` helpers for the train loop: devices, model and data loader set-up.

They read the worker's place in the run from torch.distributed (or torchrun's RANK / WORLD_SIZE /
LOCAL_RANK variables that the worker group sets) and its GPUs from ``juno.get_gpu_ids()`` and
CUDA_VISIBLE_DEVICES, so the same loop runs on one process or many, on CPUs or GPUs.
"""
from __future__ import annotations

import functools
import os
import random
import warnings
from typing import Any

import juno

PARALLEL_STRATEGIES = ("ddp", "fsdp", None)

_seed: list = []  # the seed enable_reproducibility set in this process (prepare_data_loader follows it)
_warned_logical_gpus: list = []


# ------------------------------------------------------------------------- where this worker is

def device_indices(gpu_ids: list, cuda_visible_devices: str | None) -> list[int]:
    """The CUDA device indices of ``gpu_ids`` as this process sees them: each id's position in
    CUDA_VISIBLE_DEVICES (the id itself when that is unset: every GPU is visible). Two workers sharing
    one GPU (fractional GPUs) get the same index."""
    visible = [v.strip() for v in (cuda_visible_devices or "").split(",") if v.strip()]
    if not visible or visible == ["NoDevFiles"]:
        return [int(g) for g in gpu_ids]
    indices = []
    for gpu_id in gpu_ids:
        try:
            indices.append(visible.index(str(gpu_id)))
        except ValueError:
            raise RuntimeError(f"this worker was given GPU {gpu_id}, but CUDA_VISIBLE_DEVICES={cuda_visible_devices!r}"
                               " does not list it; leave CUDA_VISIBLE_DEVICES as Juno set it in this worker") from None
    return indices


def _gpu_ids() -> list:
    return juno.get_gpu_ids() if juno.is_initialized() else []


def get_devices() -> list:
    """This worker's torch devices: ``cuda:N`` for each of its GPUs when torch can use CUDA, else ``[cpu]``."""
    import torch

    gpu_ids = _gpu_ids()
    if not gpu_ids:
        return [torch.device("cpu")]
    if not torch.cuda.is_available():
        if not _warned_logical_gpus:
            _warned_logical_gpus.append(True)
            warnings.warn(f"this worker was given GPU ids {gpu_ids}, but torch sees no CUDA device (logical GPUs, "
                          "or a CPU-only torch build); training runs on the CPU", stacklevel=2)
        return [torch.device("cpu")]
    return [torch.device("cuda", i) for i in device_indices(gpu_ids, os.environ.get("CUDA_VISIBLE_DEVICES"))]


def get_device():
    """This worker's torch device: its first GPU as ``cuda:N`` when it has one torch can use, else cpu."""
    return get_devices()[0]


def world_size() -> int:
    """How many workers train together (1 outside a run)."""
    dist = _dist_if_initialized()
    return dist.get_world_size() if dist else int(os.environ.get("WORLD_SIZE", "1"))


def world_rank() -> int:
    """This worker's rank among all workers (0 outside a run)."""
    dist = _dist_if_initialized()
    return dist.get_rank() if dist else int(os.environ.get("RANK", "0"))


def _dist_if_initialized():
    import torch.distributed as dist

    return dist if dist.is_available() and dist.is_initialized() else None


# ------------------------------------------------------------------------- model

def prepare_model(model, move_to_device: bool | Any = True, parallel_strategy: str | None = "ddp",
                  parallel_strategy_kwargs: dict | None = None, *, wrap_ddp: bool | None = None,
                  ddp_kwargs: dict | None = None):
    """Put ``model`` on this worker's device and, when several workers train together, wrap it in
    DistributedDataParallel ("ddp") or FSDP ("fsdp"); ``None`` leaves it unwrapped.

    ``move_to_device`` may also be a torch.device. ``wrap_ddp=`` and ``ddp_kwargs=`` are Ray's older names
    for ``parallel_strategy=`` and ``parallel_strategy_kwargs=``. FSDP on CPU workers (gloo) uses torch's
    ``fully_shard`` (FSDP2), which shards the model in place; on GPUs it is ``FullyShardedDataParallel``.
    """
    import torch

    if wrap_ddp is not None:
        parallel_strategy = "ddp" if wrap_ddp else None
    if ddp_kwargs is not None:
        if parallel_strategy_kwargs is not None:
            raise ValueError("give parallel_strategy_kwargs= or its older name ddp_kwargs=, not both")
        parallel_strategy_kwargs = ddp_kwargs
    if parallel_strategy not in PARALLEL_STRATEGIES:
        raise ValueError(f"prepare_model(parallel_strategy={parallel_strategy!r}): use 'ddp', 'fsdp' or None")
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"prepare_model needs a torch.nn.Module, got {type(model).__name__}")
    kwargs = dict(parallel_strategy_kwargs or {})

    device = get_device() if move_to_device is True else torch.device(move_to_device) if move_to_device else None
    if device is not None:
        if device.type == "cuda":  # CUDA's current device is per thread: the train loop's thread gets it here
            torch.cuda.set_device(device)
        model = model.to(device)
    if parallel_strategy is None or world_size() < 2:
        return model
    device = device or get_device()
    if parallel_strategy == "ddp":
        from torch.nn.parallel import DistributedDataParallel

        if device.type == "cuda":
            kwargs.setdefault("device_ids", [device.index])
        return DistributedDataParallel(model, **kwargs)
    return _fsdp(model, device, kwargs)


def _fsdp(model, device, kwargs: dict):
    if device.type == "cuda":
        from torch.distributed.fsdp import FullyShardedDataParallel

        kwargs.setdefault("device_id", device)
        return FullyShardedDataParallel(model, **kwargs)
    try:
        from torch.distributed.fsdp import fully_shard
    except ImportError:
        raise RuntimeError("FSDP on CPU needs torch's fully_shard (torch >= 2.6); use parallel_strategy='ddp' "
                           "on CPU workers, or GPUs") from None
    try:
        fully_shard(model, **kwargs)
    except TypeError as e:
        raise TypeError(f"on CPU workers FSDP is torch's fully_shard, whose options differ from "
                        f"FullyShardedDataParallel's: {e}") from None
    return model


# ------------------------------------------------------------------------- data

def prepare_data_loader(data_loader, add_dist_sampler: bool = True, move_to_device: bool = True,
                        auto_transfer: bool = True):
    """Make ``data_loader`` feed this worker its share of the data, on its device.

    With several workers it is rebuilt around a DistributedSampler (shuffling when the original did, with
    the same batch size, collate_fn, workers and other options), unless it already has one or reads an
    IterableDataset. As in plain torch, call ``loader.sampler.set_epoch(epoch)`` at the start of each epoch
    for a new order every epoch. With ``move_to_device``, batches (tensors, alone or in dicts, lists,
    tuples) arrive on ``get_device()``; ``auto_transfer`` copies the next batch to a GPU on a side stream
    while the current one is used.
    """
    from torch.utils.data import DataLoader

    if not isinstance(data_loader, DataLoader):
        raise TypeError(f"prepare_data_loader needs a torch.utils.data.DataLoader, got {type(data_loader).__name__}")
    if add_dist_sampler and world_size() > 1 and _needs_dist_sampler(data_loader):
        data_loader = _with_dist_sampler(data_loader, world_rank(), world_size())
    if move_to_device:
        device = get_device()
        data_loader = _device_loader_class()(data_loader, device, auto_transfer and device.type == "cuda")
    return data_loader


def _needs_dist_sampler(loader) -> bool:
    from torch.utils.data import DistributedSampler, IterableDataset

    return not isinstance(loader.sampler, DistributedSampler) and not isinstance(loader.dataset, IterableDataset)


def _with_dist_sampler(loader, rank: int, size: int):
    """``loader`` rebuilt with a DistributedSampler in place of its sampler, every other option kept."""
    from torch.utils.data import (BatchSampler, DataLoader, DistributedSampler, RandomSampler,
                                  SequentialSampler)

    if loader.batch_sampler is not None and type(loader.batch_sampler) is not BatchSampler:
        raise ValueError(f"this DataLoader has a custom batch_sampler ({type(loader.batch_sampler).__name__}), "
                         "which prepare_data_loader cannot shard; call prepare_data_loader(loader, "
                         "add_dist_sampler=False) and split the data per worker yourself "
                         "(juno.train.get_context().get_world_rank() and get_world_size())")
    if not isinstance(loader.sampler, (RandomSampler, SequentialSampler)):
        warnings.warn(f"prepare_data_loader replaces this DataLoader's {type(loader.sampler).__name__} with a "
                      "DistributedSampler (shuffle=True); pass add_dist_sampler=False to keep yours", stacklevel=3)
    shuffle = not isinstance(loader.sampler, SequentialSampler)
    seed = _seed[-1] if _seed else 0
    options = dict(batch_size=loader.batch_size, num_workers=loader.num_workers, collate_fn=loader.collate_fn,
                   pin_memory=loader.pin_memory, drop_last=loader.drop_last, timeout=loader.timeout,
                   worker_init_fn=loader.worker_init_fn, multiprocessing_context=loader.multiprocessing_context,
                   generator=loader.generator, prefetch_factor=loader.prefetch_factor,
                   persistent_workers=loader.persistent_workers, pin_memory_device=loader.pin_memory_device)
    if hasattr(loader, "in_order"):
        options["in_order"] = loader.in_order
    if _seed:  # reproducible runs: the loader's own workers are seeded too
        import torch

        options["worker_init_fn"] = functools.partial(_seeded_worker_init, loader.worker_init_fn)
        options["generator"] = torch.Generator().manual_seed(seed)
    sampler = DistributedSampler(loader.dataset, num_replicas=size, rank=rank, shuffle=shuffle, seed=seed)
    return DataLoader(loader.dataset, sampler=sampler, **options)


def _seeded_worker_init(user_init, worker_id: int) -> None:
    import numpy as np
    import torch

    worker_seed = torch.initial_seed() % 2**32
    np.random.seed(worker_seed)
    random.seed(worker_seed)
    if user_init is not None:
        user_init(worker_id)


def move_to_device(value: Any, device, non_blocking: bool = False) -> Any:
    """``value``'s tensors (alone or nested in dicts, lists, tuples, named tuples) on ``device``."""
    import torch

    if isinstance(value, torch.Tensor):
        return value.to(device, non_blocking=non_blocking)
    if isinstance(value, dict):
        return type(value)((k, move_to_device(v, device, non_blocking)) for k, v in value.items())
    if isinstance(value, tuple) and hasattr(value, "_fields"):
        return type(value)(*(move_to_device(v, device, non_blocking) for v in value))
    if isinstance(value, (list, tuple)):
        return type(value)(move_to_device(v, device, non_blocking) for v in value)
    return value


@functools.lru_cache(maxsize=None)
def _device_loader_class():
    """Built on first use so that importing this module does not import torch."""
    from torch.utils.data import DataLoader

    class DeviceDataLoader(DataLoader):
        """The prepared loader: the original's attributes (``sampler``, ``dataset``, ``batch_size`` ...) and
        length, its batches moved to ``device``."""

        def __init__(self, base, device, auto_transfer: bool):  # noqa: D107 - no DataLoader.__init__: a view
            self.__dict__.update(base.__dict__)
            self._juno_base = base
            self._juno_device = device
            self._juno_auto_transfer = auto_transfer

        def __len__(self):
            return len(self._juno_base)

        def __iter__(self):
            if not self._juno_auto_transfer:
                for batch in self._juno_base:
                    yield move_to_device(batch, self._juno_device)
                return
            yield from _prefetched_on_side_stream(iter(self._juno_base), self._juno_device)

    return DeviceDataLoader


def _prefetched_on_side_stream(batches, device):
    """Yield ``batches`` on a GPU, copying each next one on a side CUDA stream while the current is used."""
    import torch

    stream = torch.cuda.Stream(device)

    def start(batch):
        with torch.cuda.stream(stream):
            moved = move_to_device(batch, device, non_blocking=True)
            ready = torch.cuda.Event()
            ready.record(stream)
        return moved, ready

    end = object()
    pending = next(batches, end)
    pending = start(pending) if pending is not end else end
    while pending is not end:
        moved, ready = pending
        following = next(batches, end)
        pending = start(following) if following is not end else end
        current = torch.cuda.current_stream(device)
        current.wait_event(ready)
        _record_stream(moved, current, torch)
        yield moved


def _record_stream(value, stream, torch) -> None:
    """Tell the caching allocator that ``value``'s tensors, made on the side stream, are used on ``stream``."""
    if isinstance(value, torch.Tensor):
        if value.is_cuda:
            value.record_stream(stream)
    elif isinstance(value, dict):
        for v in value.values():
            _record_stream(v, stream, torch)
    elif isinstance(value, (list, tuple)):
        for v in value:
            _record_stream(v, stream, torch)


# ------------------------------------------------------------------------- reproducibility and AMP-era API

def enable_reproducibility(seed: int = 0) -> None:
    """Seed torch, numpy and random, use deterministic algorithms (cuDNN too), and let prepare_data_loader
    seed its samplers and loader workers from ``seed``. Call it first in the train loop; it costs speed."""
    import numpy as np
    import torch

    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"enable_reproducibility(seed={seed!r}) needs an int")
    _seed.append(seed)
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)
    torch.use_deterministic_algorithms(True)
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True
    # cuBLAS is deterministic only with a fixed workspace (a CUDA requirement of use_deterministic_algorithms).
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")


def accelerate(amp: bool = False) -> None:
    """Ray's older switch for automatic mixed precision: ``amp=False`` does nothing."""
    if amp:
        raise NotImplementedError("accelerate(amp=True) is not supported (Ray deprecated it too): use torch's own "
                                  "mixed precision in the loop, `with torch.autocast(device_type=get_device().type):`"
                                  " and torch.amp.GradScaler on GPUs")


def prepare_optimizer(optimizer):
    """Ray's older AMP-era hook: returns ``optimizer`` unchanged."""
    return optimizer


def backward(tensor) -> None:
    """Ray's older AMP-era hook: ``tensor.backward()``."""
    tensor.backward()

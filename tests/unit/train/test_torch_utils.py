"""Train's torch layer without a cluster: device mapping, TorchConfig, prepare_data_loader, prepare_model."""
import collections
import os
import subprocess
import sys

import pytest
import torch
import torch.distributed as dist
from torch.utils.data import (BatchSampler, DataLoader, DistributedSampler, IterableDataset, SequentialSampler,
                              TensorDataset, WeightedRandomSampler)

from juno.train.torch import (TorchConfig, accelerate, backward, enable_reproducibility, get_device, get_devices,
                              prepare_data_loader, prepare_model, prepare_optimizer)
from juno.train.torch import train_loop_utils
from juno.air.worker import free_port as find_free_port
from juno.train.torch.config import (interface_for, is_loopback, setup_process_group,
                                     teardown_process_group)
from juno.train.torch.train_loop_utils import device_indices, move_to_device


# ------------------------------------------------------------------------- device mapping

def test_device_index_is_the_position_in_cuda_visible_devices():
    assert device_indices([0], "0") == [0]
    assert device_indices([1], "0,1") == [1]
    assert device_indices([3], "2,3") == [1]
    assert device_indices([5, 2], "2,5,7") == [1, 0]
    assert device_indices([1], " 0, 1 ") == [1]


def test_fractional_gpus_on_one_id_map_to_one_index():
    assert device_indices([1], "0,1") == device_indices([1], "0,1") == [1]


def test_without_cuda_visible_devices_every_gpu_is_visible():
    assert device_indices([2], None) == [2]
    assert device_indices([2], "") == [2]
    assert device_indices([2], "NoDevFiles") == [2]


def test_a_gpu_missing_from_cuda_visible_devices_is_a_clear_error():
    with pytest.raises(RuntimeError, match="GPU 3.*does not list it"):
        device_indices([3], "0,1")


def test_outside_a_run_the_device_is_the_cpu():
    assert get_device() == torch.device("cpu")
    assert get_devices() == [torch.device("cpu")]


# ------------------------------------------------------------------------- TorchConfig

def test_torch_config_defaults_and_backend_choice():
    config = TorchConfig()
    assert (config.backend, config.init_method, config.timeout_s) == (None, "env", 1800)
    assert config.resolve_backend(has_gpu=True, cuda_available=True) == "nccl"
    assert config.resolve_backend(has_gpu=True, cuda_available=False) == "gloo"
    assert config.resolve_backend(has_gpu=False, cuda_available=True) == "gloo"
    assert TorchConfig(backend="gloo").resolve_backend(True, True) == "gloo"
    assert TorchConfig(backend="cpu:gloo,cuda:nccl").backend == "cpu:gloo,cuda:nccl"
    assert TorchConfig(init_method="tcp", timeout_s=5).timeout_s == 5


@pytest.mark.parametrize("kwargs, match", [
    ({"backend": "glooo"}, "unknown backend 'glooo'.*gloo, nccl"),
    ({"backend": ""}, "give a backend name"),
    ({"backend": "cpu:gloo,cuda:nccx"}, "unknown backend 'nccx'"),
    ({"init_method": "file"}, "use 'env' or 'tcp'"),
    ({"timeout_s": 0}, "positive number of seconds"),
    ({"timeout_s": -1}, "positive number of seconds"),
    ({"timeout_s": True}, "positive number of seconds"),
    ({"timeout_s": "60"}, "positive number of seconds"),
])
def test_torch_config_rejects_bad_values(kwargs, match):
    with pytest.raises(ValueError, match=match):
        TorchConfig(**kwargs)


def test_loopback_and_interface_lookup():
    assert is_loopback("127.0.0.1") and is_loopback("localhost") and is_loopback("::1")
    assert not is_loopback("10.0.0.5") and not is_loopback("node-3")
    addr = collections.namedtuple("addr", "address")
    interfaces = {"lo": [addr("127.0.0.1")], "eth0": [addr("10.0.0.5"), addr("fe80::1")]}
    assert interface_for("10.0.0.5", interfaces) == "eth0"
    assert interface_for("10.0.0.6", interfaces) is None


def test_find_free_port_gives_a_bindable_port():
    import socket

    port = find_free_port()
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))


def test_setup_process_group_checks_its_arguments():
    with pytest.raises(ValueError, match="world_rank=2 must be in 0..world_size-1"):
        setup_process_group(TorchConfig(), 2, 2, "127.0.0.1", 1)
    with pytest.raises(TypeError, match="needs a TorchConfig"):
        setup_process_group({"backend": "gloo"}, 0, 1, "127.0.0.1", 1)
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="needs CUDA"):
            setup_process_group(TorchConfig(backend="nccl"), 0, 1, "127.0.0.1", find_free_port())


def test_world_of_one_with_gloo_leaves_the_model_unwrapped():
    assert setup_process_group(TorchConfig(timeout_s=30), 0, 1, "127.0.0.1", find_free_port()) == "gloo"
    try:
        assert dist.is_initialized() and dist.get_world_size() == 1
        assert os.environ["RANK"] == "0" and os.environ["WORLD_SIZE"] == "1"
        model = torch.nn.Linear(2, 1)
        assert prepare_model(model) is model
        assert prepare_model(model, parallel_strategy="fsdp") is model
        with pytest.raises(RuntimeError, match="already initialized"):
            setup_process_group(TorchConfig(), 0, 1, "127.0.0.1", find_free_port())
    finally:
        teardown_process_group()
    assert not dist.is_initialized()
    teardown_process_group()  # nothing to leave: still no error


# ------------------------------------------------------------------------- prepare_model

def test_prepare_model_arguments():
    model = torch.nn.Linear(2, 1)
    assert prepare_model(model, move_to_device=False, parallel_strategy=None) is model
    assert prepare_model(model, move_to_device=torch.device("cpu")) is model
    assert prepare_model(model, wrap_ddp=False, ddp_kwargs={"find_unused_parameters": True}) is model
    with pytest.raises(ValueError, match="'ddp', 'fsdp' or None"):
        prepare_model(model, parallel_strategy="zero")
    with pytest.raises(ValueError, match="not both"):
        prepare_model(model, parallel_strategy_kwargs={}, ddp_kwargs={})
    with pytest.raises(TypeError, match="needs a torch.nn.Module"):
        prepare_model(lambda x: x)


# ------------------------------------------------------------------------- prepare_data_loader

def collate(items):
    return {"x": torch.stack([i[0] for i in items])}


@pytest.fixture
def rank_1_of_2(monkeypatch):
    """torchrun's variables of the second of two workers (no process group needed to shard data)."""
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")


@pytest.fixture
def dataset():
    return TensorDataset(torch.arange(10.0))


def test_in_a_world_of_one_the_loader_keeps_its_sampler(dataset):
    loader = DataLoader(dataset, batch_size=4, shuffle=True)
    prepared = prepare_data_loader(loader)
    assert isinstance(prepared, DataLoader) and prepared.sampler is loader.sampler
    assert len(prepared) == 3 and sorted(torch.cat([b[0] for b in prepared]).tolist()) == list(range(10))


def test_the_rebuilt_loader_keeps_the_options(rank_1_of_2, dataset):
    loader = DataLoader(dataset, batch_size=2, shuffle=True, collate_fn=collate, drop_last=True, timeout=0,
                        pin_memory=False)
    prepared = prepare_data_loader(loader)
    sampler = prepared.sampler
    assert isinstance(sampler, DistributedSampler)
    assert (sampler.num_replicas, sampler.rank, sampler.shuffle) == (2, 1, True)
    assert (prepared.batch_size, prepared.collate_fn, prepared.drop_last, prepared.num_workers) == \
        (2, collate, True, 0)
    assert len(prepared) == 2  # 5 of the 10 rows on this rank, whole batches of 2
    batches = list(prepared)
    assert all(set(b) == {"x"} and b["x"].shape == (2,) and b["x"].device.type == "cpu" for b in batches)


def no_op_init(worker_id):
    pass


def test_worker_process_options_are_kept_too(rank_1_of_2, dataset):
    generator = torch.Generator().manual_seed(3)
    loader = DataLoader(dataset, batch_size=2, num_workers=2, persistent_workers=True, prefetch_factor=3,
                        worker_init_fn=no_op_init, generator=generator, timeout=5, pin_memory=True,
                        multiprocessing_context="spawn", in_order=False)
    prepared = prepare_data_loader(loader)  # not iterated: no worker processes start
    assert isinstance(prepared.sampler, DistributedSampler)
    for option in ("num_workers", "persistent_workers", "prefetch_factor", "worker_init_fn", "generator", "timeout",
                   "pin_memory", "multiprocessing_context", "in_order"):
        assert getattr(prepared, option) == getattr(loader, option), option


def test_set_epoch_reorders_and_ranks_split_the_data(monkeypatch, dataset):
    monkeypatch.setenv("WORLD_SIZE", "2")
    orders = {}
    for rank in (0, 1):
        monkeypatch.setenv("RANK", str(rank))
        prepared = prepare_data_loader(DataLoader(dataset, batch_size=5, shuffle=True))
        for epoch in (0, 1):
            prepared.sampler.set_epoch(epoch)
            orders[rank, epoch] = torch.cat([b[0] for b in prepared]).tolist()
    for epoch in (0, 1):
        assert sorted(orders[0, epoch] + orders[1, epoch]) == list(range(10)), "disjoint and covering"
    assert orders[0, 0] != orders[0, 1], "set_epoch gives a new order"


def test_an_unshuffled_loader_stays_in_order(rank_1_of_2, dataset):
    prepared = prepare_data_loader(DataLoader(dataset, batch_size=5))
    assert prepared.sampler.shuffle is False
    assert torch.cat([b[0] for b in prepared]).tolist() == [1.0, 3.0, 5.0, 7.0, 9.0]


def test_loaders_that_are_not_resharded(rank_1_of_2, dataset):
    sampler = DistributedSampler(dataset, num_replicas=2, rank=1)
    assert prepare_data_loader(DataLoader(dataset, sampler=sampler)).sampler is sampler

    class Stream(IterableDataset):
        def __iter__(self):
            return iter(range(4))

    assert [b.tolist() for b in prepare_data_loader(DataLoader(Stream(), batch_size=2))] == [[0, 1], [2, 3]]
    plain = DataLoader(dataset, batch_size=2, shuffle=True)
    assert prepare_data_loader(plain, add_dist_sampler=False).sampler is plain.sampler
    assert prepare_data_loader(plain, move_to_device=False, add_dist_sampler=False) is plain


def test_custom_samplers(rank_1_of_2, dataset):
    batches = BatchSampler(SequentialSampler(dataset), batch_size=2, drop_last=False)

    class MyBatches(BatchSampler):
        pass

    assert isinstance(prepare_data_loader(DataLoader(dataset, batch_sampler=batches)).sampler, DistributedSampler)
    with pytest.raises(ValueError, match="custom batch_sampler.*add_dist_sampler=False"):
        prepare_data_loader(DataLoader(dataset, batch_sampler=MyBatches(SequentialSampler(dataset), 2, False)))
    with pytest.warns(UserWarning, match="replaces this DataLoader's WeightedRandomSampler"):
        prepare_data_loader(DataLoader(dataset, sampler=WeightedRandomSampler([1.0] * 10, 10)))
    with pytest.raises(TypeError, match="needs a torch.utils.data.DataLoader"):
        prepare_data_loader([1, 2])


def test_move_to_device_walks_containers():
    Pair = collections.namedtuple("Pair", "a b")
    value = {"t": torch.ones(1), "nested": [Pair(torch.zeros(1), "label"), (torch.ones(2),)], "n": 3}
    moved = move_to_device(value, torch.device("cpu"))
    assert isinstance(moved["nested"][0], Pair) and moved["nested"][0].b == "label" and moved["n"] == 3
    assert moved["nested"][1][0].tolist() == [1.0, 1.0]


# ------------------------------------------------------------------------- reproducibility, AMP-era API

@pytest.fixture
def restore_determinism():
    yield
    torch.use_deterministic_algorithms(False)
    torch.backends.cudnn.deterministic = False
    train_loop_utils._seed.clear()


def test_enable_reproducibility(restore_determinism, rank_1_of_2, dataset):
    import random

    import numpy as np

    draws = []
    for _ in range(2):
        enable_reproducibility(7)
        draws.append((torch.rand(2).tolist(), np.random.rand(), random.random()))
    assert draws[0] == draws[1]
    assert torch.are_deterministic_algorithms_enabled() and torch.backends.cudnn.deterministic
    prepared = prepare_data_loader(DataLoader(dataset, batch_size=5, shuffle=True))
    assert prepared.sampler.seed == 7 and prepared.generator.initial_seed() == 7
    with pytest.raises(TypeError, match="needs an int"):
        enable_reproducibility("7")


def test_amp_era_functions():
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.ones(1))], lr=0.1)
    assert prepare_optimizer(optimizer) is optimizer
    x = torch.ones(1, requires_grad=True)
    backward((x * 3).sum())
    assert x.grad.tolist() == [3.0]
    accelerate()
    with pytest.raises(NotImplementedError, match="torch.autocast"):
        accelerate(amp=True)


def test_importing_train_does_not_import_torch():
    code = "import sys, juno.train, juno.train.torch; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "False", out.stderr

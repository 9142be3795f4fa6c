"""Train's torch layer in real worker actors: a gloo process group, DDP gradients, a failed rendezvous,
and the device mapping with logical GPUs."""
import os
import sys
import time
import warnings

import cloudpickle
import pytest

import juno

cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers can't import this file

JUNO_SHARED_INIT = {"num_cpus": 4, "num_gpus": 2}


@juno.remote(num_cpus=1)
class TorchWorker:
    """What the worker group's actors do around a train loop, step by step."""

    def free_port(self):
        from juno.air.worker import free_port as find_free_port

        return find_free_port()

    def setup(self, rank, world, port, timeout_s=60):
        from juno.train.torch.config import TorchConfig, setup_process_group

        started = time.monotonic()
        try:
            backend = setup_process_group(TorchConfig(timeout_s=timeout_s), rank, world, "127.0.0.1", port)
        except Exception as e:  # noqa: BLE001 - the test reads the error and how long it took
            return type(e).__name__, str(e), time.monotonic() - started
        return backend, None, time.monotonic() - started

    def all_reduce(self, value):
        import torch
        import torch.distributed as dist

        t = torch.tensor([float(value)])
        dist.all_reduce(t)
        return t.item()

    def ddp_step(self, seed):
        """One backward of a DDP-wrapped model on this rank's own data: the gradients DDP averaged."""
        import torch

        from juno.train.torch import prepare_model

        torch.manual_seed(0)  # same initial weights on every rank
        model = prepare_model(torch.nn.Linear(3, 1))
        torch.manual_seed(seed)  # different data on every rank
        x, y = torch.randn(8, 3), torch.randn(8, 1)
        torch.nn.functional.mse_loss(model(x), y).backward()
        return type(model).__name__, [p.grad.tolist() for p in model.parameters()], x.tolist(), y.tolist()

    def fsdp_step(self):
        """FSDP on CPU workers (torch's fully_shard over gloo): a forward and backward run."""
        import torch

        from juno.train.torch import prepare_model

        torch.manual_seed(0)
        model = prepare_model(torch.nn.Sequential(torch.nn.Linear(4, 2)), parallel_strategy="fsdp")
        model(torch.randn(3, 4)).sum().backward()
        return type(model).__name__

    def device_view(self, visible=None):
        from juno.train.torch import get_device
        from juno.train.torch.train_loop_utils import device_indices

        if visible is not None:  # what the worker group does: every worker on a node sees the node's union
            os.environ["CUDA_VISIBLE_DEVICES"] = visible
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            device = str(get_device())
            str(get_device())
        return (juno.get_gpu_ids(), os.environ.get("CUDA_VISIBLE_DEVICES"),
                device_indices(juno.get_gpu_ids(), os.environ.get("CUDA_VISIBLE_DEVICES")), device,
                [str(w.message) for w in caught])

    def teardown(self):
        import torch.distributed as dist

        from juno.train.torch.config import teardown_process_group

        teardown_process_group()
        teardown_process_group()  # twice: never raises
        return dist.is_initialized()


@pytest.fixture
def workers(cluster):
    made = []

    def make(n, **options):
        made.extend(TorchWorker.options(**options).remote() for _ in range(n))
        return made[-n:]

    yield make
    for w in made:
        juno.kill(w)


def test_two_workers_all_reduce_and_ddp_gradients_agree(workers):
    import torch

    a, b = workers(2)
    port = juno.get(a.free_port.remote(), timeout=60)
    assert 1024 < port < 65536
    setups = juno.get([a.setup.remote(0, 2, port), b.setup.remote(1, 2, port)], timeout=90)
    assert [s[:2] for s in setups] == [("gloo", None), ("gloo", None)], setups
    assert juno.get([a.all_reduce.remote(1), b.all_reduce.remote(2)], timeout=60) == [3.0, 3.0]

    steps = juno.get([a.ddp_step.remote(1), b.ddp_step.remote(2)], timeout=60)
    assert [s[0] for s in steps] == ["DistributedDataParallel"] * 2
    assert steps[0][1] == steps[1][1], "DDP all-reduces the gradients: every rank holds the same"
    assert steps[0][2] != steps[1][2], "the ranks trained on different data"

    # The averaged gradients are those of one model over both ranks' data (equal batch sizes).
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 1)
    grads = []
    for _, _, x, y in steps:
        model.zero_grad()
        torch.nn.functional.mse_loss(model(torch.tensor(x)), torch.tensor(y)).backward()
        grads.append([p.grad.clone() for p in model.parameters()])
    for got, g0, g1 in zip(steps[0][1], *grads):
        assert torch.allclose(torch.tensor(got), (g0 + g1) / 2, atol=1e-6)

    assert juno.get([a.fsdp_step.remote(), b.fsdp_step.remote()], timeout=60) == ["FSDPSequential"] * 2
    assert juno.get([a.teardown.remote(), b.teardown.remote()], timeout=60) == [False, False]


@pytest.mark.parametrize("rank", [0, 1])
def test_a_rendezvous_whose_peer_never_comes_fails_clearly_in_time(workers, rank):
    (lonely,) = workers(1)
    port = juno.get(lonely.free_port.remote(), timeout=60)
    kind, message, took = juno.get(lonely.setup.remote(rank, 2, port, timeout_s=3), timeout=60)
    assert kind == "TimeoutError", message
    assert "rendezvous timed out" in message and "TorchConfig(timeout_s=" in message
    assert f"127.0.0.1:{port}" in message
    assert took < 3 * 3, f"a 3 s rendezvous timeout took {took:.1f} s"


def test_logical_gpus_map_to_distinct_devices(workers):
    a, b = workers(2, num_gpus=1)
    alone = juno.get([w.device_view.remote() for w in (a, b)], timeout=60)
    assert sorted(ids[0] for ids, *_ in alone) == [0, 1]
    for ids, visible, indices, device, caught in alone:
        assert visible == str(ids[0]) and indices == [0], "Juno shows each worker only its own GPU"

    together = juno.get([w.device_view.remote("0,1") for w in (a, b)], timeout=60)
    for ids, visible, indices, device, caught in together:
        assert indices == ids, "with the node's union visible, each worker's index is its GPU's position"
        assert device == "cpu", "logical GPUs: torch has no CUDA here"
        assert len(caught) <= 1 and all("logical GPUs" in m for m in caught), caught
    # The warning is said once per worker process: the first call above already said it.
    assert [len(c) for *_, c in alone] == [1, 1]
    assert [len(c) for *_, c in together] == [0, 0]

    # A worker with (logical) GPUs but no CUDA in torch picks gloo.
    port = juno.get(a.free_port.remote(), timeout=60)
    setups = juno.get([a.setup.remote(0, 2, port), b.setup.remote(1, 2, port)], timeout=90)
    assert [s[:2] for s in setups] == [("gloo", None), ("gloo", None)], setups
    juno.get([a.teardown.remote(), b.teardown.remote()], timeout=60)


def test_fractional_gpus_share_one_device_index(workers):
    a, b = workers(2, num_gpus=0.5)
    views = juno.get([w.device_view.remote() for w in (a, b)], timeout=60)
    assert views[0][0] == views[1][0] and len(views[0][0]) == 1, "two half-GPU workers share one GPU"
    assert views[0][2] == views[1][2] == [0]

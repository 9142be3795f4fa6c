"""Where a run's workers land and what they see: several nodes without a shared file system for
checkpoints, and logical GPUs (ids, CUDA_VISIBLE_DEVICES, fractions)."""
import os
import sys

import cloudpickle
import pytest

from helpers import multi_node_cluster

import juno
from juno import train
from juno.train import Checkpoint, DataParallelTrainer, FailureConfig, RunConfig, ScalingConfig

cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers can't import this file


def sharded_checkpoint_loop(config):
    """Every rank saves its own shard file; after a restart each rank reads its shard back."""
    import tempfile

    rank = train.get_context().get_world_rank()
    resumed = None
    if train.get_checkpoint():
        with train.get_checkpoint().as_directory() as d:
            resumed = open(os.path.join(d, f"shard_{rank}.txt")).read()
    for epoch in range(3):
        if epoch == 1 and rank == 1 and not resumed:
            os._exit(1)  # rank 1, on the other node, dies once
        with tempfile.TemporaryDirectory() as d:
            with open(os.path.join(d, f"shard_{rank}.txt"), "w") as f:
                f.write(f"rank {rank} epoch {epoch} node {juno.get_runtime_context().get_node_id()}")
            train.report({"epoch": epoch, "resumed": resumed or ""}, checkpoint=Checkpoint.from_directory(d))


def test_checkpoints_from_another_node_reach_the_storage_path(_juno_leak_guard, tmp_path):
    with multi_node_cluster(_juno_leak_guard, {"num_cpus": 1}, {"num_cpus": 1}) as (cluster, (other,)):
        result = DataParallelTrainer(
            sharded_checkpoint_loop, scaling_config=ScalingConfig(num_workers=2),
            run_config=RunConfig(storage_path=str(tmp_path), name="run",
                                 failure_config=FailureConfig(max_failures=1))).fit()
        with result.checkpoint.as_directory() as d:
            shards = {name: open(os.path.join(d, name)).read() for name in sorted(os.listdir(d))}
        assert list(shards) == ["shard_0.txt", "shard_1.txt"]
        assert shards["shard_1.txt"].endswith(f"node {other.node_id}")  # written on the other node, merged here
        # After the restart rank 1 (other node) read its shard from the driver's disk through the store.
        assert result.metrics["resumed"] == f"rank 0 epoch 0 node {cluster.head_node.node_id}"
        assert result.metrics["epoch"] == 2


def gpu_probe_loop():
    train.report({"visible": os.environ.get("CUDA_VISIBLE_DEVICES"), "ids": list(map(str, juno.get_gpu_ids())),
                  "rank": train.get_context().get_world_rank()})
    import json

    with open(os.path.join(train.get_context().get_trial_dir(), f"gpu_{train.get_context().get_world_rank()}.json"),
              "w") as f:
        json.dump({"visible": os.environ.get("CUDA_VISIBLE_DEVICES"), "ids": [str(i) for i in juno.get_gpu_ids()]}, f)


def _gpu_views(tmp_path):
    import json

    return [json.load(open(tmp_path / "run" / f"gpu_{rank}.json")) for rank in range(2)]


def test_use_gpu_gives_each_worker_its_gpu_and_shows_the_nodes(juno_start_gpus, tmp_path):
    DataParallelTrainer(gpu_probe_loop, scaling_config=ScalingConfig(num_workers=2, use_gpu=True),
                        run_config=RunConfig(storage_path=str(tmp_path), name="run")).fit()
    views = _gpu_views(tmp_path)
    assert [v["visible"] for v in views] == ["0,1", "0,1"]  # the node's GPUs, so NCCL sees its peers
    assert sorted(v["ids"][0] for v in views) == ["0", "1"] and all(len(v["ids"]) == 1 for v in views)


def test_fractional_gpus_pack_two_workers_on_one_gpu(juno_start_gpus, tmp_path):
    DataParallelTrainer(gpu_probe_loop, scaling_config=ScalingConfig(num_workers=2, use_gpu=True,
                                                                     resources_per_worker={"CPU": 1, "GPU": 0.5}),
                        run_config=RunConfig(storage_path=str(tmp_path), name="run")).fit()
    views = _gpu_views(tmp_path)
    assert views[0]["ids"] == views[1]["ids"] and len(views[0]["ids"]) == 1
    assert views[0]["visible"] == views[1]["visible"] == views[0]["ids"][0]
    assert juno.available_resources().get("GPU") == 2


def node_death_loop(config):
    import time

    start = train.get_checkpoint().to_dict()["epoch"] + 1 if train.get_checkpoint() else 0
    for epoch in range(start, 8):
        if epoch == 3 and start == 0 and train.get_context().get_world_rank() == 1:
            with open(config["ready"], "w") as f:
                f.write(juno.get_runtime_context().get_node_id())
            time.sleep(120)  # its node is removed meanwhile
        checkpoint = Checkpoint.from_dict({"epoch": epoch}) if train.get_context().get_world_rank() == 0 else None
        train.report({"epoch": epoch, "start": start}, checkpoint=checkpoint)


def test_a_dead_node_restarts_the_run_on_the_nodes_left(_juno_leak_guard, tmp_path):
    import threading

    from helpers import wait_for_condition

    # A node is declared dead after 5 s of silence: sooner, a loaded CI machine makes healthy nodes look dead.
    config = {"heartbeat_interval_s": 0.3, "node_death_timeout_s": 5.0}
    with multi_node_cluster(_juno_leak_guard, {"num_cpus": 1}, {"num_cpus": 1}, {"num_cpus": 1},
                            system_config=config) as (cluster, nodes):
        ready = tmp_path / "rank1_node"

        def remove_rank1s_node():
            # Once rank 1 sleeps in epoch 3 and the driver holds epochs 0-2 of both ranks (a killed node's
            # reports still in flight are lost with it), remove rank 1's node.
            state = tmp_path / "run" / "run_state.json"
            wait_for_condition(lambda: ready.exists() and state.exists() and "checkpoint_000003" in state.read_text(),
                               timeout=120)
            node_id = ready.read_text()
            cluster.remove_node(next(n for n in nodes if n.node_id == node_id), allow_graceful=False)

        killer = threading.Thread(target=remove_rank1s_node, daemon=True)
        killer.start()
        result = DataParallelTrainer(node_death_loop, train_loop_config={"ready": str(ready)},
                                     scaling_config=ScalingConfig(num_workers=2),
                                     run_config=RunConfig(storage_path=str(tmp_path), name="run",
                                                          failure_config=FailureConfig(max_failures=2))).fit()
        killer.join(timeout=5)
        assert result.metrics["epoch"] == 7 and result.metrics["start"] == 3
        # A second loss leaves one CPU for two workers: an error at once, not a wait.
        with pytest.raises(ValueError, match="can never be placed"):
            DataParallelTrainer(node_death_loop, scaling_config=ScalingConfig(num_workers=3),
                                run_config=RunConfig(storage_path=str(tmp_path), name="run2")).fit()


def test_torch_trainer_on_logical_gpus_trains_with_gloo_on_cpu(juno_start_gpus, tmp_path):
    def loop():
        import warnings

        import torch
        import torch.distributed as dist

        from juno.train.torch import get_device, prepare_model

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            device = get_device()
        model = prepare_model(torch.nn.Linear(2, 1))
        loss = model(torch.ones(4, 2)).sum()
        loss.backward()
        train.report({"device": str(device), "backend": dist.get_backend(), "warned": len(caught),
                      "visible": os.environ["CUDA_VISIBLE_DEVICES"], "ddp": type(model).__name__})

    from juno.train.torch import TorchTrainer

    result = TorchTrainer(loop, scaling_config=ScalingConfig(num_workers=2, use_gpu=True),
                          run_config=RunConfig(storage_path=str(tmp_path), name="run")).fit()
    m = result.metrics
    assert (m["device"], m["backend"], m["visible"], m["ddp"]) == ("cpu", "gloo", "0,1", "DistributedDataParallel")
    assert m["warned"] == 0  # that the GPUs are logical is said once per worker, at set-up, not per call

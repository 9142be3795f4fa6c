"""Juno Train end to end on a real cluster: real torch.distributed (gloo) DDP between worker actors,
checkpoints on disk, dataset shards, a killed worker recovered, an interrupted run restored."""
import _thread
import json
import os
import sys
import threading

import cloudpickle
import pytest

import juno
from juno import train
from juno.train import (Checkpoint, CheckpointConfig, DataParallelTrainer, FailureConfig, RunConfig, ScalingConfig,
                        TrainingFailedError)
from juno.train.torch import TorchTrainer

cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers can't import this file

JUNO_SHARED_INIT = {"num_cpus": 3}  # two workers, and one CPU for Data's reads


def ddp_loop(config):
    """Linear regression with DDP; resumes from the checkpoint's epoch; rank 0 checkpoints each epoch."""
    import tempfile

    import torch

    from juno.train.torch import prepare_model

    torch.manual_seed(0)
    model = prepare_model(torch.nn.Linear(4, 1))
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    rank = train.get_context().get_world_rank()
    g = torch.Generator().manual_seed(rank)
    X = torch.randn(128, 4, generator=g)
    y = X @ torch.tensor([1.0, -2.0, 3.0, 0.5]) + 0.1
    start = 0
    checkpoint = train.get_checkpoint()
    if checkpoint:
        with checkpoint.as_directory() as d:
            state = torch.load(os.path.join(d, "model.pt"))
            model.module.load_state_dict(state["model"]) if hasattr(model, "module") else \
                model.load_state_dict(state["model"])
            start = state["epoch"] + 1
    for epoch in range(start, config["epochs"]):
        if config.get("die_at") == epoch and not os.path.exists(config["marker"]):
            open(config["marker"], "w").close()
            if rank == config.get("die_rank", 1):
                os._exit(1) if config.get("how") == "exit" else (_ for _ in ()).throw(ValueError("bad batch"))
        loss = ((model(X).squeeze(-1) - y) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        checkpoint = None
        with tempfile.TemporaryDirectory() as d:
            if rank == 0 and config.get("checkpoint", True):
                inner = model.module if hasattr(model, "module") else model
                torch.save({"model": inner.state_dict(), "epoch": epoch}, os.path.join(d, "model.pt"))
                checkpoint = Checkpoint.from_directory(d)
            train.report({"loss": loss.item(), "epoch": epoch, "start": start,
                          "world_size": train.get_context().get_world_size()}, checkpoint=checkpoint)


def _run_config(tmp_path, **kwargs):
    return RunConfig(storage_path=str(tmp_path), name="run", **kwargs)


def test_ddp_run_learns_and_keeps_its_checkpoints(cluster, tmp_path):
    result = TorchTrainer(ddp_loop, train_loop_config={"epochs": 8},
                          scaling_config=ScalingConfig(num_workers=2),
                          run_config=_run_config(tmp_path, checkpoint_config=CheckpointConfig(num_to_keep=2))).fit()
    losses = list(result.metrics_dataframe["loss"])
    assert len(losses) == 8 and losses[-1] < losses[0] / 2
    assert result.metrics["world_size"] == 2 and result.metrics["training_iteration"] == 8
    assert result.error is None and result.path == str(tmp_path / "run")
    kept = sorted(p for p in os.listdir(tmp_path / "run") if p.startswith("checkpoint_"))
    assert kept == ["checkpoint_000007", "checkpoint_000008"]
    assert [c.path for c, _ in result.best_checkpoints] == [str(tmp_path / "run" / k) for k in kept]
    assert result.checkpoint.path.endswith("checkpoint_000008")
    with result.checkpoint.as_directory() as d:
        assert os.path.exists(os.path.join(d, "model.pt"))
    assert juno.available_resources().get("CPU") == 3  # the placement group is gone


def test_result_metrics_are_the_last_report_even_without_a_checkpoint(cluster, tmp_path):
    result = TorchTrainer(ddp_loop, train_loop_config={"epochs": 3, "checkpoint": False},
                          scaling_config=ScalingConfig(num_workers=2), run_config=_run_config(tmp_path)).fit()
    assert result.metrics["epoch"] == 2 and result.checkpoint is None and result.best_checkpoints == []
    assert train.Result.from_path(result.path).metrics["epoch"] == 2


def test_datasets_need_a_cpu_beside_the_workers(cluster, tmp_path):
    with pytest.raises(ValueError, match=r"3 workers hold 3 of the cluster's 3 CPUs"):
        DataParallelTrainer(lambda: None, scaling_config=ScalingConfig(num_workers=3),
                            datasets={"train": juno.data.range(10)}, run_config=_run_config(tmp_path)).fit()


def test_each_worker_reads_a_disjoint_covering_shard_every_epoch(cluster, tmp_path):
    def loop(config):
        shard = train.get_dataset_shard("train")
        rank = train.get_context().get_world_rank()
        for epoch in range(2):
            ids = [int(i) for batch in shard.iter_batches(batch_size=16) for i in batch["id"]]
            with open(os.path.join(config["out"], f"{rank}_{epoch}.json"), "w") as f:
                json.dump(ids, f)
            train.report({"rows": len(ids)})

    DataParallelTrainer(loop, train_loop_config={"out": str(tmp_path)}, scaling_config=ScalingConfig(num_workers=2),
                        datasets={"train": juno.data.range(100)}, run_config=_run_config(tmp_path)).fit()
    for epoch in range(2):
        a, b = (json.load(open(tmp_path / f"{rank}_{epoch}.json")) for rank in range(2))
        assert not set(a) & set(b) and sorted(a + b) == list(range(100)) and len(a) == len(b) == 50


def test_a_killed_worker_restarts_the_group_from_the_latest_checkpoint(cluster, tmp_path):
    config = {"epochs": 6, "die_at": 3, "how": "exit", "marker": str(tmp_path / "died")}
    result = TorchTrainer(ddp_loop, train_loop_config=config, scaling_config=ScalingConfig(num_workers=2),
                          run_config=_run_config(tmp_path, failure_config=FailureConfig(max_failures=1))).fit()
    assert os.path.exists(config["marker"])
    # Resumed from the last checkpoint every rank had reported: epoch 2's, or epoch 1's when rank 1 died
    # before its (metrics-only, so not waited for) report of epoch 2 reached the driver.
    assert result.metrics["epoch"] == 5 and result.metrics["start"] in (2, 3)
    iterations = list(result.metrics_dataframe["training_iteration"])
    assert iterations == sorted(iterations) and iterations[-1] == 6


def test_failures_past_max_failures_raise_with_the_workers_error(cluster, tmp_path):
    config = {"epochs": 4, "die_at": 1, "how": "raise", "marker": str(tmp_path / "raised")}
    with pytest.raises(TrainingFailedError) as info:
        TorchTrainer(ddp_loop, train_loop_config=config, scaling_config=ScalingConfig(num_workers=2),
                     run_config=_run_config(tmp_path)).fit()
    assert str(info.value).startswith("ValueError: bad batch")
    assert juno.available_resources().get("CPU") == 3


def test_an_interrupted_run_stops_its_workers_and_restores_later(cluster, tmp_path):
    def slow_loop(config):
        import time

        start = (train.get_checkpoint().to_dict()["epoch"] + 1) if train.get_checkpoint() else 0
        for epoch in range(start, 6):
            if epoch == 2 and not os.path.exists(config["marker"]):
                open(config["marker"], "w").close()
                time.sleep(60)  # interrupted here
            checkpoint = Checkpoint.from_dict({"epoch": epoch}) if train.get_context().get_world_rank() == 0 else None
            train.report({"epoch": epoch, "start": start}, checkpoint=checkpoint)

    marker = tmp_path / "sleeping"

    def interrupt_once_two_epochs_are_kept():
        _wait_for(lambda: marker.exists() and "checkpoint_000002" in _read(tmp_path / "run" / "run_state.json"))
        _thread.interrupt_main()

    threading.Thread(target=interrupt_once_two_epochs_are_kept, daemon=True).start()
    trainer = DataParallelTrainer(slow_loop, train_loop_config={"marker": str(marker)},
                                  scaling_config=ScalingConfig(num_workers=2), run_config=_run_config(tmp_path))
    with pytest.raises(KeyboardInterrupt):
        trainer.fit()
    assert juno.available_resources().get("CPU") == 3  # workers gone, placement group released
    path = str(tmp_path / "run")
    assert DataParallelTrainer.can_restore(path) and not DataParallelTrainer.can_restore(str(tmp_path))
    result = DataParallelTrainer.restore(path).fit()
    assert result.metrics["epoch"] == 5 and result.metrics["start"] == 2


def _wait_for(condition, timeout=60):
    import time

    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.05)


def _read(path):
    return path.read_text() if path.exists() else ""


def test_session_functions_outside_a_run_say_where_to_call_them():
    with pytest.raises(train.SessionMisuseError, match="outside a training run"):
        train.report({"loss": 1.0})
    with pytest.raises(train.SessionMisuseError, match="get_checkpoint"):
        train.get_checkpoint()


def test_older_report_forms_and_session_accessors(cluster, tmp_path):
    def loop():
        from juno.air import session

        session.report({"rank": session.get_world_rank(), "size": session.get_world_size()})
        train.report(loss=0.5, local=session.get_local_rank())

    result = DataParallelTrainer(loop, scaling_config=ScalingConfig(num_workers=2),
                                 run_config=_run_config(tmp_path)).fit()
    assert result.metrics["loss"] == 0.5 and result.metrics["local"] == 0
    assert list(result.metrics_dataframe["size"].dropna()) == [2]

"""Interrupting a notebook cell that runs a training run or a Tune experiment: the run stops, its
workers and their resources are released, the kernel keeps working, and the run resumes later from
its folder (a real ipykernel, interrupted with SIGINT as by the stop button)."""
from __future__ import annotations

import os

SETUP = '''
import os, time, juno
from juno import train, tune
juno.init(num_cpus=2)

def epochs(config):
    checkpoint = train.get_checkpoint()
    start = checkpoint.to_dict()["epoch"] + 1 if checkpoint else 0
    for epoch in range(start, 6):
        if epoch == 2 and not os.path.exists(config["marker"]):
            open(config["marker"], "w").close()
            time.sleep(60)
        rank0 = train.get_context().get_world_rank() == 0
        train.report({"epoch": epoch, "start": start},
                     checkpoint=train.Checkpoint.from_dict({"epoch": epoch}) if rank0 else None)
'''


def test_an_interrupted_training_run_releases_its_workers_and_restores(own_kernel, tmp_path):
    marker, storage = tmp_path / "sleeping", str(tmp_path / "runs")
    own_kernel.run_ok(SETUP)
    cell = own_kernel.submit(
        f"trainer = train.DataParallelTrainer(epochs, train_loop_config={{'marker': {str(marker)!r}}},\n"
        f"    scaling_config=train.ScalingConfig(num_workers=2),\n"
        f"    run_config=train.RunConfig(storage_path={storage!r}, name='run'))\n"
        "trainer.fit()")
    state = tmp_path / "runs" / "run" / "run_state.json"
    own_kernel.wait_for(lambda: marker.exists() and state.exists() and "checkpoint_000002" in state.read_text(),
                        timeout=60, what="two epochs kept and a worker asleep")
    own_kernel.interrupt()
    own_kernel.wait(cell, timeout=30)
    assert not cell.ok and cell.error["ename"] == "KeyboardInterrupt"
    assert own_kernel.eval("juno.available_resources()['CPU']") == "2.0"  # workers gone, group released
    resumed = own_kernel.run_ok(
        f"r = train.DataParallelTrainer.restore({os.path.join(storage, 'run')!r}).fit()\n"
        "print('resumed', r.metrics['epoch'], r.metrics['start'])", timeout=90)
    assert "resumed 5 2" in resumed.stdout


def test_an_interrupted_experiment_returns_its_results_and_restores(own_kernel, tmp_path):
    marker, storage = tmp_path / "sleeping", str(tmp_path / "runs")
    own_kernel.run_ok(SETUP)
    cell = own_kernel.submit(
        f"grid = tune.Tuner(tune.with_resources(epochs, {{'cpu': 2}}), param_space={{'marker': {str(marker)!r}}},\n"
        f"    run_config=tune.RunConfig(storage_path={storage!r}, name='exp', verbose=0)).fit()\n"
        "print('returned', len(grid), grid[0].metrics.get('epoch'))")
    own_kernel.wait_for(marker.exists, timeout=60, what="a trial asleep")
    own_kernel.interrupt()
    own_kernel.wait(cell, timeout=40)
    assert cell.ok, cell.error_text  # fit() returns what there is: the kernel is not left with an error
    assert "returned 1 1" in cell.stdout
    assert own_kernel.eval("juno.available_resources()['CPU']") == "2.0"
    resumed = own_kernel.run_ok(
        f"grid = tune.Tuner.restore({os.path.join(storage, 'exp')!r}, trainable=epochs).fit()\n"
        "print('resumed', grid[0].metrics['epoch'], grid[0].metrics['start'])", timeout=90)
    assert "resumed 5 2" in resumed.stdout

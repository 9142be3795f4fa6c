"""juno.util.progress runs on a real cluster: published by drivers, listed by the state API and the
dashboard's state service, finished or failed, and failed when their driver dies mid-run."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid

import pytest
from helpers import wait_for_condition

import juno
from juno.owner.core_worker import global_worker
from juno.dashboard.state_service import StateService
from juno.util import progress
from juno.util.state import list_library_runs

JUNO_SHARED_INIT = {"num_cpus": 2}


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def run_of(title: str, **kw):
    return next((r for r in list_library_runs(**kw) if r["title"] == title), None)


@pytest.fixture
def quiet():
    progress.set_display_enabled(False)
    yield
    progress.set_display_enabled(True)


def test_a_finished_run_is_listed_finished_with_its_table(cluster, quiet):
    title = unique("map_batches")
    with progress.open("data", title, total=1000, unit="rows") as run:
        run.advance(400)
        run.set_table(["operator", "rows", "state"], [["ReadRange", 400, "running"]])
        run.set_fields(blocks=4)
        run.add_point("rows/s", 1, 400)
        running = wait_for_condition(lambda: run_of(title), timeout=15)  # published within a second or so
        assert running["state"] == "running" and running["kind"] == "data"
    row = run_of(title)  # the final state is in the GCS once finish() returned
    assert row is not None and row.state == "finished" and row.done == 1000 and row.total == 1000
    assert row.unit == "rows" and row.job_id == juno.get_runtime_context().get_job_id()
    assert "rows" not in row  # the table is a detail column
    detail = run_of(title, detail=True)
    assert detail["columns"] == ["operator", "rows", "state"] and detail["rows"] == [["ReadRange", 400, "running"]]
    assert detail["fields"] == {"blocks": 4} and detail["series"] == {"rows/s": [[1.0, 400.0]]}
    assert all(r.kind == "data" for r in list_library_runs(kind="data"))
    assert run_of(title, kind="train") is None
    assert run_of(title, filters=[("state", "=", "finished")]) is not None
    with pytest.raises(TypeError, match="kind must be a library name"):
        list_library_runs(kind=3)


def test_a_failed_run_is_listed_failed_and_the_dashboard_service_shows_it(cluster, quiet):
    title = unique("failing")
    with pytest.raises(ZeroDivisionError):
        with progress.open("train", title) as run:
            run.advance(2)
            1 / 0
    row = run_of(title)
    assert row.state == "failed" and "ZeroDivisionError" in row.error and row.done == 2
    service = StateService(global_worker().gcs_address.replace("tcp://", ""), timeout=10)
    try:
        runs = service.library_runs()["runs"]
        entry = next(r for r in runs if r["title"] == title)
        assert entry["state"] == "failed" and "series" not in entry and entry["series_last"] == {}
        assert service.snapshot()["library_runs"] == service.library_runs()
    finally:
        service.close()


def test_a_run_whose_driver_dies_ends_failed(cluster):
    title = unique("orphan")
    address = global_worker().gcs_address.replace("tcp://", "")
    code = (f"import juno, time\nfrom juno.util import progress\njuno.init(address={address!r})\n"
            f"run = progress.open('data', {title!r}, display=False)\nrun.advance(5)\n"
            "print('opened', flush=True)\ntime.sleep(60)\n")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "opened"
        wait_for_condition(lambda: run_of(title) is not None and run_of(title).state == "running", timeout=15)
        os.kill(proc.pid, signal.SIGKILL)  # no atexit: the GCS must notice the job ended
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(15)
    row = wait_for_condition(lambda: (r := run_of(title)) is not None and r.state == "failed" and r, timeout=20)
    assert "driver exited" in row.error and row.end_time <= time.time()


def test_a_train_run_shows_its_state_and_latest_metrics_in_the_dashboard(cluster):
    from juno.train.progress import TrainProgress

    title = unique("TorchTrainer(train_func)")
    view = TrainProgress(title, "run-a", 2, display=False)
    node_id = juno.get_runtime_context().get_node_id()
    view.start(1, [{"rank": r, "local_rank": r, "node_rank": 0, "node_id": node_id, "pid": 100 + r, "device": "cpu"}
                   for r in range(2)])
    view.report(1, {"loss": 0.5, "epoch": 0})
    view.report(2, {"loss": 0.25, "epoch": 1}, checkpoint_path="/runs/a/checkpoint_000002")
    full_title = f"{title} · run-a"
    service = StateService(global_worker().gcs_address.replace("tcp://", ""), timeout=10)

    def entry():
        return next((r for r in service.library_runs()["runs"] if r["title"] == full_title), None)

    try:
        running = wait_for_condition(lambda: (e := entry()) is not None and e["done"] == 2 and e, timeout=15)
        assert running["kind"] == "train" and running["state"] == "running" and running["unit"] == "iterations"
        assert running["fields"]["loss"] == 0.25 and running["fields"]["epoch"] == 1
        assert running["fields"]["checkpoints"] == "1 kept in /runs/a: checkpoint_000002 (loss=0.25)"
        assert running["series_last"] == {"loss": 0.25} and "series" not in running
        assert [row[5] for row in running["rows"]] == ["running", "starting"]
        view.finish({"loss": 0.25, "epoch": 1})
        final = entry()  # the final state is in the GCS once finish() returned
        assert final["state"] == "finished" and final["fields"]["loss"] == 0.25
        assert [row[5] for row in final["rows"]] == ["finished", "finished"]
        detail = run_of(full_title, kind="train", detail=True)
        assert detail["series"] == {"loss": [[1.0, 0.5], [2.0, 0.25]]}
    finally:
        service.close()


def test_a_tune_experiment_shows_its_best_trial_counts_and_trial_table_in_the_dashboard(cluster):
    from types import SimpleNamespace

    from juno.tune.progress import TuneProgress

    title = unique("Tuner(train_fn)")
    view = TuneProgress(title, "exp-a", metric="loss", mode="min", num_samples=3, display=False)
    trials = [SimpleNamespace(trial_id=f"t_{i:05d}", config={"lr": 0.1 * (i + 1)}, evaluated_params={"lr": 0.1 * (i + 1)},
                              status="PENDING", last_result={}, metric_analysis={}, error=None, num_failures=0)
              for i in range(3)]
    for t in trials:
        view.trial_added(t)
    for i, t in enumerate(trials[:2]):
        t.status, t.last_result = "RUNNING", {"loss": 1.0 - i / 2, "training_iteration": 1, "time_total_s": 0.5}
        view.trial_updated(t)
    full_title = f"{title} · exp-a"
    service = StateService(global_worker().gcs_address.replace("tcp://", ""), timeout=10)

    def entry():
        return next((r for r in service.library_runs()["runs"] if r["title"] == full_title), None)

    try:
        running = wait_for_condition(lambda: (e := entry()) is not None and e["fields"].get("running") == 2 and e,
                                     timeout=15)
        assert running["kind"] == "tune" and running["unit"] == "trials" and running["total"] == 3
        assert running["fields"]["best"] == 0.5 and running["fields"]["best trial"] == "t_00001"
        assert running["fields"]["pending"] == 1 and running["series_last"] == {"t_00000": 1.0, "t_00001": 0.5}
        assert running["columns"][:3] == ["trial name", "status", "lr"]
        assert [row[0] for row in running["rows"]] == ["t_00001", "t_00000", "t_00002"]  # best first
        for t in trials[:2]:
            t.status = "TERMINATED"
            view.trial_updated(t)
        trials[2].status, trials[2].error = "ERROR", "RuntimeError: boom"
        view.trial_updated(trials[2])
        view.finish({"trials": 3, "terminated": 2, "errors": 1})
        final = entry()  # the final state is in the GCS once finish() returned
        assert final["state"] == "finished" and final["done"] == 2 and final["failed"] == 1
        assert final["fields"]["terminated"] == 2 and final["fields"]["error"] == 1 and "running" not in final["fields"]
        assert final["fields"]["summary"].startswith("3 trials (2 terminated, 1 error) in ")
        assert [row[1] for row in final["rows"]] == ["TERMINATED", "TERMINATED", "ERROR"]
        detail = run_of(full_title, kind="tune", detail=True)
        assert detail["series"] == {"t_00000": [[1.0, 1.0]], "t_00001": [[1.0, 0.5]]}
    finally:
        service.close()

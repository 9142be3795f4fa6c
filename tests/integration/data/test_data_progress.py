"""Each execution of a dataset is a library run: listed by the state API with one table row per
operator, finished (also when a limit stops it early) or failed with the error (libs/data/execution/progress.py)."""
import pytest

from helpers import wait_for_condition

JUNO_SHARED_INIT = {"num_cpus": 2}


@pytest.fixture
def rd(cluster):
    import juno.data

    ctx = juno.data.DataContext.get_current()
    ctx.enable_progress_bars = False  # the dashboard's record stays; the terminal stays quiet
    yield juno.data
    ctx.enable_progress_bars = True


def data_runs():
    from juno.util.state import list_library_runs

    return list_library_runs(kind="data", detail=True)


def test_a_pipeline_is_listed_finished_with_its_operators(rd):
    before = {r["run_id"] for r in data_runs()}
    ds = rd.range(1000, override_num_blocks=4).map_batches(lambda b: b).map_batches(lambda b: b, num_cpus=0.5)
    assert ds.count() == 1000
    run = wait_for_condition(lambda: next((r for r in data_runs() if r["run_id"] not in before), None), timeout=10)
    assert run["state"] == "finished" and run["done"] == 1000 and run["total"] == 1000
    assert run["columns"][:2] == ["operator", "rows"]
    operators = {row[0]: row for row in run["rows"]}
    assert operators["ReadRange->MapBatches(<lambda>)"][1] == 1000 and operators["MapBatches(<lambda>)"][-1] == "done"


def test_a_failing_pipeline_is_listed_failed_with_its_error(rd):
    def broken(batch):
        raise RuntimeError("no good")

    before = {r["run_id"] for r in data_runs()}
    with pytest.raises(rd.UserCodeError):
        rd.range(10, override_num_blocks=1).map_batches(broken).take_all()
    run = wait_for_condition(lambda: next((r for r in data_runs() if r["run_id"] not in before), None), timeout=10)
    assert run["state"] == "failed" and "no good" in run["error"]

"""The in-run session without a cluster: reports queue up for the driver, checkpoints are copied out
at once, and misuse says what was wrong."""
import threading

import pytest

from juno.air import Checkpoint
from juno.air.session import Session, TrainContext
from juno.air.storage import StorageContext
from juno.train.torch import TorchCheckpoint


def _session(tmp_path, **kwargs):
    context = TrainContext({"world_rank": 0, "world_size": 1, "local_rank": 0, "local_world_size": 1,
                            "node_rank": 0})
    return Session(context, StorageContext(str(tmp_path), "run"), **kwargs)


def test_reports_queue_until_polled_and_the_end_is_told(tmp_path):
    s = _session(tmp_path, start_iteration=4)
    s.report({"loss": 1.0})
    s.report({"loss": 0.5})
    reports, done = s.poll(0.01)
    assert [(r["iteration"], r["metrics"]["loss"]) for r in reports] == [(5, 1.0), (6, 0.5)] and not done
    assert s.poll(0.01) == ([], False)
    s.finish()
    assert s.poll(5) == ([], True)


def test_a_failed_loop_raises_its_own_error_at_the_poll(tmp_path):
    s = _session(tmp_path)
    s.finish(ZeroDivisionError("division by zero"))
    with pytest.raises(ZeroDivisionError):
        s.poll(1)


def test_a_checkpoint_is_copied_out_and_waits_until_the_driver_holds_it(tmp_path):
    s = _session(tmp_path)
    src = tmp_path / "ckpt"
    src.mkdir()
    (src / "w.txt").write_text("weights")
    reporter = threading.Thread(target=s.report, args=({"loss": 1.0},), kwargs={"checkpoint": Checkpoint(src)})
    reporter.start()
    reports, _ = s.poll(5)
    (src / "w.txt").unlink()  # the caller may delete its folder once report() took the files
    assert reports[0]["checkpoint"] == ("persisted", str(tmp_path / "run" / "checkpoint_000001"))
    assert (tmp_path / "run" / "checkpoint_000001" / "w.txt").read_text() == "weights"
    reporter.join(0.2)
    assert reporter.is_alive()  # not yet acknowledged
    s.poll(0.01, acked=reports[0]["seq"])
    reporter.join(5)
    assert not reporter.is_alive()


def test_on_another_node_the_checkpoint_travels_as_an_archive(tmp_path):
    s = _session(tmp_path, ship_checkpoints=True)
    src = tmp_path / "ckpt"
    src.mkdir()
    (src / "w.txt").write_text("weights")
    threading.Thread(target=s.report, args=({"loss": 1.0},), kwargs={"checkpoint": Checkpoint(src)},
                     daemon=True).start()
    reports, _ = s.poll(5)
    kind, archive = reports[0]["checkpoint"]
    assert kind == "archive" and isinstance(archive, bytes) and not (tmp_path / "run").exists()
    s.finish()


def test_bad_reports_say_what_was_wrong(tmp_path):
    s = _session(tmp_path)
    with pytest.raises(TypeError, match="dict of metrics"):
        s.report([1.0])
    with pytest.raises(TypeError, match="names must be strings"):
        s.report({1: 2})
    with pytest.raises(TypeError, match="Checkpoint.from_directory"):
        s.report({"loss": 1}, checkpoint=str(tmp_path))
    gone = Checkpoint(tmp_path / "gone")
    with pytest.raises(FileNotFoundError, match="no longer exists"):
        s.report({"loss": 1}, checkpoint=gone)


def test_the_older_torch_checkpoint_forms():
    import torch

    model = torch.nn.Linear(2, 1)
    restored = TorchCheckpoint.from_state_dict(model.state_dict()).get_model(torch.nn.Linear(2, 1))
    assert torch.equal(restored.weight, model.weight)
    assert torch.equal(TorchCheckpoint.from_model(model).get_model().bias, model.bias)
    with pytest.raises(ValueError, match="pass the module"):
        TorchCheckpoint.from_state_dict(model.state_dict()).get_model()

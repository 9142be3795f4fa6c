"""TrainingFailedError: the worker's failure, the attempts made, and how to resume, in one message."""
from __future__ import annotations

import pickle

from juno.air.validation import ResourcesUnavailableError as AirResourcesUnavailableError
from juno.exceptions import ActorDiedError, RayTaskError
from juno.train.errors import ResourcesUnavailableError, TrainingFailedError


def loop_error() -> RayTaskError:
    """A worker's ZeroDivisionError as juno.get raises it (wrapped, then sent through pickle)."""
    try:
        _ = 1 / 0
    except ZeroDivisionError as exc:
        err = RayTaskError.from_exception(exc, "TrainWorker.run", pid=31, ip="10.0.0.2").as_instanceof_cause()
    return pickle.loads(pickle.dumps(err))


def test_the_message_has_the_failure_the_attempts_and_the_restore_call():
    cause = loop_error()
    err = TrainingFailedError(cause, rank=1, num_failures=3, max_failures=2,
                              checkpoint_path="/runs/exp/checkpoint_000004", run_path="/runs/exp")
    text = str(err)
    lines = text.splitlines()
    assert lines[0] == "ZeroDivisionError: division by zero"
    assert "in loop_error" in lines[1]
    assert "(rank 1, pid 31, node 10.0.0.2)" in lines
    assert lines[-1] == ("Training failed after 3 attempts (FailureConfig(max_failures=2)). The last checkpoint is "
                         "/runs/exp/checkpoint_000004; restore with TorchTrainer.restore('/runs/exp').")
    assert isinstance(err, RuntimeError)
    assert err.cause is cause and err.__cause__ is cause and isinstance(err.__cause__, ZeroDivisionError)
    assert (err.rank, err.num_failures, err.max_failures) == (1, 3, 2)


def test_no_checkpoint_and_a_dead_worker():
    err = TrainingFailedError(ActorDiedError(b"\x07", "its node died"), rank=0, pid=5, node="n1",
                              run_path="/runs/x", trainer="DataParallelTrainer")
    text = str(err)
    assert text.startswith("ActorDiedError: The actor 07 died unexpectedly before finishing this task: its node died\n"
                           "(rank 0, pid 5, node n1)\n")
    assert text.endswith("Training failed after 1 attempt (FailureConfig(max_failures=0)). The last checkpoint is "
                         "none (the run reported no checkpoint); restore with DataParallelTrainer.restore('/runs/x').")


def test_it_survives_pickling_with_its_fields():
    err = TrainingFailedError(loop_error(), rank=2, num_failures=1, checkpoint_path="/c", run_path="/r")
    back = pickle.loads(pickle.dumps(err))
    assert type(back) is TrainingFailedError and str(back) == str(err)
    assert back.rank == 2 and isinstance(back.cause, ZeroDivisionError)


def test_resources_unavailable_is_one_class_for_train_and_air():
    assert ResourcesUnavailableError is AirResourcesUnavailableError
    assert issubclass(ResourcesUnavailableError, ValueError)

"""describe_failure: a worker's error as the exception first, the user's frames, then which worker.

The errors are real: raised by code here, wrapped as a worker wraps them (RayTaskError.from_exception)
and sent through pickle as juno.get receives them. Frames of Juno's own files come from code compiled
under a file name in libs/ (as the lead's worker group runs the loop) and in the runtime folder.
"""
from __future__ import annotations

import os
import pickle

import pytest

import juno
import juno.air
from juno.air.failure import describe_failure, first_failure, raised_by_user_code
from juno.exceptions import ActorDiedError, RayTaskError, WorkerCrashedError

HERE = os.path.abspath(__file__).removesuffix("c")
LIBS_FILE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(juno.air.__file__))), "train", "worker.py")
RUNTIME_FILE = os.path.join(os.path.dirname(os.path.abspath(juno.__file__)), "worker", "loop.py")


def juno_code(path: str, name: str, catch: bool):
    """A function whose frame belongs to ``path`` (one of Juno's files) that calls its argument; with
    ``catch``, it returns what the call raises, as a worker catches the error of the task it runs."""
    namespace: dict = {}
    source = (f"def {name}(fn, *args):\n    try:\n        return fn(*args)\n"
              f"    except Exception as exc:\n        {'return exc' if catch else 'raise'}\n")
    exec(compile(source, path, "exec"), namespace)
    return namespace[name]


run_in_libs = juno_code(LIBS_FILE, "run_loop", catch=False)
run_in_runtime = juno_code(RUNTIME_FILE, "execute_task", catch=True)


def train_loop(config):
    return config["lr"] / config["batches"]


def worker_error(fn, *args, pid=4242, ip="10.0.0.5") -> RayTaskError:
    """What juno.get raises for a worker call in which ``fn(*args)`` raised."""
    exc = run_in_runtime(run_in_libs, fn, *args)
    assert isinstance(exc, Exception), f"{fn} did not raise"
    err = RayTaskError.from_exception(exc, "TrainWorker.run", pid=pid, ip=ip).as_instanceof_cause()
    return pickle.loads(pickle.dumps(err))


def test_the_exception_comes_first_then_only_the_users_frames_then_the_worker():
    err = worker_error(train_loop, {"lr": 1.0, "batches": 0})
    assert isinstance(err, ZeroDivisionError)
    text = describe_failure(err, rank=1)
    lines = text.splitlines()
    assert lines[0] == "ZeroDivisionError: float division by zero"
    assert lines[1] == f'  File "{HERE}", line 39, in train_loop'
    assert lines[2].strip() == 'return config["lr"] / config["batches"]'
    assert lines[-1] == "(rank 1, pid 4242, node 10.0.0.5)"
    assert "worker.py" not in text and "loop.py" not in text and "Traceback" not in text


def test_pid_and_node_given_by_the_caller_win_and_unknown_parts_are_left_out():
    err = worker_error(train_loop, {"lr": 1.0, "batches": 0})
    assert describe_failure(err, rank=0, pid=7, node="ab12").endswith("(rank 0, pid 7, node ab12)")
    assert describe_failure(WorkerCrashedError()) == f"WorkerCrashedError: {WorkerCrashedError()}"


def test_a_chained_exception_shows_its_cause_with_the_cause_frames():
    def load(config):
        try:
            return config["path"]
        except KeyError as exc:
            raise ValueError("train_loop_config has no 'path'") from exc

    text = describe_failure(worker_error(load, {}), rank=2)
    lines = text.splitlines()
    assert lines[0] == "ValueError: train_loop_config has no 'path'"
    assert "in load" in lines[1]
    assert "Caused by: KeyError: 'path'" in lines
    assert text.count("in load") == 2 and "worker.py" not in text


def test_a_user_exception_class_keeps_its_module_name_and_multiline_message():
    class LossDiverged(Exception):
        pass

    def loop():
        raise LossDiverged("loss is nan\nat step 12")

    text = describe_failure(worker_error(loop), rank=0)
    assert text.startswith(f"{__name__}.test_a_user_exception_class_keeps_its_module_name_and_multiline_message."
                           "<locals>.LossDiverged: loss is nan\nat step 12\n")
    assert "in loop" in text


def test_all_juno_frames_are_kept_when_the_error_is_junos_own():
    err = worker_error(int, "not a number")
    text = describe_failure(err)
    assert text.startswith("ValueError: invalid literal for int() with base 10: 'not a number'")
    assert "worker.py" in text  # no user frame: Juno's frames are what a bug report needs


def test_an_actor_death_is_its_message_and_the_worker():
    err = ActorDiedError(b"\x01" * 4, "the worker process exited with signal 9 (SIGKILL)")
    text = describe_failure(err, rank=3, pid=99, node="n2")
    assert text == ("ActorDiedError: The actor 01010101 died unexpectedly before finishing this task: "
                    "the worker process exited with signal 9 (SIGKILL)\n(rank 3, pid 99, node n2)")


def test_a_worker_whose_constructor_raised_shows_the_constructor_error():
    def setup():
        raise RuntimeError("CUDA is not available")

    err = ActorDiedError(b"\x02", cause=worker_error(setup))
    text = describe_failure(err, rank=0)
    assert text.startswith("ActorDiedError: the worker failed while starting (its constructor raised)\n"
                           "RuntimeError: CUDA is not available\n")
    assert "in setup" in text


def test_a_local_error_uses_its_own_frames():
    try:
        train_loop({"lr": 1, "batches": 0})
    except ZeroDivisionError as exc:
        text = describe_failure(exc, rank=0, pid=1)
    assert text.splitlines()[0] == "ZeroDivisionError: division by zero"
    assert "in train_loop" in text and text.endswith("(rank 0, pid 1)")


def test_first_failure_prefers_the_loops_own_error_to_the_deaths_it_caused():
    died = ActorDiedError(b"\x03", "killed")
    raised = worker_error(train_loop, {"lr": 1, "batches": 0})
    assert raised_by_user_code(raised) and not raised_by_user_code(died)
    assert first_failure([(0, died), (2, raised), (1, died)]) == (2, raised)
    assert first_failure([(1, died), (0, WorkerCrashedError())]) == (1, died)
    with pytest.raises(ValueError, match="at least one"):
        first_failure([])

"""Behaviour of juno.exceptions that user code relies on."""

from __future__ import annotations

import os
import pickle
import threading

import cloudpickle
import pytest

import juno
import juno.exceptions as E
from juno.exceptions import RayError, RayTaskError, format_remote_traceback


def _raise(exc: BaseException) -> BaseException:
    """Raise and catch ``exc`` so it carries a real traceback."""
    try:
        raise exc
    except BaseException as e:  # noqa: BLE001
        return e


def user_function():
    raise ValueError("bad input")


def _task_error(exc: BaseException, name: str = "user_function") -> RayTaskError:
    return RayTaskError.from_exception(_raise(exc), name, pid=1234, ip="10.0.0.7")


class NeedsArgs(Exception):
    """A user exception whose __init__ takes required arguments."""

    def __init__(self, code: int, detail: str):
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail


class CustomError(Exception):
    pass


class Slotted(Exception):
    __slots__ = ("x",)


class Refuses(Exception):
    def __init_subclass__(cls, **kwargs):
        raise TypeError("final class")


# --- hierarchy ---------------------------------------------------------------

@pytest.mark.parametrize("cls", [
    E.RayTaskError, E.RayActorError, E.ActorDiedError, E.ActorUnavailableError,
    E.ActorUnschedulableError, E.TaskUnschedulableError, E.TaskCancelledError,
    E.GetTimeoutError, E.WorkerCrashedError, E.NodeDiedError, E.LocalRayletDiedError,
    E.RaySystemError, E.ObjectLostError, E.OwnerDiedError, E.ObjectFetchTimedOutError,
    E.ObjectReconstructionFailedError,
    E.ObjectReconstructionFailedMaxAttemptsExceededError,
    E.ObjectReconstructionFailedLineageEvictedError, E.ReferenceCountingAssertionError,
    E.ObjectStoreFullError, E.OutOfDiskError, E.OutOfMemoryError,
    E.RuntimeEnvSetupError, E.PendingCallsLimitExceeded, E.AsyncioActorExit,
    E.CrossLanguageError,
])
def test_all_errors_derive_from_ray_error(cls):
    assert issubclass(cls, RayError)


def test_specific_hierarchy():
    assert issubclass(E.ActorDiedError, E.RayActorError)
    assert issubclass(E.ActorUnavailableError, E.RayActorError)
    assert issubclass(E.GetTimeoutError, TimeoutError)
    for sub in (E.OwnerDiedError, E.ObjectFetchTimedOutError,
                E.ObjectReconstructionFailedError, E.ReferenceCountingAssertionError,
                E.ObjectReconstructionFailedMaxAttemptsExceededError,
                E.ObjectReconstructionFailedLineageEvictedError):
        assert issubclass(sub, E.ObjectLostError)
    assert issubclass(E.PlasmaObjectNotAvailable, Exception)


def test_juno_aliases_are_the_same_classes():
    assert E.JunoError is RayError
    assert E.JunoTaskError is RayTaskError
    assert E.JunoActorError is E.RayActorError


def test_get_timeout_error_caught_as_builtin_timeout():
    with pytest.raises(TimeoutError):
        raise E.GetTimeoutError()


# --- default messages and pickling of every class ------------------------------

ALL_SIMPLE = [
    E.RayError(), E.RayActorError(), E.ActorDiedError(), E.ActorUnavailableError(),
    E.ActorUnschedulableError(), E.TaskUnschedulableError(), E.TaskCancelledError(),
    E.GetTimeoutError(), E.WorkerCrashedError(), E.NodeDiedError(),
    E.LocalRayletDiedError(), E.RaySystemError(), E.ObjectLostError(),
    E.OwnerDiedError(), E.ObjectFetchTimedOutError(), E.ObjectReconstructionFailedError(),
    E.ObjectReconstructionFailedMaxAttemptsExceededError(),
    E.ObjectReconstructionFailedLineageEvictedError(),
    E.ReferenceCountingAssertionError(), E.ObjectStoreFullError(), E.OutOfDiskError(),
    E.OutOfMemoryError(), E.RuntimeEnvSetupError(), E.PendingCallsLimitExceeded(),
    E.AsyncioActorExit(), E.CrossLanguageError(), E.PlasmaObjectNotAvailable(),
]


@pytest.mark.parametrize("err", ALL_SIMPLE, ids=lambda e: type(e).__name__)
def test_default_message_is_helpful(err):
    assert len(str(err)) > 15


@pytest.mark.parametrize("err", ALL_SIMPLE, ids=lambda e: type(e).__name__)
def test_default_instances_round_trip(err):
    back = pickle.loads(pickle.dumps(err))
    assert type(back) is type(err)
    assert str(back) == str(err)


def test_actor_died_error_attributes_and_pickle():
    err = E.ActorDiedError("ab12", "the actor's process was killed")
    assert err.actor_id == "ab12"
    assert err.error_msg == "the actor's process was killed"
    assert "ab12" in str(err) and "killed" in str(err)
    back = pickle.loads(pickle.dumps(err))
    assert (back.actor_id, back.error_msg, str(back)) == (err.actor_id, err.error_msg, str(err))


def test_actor_died_error_from_failed_constructor():
    init_err = _task_error(ValueError("bad config"), "Counter.__init__")
    err = E.ActorDiedError("ab12", cause=init_err)
    assert err.actor_init_failed
    assert "creation task" in str(err) and "bad config" in str(err)
    back = pickle.loads(pickle.dumps(err))
    assert back.actor_init_failed and isinstance(back.cause, RayTaskError)


def test_actor_unavailable_error_message():
    err = E.ActorUnavailableError("cd34", "connection lost")
    assert "cd34" in str(err) and "connection lost" in str(err)
    assert "may or may not" in str(err)
    assert pickle.loads(pickle.dumps(err)).error_msg == "connection lost"


def test_task_cancelled_error_keeps_task_id():
    err = E.TaskCancelledError("t123")
    assert "t123" in str(err)
    back = pickle.loads(pickle.dumps(err))
    assert back.task_id == "t123" and str(back) == str(err)


@pytest.mark.parametrize("cls", [
    E.ObjectLostError, E.OwnerDiedError, E.ObjectFetchTimedOutError,
    E.ObjectReconstructionFailedMaxAttemptsExceededError,
])
def test_object_lost_errors_keep_attributes(cls):
    err = cls("ffee00", "10.0.0.1:1234", "main.py:12 in <module>")
    assert "ffee00" in str(err) and "main.py:12" in str(err)
    back = pickle.loads(pickle.dumps(err))
    assert type(back) is cls
    assert (back.object_ref_hex, back.owner_address, back.call_site) == \
        ("ffee00", "10.0.0.1:1234", "main.py:12 in <module>")


def test_subclass_messages_differ():
    assert str(E.OwnerDiedError("aa")) != str(E.ObjectFetchTimedOutError("aa"))
    assert "owner" in str(E.OwnerDiedError("aa"))
    assert "max_retries" in str(E.ObjectReconstructionFailedMaxAttemptsExceededError("aa"))


def test_message_errors_round_trip():
    err = E.RuntimeEnvSetupError("pip failed")
    assert "pip failed" in str(err)
    back = pickle.loads(pickle.dumps(err))
    assert back.error_message == "pip failed" and str(back) == str(err)
    sys_err = E.RaySystemError("boom", "tb text")
    back = pickle.loads(pickle.dumps(sys_err))
    assert (back.client_exc, back.traceback_str) == ("boom", "tb text")


def test_extra_attributes_survive_pickle():
    err = E.NodeDiedError("node 3 died")
    err.node_id = "n3"
    back = pickle.loads(pickle.dumps(err))
    assert back.node_id == "n3" and str(back) == "node 3 died"


# --- RayTaskError --------------------------------------------------------------

def test_task_error_str_shows_function_pid_and_traceback():
    err = _task_error(ValueError("bad input"))
    text = str(err)
    assert "user_function" in text
    assert "pid=1234" in text and "10.0.0.7" in text
    assert "ValueError: bad input" in text
    assert "_raise" in text  # the remote frame


def test_task_error_attributes():
    cause = ValueError("x")
    err = RayTaskError("f", "tb", cause, proctitle="juno::f()", pid=5, ip="1.2.3.4")
    assert (err.function_name, err.traceback_str, err.cause, err.pid, err.ip,
            err.proctitle) == ("f", "tb", cause, 5, "1.2.3.4", "juno::f()")


def test_task_error_default_pid_is_this_process():
    assert RayTaskError("f", "tb", None).pid == os.getpid()


def test_as_instanceof_cause_is_both_classes():
    err = _task_error(ValueError("bad input")).as_instanceof_cause()
    assert isinstance(err, RayTaskError)
    assert isinstance(err, ValueError)
    assert err.args == ("bad input",)
    assert "ValueError" in type(err).__name__
    with pytest.raises(ValueError):
        raise err


def test_dual_classes_are_cached_per_cause_class():
    a = _task_error(ValueError("a")).as_instanceof_cause()
    b = _task_error(ValueError("b")).as_instanceof_cause()
    c = _task_error(KeyError("c")).as_instanceof_cause()
    assert type(a) is type(b)
    assert type(a) is not type(c)


def test_as_instanceof_cause_with_required_init_args():
    err = _task_error(NeedsArgs(404, "missing")).as_instanceof_cause()
    assert isinstance(err, NeedsArgs) and isinstance(err, RayTaskError)
    assert err.code == 404 and err.detail == "missing"


def test_user_attributes_copied_from_cause():
    cause = CustomError("x")
    cause.retry_after = 7
    err = _task_error(cause).as_instanceof_cause()
    assert err.retry_after == 7


def test_builtin_attributes_copied_from_cause():
    err = _task_error(FileNotFoundError(2, "No such file", "/nope")).as_instanceof_cause()
    assert isinstance(err, FileNotFoundError)
    assert (err.errno, err.filename) == (2, "/nope")


def test_unsubclassable_cause_falls_back_to_plain():
    err = _task_error(Refuses("y"))
    assert err.as_instanceof_cause() is err
    assert type(err) is RayTaskError


def test_slot_attributes_copied_from_cause():
    cause = Slotted("s")
    cause.x = 42
    err = _task_error(cause).as_instanceof_cause()
    assert isinstance(err, Slotted) and err.x == 42


def test_no_cause_returns_plain():
    err = RayTaskError("f", "tb", None)
    assert err.as_instanceof_cause() is err


def test_nested_task_error_keeps_original_cause_class():
    inner = _task_error(ValueError("deep"), "inner").as_instanceof_cause()
    outer = RayTaskError("outer", "tb", inner).as_instanceof_cause()
    assert isinstance(outer, ValueError)
    assert outer.function_name == "outer"
    assert type(outer) is type(inner)


def test_plain_task_error_round_trips():
    err = _task_error(KeyError("k"))
    back = pickle.loads(pickle.dumps(err))
    assert type(back) is RayTaskError
    assert back.function_name == "user_function"
    assert back.traceback_str == err.traceback_str
    assert back.pid == 1234 and back.ip == "10.0.0.7"
    assert isinstance(back.cause, KeyError) and back.cause.args == ("k",)
    assert str(back) == str(err)


@pytest.mark.parametrize("dumps", [pickle.dumps, cloudpickle.dumps])
def test_dual_instance_round_trips(dumps):
    err = _task_error(NeedsArgs(500, "server")).as_instanceof_cause()
    back = pickle.loads(dumps(err))
    assert isinstance(back, NeedsArgs) and isinstance(back, RayTaskError)
    assert type(back) is type(err)
    assert back.code == 500 and back.detail == "server"
    assert back.function_name == "user_function" and str(back) == str(err)


def test_cause_with_required_init_args_round_trips_in_plain_error():
    err = _task_error(NeedsArgs(1, "one"))
    back = pickle.loads(pickle.dumps(err))
    assert isinstance(back.cause, NeedsArgs)
    assert back.cause.code == 1 and back.cause.detail == "one"


def test_locally_defined_cause_class_round_trips():
    class LocalError(Exception):
        pass

    err = _task_error(LocalError("local")).as_instanceof_cause()
    back = pickle.loads(pickle.dumps(err))
    assert isinstance(back, LocalError) and isinstance(back, RayTaskError)


def test_cause_with_unpicklable_attribute_keeps_class_and_message():
    class Holder(Exception):
        pass

    cause = Holder("has a lock")
    cause.lock = threading.Lock()
    cause.note = "kept"
    err = _task_error(cause)
    back = pickle.loads(pickle.dumps(err))
    # The lock cannot travel, but the class and args still can.
    assert isinstance(back.cause, Holder) and back.cause.args == ("has a lock",)
    assert not hasattr(back.cause, "lock")
    assert back.traceback_str == err.traceback_str
    assert "Holder: has a lock" in str(back)


def test_cause_that_cannot_be_pickled_at_all_is_dropped():
    class Weird(Exception):
        guard = threading.Lock()  # makes the class itself unpicklable by value

        def __reduce__(self):
            raise TypeError("no pickling")

    err = RayTaskError("f", "Traceback...\nWeird: w", Weird("w"))
    back = pickle.loads(pickle.dumps(err))
    assert back.cause is None
    assert back.as_instanceof_cause() is back
    assert "Weird: w" in str(back)


# --- format_remote_traceback ------------------------------------------------------

def _internal_module() -> dict:
    """Compile 'runtime' functions whose file lies inside the juno package."""
    pkg_dir = os.path.dirname(juno.__file__)
    src = ("def run_user(fn):\n    return fn()\n"
           "def fail():\n    raise RuntimeError('runtime bug')\n")
    ns: dict = {}
    exec(compile(src, os.path.join(pkg_dir, "worker", "fake_executor.py"), "exec"), ns)
    return ns


def _internal_runner():
    return _internal_module()["run_user"]


def test_format_remote_traceback_drops_runtime_frames():
    run_user = _internal_runner()
    try:
        run_user(user_function)
    except ValueError as e:
        text = format_remote_traceback(e)
    assert "fake_executor.py" not in text
    assert "user_function" in text
    assert "ValueError: bad input" in text


def test_format_remote_traceback_keeps_frames_when_all_internal():
    ns = _internal_module()
    try:
        ns["run_user"](ns["fail"])
    except RuntimeError as e:
        e.__traceback__ = e.__traceback__.tb_next  # leave only the internal frames
        text = format_remote_traceback(e)
    assert text.count("fake_executor.py") == 2 and "RuntimeError: runtime bug" in text


def test_format_remote_traceback_filters_chained_exceptions():
    run_user = _internal_runner()

    def wraps():
        try:
            run_user(user_function)
        except ValueError as inner:
            raise RuntimeError("outer") from inner

    try:
        wraps()
    except RuntimeError as e:
        text = format_remote_traceback(e)
    assert "fake_executor.py" not in text
    assert "ValueError: bad input" in text and "RuntimeError: outer" in text

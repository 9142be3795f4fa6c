"""Failures of tasks on a real cluster: user errors, crashes and retries, cancellation,
bad arguments and options, unschedulable requests."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import cloudpickle
import psutil
import pytest
from helpers import wait_for_file, wait_for_condition

import juno
from juno.exceptions import (GetTimeoutError, RayError, RayTaskError, TaskCancelledError,
                             WorkerCrashedError)

cloudpickle.register_pickle_by_value(sys.modules[__name__])

JUNO_SHARED_INIT = {"num_cpus": 2}





def count_attempt(path: str) -> int:
    """Runs in tasks: record one more attempt in ``path``; returns the attempt number."""
    with open(path, "a") as f:
        f.write(f"{os.getpid()}\n")
    with open(path) as f:
        return len(f.read().split())


def attempts(path) -> list[int]:
    return [int(p) for p in path.read_text().split()] if path.exists() else []


class ErrorWithCode(Exception):
    def __init__(self, message, code):
        super().__init__(message)
        self.code = code


@juno.remote
def square(x):
    return x * x


@juno.remote
def gated(path, value=None, started=None):
    if started:
        with open(started, "w") as f:
            f.write(str(os.getpid()))
    wait_for_file(path)
    return value


# ---------------------------------------------------------------------------- user errors

def test_task_error_is_instance_of_user_type_with_remote_traceback(cluster):
    @juno.remote
    def failing_function(code):
        raise ErrorWithCode("something specific went wrong", code)

    with pytest.raises(ErrorWithCode) as info:
        juno.get(failing_function.remote(7))
    err = info.value
    assert isinstance(err, RayTaskError) and isinstance(err, RayError)
    assert err.code == 7
    assert isinstance(err.cause, ErrorWithCode)
    text = str(err)
    assert "failing_function" in text
    assert "Traceback (most recent call last)" in text
    # The module's own file and line, on every cloudpickle release pyproject allows.
    line = failing_function._function.__code__.co_firstlineno + 2
    assert f'File "{__file__}", line {line}, in failing_function' in text
    assert 'raise ErrorWithCode("something specific went wrong", code)' in text
    assert "something specific went wrong" in text
    assert f"pid={err.pid}" in text and err.pid != os.getpid()


PARSING_DRIVER = """\
import juno

@juno.remote
def parse(text):
    number = int(text)
    return number

juno.init(address={address!r})
try:
    juno.get(parse.remote("not a number"))
except ValueError as e:
    print(e)
"""


def _run_parsing_driver(*how: str) -> str:
    """Run PARSING_DRIVER against the module's cluster as ``python *how``; its printed remote error."""
    out = subprocess.run([sys.executable, *how], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "invalid literal for int()" in out.stdout, out.stdout
    return out.stdout


def test_remote_traceback_of_a_script_names_its_file_line_and_source(cluster, tmp_path):
    """A function defined in a script's __main__ (pickled by value) keeps its file and lines."""
    script = tmp_path / "my_script.py"
    script.write_text(PARSING_DRIVER.format(address=juno.get_runtime_context().gcs_address))
    text = _run_parsing_driver(str(script))
    assert f'File "{script}", line 5, in parse' in text, text
    assert "number = int(text)" in text, text


def test_remote_traceback_of_python_c_names_its_line_and_source(cluster):
    """``python -c``: no file at all; the source comes from the command line."""
    text = _run_parsing_driver("-c", PARSING_DRIVER.format(address=juno.get_runtime_context().gcs_address))
    assert 'File "<string>", line 5, in parse' in text, text
    assert "number = int(text)" in text, text


def test_builtin_errors_are_catchable_by_type(cluster):
    @juno.remote
    def divide(a, b):
        return a / b

    @juno.remote
    def lookup(d, k):
        return d[k]

    with pytest.raises(ZeroDivisionError):
        juno.get(divide.remote(1, 0))
    with pytest.raises(KeyError):
        juno.get(lookup.remote({}, "missing"))
    # One failed ref in a list fails the whole get.
    with pytest.raises(ZeroDivisionError):
        juno.get([divide.remote(4, 2), divide.remote(1, 0)])
    assert juno.get(divide.remote(4, 2)) == 2


def test_failed_dependency_reraises_original_error(cluster, tmp_path):
    @juno.remote
    def fail():
        raise ValueError("upstream broke")

    @juno.remote
    def consumer(x, marker):
        open(marker, "w").close()
        return x

    @juno.remote
    def getter(refs):
        return juno.get(refs[0])

    marker = tmp_path / "consumer-ran"
    bad = fail.remote()
    downstream = consumer.remote(bad, str(marker))
    with pytest.raises(ValueError) as info:
        juno.get(downstream)
    assert "upstream broke" in str(info.value)
    assert not marker.exists(), "a task whose argument failed must not run"
    # A nested ref fetched inside a task raises there, and the error travels on.
    with pytest.raises(ValueError) as info:
        juno.get(getter.remote([bad]))
    assert "upstream broke" in str(info.value)


def test_error_in_one_return_of_many(cluster):
    @juno.remote(num_returns=2)
    def two():
        raise IndexError("no values")

    a, b = two.remote()
    for ref in (a, b):
        with pytest.raises(IndexError):
            juno.get(ref)


# ---------------------------------------------------------------------------- API misuse

def test_calling_remote_function_directly_is_a_type_error(cluster):
    with pytest.raises(TypeError) as info:
        square(3)
    assert "remote()" in str(info.value)


def test_unpicklable_argument_names_the_argument(cluster):
    @juno.remote
    def takes(x, y=None):
        return 1

    with pytest.raises(TypeError) as info:
        takes.remote(1, threading.Lock())
    text = str(info.value)
    assert "argument 1" in text and "lock" in text
    with pytest.raises(TypeError) as info:
        takes.remote(1, y={"inner": threading.Lock()})
    text = str(info.value)
    assert "'y'" in text and "inner" in text
    assert juno.get(takes.remote(1)) == 1  # the function still works


def test_unpicklable_return_value_is_an_error(cluster):
    @juno.remote
    def returns_lock():
        return threading.Lock()

    with pytest.raises(TypeError) as info:
        juno.get(returns_lock.remote())
    assert "lock" in str(info.value)


@pytest.mark.parametrize("options, name", [
    ({"num_cpus": -1}, "num_cpus"),
    ({"num_gpus": -0.5}, "num_gpus"),
    ({"max_retries": -2}, "max_retries"),
    ({"num_returns": -3}, "num_returns"),
    ({"resources": {"CPU": 1}}, "resources"),
    ({"not_an_option": 1}, "not_an_option"),
])
def test_invalid_options_raise_value_error_naming_option(cluster, options, name):
    with pytest.raises(ValueError) as info:
        square.options(**options)
    assert name in str(info.value)
    with pytest.raises(ValueError) as info:
        juno.remote(**options)(lambda: None)
    assert name in str(info.value)


# ---------------------------------------------------------------------------- crashes and retries

def test_worker_killed_mid_task_is_retried(cluster, tmp_path):
    @juno.remote(max_retries=1)
    def die_once(path):
        if count_attempt(path) == 1:
            os.kill(os.getpid(), signal.SIGKILL)
        return os.getpid()

    log = tmp_path / "attempts"
    pid = juno.get(die_once.remote(str(log)), timeout=60)
    first, second = attempts(log)
    assert pid == second != first
    assert not psutil.pid_exists(first) or psutil.Process(first).status() == psutil.STATUS_ZOMBIE


def test_worker_killed_without_retries_raises_worker_crashed(cluster, tmp_path):
    @juno.remote(max_retries=0)
    def die(path):
        count_attempt(path)
        os.kill(os.getpid(), signal.SIGKILL)

    log = tmp_path / "attempts"
    with pytest.raises(WorkerCrashedError):
        juno.get(die.remote(str(log)), timeout=60)
    assert len(attempts(log)) == 1
    # The cluster keeps working: a new worker replaces the dead one.
    assert juno.get(square.remote(4), timeout=60) == 16


def test_crash_does_not_fail_other_tasks(cluster, tmp_path):
    @juno.remote(max_retries=0)
    def die(path):
        count_attempt(path)
        os.kill(os.getpid(), signal.SIGKILL)

    log = tmp_path / "attempts"
    crashing = die.remote(str(log))
    others = [square.options(max_retries=0).remote(i) for i in range(8)]
    with pytest.raises(WorkerCrashedError):
        juno.get(crashing, timeout=60)
    assert juno.get(others, timeout=60) == [i * i for i in range(8)]


def test_retries_are_bounded_by_max_retries(cluster, tmp_path):
    @juno.remote(max_retries=2)
    def always_dies(path):
        count_attempt(path)
        os.kill(os.getpid(), signal.SIGKILL)

    log = tmp_path / "attempts"
    with pytest.raises(WorkerCrashedError):
        juno.get(always_dies.remote(str(log)), timeout=60)
    assert len(attempts(log)) == 3


def test_application_errors_are_not_retried_by_default(cluster, tmp_path):
    @juno.remote(max_retries=3)
    def flaky(path):
        raise ValueError(f"attempt {count_attempt(path)}")

    log = tmp_path / "attempts"
    with pytest.raises(ValueError, match="attempt 1"):
        juno.get(flaky.remote(str(log)))
    assert len(attempts(log)) == 1


def test_retry_exceptions_true(cluster, tmp_path):
    @juno.remote(max_retries=2, retry_exceptions=True)
    def flaky(path):
        n = count_attempt(path)
        if n < 3:
            raise ValueError(f"attempt {n}")
        return n

    log = tmp_path / "ok"
    assert juno.get(flaky.remote(str(log)), timeout=60) == 3
    # Retries run out: the last attempt's error is raised.
    log2 = tmp_path / "exhausted"
    with pytest.raises(ValueError, match="attempt 2"):
        juno.get(flaky.options(max_retries=1).remote(str(log2)), timeout=60)
    assert len(attempts(log2)) == 2


def test_retry_exceptions_list(cluster, tmp_path):
    @juno.remote(max_retries=3, retry_exceptions=[KeyError, ValueError])
    def flaky(path, exc_type):
        n = count_attempt(path)
        if n < 2:
            raise exc_type(f"attempt {n}")
        return n

    listed = tmp_path / "listed"
    assert juno.get(flaky.remote(str(listed), ValueError), timeout=60) == 2
    subclass = tmp_path / "subclass"  # UnicodeError is a ValueError
    assert juno.get(flaky.remote(str(subclass), UnicodeError), timeout=60) == 2
    unlisted = tmp_path / "unlisted"
    with pytest.raises(TypeError, match="attempt 1"):
        juno.get(flaky.remote(str(unlisted), TypeError), timeout=60)
    assert len(attempts(unlisted)) == 1


# ---------------------------------------------------------------------------- cancel

@pytest.mark.parametrize("force", [False, True])
def test_cancel_pending_task(cluster, gate, tmp_path, force):
    started = [tmp_path / f"started-{i}" for i in range(2)]
    blockers = [gated.options(max_retries=0).remote(str(gate), i, str(s)) for i, s in enumerate(started)]
    wait_for_condition(lambda: all(s.exists() for s in started), timeout=30)
    pending = square.remote(5)  # both CPUs are busy: this one can't start
    juno.cancel(pending, force=force)
    start = time.monotonic()
    with pytest.raises(TaskCancelledError):
        juno.get(pending, timeout=20)
    assert time.monotonic() - start < 10
    gate.touch()
    # Cancelling a task that had not started leaves the running ones alone, even with force.
    assert juno.get(blockers, timeout=30) == [0, 1]


def test_cancel_task_waiting_for_dependency(cluster, gate):
    upstream = gated.remote(str(gate), 1)
    downstream = square.remote(upstream)
    juno.cancel(downstream)
    with pytest.raises(TaskCancelledError):
        juno.get(downstream, timeout=20)
    gate.touch()
    assert juno.get(upstream, timeout=30) == 1


def test_cancel_running_task(cluster, tmp_path):
    @juno.remote
    def sleeper(started):
        with open(started, "w") as f:
            f.write(str(os.getpid()))
        time.sleep(120)
        return "finished"

    started = tmp_path / "started"
    ref = sleeper.remote(str(started))
    wait_for_condition(lambda: started.exists() and started.read_text(), timeout=30)
    pid = int(started.read_text())
    juno.cancel(ref)
    start = time.monotonic()
    with pytest.raises(TaskCancelledError):
        juno.get(ref, timeout=30)
    assert time.monotonic() - start < 10
    # A cancelled (not forced) task leaves its worker alive and usable.
    assert psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    assert juno.get([square.remote(i) for i in range(4)], timeout=30) == [0, 1, 4, 9]


def test_force_cancel_kills_worker(cluster, tmp_path):
    @juno.remote(max_retries=3)
    def stubborn(started):
        with open(started, "w") as f:
            f.write(str(os.getpid()))
        while True:  # ignores KeyboardInterrupt
            try:
                time.sleep(120)
            except KeyboardInterrupt:
                pass

    started = tmp_path / "started"
    ref = stubborn.remote(str(started))
    wait_for_condition(lambda: started.exists() and started.read_text(), timeout=30)
    pid = int(started.read_text())
    juno.cancel(ref, force=True)
    # Ray raises TaskCancelledError or WorkerCrashedError here; never a retry.
    with pytest.raises((TaskCancelledError, WorkerCrashedError)):
        juno.get(ref, timeout=30)

    def gone():
        try:
            return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return True

    wait_for_condition(gone, timeout=10)
    assert started.read_text() == str(pid), "a force-cancelled task is not retried"
    assert juno.get(square.remote(3), timeout=30) == 9


def test_cancel_finished_task_is_a_no_op(cluster):
    ref = square.remote(6)
    assert juno.get(ref) == 36
    juno.cancel(ref)
    assert juno.get(ref) == 36


def test_cancel_rejects_non_refs(cluster):
    with pytest.raises(TypeError):
        juno.cancel("not a ref")


# ---------------------------------------------------------------------------- infeasible

def test_infeasible_task_warns_and_stays_pending(cluster, capfd):
    @juno.remote
    def needs_many_cpus():
        return 1

    ref = needs_many_cpus.options(num_cpus=64).remote()
    err = []

    def warned():
        err.append(capfd.readouterr().err)
        text = "".join(err)
        return "needs_many_cpus" in text and "CPU" in text

    wait_for_condition(warned, timeout=10)
    with pytest.raises(GetTimeoutError):
        juno.get(ref, timeout=0.5)
    juno.cancel(ref)
    with pytest.raises(TaskCancelledError):
        juno.get(ref, timeout=10)
    assert juno.get(square.remote(2), timeout=30) == 4

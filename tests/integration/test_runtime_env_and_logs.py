"""runtime_env (env_vars, working_dir) and worker output streamed to the driver."""
from __future__ import annotations

import glob
import os
import sys
import uuid

import cloudpickle
import pytest
from helpers import wait_for_condition

import juno

cloudpickle.register_pickle_by_value(sys.modules[__name__])

JUNO_SHARED_INIT = {"num_cpus": 2, "runtime_env": {"env_vars": {"JUNO_TEST_JOB_VAR": "from-job"}}}



class Output:
    """Everything written to the driver's stdout/stderr since the fixture started."""

    def __init__(self, capfd):
        self.capfd = capfd
        self.out = ""
        self.err = ""

    def read(self) -> "Output":
        captured = self.capfd.readouterr()
        self.out += captured.out
        self.err += captured.err
        return self


@pytest.fixture
def output(capfd):
    return Output(capfd)


@juno.remote
def chatty(tag):
    print(f"hello from {tag}")
    print(f"second line {tag}\nthird line {tag}")
    print(f"oops {tag}", file=sys.stderr)
    return os.getpid()


@juno.remote
def getenv(*names):
    return {n: os.environ.get(n) for n in names}


# ---------------------------------------------------------------------------- logs

def test_log_to_driver_false_keeps_task_output_out_of_the_driver(shutdown_only, capfd):
    context = juno.init(num_cpus=1, log_to_driver=False)
    marker = f"silent-{uuid.uuid4().hex}"
    pid = juno.get(chatty.remote(marker))
    logs = os.path.join(context["session_dir"], "logs", "worker-*.log")

    def in_worker_log():
        for path in glob.glob(logs):
            with open(path, errors="replace") as f:
                if f"hello from {marker}" in f.read():
                    return True
        return False

    # The line was printed (it reached the worker's log file) but not the driver.
    wait_for_condition(in_worker_log, timeout=10)
    captured = capfd.readouterr()
    assert marker not in captured.out and marker not in captured.err
    assert pid != os.getpid()


def test_task_output_reaches_driver_with_prefix(cluster, output):
    tag = uuid.uuid4().hex[:8]
    pid = juno.get(chatty.remote(tag))
    prefix = f"(chatty pid={pid})"
    wait_for_condition(lambda: f"{prefix} third line {tag}" in output.read().out, timeout=10)
    lines = output.out.splitlines()
    assert f"{prefix} hello from {tag}" in lines
    assert f"{prefix} second line {tag}" in lines
    assert lines.index(f"{prefix} hello from {tag}") < lines.index(f"{prefix} second line {tag}") \
        < lines.index(f"{prefix} third line {tag}")
    wait_for_condition(lambda: f"{prefix} oops {tag}" in output.read().err, timeout=10)
    assert f"oops {tag}" not in output.out


def test_output_of_nested_tasks_and_named_tasks_reaches_driver(cluster, output):
    @juno.remote
    def child(tag):
        print(f"child says {tag}")
        return os.getpid()

    @juno.remote
    def parent(tag):
        print(f"parent says {tag}")
        return os.getpid(), juno.get(child.remote(tag))

    tag = uuid.uuid4().hex[:8]
    parent_pid, child_pid = juno.get(parent.remote(tag))
    wait_for_condition(lambda: f"pid={child_pid}) child says {tag}" in output.read().out, timeout=10)
    wait_for_condition(lambda: f"pid={parent_pid}) parent says {tag}" in output.read().out, timeout=10)

    pid = juno.get(chatty.options(name="custom_name").remote(tag + "n"))
    wait_for_condition(lambda: f"(custom_name pid={pid}) hello from {tag}n" in output.read().out, timeout=10)


# ---------------------------------------------------------------------------- runtime_env

def test_env_vars_per_task_and_from_job(cluster):
    names = ("JUNO_TEST_JOB_VAR", "JUNO_TEST_TASK_VAR")
    assert juno.get(getenv.remote(*names)) == {"JUNO_TEST_JOB_VAR": "from-job", "JUNO_TEST_TASK_VAR": None}
    with_env = getenv.options(runtime_env={"env_vars": {"JUNO_TEST_TASK_VAR": "from-task"}})
    assert juno.get(with_env.remote(*names)) == {"JUNO_TEST_JOB_VAR": "from-job",
                                                 "JUNO_TEST_TASK_VAR": "from-task"}
    override = getenv.options(runtime_env={"env_vars": {"JUNO_TEST_JOB_VAR": "overridden"}})
    assert juno.get(override.remote("JUNO_TEST_JOB_VAR")) == {"JUNO_TEST_JOB_VAR": "overridden"}
    # Tasks without the option never see another task's variables.
    assert juno.get([getenv.remote("JUNO_TEST_TASK_VAR") for _ in range(4)]) == [{"JUNO_TEST_TASK_VAR": None}] * 4


def test_env_vars_are_inherited_by_child_tasks(cluster):
    @juno.remote
    def parent():
        return os.environ.get("JUNO_TEST_PARENT_VAR"), juno.get(getenv.remote("JUNO_TEST_PARENT_VAR"))

    env = {"env_vars": {"JUNO_TEST_PARENT_VAR": "inherited"}}
    mine, childs = juno.get(parent.options(runtime_env=env).remote())
    assert mine == "inherited"
    assert childs == {"JUNO_TEST_PARENT_VAR": "inherited"}


def test_working_dir(cluster, tmp_path):
    module = f"juno_wd_mod_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{module}.py").write_text("VALUE = 42\n\ndef triple(x):\n    return 3 * x\n")
    (tmp_path / "data.txt").write_text("payload")

    @juno.remote
    def use_module(name):
        import importlib

        mod = importlib.import_module(name)
        with open("data.txt") as f:
            return mod.VALUE, mod.triple(5), f.read()

    in_dir = use_module.options(runtime_env={"working_dir": str(tmp_path)})
    assert juno.get(in_dir.remote(module), timeout=60) == (42, 15, "payload")
    with pytest.raises(ModuleNotFoundError):
        juno.get(use_module.remote(module), timeout=60)


def test_invalid_runtime_env_is_rejected(cluster, tmp_path):
    with pytest.raises(ValueError):
        getenv.options(runtime_env={"not_a_field": 1})
    with pytest.raises(ValueError):
        getenv.options(runtime_env={"working_dir": str(tmp_path / "missing")})
    with pytest.raises(TypeError):
        getenv.options(runtime_env={"env_vars": {"X": 1}})

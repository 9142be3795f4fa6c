"""Named actors on a real cluster: lookup, namespaces, get_if_exists, duplicate
names, and detached versus job-scoped lifetimes across drivers."""
from __future__ import annotations

import gc
import os
import subprocess
import sys
import textwrap

import psutil
import pytest

import juno
from helpers import wait_for_condition

JUNO_SHARED_INIT = {"num_cpus": 4}


@juno.remote
class Box:
    def __init__(self, value=None):
        self.value = value

    def get(self):
        return self.value

    def set(self, value):
        self.value = value

    def pid(self):
        return os.getpid()


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _lookup_fails(name, namespace=None):
    try:
        juno.get_actor(name, namespace=namespace)
    except ValueError:
        return True
    return False


def test_get_actor_returns_the_same_actor(juno_shared):
    a = Box.options(name="box-same").remote(1)
    b = juno.get_actor("box-same")
    assert b == a
    juno.get(b.set.remote(2))
    assert juno.get(a.get.remote()) == 2
    assert juno.get(a.pid.remote()) == juno.get(b.pid.remote())


def test_get_actor_of_a_missing_name_raises_value_error(juno_shared):
    with pytest.raises(ValueError, match="no-such-actor"):
        juno.get_actor("no-such-actor")


def test_duplicate_name_raises_value_error(juno_shared):
    a = Box.options(name="box-dup").remote(1)
    with pytest.raises(ValueError, match="box-dup"):
        Box.options(name="box-dup").remote(2)
    # The original is untouched.
    assert juno.get(a.get.remote()) == 1
    assert juno.get(juno.get_actor("box-dup").get.remote()) == 1


def test_get_if_exists_returns_the_existing_actor(juno_shared):
    a = Box.options(name="box-gie", get_if_exists=True).remote("first")
    b = Box.options(name="box-gie", get_if_exists=True).remote("second")
    assert a == b
    # The second call's constructor arguments are ignored: nothing new was built.
    assert juno.get(b.get.remote()) == "first"
    assert juno.get(a.pid.remote()) == juno.get(b.pid.remote())


def test_get_if_exists_creates_when_missing(juno_shared):
    a = Box.options(name="box-gie-new", get_if_exists=True).remote("made")
    assert juno.get(a.get.remote()) == "made"


def test_namespaces_separate_names(juno_shared):
    a = Box.options(name="box-ns", namespace="team-a").remote("a")
    b = Box.options(name="box-ns", namespace="team-b").remote("b")
    assert juno.get(juno.get_actor("box-ns", namespace="team-a").get.remote()) == "a"
    assert juno.get(juno.get_actor("box-ns", namespace="team-b").get.remote()) == "b"
    # Not visible from the driver's own (anonymous) namespace.
    with pytest.raises(ValueError):
        juno.get_actor("box-ns")
    assert a != b


def test_name_is_free_again_after_the_actor_dies(juno_shared):
    a = Box.options(name="box-reuse").remote("old")
    pid = juno.get(a.pid.remote())
    juno.kill(a)
    wait_for_condition(lambda: _gone(pid) and _lookup_fails("box-reuse"))
    b = Box.options(name="box-reuse").remote("new")
    assert juno.get(juno.get_actor("box-reuse").get.remote()) == "new"
    assert juno.get(b.get.remote()) == "new"


def test_named_actor_lookup_from_a_task(juno_shared):
    box = Box.options(name="box-from-task").remote(42)  # the handle keeps it alive

    @juno.remote(num_cpus=0)
    def read(name):
        return juno.get(juno.get_actor(name).get.remote())

    # Tasks run in their driver's namespace.
    assert juno.get(read.remote("box-from-task")) == 42
    assert juno.get(box.get.remote()) == 42


@juno.remote
class Finder:
    """Looks names up from inside an actor, a task it starts, and an actor it creates."""

    def __init__(self):
        self.namespace_at_init = juno.get_runtime_context().namespace

    def namespaces(self):
        return self.namespace_at_init, juno.get_runtime_context().namespace

    def read(self, name, namespace=None):
        return juno.get(juno.get_actor(name, namespace=namespace).get.remote())

    def read_in_task(self, name):
        return juno.get(_read_in_task.remote(name))

    def make_named(self, name, value):
        self.made = Box.options(name=name).remote(value)  # kept: its handle keeps it alive
        return juno.get(self.made.get.remote())


@juno.remote(num_cpus=0)
def _read_in_task(name):
    return juno.get_runtime_context().namespace, juno.get(juno.get_actor(name).get.remote())


@juno.remote(num_cpus=0)
def _read_in_nested_task(name):
    return juno.get(_read_in_task.remote(name))


def test_the_jobs_namespace_reaches_its_tasks_actors_and_nested_tasks(juno_shared):
    namespace = juno.get_runtime_context().namespace  # the job's anonymous one
    assert namespace
    box = Box.options(name="box-inherited").remote("found")  # noqa: F841 - keeps it alive
    assert juno.get(_read_in_task.remote("box-inherited")) == (namespace, "found")
    assert juno.get(_read_in_nested_task.remote("box-inherited")) == (namespace, "found")
    finder = Finder.remote()
    assert juno.get(finder.namespaces.remote()) == (namespace, namespace)
    assert juno.get(finder.read.remote("box-inherited")) == "found"
    assert juno.get(finder.read_in_task.remote("box-inherited")) == (namespace, "found")
    # An actor created with a namespace of its own still runs in its job's namespace.
    elsewhere = Finder.options(namespace="finder-elsewhere").remote()
    assert juno.get(elsewhere.namespaces.remote()) == (namespace, namespace)
    assert juno.get(elsewhere.read.remote("box-inherited")) == "found"


def test_actors_created_inside_an_actor_are_named_in_the_jobs_namespace(juno_shared):
    finder = Finder.remote()
    assert juno.get(finder.make_named.remote("box-made-inside", 7)) == 7
    assert juno.get(juno.get_actor("box-made-inside").get.remote()) == 7


def test_get_actor_with_an_explicit_namespace_inside_an_actor(juno_shared):
    box = Box.options(name="box-explicit", namespace="explicit-ns").remote("there")  # noqa: F841
    finder = Finder.remote()
    assert juno.get(finder.read.remote("box-explicit", "explicit-ns")) == "there"
    with pytest.raises(ValueError, match="box-explicit"):
        juno.get(finder.read.remote("box-explicit"))


def test_named_non_detached_actor_dies_with_its_last_handle(juno_shared):
    a = Box.options(name="box-scoped").remote()
    pid = juno.get(a.pid.remote())
    del a
    gc.collect()
    wait_for_condition(lambda: _gone(pid) and _lookup_fails("box-scoped"))


def test_a_named_actor_lives_while_its_creator_holds_a_handle_found_by_name(juno_shared):
    a = Box.options(name="box-found").remote(1)
    pid = juno.get(a.pid.remote())
    b = juno.get_actor("box-found")  # in the creating process it counts, as in Ray
    del a
    gc.collect()
    assert juno.get(b.get.remote()) == 1
    del b
    gc.collect()
    wait_for_condition(lambda: _gone(pid) and _lookup_fails("box-found"))


def test_driver_namespace_and_lifetimes_across_drivers(shutdown_only, tmp_path):
    """A second driver creates a detached and a job-scoped actor, then exits: the
    detached one lives on (found from here, same namespace), the other dies."""
    ctx = juno.init(num_cpus=2, namespace="shared-ns")
    assert juno.get_runtime_context().namespace == "shared-ns"
    script = tmp_path / "other_driver.py"
    script.write_text(textwrap.dedent(f"""
        import os
        import juno

        @juno.remote
        class Box:
            def __init__(self, value):
                self.value = value

            def get(self):
                return self.value

            def pid(self):
                return os.getpid()

        juno.init(address={ctx.address!r}, namespace="shared-ns")
        keeper = Box.options(name="keeper", lifetime="detached").remote("kept")
        temp = Box.options(name="temp").remote("temporary")
        print(juno.get(keeper.pid.remote()), juno.get(temp.pid.remote()), flush=True)
    """))
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    keeper_pid, temp_pid = (int(x) for x in out.stdout.split())
    keeper = juno.get_actor("keeper")
    assert juno.get(keeper.get.remote()) == "kept"
    assert juno.get(keeper.pid.remote()) == keeper_pid
    # The job-scoped actor goes with the driver that created it.
    wait_for_condition(lambda: _gone(temp_pid) and _lookup_fails("temp"), timeout=20)
    # Named actors of another namespace stay invisible without namespace=.
    with pytest.raises(ValueError):
        juno.get_actor("keeper", namespace="other-ns")
    juno.kill(keeper)
    wait_for_condition(lambda: _gone(keeper_pid) and _lookup_fails("keeper"))

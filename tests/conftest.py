"""Shared fixtures for Juno's tests.

Cluster fixtures (function scope, each test gets a fresh local cluster):

    juno_start_regular   juno.init(num_cpus=2), yields what init returned
    juno_start_4cpus     juno.init(num_cpus=4)
    juno_start_gpus      juno.init(num_cpus=4, num_gpus=2)   (logical GPUs)
    shutdown_only        the test calls juno.init itself; shut down afterwards

juno_shared (module scope in effect): one cluster for the tests of a module that
ask for it; see its docstring.

After a test that used one of them, the test fails at teardown if processes it
started (command line mentions "juno") are still alive 10 s after shutdown, or if
new /dev/shm/juno-* stores of its clusters are left behind. The check counts only what
this run started (tests/leak_check.py), so it passes beside any other Juno cluster on the
machine; for the same reason the run has a temp folder of its own ($TMPDIR, where
juno.init(address="auto") looks for `juno start`'s cluster) and ignores $JUNO_ADDRESS.

juno is imported lazily, inside fixtures, so this file (and tests/unit/, which needs
no cluster) imports even while the runtime is broken.
"""

from __future__ import annotations

import sys
import warnings

import pytest

import leak_check
from helpers import wait_for_condition  # noqa: F401  (re-exported for tests)
from leak_check import LeakGuard as _LeakGuard

# Before juno is imported: this run's clusters get a temp folder of their own.
leak_check.start_session_log(leak_check.isolate_run())


def _juno_if_imported():
    return sys.modules.get("juno")


def _juno_is_initialized() -> bool:
    juno = _juno_if_imported()
    if juno is None:
        return False
    is_init = getattr(juno, "is_initialized", None)
    try:
        return bool(is_init()) if callable(is_init) else False
    except Exception:  # a half-broken runtime: treat as initialized, shut it down
        return True


@pytest.fixture
def _juno_leak_guard():
    guard = _LeakGuard()
    yield guard
    guard.check()


# --------------------------------------------------------------------------------
# Cluster fixtures
# --------------------------------------------------------------------------------

def _fresh_start():
    """Import juno; if an earlier test left it initialized, shut that down first
    (juno.init is idempotent, so it would silently reuse the old cluster)."""
    import juno

    if _module_cluster.get("module") is not None:
        _stop_module_cluster()  # a shared cluster is expected here: stop it quietly
    if _juno_is_initialized():
        warnings.warn(
            "juno was still initialized when this test started; an earlier test "
            "leaked it. Shutting it down.",
            stacklevel=2,
        )
        juno.shutdown()
    return juno


def _shutdown(guard: _LeakGuard) -> None:
    guard.note_processes()
    juno = _juno_if_imported()
    if juno is not None:
        juno.shutdown()


@pytest.fixture
def juno_start_regular(_juno_leak_guard):
    juno = _fresh_start()
    try:
        yield juno.init(num_cpus=2)
    finally:
        _shutdown(_juno_leak_guard)


@pytest.fixture
def juno_start_4cpus(_juno_leak_guard):
    juno = _fresh_start()
    try:
        yield juno.init(num_cpus=4)
    finally:
        _shutdown(_juno_leak_guard)


@pytest.fixture
def juno_start_gpus(_juno_leak_guard):
    """4 CPUs and 2 logical GPUs (no physical GPU needed)."""
    juno = _fresh_start()
    try:
        yield juno.init(num_cpus=4, num_gpus=2)
    finally:
        _shutdown(_juno_leak_guard)


@pytest.fixture
def shutdown_only(_juno_leak_guard):
    """For tests that call juno.init() themselves."""
    _fresh_start()
    try:
        yield
    finally:
        _shutdown(_juno_leak_guard)


# --------------------------------------------------------------------------------
# One cluster shared by the tests of a module
# --------------------------------------------------------------------------------

# While a module's shared cluster runs: the module and that module's leak guard.
_module_cluster: dict = {}


def _stop_module_cluster() -> None:
    guard = _module_cluster.pop("guard", None)
    _module_cluster.pop("module", None)
    if guard is not None:
        _shutdown(guard)


@pytest.fixture(scope="module")
def _juno_module_leak_guard():
    guard = _LeakGuard()
    yield guard
    if _module_cluster.get("guard") is guard:
        _stop_module_cluster()
    guard.check()


@pytest.fixture
def juno_shared(request, _juno_module_leak_guard):
    """A cluster shared by every test of the module that asks for it (started on
    first use with ``juno.init(**JUNO_SHARED_INIT)`` from the module, default
    ``num_cpus=4``), for tests that don't disturb each other: use unique actor
    names. A test of the same module that uses a function-scoped fixture
    (``shutdown_only`` ...) stops it quietly; the next ``juno_shared`` test starts
    it again. Its leak check runs once, after the module's last test."""
    module = request.module
    if _module_cluster.get("module") is not module or not _juno_is_initialized():
        juno = _fresh_start()
        kwargs = getattr(module, "JUNO_SHARED_INIT", {"num_cpus": 4})
        juno.init(**kwargs)
        _module_cluster.update(module=module, guard=_juno_module_leak_guard)
    import juno

    _juno_module_leak_guard.note_processes()
    yield juno
    _juno_module_leak_guard.note_processes()


@pytest.fixture(scope="session", autouse=True)
def _shutdown_juno_at_session_end():
    """Last line of defence: never leave a cluster running after the session."""
    yield
    if _juno_is_initialized():
        warnings.warn("juno was left initialized at the end of the session; shutting down")
        try:
            _juno_if_imported().shutdown()
        except Exception as exc:  # report, don't mask the session's result
            print(f"conftest: juno.shutdown() at session end failed: {exc!r}", file=sys.stderr)
    leak_check.remove_run_tmpdir()


# --------------------------------------------------------------------------------
# Small shared fixtures of the integration tests
# --------------------------------------------------------------------------------

@pytest.fixture
def cluster(juno_shared):
    """The module's shared cluster (configured by a module-level JUNO_SHARED_INIT)."""
    return juno_shared


@pytest.fixture
def gate(tmp_path):
    """A file tasks blocked in ``wait_for_file`` wait for; created at teardown so a
    failing test never leaves a task blocked for the next one."""
    path = tmp_path / "gate"
    yield path
    path.touch()


def _pickle_helpers_by_value() -> None:
    # Workers can't import tests/helpers.py: its functions travel by value, as a
    # notebook's would.
    import cloudpickle

    import helpers

    cloudpickle.register_pickle_by_value(helpers)


_pickle_helpers_by_value()

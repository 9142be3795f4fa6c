"""%load_ext juno in a real ipykernel over the Jupyter protocol: %%remote with each flag,
shipping names both ways, --no-block, remote sessions, %juno, and clear errors for bad input.

One kernel (and the local cluster it starts) serves the module; its leak check runs after
the last test. Tests that stop or start the cluster use a kernel of their own.
"""

from __future__ import annotations

import pytest

from kernel_harness import KernelHarness


@pytest.fixture(scope="module")
def kernel(_juno_module_leak_guard):
    k = KernelHarness()
    try:
        k.run_ok("%load_ext juno")
        k.run_ok("import juno\n_ctx = juno.init(num_cpus=4, num_gpus=1, resources={'special': 2})")
        _juno_module_leak_guard.note_processes()
        yield k
        _juno_module_leak_guard.note_processes()
    finally:
        k.close()


def usage_error(k: KernelHarness, code: str) -> str:
    cell = k.execute(code)
    assert not cell.ok, f"expected an error from:\n{code}"
    return cell.error_text


# ------------------------------------------------------------------------- %%remote
def test_ships_names_both_ways_and_shows_last_expression(kernel):
    kernel.run_ok("a = 20\ndef helper(v):\n    return v * 2\nclass Box:\n    def __init__(self, v):\n"
                  "        self.v = v\nunused = object()")
    cell = kernel.run_ok("%%remote\nimport os, json\nb = helper(a) + 2\nbox = Box(b)\n"
                         "def twice(v):\n    return 2 * v\nprint('ran in', os.getpid())\nb + 1")
    assert cell.result_text == "43"
    assert "ran in" in cell.stdout
    assert kernel.eval("(b, box.v, twice(4), json.dumps([1]))") == "(42, 42, 8, '[1]')"


def test_runs_in_a_worker_and_only_reads_what_it_uses(kernel):
    kernel.run_ok("import os, threading\nnot_shipped = threading.Lock()\nshipped = 5")
    cell = kernel.run_ok("%%remote\nimport os\npid = os.getpid()\nshipped * 2")
    assert cell.result_text == "10"  # the lock it never reads did not stop it
    assert kernel.eval("pid != os.getpid()") == "True"


def test_redefined_function_runs_new_code(kernel):
    kernel.run_ok("def version():\n    return 1")
    assert kernel.run_ok("%%remote\nversion()").result_text == "1"
    kernel.run_ok("def version():\n    return 2")
    assert kernel.run_ok("%%remote\nversion()").result_text == "2"


def test_no_last_expression_shows_nothing(kernel):
    cell = kernel.run_ok("%%remote\nquiet = 3")
    assert cell.results == []
    assert kernel.eval("quiet") == "3"


def test_remote_exception_reraises_with_remote_traceback(kernel):
    cell = kernel.execute("%%remote\ndef inner():\n    raise ValueError('bad value 17')\nx_err = 1\ninner()")
    assert not cell.ok
    assert "ValueError" in cell.error["ename"]
    text = cell.error_text
    assert "bad value 17" in text and "<remote-cell>" in text and "inner" in text
    # the cell failed as a whole: nothing came back
    assert kernel.execute("x_err").error["ename"] == "NameError"
    # a ValueError raised remotely is still caught by `except ValueError`
    kernel.run_ok("try:\n    get_ipython().run_cell_magic('remote', '', 'int(\"x\")')\n"
                  "except ValueError:\n    caught = True")
    assert kernel.eval("caught") == "True"


def test_resource_flags(kernel):
    cell = kernel.run_ok("%%remote --num-cpus 2 --num-gpus 1 --memory 1000000\nimport juno\n"
                         "gpus = juno.get_gpu_ids()\nlen(gpus)")
    assert cell.result_text == "1"
    cell = kernel.run_ok("%%remote --resources '{\"special\": 1}' --num-cpus 0.5\n"
                         "import juno\njuno.get_runtime_context().get_assigned_resources().get('special')")
    assert cell.result_text == "1.0"


def test_node_flag_pins_to_the_node(kernel):
    node = kernel.eval("juno.get_runtime_context().get_node_id()").strip("'")
    cell = kernel.run_ok(f"%%remote --node {node}\nimport juno\njuno.get_runtime_context().get_node_id()")
    assert cell.result_text.strip("'") == node


def test_runtime_env_flag(kernel):
    cell = kernel.run_ok("%%remote --runtime-env '{\"env_vars\": {\"MAGIC_VAR\": \"hello\"}}'\n"
                         "import os\nos.environ.get('MAGIC_VAR')")
    assert cell.result_text == "'hello'"


@pytest.mark.parametrize("flags, message", [
    ("--num-cpus lots", "--num-cpus"),
    ("--memory 1.5", "--memory"),
    ("--resources '{not json}'", "--resources must be a JSON object"),
    ("--resources '[1, 2]'", "--resources must be a JSON object"),
    ("--runtime-env nope", "--runtime-env must be a JSON object"),
    ("--node not-a-node-id", "--node"),
    ("--out 1bad --no-block", "--out must be a Python name"),
    ("--bogus", "unrecognized arguments"),
    ("--session s --num-cpus 1", "--session runs on the session's resources"),
    ("--session nosuch", "no remote session named 'nosuch'"),
])
def test_bad_flags_are_clear_errors(kernel, flags, message):
    text = usage_error(kernel, f"%%remote {flags}\nnever_assigned = 1")
    assert message in text, text
    assert kernel.execute("never_assigned").error["ename"] == "NameError"


def test_bad_cell_and_bad_option_values(kernel):
    assert "not valid Python" in usage_error(kernel, "%%remote\ndef (:")
    text = usage_error(kernel, "%%remote --num-cpus -1\n1")
    assert "num_cpus" in text


def test_unpicklable_values_are_named(kernel):
    kernel.run_ok("import threading\nmy_lock = threading.Lock()")
    text = usage_error(kernel, "%%remote\nwith my_lock:\n    pass")
    assert "my_lock" in text and "cannot be pickled to ship to the cluster" in text
    text = usage_error(kernel, "%%remote\nimport threading\nnew_lock = threading.Lock()\nok_value = 1")
    assert "new_lock" in text and "send back to the notebook" in text
    kernel.run_ok("%remote_session pickles")
    try:
        text = usage_error(kernel, "%remote_push pickles my_lock")
        assert "my_lock" in text and "push to the session" in text
    finally:
        kernel.run_ok("%remote_session --stop pickles")


def test_no_block_returns_a_future_and_assigns_later(kernel):
    cell = kernel.run_ok("%%remote --no-block\nimport time\ntime.sleep(1.5)\nlate = 'arrived'\nlate.upper()")
    assert cell.results == []
    assert kernel.eval("type(_remote).__name__") == "'RemoteCellFuture'"
    assert kernel.eval("_remote.done()") == "False"
    assert kernel.eval("'late' in dir()") == "False"
    kernel.wait_for(lambda: kernel.eval("'late' in dir()") == "True", timeout=30, what="late assigned")
    assert kernel.eval("(_remote.done(), _remote.result(10), late)") == "(True, 'ARRIVED', 'arrived')"


def test_no_block_out_name_and_failure(kernel):
    kernel.run_ok("%%remote --no-block --out job\nraise KeyError('gone')")
    kernel.wait_for(lambda: kernel.eval("job.done()") == "True", timeout=30, what="job done")
    cell = kernel.execute("job.result(10)")
    assert "KeyError" in cell.error["ename"] and "gone" in cell.error_text


def test_interrupt_cancels_the_remote_cell(kernel):
    import time

    cell = kernel.submit("%%remote --num-cpus 4\nimport time\nwhile True:\n    time.sleep(0.05)")
    time.sleep(1.0)  # the cell is waiting on its task
    kernel.interrupt()
    kernel.wait(cell, timeout=20)
    assert not cell.ok and "KeyboardInterrupt" in cell.error["ename"] + cell.error_text
    # the task was cancelled on the cluster: its CPUs come back; the kernel still works
    kernel.wait_for(lambda: kernel.eval("juno.available_resources().get('CPU')") == "4.0", timeout=20,
                    what="the cell's CPUs released")
    assert kernel.run_ok("%%remote\n'still fine'").result_text == "'still fine'"


def test_no_block_assigns_on_the_kernel_thread(kernel):
    kernel.run_ok("import threading\nimport juno.kernel_ext.magics as _m\n_orig = _m.JunoMagics._assign_results\n"
                  "threads = []\ndef _spy(self, future):\n    threads.append(threading.current_thread().name)\n"
                  "    return _orig(self, future)\n_m.JunoMagics._assign_results = _spy")
    try:
        kernel.run_ok("%%remote --no-block\nthread_check = 1")
        kernel.wait_for(lambda: kernel.eval("threads") != "[]", timeout=30, what="results assigned")
        assert kernel.eval("(threads, threading.main_thread().name, thread_check)") == \
            "(['MainThread'], 'MainThread', 1)"
    finally:
        kernel.run_ok("_m.JunoMagics._assign_results = _orig")


# ------------------------------------------------------------------------- sessions
def test_remote_session_keeps_state(kernel):
    kernel.run_ok("%remote_session sess --num-cpus 1")
    kernel.run_ok("base = 100")
    cell = kernel.run_ok("%%remote --session sess\ncounter = base + 1\ncounter")
    assert cell.result_text == "101"
    # assigned names stay in the session
    assert kernel.execute("counter").error["ename"] == "NameError"
    cell = kernel.run_ok("%%remote --session sess\ncounter += 1\ncounter")
    assert cell.result_text == "102"
    # push replaces, pull brings back
    kernel.run_ok("counter = 7")
    kernel.run_ok("%remote_push sess counter")
    kernel.run_ok("%%remote --session sess\ncounter *= 3")
    kernel.run_ok("del counter\n%remote_pull sess counter")
    assert kernel.eval("counter") == "21"
    listing = kernel.run_ok("%remote_session --list").stdout
    assert "sess: num_cpus=1.0" in listing
    cell = kernel.run_ok("%%remote --session sess --no-block --out sjob\nimport time\ntime.sleep(0.2)\ncounter")
    assert kernel.eval("sjob.result(30)") == "21"
    kernel.run_ok("%remote_session --stop sess")
    assert "No remote sessions" in kernel.run_ok("%remote_session --list").stdout


def test_remote_session_errors(kernel):
    kernel.run_ok("%remote_session errs")
    try:
        assert "already running" in usage_error(kernel, "%remote_session errs")
        assert "not defined in the session: nothing_here" in usage_error(kernel, "%remote_pull errs nothing_here")
        assert "not defined in the notebook: nothing_here" in usage_error(kernel, "%remote_push errs nothing_here")
        assert "usage: %remote_push" in usage_error(kernel, "%remote_push errs")
        assert "Python names" in usage_error(kernel, "%remote_pull errs a.b")
        assert "no remote session named 'other'" in usage_error(kernel, "%remote_pull other x")
        assert "usage: %remote_session NAME" in usage_error(kernel, "%remote_session")
        cell = kernel.execute("%%remote --session errs\n[][1]")
        assert "IndexError" in cell.error["ename"]
        # the session survived its error
        assert kernel.run_ok("%%remote --session errs\n'alive'").result_text == "'alive'"
    finally:
        kernel.run_ok("%remote_session --stop errs")
    assert "no remote session named 'errs'" in usage_error(kernel, "%remote_session --stop errs")


# ------------------------------------------------------------------------- %juno
def test_juno_status_and_dashboard(kernel):
    (shown,) = kernel.run_ok("%juno status").displays  # the cluster widget, with its fallbacks
    text = shown["text/plain"]
    assert "1 node alive" in text and "0 / 4" in text and "special" in text and "text/html" in shown
    shown = kernel.run_ok("%juno dashboard").stdout
    assert "Juno dashboard: http://127.0.0.1:" in shown and "juno token" in shown
    assert "unknown %juno command 'launch'" in usage_error(kernel, "%juno launch")
    assert "takes no arguments" in usage_error(kernel, "%juno status now")
    assert "unrecognized arguments" in usage_error(kernel, "%juno init --bogus 1")


def test_auto_init_init_and_stop(own_kernel):
    k = own_kernel
    k.run_ok("%load_ext juno")
    assert "not running" in k.run_ok("%juno status").stdout
    # a cell magic starts a local cluster when none is running
    assert k.run_ok("%%remote\n6 * 7").result_text == "42"
    assert k.eval("__import__('juno').is_initialized()") == "True"
    # sessions of a stopped cluster are forgotten, not reported as running
    k.run_ok("%remote_session kept")
    k.run_ok("juno_mod = __import__('juno')\njuno_mod.shutdown()")
    assert "No remote sessions" in k.run_ok("%remote_session --list").stdout
    k.run_ok("%remote_session kept")  # the same name starts again, on a new cluster
    assert "Juno stopped." in k.run_ok("%juno stop").stdout
    assert k.eval("__import__('juno').is_initialized()") == "False"
    assert "not running" in k.run_ok("%juno stop").stdout
    cell = k.run_ok("%juno init --num-cpus 3")
    assert "JunoContext" in (cell.result_text or "")
    assert "0 / 3" in k.run_ok("%juno status").displays[0]["text/plain"]
    k.run_ok("%juno stop")
    k.run_ok("%unload_ext juno")
    assert "not found" in usage_error(k, "%juno status")
    k.run_ok("%load_ext juno")
    assert "not running" in k.run_ok("%juno status").stdout

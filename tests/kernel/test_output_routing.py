"""Remote output lands under the cell that launched it, in order, throttled (juno.kernel_ext.output).

Real ipykernels over the Jupyter protocol (tests/kernel_harness.py); iopub messages are
matched to cells by their parent msg_id.
"""
from __future__ import annotations

import re

INIT = "import time, juno\njuno.init(num_cpus=2)\n"

CHATTY = '''
@juno.remote
def chatty(n, dt, tag="tick"):
    import sys, time
    for i in range(n):
        print(f"{tag} {i}", flush=True)
        if i % 5 == 4:
            print(f"{tag} err {i}", file=sys.stderr, flush=True)
        time.sleep(dt)
    return n
'''


def _ticks(text: str, tag: str = "tick") -> list[int]:
    return [int(m) for m in re.findall(rf"\) {tag} (\d+)\n", text)]


def test_output_lands_under_the_launching_cell_while_another_runs(own_kernel):
    own_kernel.run_ok(INIT + CHATTY)  # no %load_ext: routing switches on with juno.init() in a kernel
    launch = own_kernel.run_ok("ref = chatty.remote(40, 0.05)")  # returns at once; the task prints for ~2 s
    own_kernel.wait_for(lambda: _ticks(launch.stdout), timeout=30, what="the first line under the launching cell")
    later = own_kernel.run_ok("print('cell 3 runs'); time.sleep(1.0); print('cell 3 done')")
    own_kernel.wait_for(lambda: len(_ticks(launch.stdout)) == 40 and launch.stderr.count("tick err") == 8,
                    timeout=30, what="all 40 + 8 lines under cell 2")
    assert _ticks(launch.stdout) == list(range(40))  # complete and in order
    assert [int(m) for m in re.findall(r"tick err (\d+)", launch.stderr)] == list(range(4, 40, 5))
    assert later.stdout == "cell 3 runs\ncell 3 done\n"  # nothing of the task's output landed here
    assert "tick" not in later.stderr
    # some of the task's lines arrived while cell 3 was running (live, not only before it)
    started = next(m["header"]["date"] for m in later.messages if m["header"]["msg_type"] == "execute_input")
    assert any(m["header"]["date"] > started for m in launch.messages if m["header"]["msg_type"] == "stream")
    assert own_kernel.run_ok("print(juno.get(ref))").stdout == "40\n"


def test_nested_task_output_lands_under_the_cell_that_launched_the_root(own_kernel):
    own_kernel.run_ok(INIT + CHATTY + """
@juno.remote(num_cpus=0)
def parent(n):
    print("parent starts", flush=True)
    return juno.get(chatty.options(num_cpus=0).remote(n, 0.05, "nested"))
""")
    launch = own_kernel.run_ok("ref = parent.remote(20)")
    later = own_kernel.run_ok("print('cell 3 runs'); time.sleep(0.5)")
    own_kernel.wait_for(lambda: len(_ticks(launch.stdout, "nested")) == 20, timeout=30,
                        what="the nested task's 20 lines under the launching cell")
    assert "parent starts" in launch.stdout and _ticks(launch.stdout, "nested") == list(range(20))
    assert "nested" not in later.stdout and "nested" not in later.stderr
    assert own_kernel.run_ok("print(juno.get(ref))").stdout == "20\n"


def test_actor_call_output_goes_to_the_calling_cell(own_kernel):
    own_kernel.run_ok(INIT + '''
@juno.remote
class Talker:
    def say(self, n, tag):
        import time
        for i in range(n):
            print(f"{tag} {i}", flush=True)
            time.sleep(0.05)
        return n
t = Talker.remote()
''')
    first = own_kernel.run_ok("a = t.say.remote(20, 'first')")
    second = own_kernel.run_ok("b = t.say.remote(5, 'second')")  # queued behind the first call
    own_kernel.run_ok("juno.get([a, b])")
    own_kernel.wait_for(lambda: len(_ticks(second.stdout, "second")) == 5, timeout=30, what="second call's output")
    assert _ticks(first.stdout, "first") == list(range(20))
    assert _ticks(second.stdout, "second") == list(range(5))
    assert "second" not in first.stdout and "first" not in second.stdout


def test_high_rate_output_is_throttled_with_one_note(own_kernel):
    own_kernel.run_ok(INIT + CHATTY + "from juno.kernel_ext import output\noutput.set_rate_limit(lines_per_s=50)\n")
    flood = own_kernel.run_ok("print(juno.get(chatty.remote(2000, 0)))")
    note = re.compile(r"\[juno\] (\d+) lines of remote output left out")
    own_kernel.wait_for(lambda: note.search(flood.stdout), timeout=30, what="the throttle note")
    shown = _ticks(flood.stdout)
    assert shown == sorted(shown) and 0 < len(shown) <= 200  # in order, and far fewer than 2000
    left_out = sum(int(n) for n in note.findall(flood.stdout))
    errs = len(re.findall(r"tick err \d+", flood.stderr))
    assert len(shown) + errs + left_out == 2000 + 400  # every line is either shown or counted
    assert flood.stdout.count("[juno]") <= 2  # one note per burst, not one per line
    assert "2000" in flood.stdout  # the cell's own result is not throttled
    # the limit is per cell: a later quiet cell is not affected
    quiet = own_kernel.run_ok("juno.get(chatty.remote(3, 0, 'calm'))")
    own_kernel.wait_for(lambda: len(_ticks(quiet.stdout, "calm")) == 3, timeout=30, what="the quiet cell's lines")


def test_bad_rate_limit_is_a_clear_error(own_kernel):
    cell = own_kernel.execute("from juno.kernel_ext import output\noutput.set_rate_limit(lines_per_s=0)")
    assert not cell.ok and "lines_per_s must be a positive integer" in cell.error_text


def test_uninstall_prints_plainly_and_install_routes_again(own_kernel):
    own_kernel.run_ok(INIT + CHATTY + "from juno.kernel_ext import output\n")
    own_kernel.run_ok("output.uninstall(get_ipython())")
    plain = own_kernel.run_ok("juno.get(chatty.remote(3, 0, 'plain')); time.sleep(0.5)")
    assert _ticks(plain.stdout, "plain") == [0, 1, 2]  # still shown (printed by the driver as before)
    own_kernel.run_ok("output.install(get_ipython())")
    launch = own_kernel.run_ok("ref = chatty.remote(10, 0.05, 'again')")
    other = own_kernel.run_ok("juno.get(ref); time.sleep(0.3)")
    own_kernel.wait_for(lambda: len(_ticks(launch.stdout, "again")) == 10, timeout=30, what="routed lines")
    assert "again" not in other.stdout


def test_load_ext_routes_task_and_remote_cell_output(own_kernel):
    own_kernel.run_ok("%load_ext juno")
    own_kernel.run_ok(INIT + CHATTY)
    launch = own_kernel.run_ok("%%remote --no-block\nimport time\nfor i in range(10):\n"
                           "    print(f'cell {i}', flush=True)\n    time.sleep(0.05)\n")
    other = own_kernel.run_ok("ref = chatty.remote(5, 0.02); time.sleep(1.0)")
    own_kernel.wait_for(lambda: len(_ticks(launch.stdout, "cell")) == 10 and len(_ticks(other.stdout)) == 5,
                    timeout=30, what="both cells' remote output")
    assert _ticks(launch.stdout, "cell") == list(range(10))
    assert "tick" not in launch.stdout and "cell" not in other.stdout


def test_actor_output_outside_calls_goes_to_the_creating_cell(own_kernel):
    own_kernel.run_ok(INIT + '''
@juno.remote(num_cpus=0)
class Ticker:
    def __init__(self):
        import threading, time
        print("hello from init", flush=True)
        def loop():
            time.sleep(0.2)  # after __init__ returned (before, a thread's lines go to the worker's log)
            for i in range(20):
                print(f"bg {i}", flush=True)
                time.sleep(0.05)
        threading.Thread(target=loop, daemon=True).start()
    def call(self):
        print("in call 0", flush=True)
''')
    create = own_kernel.run_ok("t = Ticker.remote()")
    call = own_kernel.run_ok("juno.get(t.call.remote()); time.sleep(1.2)")
    own_kernel.wait_for(lambda: len(_ticks(create.stdout, "bg")) == 20, timeout=30, what="the actor thread's lines")
    assert "hello from init" in create.stdout
    assert _ticks(create.stdout, "bg") == list(range(20))
    assert _ticks(call.stdout, "in call") == [0] and "bg" not in call.stdout

"""Interrupting the kernel cancels the remote work of the interrupted cell (juno.kernel_ext.interrupts).

A real ipykernel over the Jupyter protocol (tests/kernel_harness.py); the kernel gets
SIGINT through KernelManager.interrupt_kernel, as from the notebook's stop button. The
tasks touch heartbeat files, so the test sees them stop on the cluster.
"""
from __future__ import annotations

import os
import time



SETUP = '''
import os, time, juno
juno.init(num_cpus=3)

@juno.remote
def beat(path, seconds=60):
    import time
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with open(path, "a") as f:
            f.write(".")
        time.sleep(0.02)
    return "finished"
'''


def _size(path) -> int:
    try:
        return os.path.getsize(path)
    except FileNotFoundError:
        return 0


def _stopped(path, quiet_s: float = 0.5, timeout: float = 15.0) -> bool:
    """True once the heartbeat file has not grown for quiet_s (within timeout)."""
    deadline = time.monotonic() + timeout
    last, since = _size(path), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.05)
        now = _size(path)
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet_s:
            return True
    return False


def _growing(path, timeout: float = 10.0) -> bool:
    start = _size(path)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _size(path) > start:
            return True
        time.sleep(0.02)
    return False


def test_interrupt_cancels_the_cells_task_and_the_kernel_survives(own_kernel, tmp_path):
    mine, earlier = str(tmp_path / "mine"), str(tmp_path / "earlier")
    own_kernel.run_ok(SETUP)
    own_kernel.run_ok(f"bg = beat.remote({earlier!r})")  # an earlier cell's work: must keep running
    cell = own_kernel.submit(f"ref = beat.remote({mine!r})\njuno.get(ref)")
    own_kernel.wait_for(lambda: _size(mine) > 0, timeout=30, what="the task's first heartbeat")
    own_kernel.interrupt()
    own_kernel.wait(cell, timeout=15)  # control returns
    assert not cell.ok and cell.error["ename"] == "KeyboardInterrupt"
    assert "cancelled 1 unfinished task this cell launched" in cell.stderr
    assert _stopped(mine), "the interrupted cell's task kept running on the cluster"
    assert _growing(earlier), "an earlier cell's task was cancelled too"
    after = own_kernel.execute("juno.get(ref)")
    assert not after.ok and "TaskCancelledError" in after.error["ename"]
    # the kernel and the cluster still work
    assert own_kernel.run_ok("print(juno.get(juno.remote(lambda: 6 * 7).remote()))").stdout == "42\n"
    own_kernel.run_ok("juno.cancel(bg)")
    assert _stopped(earlier)


def test_interrupt_cancels_queued_tasks_and_actor_calls(own_kernel, tmp_path):
    paths = [str(tmp_path / f"t{i}") for i in range(4)]
    call1, call2 = str(tmp_path / "call1"), str(tmp_path / "call2")
    own_kernel.run_ok(SETUP + '''
@juno.remote(num_cpus=0)
class Beater:
    def beat(self, path, seconds):
        return beat._function(path, seconds)
a = Beater.remote()
''')
    # 4 tasks on 3 CPUs: one waits in the queue; the second actor call waits behind the first
    cell = own_kernel.submit(f"refs = [beat.remote(p) for p in {paths!r}]\n"
                         f"refs += [a.beat.remote({call1!r}, 60), a.beat.remote({call2!r}, 60)]\n"
                         "juno.wait(refs, num_returns=len(refs))")
    own_kernel.wait_for(lambda: sum(_size(p) > 0 for p in paths) == 3 and _size(call1) > 0, timeout=30,
                    what="three tasks and the first actor call running")
    own_kernel.interrupt()
    own_kernel.wait(cell, timeout=15)
    assert not cell.ok and cell.error["ename"] == "KeyboardInterrupt"
    assert "cancelled 6 unfinished tasks this cell launched" in cell.stderr
    for p in paths + [call1]:
        assert _stopped(p), f"{p} kept beating after the interrupt"
    assert sum(_size(p) > 0 for p in paths) == 3  # the queued task never started
    results = own_kernel.run_ok('''
out = []
for r in refs:
    try:
        out.append(juno.get(r, timeout=20))
    except Exception as e:
        out.append("cancelled" if "TaskCancelledError" in type(e).__name__ else repr(e))
print(out)
''')
    assert results.stdout == str(["cancelled"] * 6) + "\n"
    assert _size(call2) == 0
    assert own_kernel.run_ok("print(juno.get(beat.remote(os.devnull, 0)))").stdout == "finished\n"


def test_interrupt_of_a_cell_without_remote_work_only_interrupts(own_kernel):
    own_kernel.run_ok("import time, juno\njuno.init(num_cpus=1)")
    cell = own_kernel.submit("time.sleep(30)")
    own_kernel.wait_for(lambda: any(m["header"]["msg_type"] == "execute_input" for m in cell.messages),
                    timeout=10, what="the cell to start")
    time.sleep(0.2)  # let the cell enter sleep before the signal
    own_kernel.interrupt()
    own_kernel.wait(cell, timeout=15)
    assert cell.error["ename"] == "KeyboardInterrupt" and "juno:" not in cell.stderr
    own_kernel.run_ok("assert juno.is_initialized()")


def test_interrupting_a_remote_cell_cancels_it(own_kernel, tmp_path):
    path = str(tmp_path / "cell")
    own_kernel.run_ok("%load_ext juno")
    own_kernel.run_ok(f"import juno\njuno.init(num_cpus=1)\npath = {path!r}")
    cell = own_kernel.submit("%%remote\nimport time\nwhile True:\n    open(path, 'a').write('.')\n    time.sleep(0.02)\n")
    own_kernel.wait_for(lambda: _size(path) > 0, timeout=30, what="the %%remote cell's first heartbeat")
    own_kernel.interrupt()
    own_kernel.wait(cell, timeout=15)
    assert not cell.ok and cell.error["ename"] == "KeyboardInterrupt"
    assert _stopped(path), "the %%remote cell kept running on the cluster"
    assert own_kernel.run_ok("%%remote\nx = 6 * 7").ok
    assert own_kernel.run_ok("print(x)").stdout == "42\n"

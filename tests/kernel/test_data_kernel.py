"""Juno Data in a notebook kernel: interrupting a cell that runs a dataset stops its tasks and
its actor pool and gives their CPUs back (libs/data/execution/executor.py closes on the
KeyboardInterrupt; juno.kernel_ext.interrupts cancels what the cell launched)."""
from __future__ import annotations

import os
import time

SETUP = '''
import time, juno
import juno.data as rd
juno.init(num_cpus=2)

class Slow:
    def __init__(self, path):
        self.path = path
    def __call__(self, batch):
        for _ in range(200):
            with open(self.path, "a") as f:
                f.write(".")
            time.sleep(0.02)
        return batch
'''


def _size(path) -> int:
    try:
        return os.path.getsize(path)
    except FileNotFoundError:
        return 0


def test_interrupting_a_dataset_stops_its_tasks_and_actors(own_kernel, tmp_path):
    beat = str(tmp_path / "beat")
    own_kernel.run_ok(SETUP)
    cell = own_kernel.submit(f"rd.range(64, override_num_blocks=16).map_batches(Slow, fn_constructor_args=({beat!r},), "
                             "concurrency=1, batch_size=4).take_all()")
    own_kernel.wait_for(lambda: _size(beat) > 0, timeout=60, what="the actor's first batch")
    own_kernel.interrupt()
    own_kernel.wait(cell, timeout=20)
    assert not cell.ok and cell.error["ename"] == "KeyboardInterrupt"
    deadline = time.monotonic() + 15
    last = _size(beat)
    while time.monotonic() < deadline:
        time.sleep(0.5)
        if _size(beat) == last:
            break
        last = _size(beat)
    assert _size(beat) == last, "the pool's actor kept working after the interrupt"
    out = own_kernel.run_ok("""
deadline = time.monotonic() + 15
while juno.available_resources().get("CPU", 0) < 2 and time.monotonic() < deadline:
    time.sleep(0.1)
print("cpus back:", juno.available_resources().get("CPU", 0))
print("still works:", rd.range(10).map_batches(lambda b: b).count())
""").stdout
    assert "cpus back: 2.0" in out and "still works: 10" in out


WIDGET_MIME = "application/vnd.jupyter.widget-view+json"


def test_a_dataset_shows_one_progress_widget_that_ends_complete(own_kernel):
    own_kernel.run_ok(SETUP)
    cell = own_kernel.run_ok("print(rd.range(2000, override_num_blocks=8).map_batches(lambda b: b, batch_size=100)"
                             ".count())\n"
                             "print(rd.range(100).take(2))")
    widgets = [m["content"]["data"] for m in cell.messages if m["header"]["msg_type"] == "display_data"
               and WIDGET_MIME in m["content"]["data"]]
    assert len(widgets) == 2, widgets  # one per execution, each updated in place
    finals = [m["content"]["data"] for m in cell.messages if m["header"]["msg_type"] == "update_display_data"]
    first = [f for f in finals if f[WIDGET_MIME]["model_id"] == widgets[0][WIDGET_MIME]["model_id"]]
    assert first and 'data-state="finished"' in first[-1]["text/html"]
    assert "2,000/2,000 rows" in first[-1]["text/plain"]
    assert "ReadRange-&gt;MapBatches(&lt;lambda&gt;)" in first[-1]["text/html"]  # the operator's table row
    assert "2000\n[{'id': 0}, {'id': 1}]" in cell.stdout

"""juno.widgets in a real kernel (over the Jupyter protocol) and in a plain process (the text fallback).

The kernel's iopub messages are collected by tests/kernel_harness.py; widget updates sent from the
progress ticker thread may carry any cell as parent, so they are matched by comm id across all cells.
"""
from __future__ import annotations

import io
import time

import pytest

from kernel_harness import KernelHarness

WIDGET_MIME = "application/vnd.jupyter.widget-view+json"

SETUP = '''
import time, juno
from juno.widgets import progress
ctx = juno.init(num_cpus=2)

@juno.remote
def slow(i):
    time.sleep(0.15)
    if i == 3:
        raise ValueError("boom")
    return i
'''


@pytest.fixture
def kernel():
    k = KernelHarness()
    try:
        yield k
    finally:
        k.close()


def _all_messages(k: KernelHarness) -> list[dict]:
    with k._lock:
        out = [m for cell in k.cells.values() for m in list(cell.messages)] + list(k.unparented)
    return sorted(out, key=lambda m: m["header"]["date"])


def _comm_updates(k: KernelHarness, comm_id: str) -> list[dict]:
    return [m["content"]["data"]["state"] for m in _all_messages(k)
            if m["header"]["msg_type"] == "comm_msg" and m["content"]["comm_id"] == comm_id
            and m["content"]["data"].get("method") == "update"]


def test_progress_widget_updates_live_then_stops_and_leaves_static_html(kernel):
    kernel.run_ok(SETUP)
    cell = kernel.run_ok("refs = [slow.remote(i) for i in range(8)]\n"
                         "p = progress(refs, description='squares')")
    bundle = cell.displays[0]
    model_id = bundle[WIDGET_MIME]["model_id"]
    assert "squares" in bundle["text/html"] and "squares: [" in bundle["text/plain"]
    opened = [m for m in cell.messages if m["header"]["msg_type"] == "comm_open"]
    assert any(m["content"]["comm_id"] == model_id for m in opened)

    kernel.wait_for(lambda: kernel.eval("p.complete") == "True", timeout=30, what="all 8 tasks finished")
    kernel.wait_for(lambda: any("8/8 finished" in s.get("value", "") for s in _comm_updates(kernel, model_id)),
                    timeout=10, what="the final widget update")
    updates = _comm_updates(kernel, model_id)
    assert 1 <= len(updates) <= 20  # throttled: a few a second over ~1 s of work
    final = updates[-1]["value"]
    assert "7 done" in final and "1 failed" in final and "0 running" in final
    # the saved notebook keeps the final static HTML: the display was rewritten with it
    finals = [m["content"] for m in _all_messages(kernel) if m["header"]["msg_type"] == "update_display_data"]
    assert any(c["data"][WIDGET_MIME]["model_id"] == model_id and "8/8 finished" in c["data"]["text/html"]
               for c in finals)
    # and then it stops: no more comm traffic for this widget
    time.sleep(1.0)
    assert len(_comm_updates(kernel, model_id)) == len(updates)
    assert kernel.eval("p._ticker.running") == "False"


RUN_CELL = """
import time
from juno.util import progress as juno_progress
with juno_progress.open("data", "Dataset.map_batches(f)", total=50_000, unit="rows") as run:  # done may pass it
    t_end = time.monotonic() + 1.2
    while time.monotonic() < t_end:
        run.advance(1)
        run.set_table(["operator", "rows"], [["MapBatches(f)", 1]])
run.snapshot().state
"""


def test_a_library_run_shows_one_widget_updated_in_place_that_ends_complete(kernel):
    cell = kernel.run_ok(RUN_CELL)  # no cluster needed: the display is the kernel's own
    assert cell.result_text == "'finished'"
    widgets = [m["content"]["data"] for m in cell.messages if m["header"]["msg_type"] == "display_data"]
    assert len(widgets) == 1 and WIDGET_MIME in widgets[0], widgets  # one display per run, updated in place
    model_id = widgets[0][WIDGET_MIME]["model_id"]
    assert "[data] Dataset.map_batches(f)" in widgets[0]["text/plain"]
    kernel.wait_for(lambda: any('data-state="finished"' in s.get("value", "")
                                for s in _comm_updates(kernel, model_id)), timeout=10, what="the final update")
    updates = _comm_updates(kernel, model_id)
    assert 1 <= len(updates) <= 12  # at most ~4 a second over 1.2 s, plus the final one
    final = updates[-1]["value"]
    assert "/50,000 rows (100.0%)" in final and "MapBatches(f)" in final
    # the output a saved notebook keeps is rewritten with the final static HTML
    finals = [m["content"]["data"] for m in _all_messages(kernel)
              if m["header"]["msg_type"] == "update_display_data"]
    assert finals and finals[-1][WIDGET_MIME]["model_id"] == model_id
    assert 'data-state="finished"' in finals[-1]["text/html"] and "#5cb85c" in finals[-1]["text/html"]
    assert "finished" in finals[-1]["text/plain"]


def test_a_failed_library_run_shows_red_with_its_error(kernel):
    cell = kernel.execute("from juno.util import progress as juno_progress\n"
                          "with juno_progress.open('train', 'fit') as run:\n"
                          "    run.advance(3)\n"
                          "    raise ValueError('bad batch')\n")
    assert cell.error is not None and "ValueError" in cell.error_text
    finals = [m["content"]["data"] for m in _all_messages(kernel)
              if m["header"]["msg_type"] == "update_display_data"]
    html = finals[-1]["text/html"]
    assert 'data-state="failed"' in html and "ValueError: bad batch" in html and "#d9534f" in html


def test_progress_over_a_wait_loop_and_a_generator(kernel):
    kernel.run_ok(SETUP)
    cell = kernel.run_ok('''
refs = [slow.remote(i) for i in (0, 1, 2)]
p = progress(refs, description="loop")
pending = refs
while pending:
    _, pending = juno.wait(pending, timeout=10)
grown = progress(description="grown")
grown.add(slow.remote(5))
grown.add([slow.remote(6)], last=True)
ok = p.wait(5) and grown.wait(5)
seen = [juno.get(r) for r in progress((slow.remote(i) for i in (4, 5)), description="gen")]
print(ok, p.state.done, grown.state.done, seen, [juno.get(r) for r in p])
''')
    assert cell.stdout.strip() == "True 3 2 [4, 5] [0, 1, 2]"
    assert len([d for d in cell.displays if WIDGET_MIME in d]) >= 3


def test_rich_reprs_of_the_context_refs_actors_and_errors(kernel):
    kernel.run_ok(SETUP + '''
@juno.remote
class Counter:
    def incr(self):
        return 1
''')
    result = kernel.run_ok("ctx").results[0]
    assert result["text/plain"].startswith("JunoContext(")
    assert "Juno session" in result["text/html"] and "1 node alive" in result["text/html"]
    assert "<details><summary>session</summary>" in result["text/html"]
    assert WIDGET_MIME in result

    ref_html = kernel.run_ok("r = slow.remote(1); juno.get(r); r").results[0]["text/html"]
    assert "ObjectRef" in ref_html and "ready" in ref_html
    actor_html = kernel.run_ok("c = Counter.remote(); juno.get(c.incr.remote()); c").results[0]["text/html"]
    assert "Counter" in actor_html and "ALIVE" in actor_html
    err_html = kernel.run_ok('''
try:
    juno.get(slow.remote(3))
except Exception as e:
    err = e
err''').results[0]["text/html"]
    assert err_html.index("ValueError: boom") < err_html.index("<details>")
    assert "remote traceback" in err_html

    status = kernel.run_ok("from juno.widgets import cluster_widget\ncluster_widget(interval=0.2)").results[0]
    model_id = status[WIDGET_MIME]["model_id"]
    assert "Juno cluster" in status["text/plain"]
    kernel.run_ok("a = [Counter.remote() for _ in range(2)]; juno.get([x.incr.remote() for x in a])")
    kernel.wait_for(lambda: any("3 actors" in s.get("value", "") for s in _comm_updates(kernel, model_id)),
                    timeout=15, what="the cluster widget to show the new actors")


def test_progress_prints_text_lines_without_a_kernel(shutdown_only):
    import juno
    from juno.widgets import Progress

    juno.init(num_cpus=2)

    @juno.remote
    def work(i):
        time.sleep(0.05)
        if i == 0:
            raise ValueError("first fails")
        return i

    out = io.StringIO()
    refs = [work.remote(i) for i in range(6)]
    with Progress(refs, description="terminal", stream=out) as p:
        with pytest.raises(ValueError):
            juno.get(refs)
    assert p.complete
    lines = out.getvalue().splitlines()
    assert 1 <= len(lines) <= 4  # at most one line a second, plus the final one
    assert lines[-1].startswith("terminal: [") and "6/6 finished" in lines[-1] and "1 failed" in lines[-1]
    with pytest.raises(TypeError):
        Progress([1, 2])
    with pytest.raises(ValueError):
        Progress(refs, total=-1)

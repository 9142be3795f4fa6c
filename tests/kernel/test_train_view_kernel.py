"""A Train run's view in a real notebook kernel: one widget, updated live with a chart per metric
and the worker table, whose display is rewritten with the final static HTML (what a saved
notebook keeps: the charts as inline SVG, the workers, the final metrics, no scripts)."""
from __future__ import annotations

import re


RUN = '''
import time
from juno.train.progress import TrainProgress

view = TrainProgress("TorchTrainer(train_func)", "kernel-run", 2)
view.start(1, [{"rank": r, "local_rank": r, "node_rank": 0, "node_id": "f00d" * 7, "pid": 4000 + r,
                "device": "cpu"} for r in range(2)])
for it in range(1, 13):
    view.report(it, {"loss": 1.0 / it, "accuracy": it / 12, "epoch": it - 1},
                checkpoint_path=f"/runs/kernel-run/checkpoint_{it:06d}" if it % 4 == 0 else None)
    time.sleep(0.1)
view.finish({"loss": 1.0 / 12, "accuracy": 1.0, "epoch": 11})
print("done:", view.snapshot().state)
'''


def test_a_train_run_shows_one_live_widget_with_charts_and_workers_then_static_html(own_kernel):
    cell = own_kernel.run_ok(RUN)
    assert "done: finished" in cell.stdout
    live, final = cell.live_widget()
    assert 2 <= len(live) <= 20, len(live)  # updated in place, a few times a second
    assert any('data-metric="loss"' in v and 'data-state="running"' in v for v in live)
    html, text = final["text/html"], final["text/plain"]
    assert 'data-kind="train"' in html and 'data-state="finished"' in html
    assert re.findall(r'data-metric="([^"]+)"', html) == ["loss", "accuracy"]  # epoch is a field, not a chart
    assert ">iteration</text>" in html and ">12</text>" in html  # the x axis runs to the last iteration
    assert "<table" in html and "<th" in html and ">pid</th>" in html and ">4001</td>" in html
    assert "loss=0.08333" in html and "checkpoint_000012" in html
    assert "<script" not in html and "class=\"juno-run\"" in html
    assert text.startswith("[train] TorchTrainer(train_func) · kernel-run: iter 12, loss=0.08333")
    assert "rank  local  node" in text

"""A Tune experiment's view in a real notebook kernel: one widget, updated live with the trial table
and the best trials' curves, whose display is rewritten with the final static HTML (what a saved
notebook keeps: the sorted table with coloured statuses, the chart as inline SVG, the summary line)."""
from __future__ import annotations

import re

WIDGET_MIME = "application/vnd.jupyter.widget-view+json"

RUN = '''
import time
from types import SimpleNamespace
from juno.tune.progress import TuneProgress

view = TuneProgress("Tuner(train_fn)", "kernel-exp", metric="loss", mode="min", num_samples=4)
trials = [SimpleNamespace(trial_id=f"k_{i:05d}", config={"lr": 10.0 ** -i}, evaluated_params={"lr": 10.0 ** -i},
                          status="PENDING", last_result={}, metric_analysis={}, error=None, num_failures=0)
          for i in range(4)]
for t in trials:
    view.trial_added(t)
for it in range(1, 9):
    for i, t in enumerate(trials):
        t.status = "RUNNING"
        t.last_result = {"loss": (i + 1) / it, "training_iteration": it, "time_total_s": it * 0.1}
        view.trial_updated(t)
    time.sleep(0.1)
trials[3].status, trials[3].error = "ERROR", "ValueError: lr too small"
view.trial_updated(trials[3])
for t in trials[:3]:
    t.status = "TERMINATED"
    view.trial_updated(t)
view.finish({"trials": 4, "terminated": 3, "errors": 1})
print("done:", view.snapshot().state)
'''


def test_a_tune_experiment_shows_one_live_widget_with_table_and_chart_then_static_html(own_kernel):
    cell = own_kernel.run_ok(RUN)
    assert "done: finished" in cell.stdout
    widgets = [m["content"]["data"] for m in cell.messages
               if m["header"]["msg_type"] == "display_data" and WIDGET_MIME in m["content"]["data"]]
    assert len(widgets) == 1, widgets
    model_id = widgets[0][WIDGET_MIME]["model_id"]
    live = [m["content"]["data"]["state"]["value"] for m in cell.messages
            if m["header"]["msg_type"] == "comm_msg" and m["content"]["comm_id"] == model_id
            and "value" in m["content"]["data"].get("state", {})]
    assert 2 <= len(live) <= 20, len(live)  # updated in place, a few times a second
    assert any('data-metric="loss"' in v and 'data-status="RUNNING"' in v for v in live)
    finals = [m["content"]["data"] for m in cell.messages if m["header"]["msg_type"] == "update_display_data"
              and m["content"]["data"][WIDGET_MIME]["model_id"] == model_id]
    assert finals, "the display was never rewritten with the final state"
    html, text = finals[-1]["text/html"], finals[-1]["text/plain"]
    assert 'data-kind="tune"' in html and 'data-state="finished"' in html and "<script" not in html
    names = re.findall(r">(k_\d{5})</td>", html)
    assert names == ["k_00000", "k_00001", "k_00002", "k_00003"]  # sorted by the latest loss, best first
    assert html.count('data-status="TERMINATED"') == 3 and 'data-status="ERROR"' in html
    assert html.count("<polyline") == 4 and ">training_iteration</text>" in html
    assert "ValueError: lr too small" in html and "3 terminated, 1 error" in html
    assert "4 trials (3 terminated, 1 error) in" in html and "best k_00000: loss=0.125 (lr=1)" in html
    assert text.startswith("[tune] Tuner(train_fn) · kernel-exp: 3 terminated, 1 error, 4/4 trials, best loss=0.125")
    assert "trial name  status" in text

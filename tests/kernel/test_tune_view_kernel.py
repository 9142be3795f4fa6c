"""A Tune experiment's view in a real notebook kernel: one widget, updated live with the trial table
and the best trials' curves, whose display is rewritten with the final static HTML (what a saved
notebook keeps: the sorted table with coloured statuses, the chart as inline SVG, the summary line)."""
from __future__ import annotations

import re


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
    live, final = cell.live_widget()
    assert 2 <= len(live) <= 20, len(live)  # updated in place, a few times a second
    assert any('data-metric="loss"' in v and 'data-status="RUNNING"' in v for v in live)
    html, text = final["text/html"], final["text/plain"]
    assert 'data-kind="tune"' in html and 'data-state="finished"' in html and "<script" not in html
    names = re.findall(r">(k_\d{5})</td>", html)
    assert names == ["k_00000", "k_00001", "k_00002", "k_00003"]  # sorted by the latest loss, best first
    assert html.count('data-status="TERMINATED"') == 3 and 'data-status="ERROR"' in html
    assert html.count("<polyline") == 4 and ">training_iteration</text>" in html
    assert "ValueError: lr too small" in html and "3 terminated, 1 error" in html
    assert "4 trials (3 terminated, 1 error) in" in html and "best k_00000: loss=0.125 (lr=1)" in html
    assert text.startswith("[tune] Tuner(train_fn) · kernel-exp: 3 terminated, 1 error, 4/4 trials, best loss=0.125")
    assert "trial name  status" in text

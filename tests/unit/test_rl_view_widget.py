"""How RL training looks (juno.widgets.rl_view): text and static HTML of an "rl" run, pure functions
of a snapshot built from RLlib result dicts by juno.rl.progress.IterationLog."""
import math

from juno.rl.progress import IterationLog
from juno.util import progress
from juno.widgets import rl_view, run_view


def snapshot_after(returns: list[float | None], **kw) -> progress.RunSnapshot:
    state = progress.RunState("r1", "rl", "PPO on CartPole-v1", wall_clock=lambda: 0.0)
    state.set_fields({"env": "CartPole-v1", "env runners": 2, "lr": 5e-5, "train batch": 4000})
    log = IterationLog()
    for i, mean in enumerate(returns, start=1):
        runners = {"episode_return_mean": math.nan if mean is None else mean}
        if mean is not None:
            runners.update(episode_return_min=mean / 2, episode_return_max=mean * 2, num_episodes=5)
        fields, points = log.take({"training_iteration": i, "env_runners": runners, "time_this_iter_s": 0.5,
                                   "num_env_steps_sampled_lifetime": 1000 * i,
                                   "learners": {"default_policy": {"total_loss": 1.0 / i}}})
        for name, y in points:
            state.add_point(name, i, y)
        state.set_fields(fields)
        state.update(done=i)
    kw.setdefault("elapsed_s", 6.0)
    return progress.RunSnapshot(**{**state.snapshot().__dict__, **kw})


def test_rl_runs_have_their_own_layout():
    assert run_view.layout_for("rl") is rl_view.LAYOUT


def test_the_line_is_compact_and_says_when_no_episode_ended():
    assert rl_view.iteration_line(snapshot_after([None])) == \
        "[rl] PPO on CartPole-v1: iter 1, no episode ended yet, 1,000 env steps, 2,000 steps/s, iter 0.5s"
    line = rl_view.iteration_line(snapshot_after([None, 20.0, 36.5]))
    assert line == ("[rl] PPO on CartPole-v1: iter 3, return 36.5 (min 18.25, max 73), 3,000 env steps, "
                    "2,000 steps/s, iter 0.5s")


def test_text_has_the_curves_and_the_settings():
    text = rl_view.run_text(snapshot_after([10.0, 20.0]))
    assert "return mean: " in text and "env steps/s: " in text and "learner/total_loss: " in text
    assert text.splitlines()[-1] == "settings: env=CartPole-v1, env runners=2, lr=5e-05, train batch=4000"


def test_html_has_the_return_chart_with_three_lines_and_small_charts():
    html = rl_view.run_html(snapshot_after([None, 10.0, 20.0, 30.0]))
    assert 'data-metric="episode return"' in html
    assert html.count("<polyline") >= 3 + 3  # mean/min/max, then steps/s, iteration s, the loss
    assert 'data-metric="env steps/s"' in html and 'data-metric="iteration s"' in html
    assert 'data-metric="learner/total_loss"' in html
    assert 'data-juno="settings"' in html and "env runners=2" in html
    assert 'data-juno="latest"' in html and "return mean=30" in html
    assert "<script" not in html


def test_html_before_any_episode_has_no_return_chart_and_nan_reads_na():
    html = rl_view.run_html(snapshot_after([None]))
    assert 'data-metric="episode return"' not in html
    assert "no episode ended yet" in html and "return mean=n/a" in html


def test_an_interrupted_note_and_a_failure_are_shown():
    snap = snapshot_after([10.0])
    noted = progress.RunSnapshot(**{**snap.__dict__, "fields": {**snap.fields, rl_view.NOTE: "interrupted <here>"}})
    assert 'data-juno="note"' in rl_view.run_html(noted) and "&lt;here&gt;" in rl_view.run_html(noted)
    assert rl_view.iteration_line(noted).endswith(", interrupted <here>")
    failed = snapshot_after([10.0], state=progress.FAILED, error="RuntimeError: env crashed")
    assert rl_view.summary_line(failed).startswith("[rl] PPO on CartPole-v1: failed after 1 iteration in 6.0s")
    assert rl_view.summary_line(failed).endswith("\nerror: RuntimeError: env crashed")
    assert rl_view.run_html(failed).count("<pre") == 1

"""RL training's view (juno.rl.progress): what each RLlib result dict becomes, and the view's
lifecycle (opened by the first train(), kept open by an interrupt, ended by stop() or a failure),
without a cluster or a kernel."""
import io
import math

import pytest

from juno.rl.progress import IterationLog, RLProgress, summarize_config
from juno.util import progress
from juno.widgets import rl_view


def result(i: int, mean: float | None = 20.0, *, steps_per_iter: int = 4000, seconds: float = 2.0,
           older: bool = False, evaluation: float | None = None) -> dict:
    """RLlib's result dict after iteration ``i`` (the contract's keys, or only the older ones)."""
    runners = {"episode_return_mean": mean if mean is not None else math.nan,
               "episode_return_min": (mean or 0) - 10, "episode_return_max": (mean or 0) + 30,
               "episode_len_mean": mean or 0, "num_episodes": 0 if mean is None else 12}
    learner = {"total_loss": 1.0 / i, "policy_loss": -0.01, "vf_loss": 0.5 / i, "entropy": 0.6, "curr_lr": 5e-5}
    if older:
        out = {"episode_reward_mean": runners["episode_return_mean"], "episode_reward_min": runners["episode_return_min"],
               "episode_reward_max": runners["episode_return_max"], "episode_len_mean": runners["episode_len_mean"],
               "timesteps_total": i * steps_per_iter, "info": {"learner": {"default_policy": {"learner_stats": learner}}}}
    else:
        out = {"env_runners": runners, "learners": {"default_policy": learner},
               "num_env_steps_sampled_lifetime": i * steps_per_iter, "num_env_steps_trained_lifetime": i * steps_per_iter}
    out.update(training_iteration=i, time_this_iter_s=seconds)
    if evaluation is not None:
        out["evaluation"] = {"env_runners": {"episode_return_mean": evaluation}}
    return out


def test_a_result_becomes_fields_and_chart_points():
    log = IterationLog()
    fields, points = log.take(result(1, 21.5))
    assert log.iteration == 1
    assert fields[rl_view.RETURN_MEAN] == 21.5 and fields[rl_view.RETURN_MIN] == 11.5
    assert fields[rl_view.RETURN_MAX] == 51.5 and fields[rl_view.EPISODES] == 12
    assert fields[rl_view.ENV_STEPS] == 4000 and fields[rl_view.STEPS_PER_S] == 2000.0
    assert fields[rl_view.ITERATION_S] == 2.0
    assert list(fields)[-3:] == ["learner/total_loss", "learner/policy_loss", "learner/vf_loss"]  # 3 losses, total first
    assert dict(points) == {"return mean": 21.5, "return min": 11.5, "return max": 51.5, "env steps/s": 2000.0,
                            "iteration s": 2.0, "learner/total_loss": 1.0}


def test_steps_per_second_count_the_steps_of_this_iteration_only():
    log = IterationLog()
    log.take(result(1, seconds=2.0))
    fields, _ = log.take(result(2, seconds=4.0))
    assert fields[rl_view.ENV_STEPS] == 8000 and fields[rl_view.STEPS_PER_S] == 1000.0


def test_the_older_keys_are_read_too():
    fields, points = IterationLog().take(result(3, 40.0, older=True))
    assert fields[rl_view.RETURN_MEAN] == 40.0 and fields[rl_view.ENV_STEPS] == 12000
    assert fields["learner/total_loss"] == pytest.approx(1 / 3)


def test_no_episode_yet_is_shown_as_such_and_never_charted():
    fields, points = IterationLog().take(result(1, None))
    assert fields[rl_view.RETURN_MEAN] == "n/a"
    assert "return mean" not in dict(points)


def test_evaluation_returns_join_the_chart():
    fields, points = IterationLog().take(result(1, 30.0, evaluation=55.0))
    assert fields[rl_view.EVAL_RETURN] == 55.0 and ("eval return", 55.0) in points


def test_a_result_that_is_not_a_dict_is_refused():
    with pytest.raises(TypeError, match="a result must be a dict, got list"):
        IterationLog().take([1, 2])


def test_a_config_is_summarized_to_its_key_settings():
    class Config:
        env = "CartPole-v1"
        num_env_runners = 2
        num_envs_per_env_runner = 1
        lr = 3e-4
        train_batch_size = 4000
        train_batch_size_per_learner = None
        minibatch_size = 128
        num_epochs = 10
        seed = None
        gamma = 0.99

    summary = summarize_config(Config())
    assert summary == {"env": "CartPole-v1", "env runners": 2, "envs per runner": 1, "lr": 3e-4, "gamma": 0.99,
                       "train batch": 4000, "minibatch": 128, "epochs": 10}
    assert summarize_config({"env": object, "lr": [[0, 1e-3], [1000, 1e-4]]}) == {
        "env": "object", "lr": "[[0, 0.001], [1000, 0.0001]]"}


def terminal_view(**kw) -> tuple[RLProgress, io.StringIO]:
    out = io.StringIO()
    return RLProgress("PPO", {"env": "CartPole-v1", "env runners": 2, "lr": 5e-5}, display=True, stream=out, **kw), out


def test_nothing_opens_before_the_first_train_and_stop_without_train_shows_nothing():
    view, out = terminal_view()
    assert view.snapshot() is None and view.title == "PPO on CartPole-v1"
    view.finish()
    assert view.snapshot() is None and out.getvalue() == ""


def test_a_terminal_gets_one_compact_line_per_iteration_and_a_summary():
    view, out = terminal_view()
    view.begin()
    snap = view.snapshot()
    assert snap.kind == "rl" and snap.state == progress.RUNNING and snap.fields["env runners"] == 2
    for i in (1, 2):
        view.begin()
        view.on_result(result(i, 20.0 * i))
    view.finish()
    lines = out.getvalue().splitlines()
    assert lines == [
        "[rl] PPO on CartPole-v1: iter 1, return 20 (min 10, max 50), 4,000 env steps, 2,000 steps/s, iter 2.0s",
        "[rl] PPO on CartPole-v1: iter 2, return 40 (min 30, max 70), 8,000 env steps, 2,000 steps/s, iter 2.0s",
        lines[2]]
    assert lines[2].startswith("[rl] PPO on CartPole-v1: finished after 2 iterations in ")
    assert lines[2].endswith(": return 40 (min 30, max 70), 8,000 env steps")
    assert "{" not in out.getvalue()  # never the nested result dict
    snap = view.snapshot()
    assert snap.state == progress.FINISHED and snap.done == 2
    assert [p[1] for p in snap.series["return mean"]] == [20.0, 40.0]


def test_an_interrupt_keeps_the_view_open_for_the_next_train():
    view, out = terminal_view()
    view.begin()
    view.on_result(result(1))
    view.begin()
    view.fail(KeyboardInterrupt())
    snap = view.snapshot()
    assert snap.state == progress.RUNNING
    assert snap.fields[rl_view.NOTE].startswith("interrupted during iteration 2: train() goes on")
    assert "interrupted during iteration 2" in out.getvalue().splitlines()[-1]
    view.begin()  # the next train() clears the note
    assert rl_view.NOTE not in view.snapshot().fields
    view.on_result(result(2))
    view.finish()
    assert view.snapshot().state == progress.FINISHED and view.snapshot().done == 2


def test_a_failure_ends_the_view_failed_with_its_first_lines():
    view, out = terminal_view()
    view.begin()
    view.fail(RuntimeError("env 'Boom-v0' raised in step(): ValueError: bad action"))
    snap = view.snapshot()
    assert snap.state == progress.FAILED and snap.error.startswith("RuntimeError: env 'Boom-v0' raised")
    assert "error: RuntimeError: env 'Boom-v0'" in out.getvalue()
    view.on_result(result(1))  # a late result changes nothing
    view.finish()
    assert view.snapshot().state == progress.FAILED and view.snapshot().done == 0


def test_the_view_is_off_when_display_is_off_but_the_run_is_still_kept():
    out = io.StringIO()
    view = RLProgress("DQN", display=False, stream=out)
    view.on_result(result(1))
    view.finish()
    assert out.getvalue() == "" and view.snapshot().state == progress.FINISHED
    assert view.title == "DQN"


def test_the_process_wide_switch_turns_the_terminal_lines_off():
    progress.set_display_enabled(False)
    try:
        out = io.StringIO()
        view = RLProgress("SAC", {"env": "Pendulum-v1"}, stream=out)
        view.on_result(result(1))
        view.finish()
        assert out.getvalue() == ""
    finally:
        progress.set_display_enabled(True)


def test_showing_never_breaks_training_but_bad_construction_is_refused():
    view, out = terminal_view()
    view.on_result("not a dict")  # logged, not raised
    assert view.snapshot().done == 0
    with pytest.raises(ValueError, match="algorithm's name"):
        RLProgress("")
    with pytest.raises(TypeError, match="config_summary must be a dict"):
        RLProgress("PPO", ["env"])
    with pytest.raises(TypeError, match="display must be"):
        RLProgress("PPO", display="yes")

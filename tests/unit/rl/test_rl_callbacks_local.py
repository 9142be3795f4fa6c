"""RLlib callbacks without a cluster: the metrics logger's reductions, config.callbacks() in both
forms and its errors, the order hooks run in, and the episode hooks of a driver-side env runner."""
import functools
import math

import pytest

pytest.importorskip("gymnasium")
pytest.importorskip("torch")

from juno.rl.callbacks import CallbackSet, DefaultCallbacks, RLlibCallback, make_multi_callbacks  # noqa: E402
from juno.rl.core.rl_module import RLModuleSpec  # noqa: E402
from juno.rl.env.env_creation import env_creator_for  # noqa: E402
from juno.rl.env.env_runner import EnvRunner  # noqa: E402
from juno.rl.utils.metrics_logger import MetricsLogger, merge_metrics  # noqa: E402
from rl_standin import StandInConfig, StandInModule  # noqa: E402


# ---------------------------------------------------------------------------------- MetricsLogger
def test_metrics_logger_reduces_by_window_ema_sum_min_max_and_list():
    log = MetricsLogger()
    for v in (1.0, 2.0, 3.0, 4.0):
        log.log_value("win", v, reduce="mean", window=2)
        log.log_value("ema", v)  # RLlib's default: an EMA with coefficient 0.01
        log.log_value("total", v, reduce="sum")
        log.log_value("low", v, reduce="min")
        log.log_value(("nested", "high"), v, reduce="max")
        log.log_value("all", str(v), reduce=None)
    out = log.reduce()
    assert out["win"] == 3.5 and out["total"] == 10.0 and out["low"] == 1.0 and out["nested"] == {"high": 4.0}
    expected = 1.0
    for v in (2.0, 3.0, 4.0):
        expected = 0.99 * expected + 0.01 * v
    assert math.isclose(out["ema"], expected)
    assert out["all"] == ["1.0", "2.0", "3.0", "4.0"]
    # lists empty on reduce; sums and windows keep going across iterations
    log.log_value("total", 5.0, reduce="sum")
    again = log.reduce()
    assert "all" not in again and again["total"] == 15.0 and again["win"] == 3.5
    assert log.peek("total") == 15.0 and log.peek("missing", default=-1) == -1


def test_clear_on_reduce_counts_per_iteration_and_log_dict_nests():
    log = MetricsLogger()
    log.log_value("per_iter", 2, reduce="sum", clear_on_reduce=True)
    log.log_value("per_iter", 3, reduce="sum", clear_on_reduce=True)
    log.log_dict({"a": 1.0, "b": {"c": 2.0}}, key="stats", reduce="max")
    assert log.reduce() == {"per_iter": 5.0, "stats": {"a": 1.0, "b": {"c": 2.0}}}
    assert math.isnan(log.reduce()["per_iter"])
    with log.log_time("block_s", reduce="max"):
        pass
    assert log.peek("block_s") >= 0.0


def test_records_carry_values_and_settings_to_another_logger():
    runner_a, runner_b, driver = MetricsLogger(keep_records=True), MetricsLogger(keep_records=True), MetricsLogger()
    runner_a.log_value("episodes", 1, reduce="sum")
    runner_b.log_value("episodes", 1, reduce="sum")
    runner_b.log_value("ret", 10.0, reduce="mean", window=10)
    runner_a.log_value("ret", 20.0, reduce="mean", window=10)
    for runner in (runner_a, runner_b):
        driver.log_records(runner.pop_records())
    assert runner_a.pop_records() == [] and MetricsLogger().pop_records() == []
    assert driver.reduce() == {"episodes": 2.0, "ret": 15.0}


def test_metrics_logger_bad_input_says_what_to_do():
    log = MetricsLogger()
    with pytest.raises(ValueError, match="reduce is one of"):
        log.log_value("x", 1.0, reduce="median")
    with pytest.raises(ValueError, match="window"):
        log.log_value("x", 1.0, window=0)
    with pytest.raises(ValueError, match="ema_coeff"):
        log.log_value("x", 1.0, window=5, ema_coeff=0.1)
    with pytest.raises(TypeError, match="reduce=None"):
        log.log_value("x", "text")
    with pytest.raises(TypeError, match="key"):
        log.log_value(3, 1.0)


def test_custom_metrics_never_replace_built_in_keys():
    result = {"episode_return_mean": 10.0, "nested": {"a": 1}}
    merge_metrics(result, {"episode_return_mean": -1.0, "mine": 2.0, "nested": {"a": 5, "b": 6}})
    assert result == {"episode_return_mean": 10.0, "mine": 2.0, "nested": {"a": 1, "b": 6}}


# ---------------------------------------------------------------------------------- config.callbacks
class Recorder(RLlibCallback):
    calls: list = []

    def on_train_result(self, *, result, **kwargs):
        result.setdefault("order", []).append("class")


def test_callbacks_class_and_keyword_forms_are_stored_and_run_in_order():
    config = StandInConfig().callbacks(Recorder, on_train_result=lambda result, **kw: result["order"].append("fn"))
    config.callbacks(on_episode_end=[print, print])
    assert config.callbacks_class is Recorder
    assert set(config.callbacks_functions) == {"on_train_result", "on_episode_end"}
    callbacks = CallbackSet.from_config(config)
    result = {}
    callbacks("on_train_result", algorithm=None, metrics_logger=None, result=result)
    assert result["order"] == ["class", "fn"]
    assert callbacks.has("on_episode_end") and not callbacks.has("on_episode_start", "on_sample_end")
    assert config.copy().callbacks_functions["on_episode_end"] == [print, print]
    assert StandInConfig().callbacks(None).callbacks_class is RLlibCallback
    assert DefaultCallbacks is RLlibCallback


def test_callbacks_round_trip_through_dicts_under_the_older_key_too():
    config = StandInConfig().environment("CartPole-v1").callbacks(Recorder, on_sample_end=print)
    copy = StandInConfig.from_dict(config.to_dict())
    assert copy.callbacks_class is Recorder and copy.callbacks_functions == {"on_sample_end": [print]}
    assert StandInConfig.from_dict({"callbacks": Recorder}).callbacks_class is Recorder


def test_lists_factories_and_multi_callbacks_combine_classes():
    class Other(RLlibCallback):
        def on_train_result(self, *, result, **kwargs):
            result.setdefault("order", []).append("other")

    for given in ([Recorder, Other], make_multi_callbacks([Recorder, Other])):
        result = {}
        CallbackSet(given)("on_train_result", algorithm=None, result=result)
        assert result["order"] == ["class", "other"]
    result = {}
    CallbackSet(functools.partial(Other))("on_train_result", algorithm=None, result=result)
    assert result["order"] == ["other"]


@pytest.mark.parametrize("given, match", [
    (Recorder(), "pass the class, not an instance"),
    (dict, "must subclass juno.rl.callbacks.RLlibCallback"),
    ("Recorder", "give an RLlibCallback subclass"),
    ([Recorder, 3], "give an RLlibCallback subclass"),
])
def test_a_bad_callbacks_argument_is_a_clear_error(given, match):
    with pytest.raises(TypeError, match=match):
        StandInConfig().callbacks(given)


def test_bad_keyword_callbacks_are_clear_errors():
    with pytest.raises(TypeError, match="on_episode_finish"):
        StandInConfig().callbacks(on_episode_finish=print)
    with pytest.raises(TypeError, match="give a function"):
        StandInConfig().callbacks(on_episode_end=[print, 42])
    config = StandInConfig().environment("CartPole-v1")
    config.callbacks_class = 42  # set behind the builder's back: validate() still names it
    with pytest.raises(TypeError, match="RLlibCallback subclass"):
        config.validate()
    with pytest.raises(TypeError, match="not an RLlibCallback"):
        CallbackSet(lambda: object())


# ---------------------------------------------------------------------------------- env runner hooks
class EpisodeHooks(RLlibCallback):
    def __init__(self):
        self.seen = []

    def on_environment_created(self, *, env_runner, env, env_context, **kwargs):
        self.seen.append(("created_env", env_context.vector_index))

    def on_episode_start(self, *, episode, env_index, env_runner, rl_module, **kwargs):
        assert len(episode.get_observations()) == 1 and len(episode) == 0 and rl_module is env_runner.module
        episode.custom_data["index"] = env_index

    def on_episode_step(self, *, episode, metrics_logger, **kwargs):
        metrics_logger.log_value("steps", 1, reduce="sum")
        assert episode.get_rewards(-1) == 1.0 and len(episode.get_actions()) == episode.env_steps()

    def on_episode_end(self, *, episode, env_index, metrics_logger, env, **kwargs):
        assert episode.is_done and episode.custom_data["index"] == env_index and env.spec.id == "CartPole-v1"
        assert episode.get_return() == len(episode) == len(episode.get_observations()) - 1
        metrics_logger.log_value("returns", episode.get_return(), reduce=None)
        self.seen.append(("end", episode.id_))

    def on_sample_end(self, *, samples, metrics_logger, **kwargs):
        metrics_logger.log_value("sampled", samples["rewards"].size, reduce="sum")


def _runner(callbacks=None, envs=2, fragment=60):
    config = StandInConfig().environment("CartPole-v1").env_runners(
        num_envs_per_env_runner=envs, rollout_fragment_length=fragment).debugging(seed=0)
    if callbacks is not None:
        config.callbacks(callbacks)
    creator = env_creator_for("CartPole-v1")
    probe = creator({})
    spec = RLModuleSpec(StandInModule, probe.observation_space, probe.action_space, {}, seed=0)
    return EnvRunner(config, creator, spec)


def test_episode_hooks_run_in_the_env_runner_and_their_metrics_come_back():
    runner = _runner(EpisodeHooks)
    batch, metrics = runner.sample()
    hooks = runner._callbacks.objects[0]
    assert hooks.seen[:2] == [("created_env", 0), ("created_env", 1)]
    ends = [s for s in hooks.seen if s[0] == "end"]
    assert len(ends) == len(metrics["episode_returns"]) > 0 and len({e[1] for e in ends}) == len(ends)
    logged = MetricsLogger()
    logged.log_records(metrics["custom_metrics"])
    out = logged.reduce()
    assert out["steps"] == out["sampled"] == 120
    assert out["returns"] == metrics["episode_returns"]


def test_a_runner_without_episode_hooks_keeps_no_episodes():
    runner = _runner()
    assert runner._episodes is None
    batch, metrics = runner.sample()
    assert metrics["custom_metrics"] == [] and batch["rewards"].shape == (60, 2)

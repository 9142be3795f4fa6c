"""RLlib callbacks end to end with PPO on CartPole: a callbacks class counts episodes in its env
runners (in the driver, and in an env runner actor) and adds a key to train()'s result; the keyword
form; the algorithm hooks around evaluation and checkpoints. Tiny batches: each test takes seconds."""
import sys
import warnings

import cloudpickle
import pytest

pytest.importorskip("gymnasium")
pytest.importorskip("torch")

from juno.rl.algorithms.ppo import PPO, PPOConfig  # noqa: E402
from juno.rllib.algorithms.callbacks import DefaultCallbacks  # noqa: E402

JUNO_SHARED_INIT = {"num_cpus": 2}

# Env runner actors cannot import this test module: its classes and functions travel by value.
cloudpickle.register_pickle_by_value(sys.modules[__name__])


class CountEpisodes(DefaultCallbacks):
    def on_algorithm_init(self, *, algorithm, metrics_logger, **kwargs):
        metrics_logger.log_value("algorithm_inits", 1, reduce="sum")

    def on_episode_start(self, *, episode, env_runner, **kwargs):
        episode.custom_data["runner"] = env_runner.worker_index

    def on_episode_end(self, *, episode, metrics_logger, **kwargs):
        metrics_logger.log_value("episodes_counted", 1, reduce="sum")
        metrics_logger.log_value("runner_index", episode.custom_data["runner"], reduce="max")
        metrics_logger.log_value("return_by_callback", episode.get_return(), reduce="mean", window=1000)

    def on_train_result(self, *, algorithm, result, **kwargs):
        result["callback_iteration"] = algorithm.iteration + 1


def tiny(num_env_runners=0):
    return (PPOConfig().environment("CartPole-v1").debugging(seed=0)
            .env_runners(num_env_runners=num_env_runners, num_envs_per_env_runner=2, rollout_fragment_length=64)
            .training(train_batch_size=128, minibatch_size=64, num_epochs=1)
            .rl_module(model_config={"fcnet_hiddens": [16]}))


def _check_counts(algo, runner_index):
    for iteration in (1, 2):
        result = algo.train()
        runners = result["env_runners"]
        assert result["callback_iteration"] == iteration
        assert runners["episodes_counted"] == runners["num_episodes_lifetime"] > 0
        assert runners["runner_index"] == runner_index
        assert result["algorithm_inits"] == 1


def test_callbacks_class_in_the_driver_runner(tmp_path):
    algo = tiny().callbacks(CountEpisodes).build_algo()
    try:
        _check_counts(algo, runner_index=0)
        path = algo.save(str(tmp_path / "ckpt")).path
    finally:
        algo.stop()
    loaded = []
    config = tiny().callbacks(CountEpisodes, on_checkpoint_loaded=lambda algorithm, **kw: loaded.append(algorithm))
    restored = config.build_algo()
    try:
        restored.restore(path)
        assert loaded == [restored]
    finally:
        restored.stop()


@pytest.mark.timeout(120)
def test_callbacks_class_in_an_env_runner_actor(cluster):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # a busy 2-CPU cluster may scale the runners down
        algo = tiny(num_env_runners=1).callbacks(CountEpisodes).build_algo()
    try:
        if algo.env_runner_group.num_env_runners == 0:
            pytest.skip("the cluster had no CPU left for an env runner actor")
        _check_counts(algo, runner_index=1)
    finally:
        algo.stop()


def on_episode_end(*, episode, metrics_logger, **kwargs):
    metrics_logger.log_value("lengths", len(episode), reduce=None)


def test_keyword_form_and_evaluation_hooks():
    seen = []
    config = tiny().callbacks(
        on_episode_end=on_episode_end,
        on_train_result=[lambda result, **kw: seen.append("train"), lambda result, **kw: seen.append("train2")],
        on_evaluate_start=lambda algorithm, metrics_logger, **kw: seen.append("eval_start"),
        on_evaluate_end=lambda evaluation_metrics, **kw: seen.append(evaluation_metrics["env_runners"]["lengths"]))
    config.evaluation(evaluation_interval=1, evaluation_duration=2)
    algo = PPO(config=config)
    try:
        result = algo.train()
        assert len(result["env_runners"]["lengths"]) >= result["env_runners"]["num_episodes"]
        assert sum(result["env_runners"]["lengths"]) <= result["num_env_steps_sampled_lifetime"]
        eval_lengths = result["evaluation"]["env_runners"]["lengths"]
        assert len(eval_lengths) >= 2
        assert seen == ["eval_start", eval_lengths, "train", "train2"]
    finally:
        algo.stop()

"""The RL core on a real cluster: env runner actors in parallel, one put per weight sync, a runner
that crashes is replaced, resource checks, a learner actor, and Tune running an algorithm."""
import warnings

import numpy as np
import pytest

pytest.importorskip("gymnasium")
pytest.importorskip("torch")

import gymnasium as gym  # noqa: E402

from juno.tune.registry import register_env  # noqa: E402
from rl_standin import CrashOnceEnv, StandIn, StandInConfig  # noqa: E402

JUNO_SHARED_INIT = {"num_cpus": 4}


def _config(**runners):
    return StandInConfig().environment("CartPole-v1").training(train_batch_size=64).debugging(seed=0) \
        .env_runners(**{"num_env_runners": 2, "num_envs_per_env_runner": 2, **runners})


def test_runners_sample_in_parallel_and_weights_go_out_in_one_put(cluster, monkeypatch):
    algo = _config().build_algo()
    try:
        batches, metrics = algo.env_runner_group.sample()
        assert len(batches) == 2 and all(b["obs"].shape == (16, 2, 4) for b in batches)
        assert not np.array_equal(batches[0]["obs"], batches[1]["obs"])  # seeded per runner
        result = algo.train()
        assert result["num_env_steps_sampled_lifetime"] == 128 and result["env_runners"]["num_episodes"] > 0
        puts = []
        real_put = cluster.put
        monkeypatch.setattr(cluster, "put", lambda value, **kw: puts.append(1) or real_put(value, **kw))
        weights = {k: v + 1.0 for k, v in algo.learner_group.get_weights().items()}
        algo.env_runner_group.sync_weights(weights, 1000)
        assert len(puts) == 1
        for index in (1, 2):
            got = algo.env_runner_group.get_weights(index)
            assert all(np.array_equal(got[k], weights[k]) for k in weights)
    finally:
        algo.stop()


def test_a_crashing_runner_is_replaced_and_the_iteration_goes_on(cluster, tmp_path):
    register_env("crash_once", lambda cfg: CrashOnceEnv(cfg))
    config = _config().environment("crash_once", env_config={"marker": str(tmp_path / "crashed"), "crash_at": 5})
    recreated = []
    config.callbacks(on_env_runners_recreated=lambda env_runner_indices, is_evaluation, **kw:
                     recreated.append((env_runner_indices, is_evaluation)))
    algo = config.build_algo()
    try:
        with pytest.warns(UserWarning, match="starting a new one"):
            result = algo.train()
        assert (tmp_path / "crashed").exists() and algo.env_runner_group.num_restarts == 1
        assert len(recreated) == 1 and recreated[0][0] in ([1], [2]) and recreated[0][1] is False
        assert result["num_env_steps_sampled_lifetime"] == 32  # this iteration: the other runner's batch
        result = algo.train()
        assert result["num_env_steps_sampled_lifetime"] == 96 and algo.env_runner_group.num_env_runners == 2
    finally:
        algo.stop()


def test_more_runners_than_cpus_scale_down_with_a_warning(cluster):
    """Two CPUs a runner: the scaled-down group is half the free CPUs (fewer actors to start)."""
    free = int(cluster.available_resources().get("CPU", 0))
    with pytest.warns(UserWarning, match=rf"num_env_runners=9 asks for 18 CPUs.*{free} CPUs left.*using {free // 2} env"):
        algo = _config(num_env_runners=9, num_cpus_per_env_runner=2).build_algo()
    try:
        assert algo.env_runner_group.num_env_runners == free // 2
        algo.train()
    finally:
        algo.stop()


def test_gpus_that_do_not_exist_are_refused_with_the_numbers(cluster):
    with pytest.raises(ValueError, match=r"asks for 1 GPUs.*cluster has 0"):
        _config().learners(num_learners=1, num_gpus_per_learner=1).build_algo()
    with pytest.raises(ValueError, match=r"asks for 2 GPUs.*cluster has 0"):
        _config(num_env_runners=0).resources(num_gpus=2).build_algo()


def test_learner_actor_updates_and_checkpoints(cluster, tmp_path):
    algo = _config(num_env_runners=1).learners(num_learners=1).build_algo()
    try:
        before = algo.get_weights()["default_policy"]
        algo.train()
        after = algo.get_weights()["default_policy"]
        assert any(not np.array_equal(before[k], after[k]) for k in before)
        runner = algo.env_runner_group.get_weights()
        assert all(np.array_equal(runner[k], after[k]) for k in after)
        obs = np.random.default_rng(0).normal(size=(32, 4)).astype(np.float32)
        restored = StandIn.from_checkpoint(algo.save(str(tmp_path / "ckpt")))
        assert np.array_equal(restored.compute_actions(obs), algo.compute_actions(obs))
        restored.stop()
    finally:
        algo.stop()


def test_tuner_runs_an_algorithm_by_name_with_an_algorithm_config(cluster, tmp_path):
    from juno import tune
    from juno.air.config import RunConfig

    register_env("tuned_cartpole", lambda cfg: gym.make("CartPole-v1"))
    tune.register_trainable("StandInAlgo", StandIn)
    config = StandInConfig().environment("tuned_cartpole").training(lr=tune.grid_search([0.01, 0.001]),
                                                                     train_batch_size=100)
    results = tune.Tuner("StandInAlgo", param_space=config,
                         tune_config=tune.TuneConfig(metric="env_runners/episode_return_mean", mode="max"),
                         run_config=RunConfig(stop={"training_iteration": 2}, storage_path=str(tmp_path),
                                              verbose=0)).fit()
    assert not results.errors and len(results) == 2
    assert sorted(r.config["lr"] for r in results) == [0.001, 0.01]
    assert all(r.metrics["training_iteration"] == 2 for r in results)
    assert results.get_best_result().metrics["env_runners"]["episode_return_mean"] > 0


def test_tuner_with_the_class_and_a_dict_stops_on_the_flattened_return(cluster, tmp_path):
    from juno import tune
    from juno.air.config import RunConfig

    config = StandInConfig().environment("CartPole-v1").training(train_batch_size=100)
    results = tune.Tuner(StandIn, param_space=config.to_dict(),
                         run_config=RunConfig(stop={"env_runners/episode_return_mean": 1, "training_iteration": 5},
                                              storage_path=str(tmp_path), verbose=0)).fit()
    assert not results.errors
    assert results[0].metrics["training_iteration"] == 1  # the first iteration's return (>= 1) stopped it


def test_algorithm_warns_nothing_unexpected(cluster):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        algo = _config(num_env_runners=1).build_algo()
        algo.train()
        algo.stop()

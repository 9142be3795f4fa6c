"""The core with everything in the driver (num_env_runners=0, no cluster): the sample format, the
result dict, errors naming env and space, checkpoints, the resource plan and the juno.rllib alias."""
import importlib
import math
import sys
import warnings

import numpy as np
import pytest

pytest.importorskip("gymnasium")
pytest.importorskip("torch")

import gymnasium as gym  # noqa: E402

from juno.rl.core.rl_module import RLModuleSpec  # noqa: E402
from juno.rl.env.env_creation import EnvError, env_creator_for  # noqa: E402
from juno.rl.env.env_runner import EnvRunner  # noqa: E402
from juno.rl.utils.metrics import EpisodeStats, build_result  # noqa: E402
from juno.rl.utils.resources import plan_env_runners  # noqa: E402
from juno.tune.registry import register_env  # noqa: E402
from rl_standin import BoxOnly, RaisingEnv, StandIn, StandInConfig, StandInModule  # noqa: E402


def _runner(env="CartPole-v1", envs=3, fragment=5, batch_mode="truncate_episodes", **env_config):
    config = StandInConfig().environment(env, env_config=env_config).env_runners(
        num_envs_per_env_runner=envs, rollout_fragment_length=fragment, batch_mode=batch_mode).debugging(seed=0)
    creator = env_creator_for(env)
    probe = creator(config.env_config)
    spec = RLModuleSpec(StandInModule, probe.observation_space, probe.action_space, {}, seed=0)
    return EnvRunner(config, creator, spec)


def test_sample_is_time_major_with_true_next_obs():
    runner = _runner(envs=3, fragment=40)
    batch, metrics = runner.sample()
    assert batch["obs"].shape == (40, 3, 4) and batch["obs"].dtype == np.float32
    assert batch["actions"].shape == (40, 3) and batch["actions"].dtype == np.int64
    for key in ("rewards", "terminateds", "truncateds", "action_logp"):
        assert batch[key].shape == (40, 3), key
    assert batch["terminateds"].dtype == bool and batch["rewards"].dtype == np.float32
    assert metrics["num_env_steps"] == 120 and metrics["sample_time_s"] > 0
    # within an episode, next_obs is the next step's obs; at an episode's end it is the final obs, not the reset
    done = batch["terminateds"] | batch["truncateds"]
    t, i = np.argwhere(done[:-1])[0]
    assert not np.allclose(batch["next_obs"][t, i], batch["obs"][t + 1, i])
    t, i = np.argwhere(~done[:-1])[0]
    assert np.allclose(batch["next_obs"][t, i], batch["obs"][t + 1, i])
    assert len(metrics["episode_returns"]) == int(done.sum()) == len(metrics["episode_lengths"])


def test_episodes_span_fragments_and_box_actions_are_clipped():
    runner = _runner(env="Pendulum-v1", envs=2, fragment=150)
    batch, metrics = runner.sample()
    assert metrics["episode_returns"] == []  # Pendulum truncates at 200 steps
    batch, metrics = runner.sample()
    assert metrics["episode_lengths"] == [200, 200]
    assert batch["actions"].shape == (150, 2, 1) and batch["actions"].dtype == np.float32
    assert np.all(np.abs(batch["actions"]) <= 2.0) and "actions_raw" in batch
    assert np.any(np.abs(batch["actions_raw"]) > 2.0) or np.allclose(batch["actions"], batch["actions_raw"])


def test_num_env_steps_spreads_over_the_envs():
    batch, metrics = _runner(envs=4, fragment=5).sample(num_env_steps=10)
    assert batch["obs"].shape[:2] == (3, 4) and metrics["num_env_steps"] == 12


def test_train_result_has_current_and_older_keys():
    algo = StandInConfig().environment("CartPole-v1").debugging(seed=0).build_algo()
    try:
        result = algo.train()
        result = algo.train()
    finally:
        algo.stop()
    runners = result["env_runners"]
    for key in ("episode_return_mean", "episode_return_min", "episode_return_max", "episode_len_mean",
                "num_episodes"):
        assert key in runners
    assert result["episode_reward_mean"] == runners["episode_return_mean"] > 0
    assert result["episode_len_mean"] == runners["episode_len_mean"]
    assert result["num_env_steps_sampled_lifetime"] == result["timesteps_total"] == 400
    assert result["num_env_steps_trained_lifetime"] == 400
    assert result["training_iteration"] == 2 and result["time_this_iter_s"] > 0
    assert "total_loss" in result["learners"]["default_policy"]
    assert result["info"]["learner"]["default_policy"]["learner_stats"] == result["learners"]["default_policy"]


def test_episode_stats_smooth_over_the_window():
    stats = EpisodeStats(window=3)
    stats.add([{"episode_returns": [1.0, 2.0], "episode_lengths": [1, 2]},
               {"episode_returns": [3.0, 10.0], "episode_lengths": [3, 10]}])
    summary = stats.summary(4)
    assert summary["episode_return_mean"] == 5.0 and summary["episode_return_min"] == 2.0
    assert math.isnan(EpisodeStats().summary(0)["episode_return_mean"])
    result = build_result(env_runner_stats=summary, learner_metrics={"loss": np.float32(1.5)}, iteration=1,
                          time_this_iter_s=2.0, time_total_s=2.0, steps_sampled_this_iter=10,
                          steps_sampled_lifetime=10, steps_trained_lifetime=10, sample_time_s=1.0)
    assert result["num_env_steps_sampled_per_second"] == 5.0
    assert type(result["learners"]["default_policy"]["loss"]) is float


def test_unknown_env_names_it_and_suggests_register_env():
    with pytest.raises(ValueError, match=r"Unknown env 'NoSuchEnv-v9'.*register_env"):
        StandInConfig().environment("NoSuchEnv-v9").build_algo()


@pytest.mark.parametrize("where", ["reset", "step"])
def test_env_that_raises_names_the_env_and_the_exception(where):
    register_env("raising_env", lambda cfg: RaisingEnv(cfg))
    with pytest.raises(EnvError, match=rf"Env 'raising_env' raised in {where}.*ZeroDivisionError: {where} went"):
        algo = StandInConfig().environment("raising_env", env_config={"where": where}).build_algo()
        algo.train()


def test_unsupported_spaces_name_algorithm_env_and_space():
    with pytest.raises(ValueError, match=r"BoxOnly on env 'CartPole-v1'.*Discrete\(2\).*Box"):
        BoxOnly.get_default_config().environment("CartPole-v1").build_algo()
    register_env("dict_obs", lambda cfg: gym.wrappers.TimeLimit(_DictObsEnv(), 10))
    with pytest.raises(ValueError, match=r"StandIn on env 'dict_obs'.*observation space Dict"):
        StandInConfig().environment("dict_obs").build_algo()


class _DictObsEnv(gym.Env):
    observation_space = gym.spaces.Dict({"x": gym.spaces.Discrete(3)})
    action_space = gym.spaces.Discrete(2)


def test_env_class_and_creator_function_with_env_config():
    seen = []

    def creator(cfg):
        seen.append((dict(cfg), cfg.worker_index, cfg.vector_index))
        return gym.make("CartPole-v1")
    algo = StandInConfig().environment(creator, env_config={"k": 1}).env_runners(num_envs_per_env_runner=2) \
        .build_algo()
    algo.stop()
    assert ({"k": 1}, 0, 1) in seen


def test_save_restore_and_from_checkpoint_give_the_same_greedy_actions(tmp_path):
    register_env("cartpole_by_name", lambda cfg: gym.make("CartPole-v1"))
    algo = StandInConfig().environment("cartpole_by_name").training(lr=0.05).debugging(seed=1).build_algo()
    obs = np.random.default_rng(0).normal(size=(64, 4)).astype(np.float32)
    try:
        algo.train()
        checkpoint = algo.save(str(tmp_path / "ckpt"))
        assert checkpoint.checkpoint.path == str(tmp_path / "ckpt")  # RLlib's TrainingResult form
        before = algo.compute_actions(obs)
        restored = StandIn.from_checkpoint(checkpoint)
        assert restored.iteration == 1 and restored.global_env_steps == algo.global_env_steps
        assert np.array_equal(restored.compute_actions(obs), before)
        assert restored.compute_single_action(obs[0]) == int(before[0])
        algo.train()
        algo.train()
        algo.restore(checkpoint)
        assert np.array_equal(algo.compute_actions(obs), before) and algo.iteration == 1
        assert restored.train()["training_iteration"] == 2
        restored.stop()
    finally:
        algo.stop()


def test_policy_and_weights_older_forms():
    algo = StandInConfig().environment("CartPole-v1").debugging(seed=2).build_algo()
    try:
        policy = algo.get_policy()
        action, state, extra = policy.compute_single_action(np.zeros(4, np.float32))
        assert action in (0, 1) and state == [] and extra == {}
        weights = algo.get_weights()["default_policy"]
        zeroed = {k: np.zeros_like(v) for k, v in weights.items()}
        policy.set_weights(zeroed)
        assert all(not v.any() for v in algo.get_policy().get_weights().values())
        assert all(not v.any() for v in algo.env_runner_group.get_weights().values())  # runners got them too
        assert all(not p.detach().any() for p in algo.get_module().parameters())
    finally:
        algo.stop()


def test_evaluate_runs_greedy_episodes_in_the_driver():
    algo = StandInConfig().environment("CartPole-v1").evaluation(evaluation_interval=1, evaluation_duration=4) \
        .build_algo()
    try:
        result = algo.train()
    finally:
        algo.stop()
    evaluation = result["evaluation"]["env_runners"]
    assert evaluation["num_episodes"] == 4 and evaluation["episode_return_mean"] > 0


class _Config:
    def __init__(self, **fields):
        defaults = dict(num_env_runners=4, num_cpus_per_env_runner=1, num_gpus_per_env_runner=0, learner_gpus=0,
                        num_learners=0, num_cpus_per_learner=1)
        self.__dict__.update({**defaults, **fields})


def test_resource_plan_scales_runners_down_on_one_node_with_both_numbers():
    runners, warning = plan_env_runners(_Config(), {"CPU": 2}, {"CPU": 2}, num_nodes=1)
    assert runners == 2 and "num_env_runners=4" in warning and "2 CPUs left" in warning
    runners, warning = plan_env_runners(_Config(num_learners=1), {"CPU": 1}, {"CPU": 1}, num_nodes=1)
    assert runners == 0 and "sampling in the driver" in warning
    assert plan_env_runners(_Config(), {"CPU": 8}, {"CPU": 8}, num_nodes=1) == (4, None)


def test_resource_plan_refuses_gpus_that_do_not_exist():
    with pytest.raises(ValueError, match=r"asks for 1 GPUs.*cluster has 0"):
        plan_env_runners(_Config(learner_gpus=1), {"CPU": 8}, {"CPU": 8}, num_nodes=1)
    with pytest.raises(ValueError, match=r"8 for 4 env runners.*has 2"):
        plan_env_runners(_Config(num_gpus_per_env_runner=2), {"CPU": 8, "GPU": 2}, {"CPU": 8}, num_nodes=1)
    with pytest.raises(ValueError, match="add nodes"):
        plan_env_runners(_Config(num_env_runners=40), {"CPU": 8}, {"CPU": 8}, num_nodes=2)


def test_juno_rllib_is_juno_rl_one_set_of_modules():
    import juno.rl
    import juno.rllib

    assert juno.rllib is juno.rl
    alias = importlib.import_module("juno.rllib.algorithms.algorithm")
    real = importlib.import_module("juno.rl.algorithms.algorithm")
    assert alias is real and real.__spec__.name == "juno.rl.algorithms.algorithm"
    from juno.rllib.core.learner import Learner
    from juno.rl.core.learner import Learner as RealLearner
    assert Learner is RealLearner and sys.modules["juno.rllib.core.learner"] is sys.modules["juno.rl.core.learner"]
    with pytest.raises(ImportError):
        importlib.import_module("juno.rllib.no_such_module")


def _complete_runner(env="CartPole-v1", envs=3, fragment=20):
    return _runner(env, envs, fragment, batch_mode="complete_episodes")


def test_complete_episodes_never_cut_an_episode_across_samples():
    runner = _complete_runner(envs=3, fragment=20)
    for _ in range(3):
        batch, metrics = runner.sample()
        steps = metrics["num_env_steps"]
        assert steps >= 60 and batch["rewards"].shape == (steps, 1) and batch["obs"].shape == (steps, 1, 4)
        # every step belongs to an episode that started and ended in this sample
        assert sum(metrics["episode_lengths"]) == steps
        done = (batch["terminateds"] | batch["truncateds"])[:, 0]
        assert done[-1] and done.sum() == len(metrics["episode_returns"])
        # within an episode, the next step's obs is this step's next_obs
        inside = np.flatnonzero(~done[:-1])
        assert np.allclose(batch["next_obs"][inside, 0], batch["obs"][inside + 1, 0])


class NeverEnds(gym.Env):
    observation_space = gym.spaces.Box(-1, 1, (2,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def __init__(self, config=None):
        pass

    def reset(self, *, seed=None, options=None):
        return np.zeros(2, np.float32), {}

    def step(self, action):
        return np.zeros(2, np.float32), 0.0, False, False, {}


def test_complete_episodes_stops_with_a_clear_error_on_an_env_whose_episodes_never_end(monkeypatch):
    import juno.rl.env.env_runner as env_runner

    monkeypatch.setattr(env_runner, "_MAX_COMPLETE_EPISODES_STEPS", 500)
    runner = _complete_runner(env=NeverEnds, envs=1, fragment=1)
    with pytest.raises(EnvError, match="batch_mode='truncate_episodes'"):
        runner.sample()


def test_ppo_updates_on_a_read_only_batch_without_a_torch_warning():
    """Batches from env runner actors arrive read-only (zero-copy from the object store); torch warns on
    such arrays unless the learner copies them."""
    from juno.rl.algorithms.ppo import PPOConfig

    algo = PPOConfig().environment("CartPole-v1").training(train_batch_size=64, minibatch_size=32, num_epochs=1) \
        .env_runners(num_env_runners=0).debugging(seed=0).build_algo()
    try:
        batches, _ = algo.env_runner_group.sample()
        batch = batches[0]
        for array in batch.values():
            array.flags.writeable = False
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            metrics = algo.learner_group.update(batch, 0)
        assert math.isfinite(metrics["total_loss"])
    finally:
        algo.stop()

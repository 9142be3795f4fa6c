"""DQN and SAC end to end: learning within a bounded budget (fixed seeds, small nets, a step cap),
save/restore, the errors on the wrong action space, and DQN with env runner actors on a cluster."""
import numpy as np
import pytest

pytest.importorskip("gymnasium")
torch = pytest.importorskip("torch")

from juno.rl.algorithms.dqn import DQN, DQNConfig  # noqa: E402
from juno.rl.algorithms.sac import SACConfig  # noqa: E402

JUNO_SHARED_INIT = {"num_cpus": 4}


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Small nets learn faster on one thread; the machine is shared."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def fast_dqn_config():
    """Settings that learn CartPole in a few thousand env steps (also the benchmark's DQN row)."""
    return (DQNConfig().environment("CartPole-v1").debugging(seed=0)
            .env_runners(rollout_fragment_length=8)
            .training(lr=1e-3, train_batch_size=64, n_step=3, target_network_update_freq=500, hiddens=[64],
                      model={"fcnet_hiddens": [64], "fcnet_activation": "relu"},
                      num_steps_sampled_before_learning_starts=500, epsilon=[(0, 1.0), (5000, 0.02)],
                      training_intensity=16, replay_buffer_config={"type": "PrioritizedEpisodeReplayBuffer",
                                                                  "capacity": 20000})
            .reporting(min_sample_timesteps_per_iteration=1000, metrics_num_episodes_for_smoothing=10))


def fast_sac_config():
    """Settings that lift Pendulum-v1's return within ~1.5k env steps: larger learning rates and batch, and
    faster-moving target critics (tau=0.02) than RLlib's defaults; one iteration is one 200-step episode."""
    return (SACConfig().environment("Pendulum-v1").debugging(seed=0)
            .training(train_batch_size=256, model={"fcnet_hiddens": [64, 64]}, actor_lr=3e-3, critic_lr=3e-3,
                      alpha_lr=3e-3, initial_alpha=0.2, tau=0.02, num_steps_sampled_before_learning_starts=500,
                      replay_buffer_config={"type": "EpisodeReplayBuffer", "capacity": 20000})
            .reporting(min_sample_timesteps_per_iteration=200, metrics_num_episodes_for_smoothing=2))


def train_until(algo, threshold, max_iterations):
    returns = []
    for _ in range(max_iterations):
        result = algo.train()
        returns.append(result["env_runners"]["episode_return_mean"])
        if returns[-1] is not None and returns[-1] >= threshold:
            break
    return result, returns


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_dqn_learns_cartpole_and_restores_the_same_greedy_actions(tmp_path):
    algo = fast_dqn_config().build_algo()
    try:
        result, returns = train_until(algo, threshold=100, max_iterations=10)
        assert returns[-1] >= 100, f"DQN's mean return per iteration: {returns}"
        learner = result["learners"]["default_policy"]
        assert {"qf_loss", "mean_q"} <= set(learner) and "td_error" not in learner
        assert result["episode_reward_mean"] == result["env_runners"]["episode_return_mean"]
        obs = np.random.default_rng(0).normal(size=(32, 4)).astype(np.float32)
        before = algo.compute_actions(obs)
        path = algo.save(str(tmp_path / "dqn")).path
    finally:
        algo.stop()
    restored = DQN.from_checkpoint(path)
    try:
        np.testing.assert_array_equal(restored.compute_actions(obs), before)
        assert restored.compute_single_action(obs[0], explore=False) == before[0]
    finally:
        restored.stop()


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_sac_improves_pendulum():
    algo = fast_sac_config().build_algo()
    try:
        result, returns = train_until(algo, threshold=-700, max_iterations=15)
        learner = result["learners"]["default_policy"]
        assert {"actor_loss", "critic_loss", "alpha_loss", "alpha_value"} <= set(learner)
        # A random policy scores about -1200 on Pendulum; learning lifts the mean (of the last two
        # episodes) well above it, and above the episodes played before learning started (500 steps).
        assert returns[-1] >= -700, f"SAC's mean return per iteration: {returns}"
        assert returns[-1] >= max(returns[:2]) + 100, f"SAC's mean return per iteration: {returns}"
    finally:
        algo.stop()


def test_the_wrong_action_space_is_an_error_naming_the_env_and_the_space():
    with pytest.raises(ValueError, match="SAC on env 'CartPole-v1': the action space Discrete\\(2\\)"):
        SACConfig().environment("CartPole-v1").build_algo()
    with pytest.raises(ValueError, match="DQN on env 'Pendulum-v1': the action space Box"):
        DQNConfig().environment("Pendulum-v1").build_algo()


def test_dqn_with_env_runner_actors_and_a_learner_actor(cluster):
    """The same training step with the sampling and the learning in actors: priorities come back
    from the learner actor, weights go out to the runners."""
    config = (fast_dqn_config().env_runners(num_env_runners=2, num_envs_per_env_runner=2, rollout_fragment_length=16)
              .learners(num_learners=1)
              .training(num_steps_sampled_before_learning_starts=64, training_intensity=None)
              .reporting(min_sample_timesteps_per_iteration=128))
    algo = config.build_algo()
    try:
        first = algo.train()
        second = algo.train()
        assert second["num_env_steps_sampled_lifetime"] == 256 and first["num_env_steps_sampled_lifetime"] == 128
        learner = second["learners"]["default_policy"]
        assert learner["num_updates"] == 1 and np.isfinite(learner["qf_loss"])
        assert second["num_env_steps_trained_lifetime"] > 0
        buffer = algo.replay_buffer
        # Every step sampled is in the buffer but the last n_step - 1 of each env (2 runners x 2 envs),
        # whose 3-step windows wait for the next fragment.
        assert len(buffer) == 256 - 2 * 2 * 2
        assert buffer._tree.total != pytest.approx(len(buffer) * buffer._max_priority ** buffer.alpha)
        weights = algo.learner_group.get_weights()
        for index in (1, 2):
            runner_weights = algo.env_runner_group.get_weights(index)
            assert all(np.array_equal(runner_weights[k], weights[k]) for k in weights)
    finally:
        algo.stop()


def test_dqn_with_complete_episodes_fills_its_buffer_with_whole_episodes():
    def log_episode_steps(*, episode, metrics_logger, **kwargs):
        metrics_logger.log_value("episode_steps", len(episode), reduce="sum")

    config = fast_dqn_config().env_runners(batch_mode="complete_episodes", num_envs_per_env_runner=2).training(
        num_steps_sampled_before_learning_starts=100).reporting(min_sample_timesteps_per_iteration=200)
    algo = config.callbacks(on_episode_end=log_episode_steps).build_algo()
    try:
        result = algo.train()
        steps = result["num_env_steps_sampled_lifetime"]
        assert result["env_runners"]["episode_steps"] == steps == len(algo.replay_buffer) >= 200
        assert np.isfinite(result["learners"]["default_policy"]["qf_loss"])
    finally:
        algo.stop()

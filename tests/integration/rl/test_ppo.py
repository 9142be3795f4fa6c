"""PPO end to end: it learns CartPole within a bounded budget, trains on a Box action space, samples
with env runner actors, and a checkpoint restores the same greedy policy. Learning runs in the driver
(num_env_runners=0: no cluster); the runner test uses the module's shared cluster."""
import warnings

import numpy as np
import pytest

from juno.rl.algorithms.ppo import PPO, PPOConfig

JUNO_SHARED_INIT = {"num_cpus": 2}

# Settings that learn CartPole in a few thousand steps (benchmarks/rl/README.md); RLlib's defaults don't.
FAST = dict(lr=1e-3, gamma=0.99, lambda_=0.95, train_batch_size=512, minibatch_size=128, num_epochs=10,
            clip_param=0.2, vf_loss_coeff=0.5, use_kl_loss=False, kl_coeff=0.0, vf_clip_param=10000.0, grad_clip=0.5)


def cartpole(seed=0, **training):
    return (PPOConfig().environment("CartPole-v1").debugging(seed=seed)
            .env_runners(num_env_runners=0, num_envs_per_env_runner=16, rollout_fragment_length=32)
            .training(**{**FAST, **training}).rl_module(model_config={"fcnet_hiddens": [64, 64]}))


def test_ppo_learns_cartpole_within_a_bounded_budget():
    algo = cartpole(seed=0).build_algo()
    try:
        best = 0.0
        for _ in range(40):  # 20k env steps at most; it usually takes about 12k (a random policy scores 22)
            result = algo.train()
            best = max(best, result["env_runners"]["episode_return_mean"])
            if best >= 75:
                break
        assert best >= 75, f"mean return {best:.1f} after {result['num_env_steps_sampled_lifetime']} env steps"
        learner = result["learners"]["default_policy"]
        for key in ("policy_loss", "vf_loss", "entropy", "mean_kl_loss", "curr_kl_coeff", "vf_explained_var"):
            assert np.isfinite(learner[key]), key
        assert result["info"]["learner"]["default_policy"]["learner_stats"] == learner
        assert result["episode_reward_mean"] == result["env_runners"]["episode_return_mean"]
    finally:
        algo.stop()


def test_ppo_trains_on_a_box_action_space():
    config = (PPOConfig().environment("Pendulum-v1").debugging(seed=1)
              .env_runners(num_env_runners=0, num_envs_per_env_runner=4, rollout_fragment_length=50)
              .training(lr=3e-4, train_batch_size=200, minibatch_size=50, num_epochs=2)
              .rl_module(model_config={"fcnet_hiddens": [32]}))
    algo = config.build_algo()
    try:
        for _ in range(3):
            result = algo.train()
        learner = result["learners"]["default_policy"]
        assert result["num_env_steps_sampled_lifetime"] == 600
        assert all(np.isfinite(learner[k]) for k in ("policy_loss", "vf_loss", "entropy", "mean_kl_loss"))
        action = algo.compute_single_action(np.zeros(3, np.float32), explore=True)
        assert action.shape == (1,) and -2.0 <= action[0] <= 2.0
    finally:
        algo.stop()


def test_save_and_restore_give_the_same_greedy_actions(tmp_path):
    algo = cartpole(seed=2, train_batch_size=256).build_algo()
    try:
        algo.train()
        algo.train()
        obs = np.random.default_rng(0).normal(size=(32, 4)).astype(np.float32)
        expected = algo.compute_actions(obs)
        path = algo.save(str(tmp_path / "ckpt")).path
        kl_coeff = algo.learner_group.learner.curr_kl_coeff
    finally:
        algo.stop()
    restored = PPO.from_checkpoint(path)
    try:
        assert np.array_equal(restored.compute_actions(obs), expected)
        assert [restored.compute_single_action(o) for o in obs[:4]] == expected[:4].tolist()
        assert restored.learner_group.learner.curr_kl_coeff == kl_coeff
        assert restored.iteration == 2
    finally:
        restored.stop()


def test_older_config_forms_build_and_train():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        config = (PPOConfig().environment("CartPole-v1").rollouts(num_rollout_workers=0, num_envs_per_worker=2)
                  .training(num_sgd_iter=2, sgd_minibatch_size=32, train_batch_size=128, lr=1e-3,
                            model={"fcnet_hiddens": [16], "fcnet_activation": "relu"}))
    algo = PPO(config=config)
    try:
        result = algo.train()
        assert result["timesteps_total"] == 128
        assert result["info"]["learner"]["default_policy"]["learner_stats"]["num_minibatch_updates"] == 2 * 4
        assert algo.get_module().pi_encoder[1].__class__.__name__ == "ReLU"
    finally:
        algo.stop()


@pytest.mark.timeout(180)
def test_ppo_samples_with_env_runner_actors(cluster):
    config = cartpole(seed=3, train_batch_size=256).env_runners(num_env_runners=2, num_envs_per_env_runner=4,
                                                                 rollout_fragment_length=16)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # a busy 2-CPU cluster may scale the runners down
        algo = config.build_algo()
    try:
        for _ in range(2):
            result = algo.train()
        assert result["num_env_steps_sampled_lifetime"] >= 512
        weights = algo.learner_group.get_weights()
        runner = algo.env_runner_group.get_weights()
        assert all(np.array_equal(weights[k], runner[k]) for k in weights)
    finally:
        algo.stop()


def _log_episode_steps(*, episode, metrics_logger, **kwargs):
    metrics_logger.log_value("episode_steps", len(episode), reduce="sum", clear_on_reduce=True)


def test_complete_episodes_train_on_whole_episodes_only():
    config = cartpole(seed=4, train_batch_size=128, minibatch_size=64, num_epochs=1).env_runners(
        num_envs_per_env_runner=2, rollout_fragment_length=32, batch_mode="complete_episodes")
    algo = config.callbacks(on_episode_end=_log_episode_steps).build_algo()
    try:
        for _ in range(2):
            before = algo.global_env_steps
            result = algo.train()
            sampled = result["num_env_steps_sampled_lifetime"] - before
            # every step sampled belongs to an episode that ended in this iteration
            assert result["env_runners"]["episode_steps"] == sampled >= 128
        assert np.isfinite(result["learners"]["default_policy"]["policy_loss"])
    finally:
        algo.stop()

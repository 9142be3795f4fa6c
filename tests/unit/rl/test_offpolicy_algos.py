"""DQN's and SAC's pure parts: schedules, modules, targets, learner steps, config forms. No processes."""
import gymnasium as gym
import numpy as np
import pytest
import torch

from juno.rl.algorithms.dqn import DQNConfig, DQNLearner, DQNRLModule
from juno.rl.algorithms.dqn.dqn_learner import q_targets, td_loss
from juno.rl.algorithms.dqn.exploration import PiecewiseSchedule, epsilon_schedule
from juno.rl.algorithms.dqn.off_policy import TargetNetworkSchedule, UpdateCredit, polyak_update
from juno.rl.algorithms.sac import SACConfig, SACLearner, SACRLModule

CARTPOLE_OBS = gym.spaces.Box(-np.inf, np.inf, (4,), np.float32)
PENDULUM_OBS = gym.spaces.Box(-8.0, 8.0, (3,), np.float32)
TORQUE = gym.spaces.Box(-2.0, 2.0, (1,), np.float32)


def replay_batch(obs_dim, actions, n=16, seed=0):
    rng = np.random.default_rng(seed)
    return {"obs": rng.normal(size=(n, obs_dim)).astype(np.float32), "actions": actions,
            "rewards": rng.normal(size=n).astype(np.float32),
            "next_obs": rng.normal(size=(n, obs_dim)).astype(np.float32),
            "terminateds": rng.random(n) < 0.2, "truncateds": np.zeros(n, bool),
            "discounts": np.full(n, 0.99, np.float32), "weights": np.ones(n, np.float32)}


def test_epsilon_schedule_forms():
    schedule = epsilon_schedule([(0, 1.0), (10000, 0.05)])
    assert schedule.value(0) == 1.0 and schedule.value(5000) == pytest.approx(0.525)
    assert schedule.value(10**6) == pytest.approx(0.05)
    assert PiecewiseSchedule(0.1).value(123) == pytest.approx(0.1)
    older = epsilon_schedule(None, {"type": "EpsilonGreedy", "initial_epsilon": 1.0, "final_epsilon": 0.02,
                                    "epsilon_timesteps": 1000})
    assert older.value(500) == pytest.approx(0.51) and older.value(2000) == pytest.approx(0.02)
    with pytest.raises(ValueError, match="EpsilonGreedy only"):
        epsilon_schedule(None, {"type": "GaussianNoise"})
    with pytest.raises(ValueError, match="list of \\(timestep, value\\) pairs"):
        epsilon_schedule("lots")


def test_update_credit_and_target_schedule():
    native = UpdateCredit(None, 32)
    assert [native.earn(4) for _ in range(3)] == [1, 1, 1]
    credit = UpdateCredit(training_intensity=8, train_batch_size=32)  # a quarter update per step
    assert [credit.earn(1) for _ in range(8)] == [0, 0, 0, 1, 0, 0, 0, 1]
    target = TargetNetworkSchedule(500)
    assert [target.due(t) for t in (100, 499, 500, 900, 1000)] == [False, False, True, False, True]
    assert TargetNetworkSchedule(0).due(1)


def test_double_q_targets_pick_the_online_argmax_and_stop_at_terminations():
    q_next_target = torch.tensor([[1.0, 5.0], [2.0, 3.0]])
    q_next_online = torch.tensor([[9.0, 0.0], [0.0, 9.0]])
    rewards, discounts = torch.tensor([1.0, 1.0]), torch.tensor([0.5, 0.5])
    terminateds = torch.tensor([False, True])
    double = q_targets(rewards, discounts, terminateds, q_next_target, q_next_online)
    assert double.tolist() == [1.0 + 0.5 * 1.0, 1.0]
    plain = q_targets(rewards, discounts, terminateds, q_next_target, None)
    assert plain.tolist() == [1.0 + 0.5 * 5.0, 1.0]
    td = torch.tensor([0.5, 3.0])
    assert td_loss(td, torch.ones(2), "huber").item() == pytest.approx((0.125 + 2.5) / 2)
    assert td_loss(td, torch.tensor([2.0, 0.0]), "mse").item() == pytest.approx(0.125)


def test_polyak_update_moves_the_target_by_tau():
    source, target = torch.nn.Linear(2, 1), torch.nn.Linear(2, 1)
    expected = 0.1 * source.weight.detach() + 0.9 * target.weight.detach()
    polyak_update(target, source, 0.1)
    torch.testing.assert_close(target.weight.detach(), expected)


@pytest.mark.parametrize("dueling", [True, False])
def test_dqn_module_greedy_and_epsilon_greedy(dueling):
    torch.manual_seed(0)
    module = DQNRLModule(CARTPOLE_OBS, gym.spaces.Discrete(2),
                         {"fcnet_hiddens": [16], "hiddens": [8], "dueling": dueling, "epsilon": [(0, 1.0), (100, 0.0)]})
    obs = torch.randn(256, 4)
    greedy = module.forward_inference(obs)["actions"]
    assert greedy.shape == (256,) and torch.equal(greedy, module.q_values(obs).argmax(-1))
    assert torch.equal(module.forward_exploration(obs, 100)["actions"], greedy)  # epsilon 0
    random_share = (module.forward_exploration(obs, 0)["actions"] != greedy).float().mean().item()
    assert 0.3 < random_share < 0.7  # epsilon 1: half the random picks differ from greedy


def test_dqn_and_sac_refuse_the_wrong_action_space():
    with pytest.raises(TypeError, match="DQN needs a Discrete action space; the env has Box"):
        DQNRLModule(PENDULUM_OBS, TORQUE, {})
    with pytest.raises(TypeError, match="SAC needs a continuous \\(Box\\) action space; the env has Discrete\\(2\\)"):
        SACRLModule(CARTPOLE_OBS, gym.spaces.Discrete(2), {})
    with pytest.raises(TypeError, match="Box observation space"):
        DQNRLModule(gym.spaces.Discrete(5), gym.spaces.Discrete(2), {})


def test_dqn_learner_fits_a_fixed_target_and_reports_td_errors():
    torch.manual_seed(0)
    config = DQNConfig().training(lr=3e-2, model={"fcnet_hiddens": [16]}, hiddens=[16], target_network_update_freq=0,
                                  tau=1.0)
    module = DQNRLModule(CARTPOLE_OBS, gym.spaces.Discrete(2), config.model_config)
    learner = DQNLearner(config, module)
    batch = replay_batch(4, np.zeros(16, np.int64))
    batch["terminateds"][:] = True  # targets are the rewards alone
    first = learner.update(batch, timestep=1)
    for t in range(2, 60):
        last = learner.update(batch, timestep=t)
    assert last["qf_loss"] < first["qf_loss"] / 5
    assert last["td_error"].shape == (16,) and "mean_q" in last
    assert last["num_target_updates"] == 59


def test_dqn_learner_state_round_trips():
    config = DQNConfig().training(model={"fcnet_hiddens": [8]}, hiddens=[8])
    learner = DQNLearner(config, DQNRLModule(CARTPOLE_OBS, gym.spaces.Discrete(2), config.model_config))
    learner.update(replay_batch(4, np.ones(16, np.int64)), timestep=600)
    copy = DQNLearner(config, DQNRLModule(CARTPOLE_OBS, gym.spaces.Discrete(2), config.model_config))
    copy.set_state(learner.get_state())
    obs = torch.randn(8, 4)
    torch.testing.assert_close(copy.module.q_values(obs), learner.module.q_values(obs))
    torch.testing.assert_close(copy.target_module.q_values(obs), learner.target_module.q_values(obs))
    assert copy.target_schedule.last_update_timestep == 600


def test_sac_module_actions_stay_in_bounds_and_learner_tunes_alpha():
    torch.manual_seed(0)
    config = SACConfig().training(model={"fcnet_hiddens": [16]}, initial_alpha=0.5, alpha_lr=1e-2)
    module = SACRLModule(PENDULUM_OBS, TORQUE, config.model_config)
    obs = torch.randn(512, 3) * 5
    for actions in (module.forward_exploration(obs, 0)["actions"], module.forward_inference(obs)["actions"]):
        assert actions.shape == (512, 1) and actions.abs().max() <= 2.0
    learner = SACLearner(config, module)
    assert learner.target_entropy == -1.0
    batch = replay_batch(3, np.random.default_rng(1).uniform(-2, 2, (16, 1)).astype(np.float32))
    metrics = [learner.update(batch, timestep=t) for t in range(1, 10)]
    assert {"actor_loss", "critic_loss", "alpha_loss", "alpha_value"} <= set(metrics[-1])
    assert metrics[-1]["alpha_value"] != pytest.approx(0.5)  # the temperature is being tuned
    assert metrics[-1]["td_error"].shape == (16,)
    copy = SACLearner(config, SACRLModule(PENDULUM_OBS, TORQUE, config.model_config))
    copy.set_state(learner.get_state())
    assert copy.log_alpha.item() == pytest.approx(learner.log_alpha.item())
    torch.testing.assert_close(copy.module.forward_inference(obs)["actions"], module.forward_inference(obs)["actions"])


def test_config_defaults_are_rllibs():
    dqn = DQNConfig()
    assert (dqn.lr, dqn.train_batch_size, dqn.target_network_update_freq, dqn.n_step) == (5e-4, 32, 500, 1)
    assert (dqn.num_steps_sampled_before_learning_starts, dqn.double_q, dqn.dueling, dqn.noisy) == (1000, True,
                                                                                                       True, False)
    assert dqn.hiddens == [256] and dqn.epsilon == [(0, 1.0), (10000, 0.05)]
    sac = SACConfig()
    assert (sac.twin_q, sac.tau, sac.initial_alpha, sac.target_entropy) == (True, 5e-3, 1.0, "auto")
    assert (sac.actor_lr, sac.critic_lr, sac.alpha_lr, sac.n_step, sac.train_batch_size) == (3e-4, 3e-4, 3e-4, 1, 256)
    assert (sac.num_steps_sampled_before_learning_starts, sac.target_network_update_freq) == (1500, 0)


def test_older_config_forms():
    dqn = DQNConfig().environment("CartPole-v1").exploration(exploration_config={
        "type": "EpsilonGreedy", "initial_epsilon": 1.0, "final_epsilon": 0.02, "epsilon_timesteps": 2000})
    assert dqn.model_config["epsilon"] == [(0, 1.0), (0, 1.0), (2000, 0.02)]
    dqn.training(learning_starts=200, replay_buffer_config={"type": "MultiAgentReplayBuffer", "capacity": 1000})
    assert dqn.num_steps_sampled_before_learning_starts == 200
    assert dqn.replay_buffer_config["type"] == "MultiAgentReplayBuffer"
    dqn.validate()
    sac = SACConfig().environment("Pendulum-v1").training(
        optimization_config={"actor_learning_rate": 1e-3, "critic_learning_rate": 2e-3, "entropy_learning_rate": 3e-3},
        policy_model_config={"fcnet_hiddens": [32]}, q_model_config={"fcnet_hiddens": [64, 64]})
    assert (sac.actor_lr, sac.critic_lr, sac.alpha_lr) == (1e-3, 2e-3, 3e-3)
    assert sac.model_config["policy_hiddens"] == [32] and sac.model_config["q_hiddens"] == [64, 64]
    sac.validate()


def test_bad_settings_fail_at_validate_naming_the_field():
    with pytest.raises(ValueError, match="td_error_loss_fn='l1'"):
        DQNConfig().environment("CartPole-v1").training(td_error_loss_fn="l1").validate()
    with pytest.raises(ValueError, match="n_step=0"):
        DQNConfig().environment("CartPole-v1").training(n_step=0).validate()
    with pytest.raises(ValueError, match="Unknown replay buffer type"):
        DQNConfig().environment("CartPole-v1").training(replay_buffer_config={"type": "Bogus"}).validate()
    with pytest.raises(NotImplementedError, match="noisy"):
        DQNConfig().environment("CartPole-v1").training(noisy=True).validate()
    with pytest.raises(ValueError, match="optimization_config has unknown keys \\['actor_lr'\\]"):
        SACConfig().training(optimization_config={"actor_lr": 1e-3})
    with pytest.raises(TypeError, match="unknown keyword argument"):
        SACConfig().training(clip_param=0.2)

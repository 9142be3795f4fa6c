"""PPOConfig (RLlib's defaults, the older names, clear errors), PPO's module on both action spaces,
and one learner update on a synthetic batch: all without processes."""
import gymnasium as gym
import numpy as np
import pytest
import torch

from juno.rl.algorithms.ppo import PPO, PPOConfig, PPOLearner, PPOTorchRLModule

CARTPOLE = (gym.spaces.Box(-1.0, 1.0, (4,), np.float32), gym.spaces.Discrete(2))
PENDULUM = (gym.spaces.Box(-1.0, 1.0, (3,), np.float32), gym.spaces.Box(-2.0, 2.0, (1,), np.float32))


def test_defaults_are_rllibs_new_stack_ones():
    c = PPOConfig()
    assert c.algo_class is PPO
    assert (c.lr, c.gamma, c.lambda_, c.clip_param, c.vf_clip_param, c.vf_loss_coeff, c.entropy_coeff) == \
        (5e-5, 0.99, 1.0, 0.3, 10.0, 1.0, 0.0)
    assert (c.kl_coeff, c.kl_target, c.use_kl_loss, c.use_gae, c.use_critic) == (0.2, 0.01, True, True, True)
    assert (c.num_epochs, c.minibatch_size, c.train_batch_size, c.grad_clip) == (30, 128, 4000, None)
    assert PPO.get_default_config().to_dict() == c.to_dict()


def test_training_sets_ppo_and_shared_settings_and_returns_the_config():
    c = PPOConfig()
    assert c.training(lr=3e-4, lambda_=0.95, clip_param=0.2, vf_loss_coeff=0.5, entropy_coeff=0.01,
                      num_epochs=4, minibatch_size=64, use_kl_loss=False) is c
    assert (c.lr, c.lambda_, c.clip_param, c.vf_loss_coeff, c.entropy_coeff) == (3e-4, 0.95, 0.2, 0.5, 0.01)
    assert (c.num_epochs, c.minibatch_size, c.use_kl_loss) == (4, 64, False)
    assert c.to_dict()["lambda"] == 0.95


def test_older_names_map_with_a_deprecation_warning():
    with pytest.warns(DeprecationWarning, match="deprecated"):
        c = PPOConfig().training(num_sgd_iter=5, sgd_minibatch_size=32)
    assert (c.num_epochs, c.minibatch_size) == (5, 32)
    c = PPOConfig().update_from_dict({"lambda": 0.9, "num_sgd_iter": 3, "sgd_minibatch_size": 16})
    assert (c.lambda_, c.num_epochs, c.minibatch_size) == (0.9, 3, 16)


def test_bad_settings_fail_early_naming_the_field():
    with pytest.raises(TypeError, match="clip_parm"):
        PPOConfig().training(clip_parm=0.2)
    with pytest.raises(ValueError, match="schedules are not supported"):
        PPOConfig().training(entropy_coeff_schedule=[[0, 0.01], [1000, 0.0]])
    for field, value, message in (("lambda_", 1.5, r"lambda_=1.5: a number in \[0, 1\]"),
                                  ("clip_param", -0.1, "clip_param=-0.1: a number >= 0"),
                                  ("entropy_coeff", [[0, 0.01]], "schedules are not supported")):
        c = PPOConfig().environment("CartPole-v1")
        setattr(c, field, value)
        with pytest.raises(ValueError, match=message):
            c.validate()
    with pytest.raises(ValueError, match="use_gae=True needs a critic"):
        PPOConfig().environment("CartPole-v1").training(use_critic=False).validate()


@pytest.mark.parametrize("spaces", [CARTPOLE, PENDULUM], ids=["discrete", "box"])
@pytest.mark.parametrize("model", [{}, {"vf_share_layers": True, "free_log_std": True}], ids=["separate", "shared"])
def test_module_forwards(spaces, model):
    torch.manual_seed(0)
    module = PPOTorchRLModule(*spaces, {"fcnet_hiddens": [16], **model})
    obs = torch.randn(5, spaces[0].shape[0])
    out = module.forward_exploration(obs, 0)
    assert set(out) == {"actions", "action_logp", "action_dist_inputs"}
    assert out["action_logp"].shape == (5,)
    greedy = module.forward_inference(obs)["actions"]
    train = module.forward_train({"obs": obs})
    assert train["vf_preds"].shape == (5,)
    if isinstance(spaces[1], gym.spaces.Discrete):
        assert out["actions"].shape == greedy.shape == (5,)
        assert torch.equal(greedy, train["action_dist_inputs"].argmax(-1))
    else:
        assert out["actions"].shape == greedy.shape == (5, 1)
        assert train["action_dist_inputs"].shape == (5, 2)
    copy = PPOTorchRLModule(*spaces, {"fcnet_hiddens": [16], **model})
    copy.set_state(module.get_state())
    assert torch.equal(copy.forward_inference(obs)["actions"], greedy)


def test_module_rejects_unsupported_spaces():
    with pytest.raises(ValueError, match="Discrete and Box action spaces; got MultiBinary"):
        PPOTorchRLModule(CARTPOLE[0], gym.spaces.MultiBinary(3), {})
    with pytest.raises(ValueError, match="Box observation space; got Discrete"):
        PPOTorchRLModule(gym.spaces.Discrete(3), CARTPOLE[1], {})


def synthetic_batch(module, T=16, N=4, seed=0):
    """A time-major batch as an env runner makes it, acting with ``module``."""
    rng = np.random.default_rng(seed)
    obs = rng.normal(size=(T, N, 4)).astype(np.float32)
    with torch.no_grad():
        out = module.forward_exploration(torch.from_numpy(obs.reshape(T * N, 4)), 0)
    terminateds = rng.random((T, N)) < 0.05
    return {"obs": obs, "next_obs": rng.normal(size=(T, N, 4)).astype(np.float32),
            "actions": out["actions"].numpy().reshape(T, N), "rewards": np.ones((T, N), np.float32),
            "terminateds": terminateds, "truncateds": np.zeros((T, N), bool),
            "action_logp": out["action_logp"].numpy().reshape(T, N),
            "action_dist_inputs": out["action_dist_inputs"].numpy().reshape(T, N, 2)}


def test_learner_update_reports_rllibs_stats_and_adapts_the_kl_coeff():
    torch.manual_seed(0)
    config = PPOConfig().environment("CartPole-v1").training(lr=1e-2, num_epochs=3, minibatch_size=16,
                                                             kl_target=1e-6, grad_clip=0.5)
    learner = PPOLearner(config, PPOTorchRLModule(*CARTPOLE, {"fcnet_hiddens": [16]}))
    before = learner.get_weights()
    metrics = learner.update(synthetic_batch(learner.module), timestep=64)
    for key in ("policy_loss", "vf_loss", "entropy", "mean_kl_loss", "curr_kl_coeff", "vf_explained_var"):
        assert isinstance(metrics[key], float) and np.isfinite(metrics[key]), key
    assert metrics["num_minibatch_updates"] == 3 * 4  # 64 steps / 16, three epochs
    assert metrics["mean_kl_loss"] > 0 and metrics["curr_kl_coeff"] == pytest.approx(0.3)  # moved > 2x target
    assert any(not np.array_equal(before[k], v) for k, v in learner.get_weights().items())
    state = learner.get_state()
    assert state["extra"] == {"curr_kl_coeff": pytest.approx(0.3)}
    fresh = PPOLearner(config, PPOTorchRLModule(*CARTPOLE, {"fcnet_hiddens": [16]}))
    fresh.set_state(state)
    assert fresh.curr_kl_coeff == pytest.approx(0.3)


def test_learner_without_a_critic_learns_from_returns():
    torch.manual_seed(0)
    config = PPOConfig().environment("CartPole-v1").training(use_critic=False, use_gae=False, num_epochs=1,
                                                             minibatch_size=64, use_kl_loss=False)
    learner = PPOLearner(config, PPOTorchRLModule(*CARTPOLE, {"fcnet_hiddens": [16]}))
    metrics = learner.update(synthetic_batch(learner.module), timestep=64)
    assert metrics["vf_loss"] == 0.0 and metrics["vf_explained_var"] == 0.0 and metrics["curr_kl_coeff"] == 0.0

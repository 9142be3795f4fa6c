"""AlgorithmConfig: builders, older names, validation errors, dict round trips (no cluster)."""
import pytest

pytest.importorskip("gymnasium")
pytest.importorskip("torch")

from juno.rl.algorithms.algorithm_config import AlgorithmConfig  # noqa: E402
from rl_standin import StandIn, StandInConfig  # noqa: E402


def test_builders_chain_and_set_fields():
    config = (StandInConfig().environment("CartPole-v1", env_config={"a": 1}).framework("torch")
              .training(gamma=0.9, lr=3e-4, train_batch_size=512, minibatch_size=64, num_epochs=4,
                        model={"fcnet_hiddens": [32, 32]}, grad_clip=0.5, step_size_hint=3)
              .env_runners(num_env_runners=2, num_envs_per_env_runner=4, rollout_fragment_length=16, explore=False)
              .resources(num_gpus=0).learners(num_learners=0, num_gpus_per_learner=0)
              .evaluation(evaluation_interval=2, evaluation_duration=3, evaluation_num_env_runners=1)
              .debugging(seed=7).reporting(metrics_num_episodes_for_smoothing=5)
              .api_stack(enable_rl_module_and_learner=True).fault_tolerance(restart_failed_env_runners=False))
    assert isinstance(config, StandInConfig)
    assert (config.env, config.env_config, config.gamma, config.lr) == ("CartPole-v1", {"a": 1}, 0.9, 3e-4)
    assert (config.minibatch_size, config.num_epochs, config.grad_clip, config.step_size_hint) == (64, 4, 0.5, 3)
    assert (config.num_env_runners, config.num_envs_per_env_runner, config.rollout_fragment_length) == (2, 4, 16)
    assert config.explore is False and config.seed == 7 and config.metrics_num_episodes_for_smoothing == 5
    assert config.evaluation_interval == 2 and config.evaluation_num_env_runners == 1
    assert config.restart_failed_env_runners is False
    assert config.model_config["fcnet_hiddens"] == [32, 32]
    assert config.model_config["fcnet_activation"] == "tanh"  # defaults kept under the user's keys
    config.validate()


def test_rl_module_model_config_wins_over_older_model():
    config = StandInConfig().training(model={"fcnet_hiddens": [8]}).rl_module(model_config={"fcnet_hiddens": [16],
                                                                                           "fcnet_activation": "relu"})
    assert config.model_config["fcnet_hiddens"] == [16] and config.model_config["fcnet_activation"] == "relu"


def test_older_names_map_with_a_deprecation_warning():
    config = StandInConfig()
    with pytest.warns(DeprecationWarning, match="num_env_runners"):
        config.rollouts(num_rollout_workers=3, num_envs_per_worker=2)
    assert (config.num_env_runners, config.num_envs_per_env_runner) == (3, 2)
    with pytest.warns(DeprecationWarning, match="minibatch_size"):
        config.training(sgd_minibatch_size=32, num_sgd_iter=5)
    assert (config.minibatch_size, config.num_epochs) == (32, 5)
    with pytest.warns(DeprecationWarning):
        config.evaluation(evaluation_num_workers=2)
    assert config.evaluation_num_env_runners == 2


def test_unknown_keyword_names_it_and_the_known_ones():
    with pytest.raises(TypeError, match=r"'clip_parm'.*step_size_hint") as info:
        StandInConfig().training(clip_parm=0.2)
    assert "gamma" in str(info.value)
    with pytest.raises(TypeError, match="'num_runners'.*num_env_runners"):
        StandInConfig().env_runners(num_runners=2)
    with pytest.raises(TypeError, match="'gpus'"):
        StandInConfig().learners(gpus=1)


def test_framework_other_than_torch_is_an_error():
    with pytest.raises(ValueError, match="'tf2'.*torch"):
        StandInConfig().framework("tf2")


@pytest.mark.parametrize("change, field", [
    (lambda c: c.training(gamma=1.5), "gamma"),
    (lambda c: c.training(lr=-1), "lr"),
    (lambda c: c.env_runners(num_env_runners=-1), "num_env_runners"),
    (lambda c: c.env_runners(rollout_fragment_length=0), "rollout_fragment_length"),
    (lambda c: c.env_runners(batch_mode="whole"), "batch_mode"),
    (lambda c: c.evaluation(evaluation_duration_unit="days"), "evaluation_duration_unit"),
    (lambda c: c.training(model={"fcnet_hiddens": [0]}), "fcnet_hiddens"),
    (lambda c: c.training(minibatch_size=10_000), "minibatch_size"),
])
def test_validate_names_the_field(change, field):
    config = change(StandInConfig().environment("CartPole-v1"))
    with pytest.raises(ValueError, match=field):
        config.validate()


def test_validate_without_env_says_how_to_set_it():
    with pytest.raises(ValueError, match=r"config.environment\("):
        StandInConfig().validate()


def test_auto_fragment_length_spreads_the_train_batch():
    config = StandInConfig().training(train_batch_size=1000).env_runners(num_env_runners=2, num_envs_per_env_runner=4,
                                                                         rollout_fragment_length="auto")
    assert config.get_rollout_fragment_length() == 125
    config.env_runners(num_env_runners=0, num_envs_per_env_runner=3)
    assert config.get_rollout_fragment_length() == 334


def test_dict_round_trip_and_older_dict_keys():
    config = StandInConfig().environment("CartPole-v1").training(lr=0.01, step_size_hint=2).debugging(seed=3)
    as_dict = config.to_dict()
    assert as_dict["lr"] == 0.01 and as_dict["env"] == "CartPole-v1" and as_dict["algo_class"] is StandIn
    assert StandInConfig.from_dict(as_dict) == config
    older = StandInConfig().update_from_dict({"num_workers": 2, "sgd_minibatch_size": 16, "env": "Pendulum-v1"})
    assert (older.num_env_runners, older.minibatch_size, older.env) == (2, 16, "Pendulum-v1")
    with pytest.raises(ValueError, match="no setting 'bogus'"):
        StandInConfig().update_from_dict({"bogus": 1})


def test_copy_is_independent_and_build_needs_an_algo_class():
    config = StandInConfig().training(model={"fcnet_hiddens": [4]})
    clone = config.copy()
    clone.model["fcnet_hiddens"].append(5)
    assert config.model["fcnet_hiddens"] == [4]
    with pytest.raises(ValueError, match="algo_class"):
        AlgorithmConfig().environment("CartPole-v1").build_algo()

"""DQN: ``from juno.rl.algorithms.dqn import DQN, DQNConfig``."""
from juno.rl.algorithms.dqn.dqn import DQN, DQNConfig
from juno.rl.algorithms.dqn.dqn_learner import DQNLearner
from juno.rl.algorithms.dqn.dqn_rl_module import DQNRLModule

__all__ = ["DQN", "DQNConfig", "DQNLearner", "DQNRLModule"]

"""SAC: ``from juno.rl.algorithms.sac import SAC, SACConfig``."""
from juno.rl.algorithms.sac.sac import SAC, SACConfig
from juno.rl.algorithms.sac.sac_learner import SACLearner
from juno.rl.algorithms.sac.sac_rl_module import SACRLModule

__all__ = ["SAC", "SACConfig", "SACLearner", "SACRLModule"]

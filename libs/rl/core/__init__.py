"""What every algorithm builds on: ``RLModule``, ``Learner``, ``LearnerGroup``, ``Columns`` and the
module catalog (MLPs and distributions)."""
from juno.rl.core.columns import Columns
from juno.rl.core.learner import Learner
from juno.rl.core.learner_group import LearnerGroup
from juno.rl.core.rl_module import RLModule, RLModuleSpec

DEFAULT_MODULE_ID = "default_policy"

__all__ = ["Columns", "DEFAULT_MODULE_ID", "Learner", "LearnerGroup", "RLModule", "RLModuleSpec"]

"""A Tune experiment's trials."""
from juno.tune.experiment.trial import Trial

__all__ = ["Trial"]

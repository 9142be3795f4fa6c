"""Small shared helpers of juno.rl: the ``NotProvided`` sentinel, batch helpers, episode metrics,
resource planning."""
from juno.rl.utils.sentinel import NotProvided

__all__ = ["NotProvided"]

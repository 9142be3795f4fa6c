"""RLlib's callbacks: ``RLlibCallback`` (older name ``DefaultCallbacks``) and how a config's callbacks
are called (``CallbackSet``). ``juno.rllib.callbacks.callbacks.RLlibCallback`` and
``juno.rllib.algorithms.callbacks.DefaultCallbacks`` are the same class, at RLlib's paths."""
from juno.rl.callbacks.callbacks import (
    HOOKS,
    CallbackSet,
    DefaultCallbacks,
    RLlibCallback,
    make_multi_callbacks,
)

__all__ = ["HOOKS", "CallbackSet", "DefaultCallbacks", "RLlibCallback", "make_multi_callbacks"]

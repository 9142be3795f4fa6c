"""RLlib's older path of the callbacks (``from ray.rllib.algorithms.callbacks import DefaultCallbacks``)."""
from juno.rl.callbacks.callbacks import DefaultCallbacks, RLlibCallback, make_multi_callbacks

__all__ = ["DefaultCallbacks", "RLlibCallback", "make_multi_callbacks"]

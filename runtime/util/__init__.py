"""Utilities mirroring ``ray.util``: scheduling strategies (placement groups arrive with multi-node)."""
from juno.util import scheduling_strategies

__all__ = ["scheduling_strategies"]

"""``juno.rllib``: the same package as ``juno.rl`` under RLlib's name, so RLlib code ports by changing
``ray`` to ``juno`` (``from juno.rllib.algorithms.ppo import PPOConfig``).

Importing it installs a finder that maps every ``juno.rllib.X`` to ``juno.rl.X``: one set of module
objects (``juno.rllib.algorithms.ppo.PPO is juno.rl.algorithms.ppo.PPO``), never a second copy.
"""
from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys

_ALIAS = "juno.rllib"
_TARGET = "juno.rl"


class _AliasFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds ``juno.rllib.X`` as ``juno.rl.X``: the loader hands back the real module."""

    def find_spec(self, fullname: str, path: object = None, target: object = None):
        if not fullname.startswith(_ALIAS + "."):
            return None
        real_name = _TARGET + fullname[len(_ALIAS):]
        if importlib.util.find_spec(real_name) is None:
            return None
        return importlib.util.spec_from_loader(fullname, self, is_package=True)

    def create_module(self, spec):
        module = importlib.import_module(_TARGET + spec.name[len(_ALIAS):])
        self._real_spec = module.__spec__
        return module

    def exec_module(self, module) -> None:
        # importlib set the alias's spec on the real module; it keeps its own.
        module.__spec__ = self._real_spec


if not any(isinstance(f, _AliasFinder) for f in sys.meta_path):
    sys.meta_path.insert(0, _AliasFinder())

sys.modules[_ALIAS] = importlib.import_module(_TARGET)

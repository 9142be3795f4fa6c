"""Env runners and how envs are made: ``EnvRunner`` (a vector of envs and a module copy),
``EnvRunnerGroup`` (the runner actors), ``EnvContext``, env creation and space checks."""
from juno.rl.env.env_context import EnvContext
from juno.rl.env.env_runner import EnvRunner
from juno.rl.env.env_runner_group import EnvRunnerGroup

__all__ = ["EnvContext", "EnvRunner", "EnvRunnerGroup"]

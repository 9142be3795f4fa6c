"""Which workers the node's fork server may fork (runtime/node/zygote.py): the rest are spawned."""
from __future__ import annotations

import pytest

from juno.job_config import CODE_SEARCH_PATH_KEY
from juno.node.zygote import forkable


@pytest.mark.parametrize("runtime_env", [None, {}, {"env_vars": {}}, {"env_vars": {"FOO": "1"}},
                                         {"env_vars": {"OMP_NUM_THREADS": "2", "CUDA_VISIBLE_DEVICES": "0"}}])
def test_default_and_env_var_workers_are_forked(runtime_env):
    assert forkable(runtime_env)


@pytest.mark.parametrize("runtime_env", [
    {"working_dir": "/tmp/x"}, {"py_modules": ["/tmp/m"]}, {"pip": ["requests"]}, {"conda": "env"},
    {CODE_SEARCH_PATH_KEY: ["/tmp/code"]}, {"env_vars": {"FOO": "1"}, "working_dir": "/tmp/x"},
    {"env_vars": {"PYTHONPATH": "/tmp"}}, {"env_vars": {"PYTHONHASHSEED": "0"}},
    {"env_vars": {"LD_LIBRARY_PATH": "/opt/lib"}}, {"env_vars": {"MALLOC_ARENA_MAX": "2"}},
])
def test_envs_read_at_interpreter_start_are_spawned(runtime_env):
    assert not forkable(runtime_env)

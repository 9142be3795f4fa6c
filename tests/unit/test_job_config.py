"""Ray's JobConfig and init's Ray-compatible arguments, checked without a cluster
(runtime/job_config.py, runtime/api.py's argument checks)."""
import warnings

import pytest

import juno
from juno.api import _check_local_mode, _validate_init
from juno.exceptions import JunoWarning
from juno.job_config import CODE_SEARCH_PATH_KEY, JobConfig, job_runtime_env, public_runtime_env


def test_job_config_is_where_ray_code_looks_for_it():
    assert juno.job_config.JobConfig is JobConfig


def test_job_config_keeps_rays_fields(tmp_path):
    config = JobConfig(code_search_path=[str(tmp_path)], runtime_env={"env_vars": {"A": "1"}},
                       metadata={"team": "vision"}, ray_namespace="ns", default_actor_lifetime="detached")
    config.set_metadata("run", "7")
    assert config.code_search_path == [str(tmp_path)]
    assert config.runtime_env == {"env_vars": {"A": "1"}}
    assert config.metadata == {"team": "vision", "run": "7"}
    assert config.ray_namespace == "ns" and config.default_actor_lifetime == "detached"
    assert JobConfig().default_actor_lifetime == "non_detached" and JobConfig().metadata == {}
    again = JobConfig.from_json({"metadata": {"k": "v"}, "ray_namespace": "other"})
    assert again.metadata == {"k": "v"} and again.ray_namespace == "other"


def test_jvm_options_and_client_jobs_are_refused_unless_empty():
    JobConfig(jvm_options=[], client_job=False)  # what Ray code passes by default
    with pytest.raises(ValueError, match="jvm_options"):
        JobConfig(jvm_options=["-Xmx1g"])
    with pytest.raises(ValueError, match="Ray Client"):
        JobConfig(client_job=True)
    with pytest.raises(ValueError, match="Ray Client"):
        JobConfig(_client_job=True)


@pytest.mark.parametrize("kwargs, error, words", [
    ({"default_actor_lifetime": "forever"}, ValueError, "default_actor_lifetime"),
    ({"code_search_path": "/a/dir"}, TypeError, "code_search_path"),
    ({"metadata": ["a"]}, TypeError, "metadata"),
    ({"ray_namespace": ""}, ValueError, "ray_namespace"),
    ({"runtime_env": {"pip": ["numpy"]}}, ValueError, "pip"),
])
def test_bad_job_config_fields_fail_naming_the_field(kwargs, error, words):
    with pytest.raises(error, match=words):
        JobConfig(**kwargs)


def test_job_runtime_env_is_inits_else_the_configs_plus_the_search_path(tmp_path):
    config = JobConfig(code_search_path=[str(tmp_path)], runtime_env={"env_vars": {"FROM": "config"}})
    assert job_runtime_env(None, {"env_vars": {"FROM": "init"}}) == {"env_vars": {"FROM": "init"}}
    assert job_runtime_env(config, None) == {"env_vars": {"FROM": "config"}, CODE_SEARCH_PATH_KEY: [str(tmp_path)]}
    assert job_runtime_env(config, {"env_vars": {"FROM": "init"}})["env_vars"] == {"FROM": "init"}
    assert job_runtime_env(JobConfig(), None) is None
    assert public_runtime_env(job_runtime_env(config, None)) == {"env_vars": {"FROM": "config"}}


def test_object_store_memory_takes_whole_floats():
    assert _validate_init(None, None, None, 7e8) == 700_000_000
    assert _validate_init(None, None, None, 700_000_000) == 700_000_000
    assert _validate_init(None, None, None, None) is None
    for bad in (1.5, 0, -1.0, True, "7e8"):
        with pytest.raises(ValueError, match=r"object_store_memory"):
            _validate_init(None, None, None, bad)


def test_local_mode_is_accepted_with_a_warning_when_true():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _check_local_mode(False)
    with pytest.warns(JunoWarning, match="local_mode=True"):
        _check_local_mode(True)
    with pytest.raises(TypeError, match="local_mode"):
        _check_local_mode("yes")

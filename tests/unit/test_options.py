"""Behaviour of juno.owner.options: what users may pass to @remote and .options()."""

from __future__ import annotations

import os

import pytest

from juno.owner.options import (
    ACTOR_DEFAULTS, ACTOR_METHOD_OPTION_NAMES, ACTOR_OPTION_NAMES, TASK_DEFAULTS,
    TASK_OPTION_NAMES, default_max_concurrency, merge_runtime_envs, resolve_actor_cpus,
    validate_actor_method_options, validate_actor_options, validate_runtime_env,
    validate_task_options,
)
from juno.util.scheduling_strategies import (
    NodeAffinitySchedulingStrategy, NodeLabelSchedulingStrategy,
    PlacementGroupSchedulingStrategy,
)


def task(**opts):
    return validate_task_options(opts, in_options=False)


def actor(**opts):
    return validate_actor_options(opts, in_options=False)


# --- accepted values -------------------------------------------------------------

def test_valid_task_options_are_returned_as_copy():
    opts = {"num_cpus": 2, "num_gpus": 0.5, "memory": 1024, "resources": {"disk": 1.5},
            "num_returns": 2, "max_retries": -1, "retry_exceptions": True,
            "name": "my_task", "scheduling_strategy": "SPREAD", "max_calls": 4,
            "accelerator_type": "A100", "label_selector": {"zone": "a"},
            "_metadata": {"k": 1}, "object_store_memory": 10}
    out = validate_task_options(opts, in_options=False)
    assert out == opts
    assert out is not opts and out["resources"] is not opts["resources"]


def test_valid_actor_options():
    out = actor(num_cpus=0, max_restarts=-1, max_task_retries=3, max_concurrency=8,
                concurrency_groups={"io": 2, "compute": 1}, max_pending_calls=-1,
                name="counter", namespace="ns", lifetime="detached", get_if_exists=True)
    assert out["concurrency_groups"] == {"io": 2, "compute": 1}
    assert out["lifetime"] == "detached"


def test_valid_actor_method_options():
    out = validate_actor_method_options({"num_returns": "streaming",
                                         "concurrency_group": "io",
                                         "max_task_retries": 2,
                                         "retry_exceptions": [ValueError]})
    assert out["num_returns"] == "streaming"
    assert out["retry_exceptions"] == (ValueError,)


@pytest.mark.parametrize("value", [0, 3, "streaming", "dynamic"])
def test_num_returns_accepted(value):
    assert task(num_returns=value)["num_returns"] == value


def test_none_means_default_and_is_kept():
    assert task(num_cpus=None, runtime_env=None) == {"num_cpus": None, "runtime_env": None}


@pytest.mark.parametrize("value", [0.5, 0.0001, 1, 2, 4.0])
def test_num_gpus_accepted(value):
    assert task(num_gpus=value)["num_gpus"] == value


def test_retry_exceptions_list_normalized_to_tuple():
    out = task(retry_exceptions=[ValueError, KeyError])
    assert out["retry_exceptions"] == (ValueError, KeyError)


def test_strategy_objects_accepted():
    for strategy in (NodeAffinitySchedulingStrategy("ab12", soft=True),
                     PlacementGroupSchedulingStrategy(object()),
                     NodeLabelSchedulingStrategy({"zone": "a"})):
        assert task(scheduling_strategy=strategy)["scheduling_strategy"] is strategy


def test_legacy_placement_group_options_accepted():
    pg = object()
    out = actor(placement_group=pg, placement_group_bundle_index=0,
                placement_group_capture_child_tasks=True)
    assert out["placement_group"] is pg


# --- rejected values: messages name the option and the value --------------------

@pytest.mark.parametrize("name,value,exc", [
    ("num_cpus", -1, ValueError),
    ("num_cpus", "2", TypeError),
    ("num_cpus", True, TypeError),
    ("num_cpus", float("nan"), ValueError),
    ("num_gpus", 1.5, ValueError),
    ("num_gpus", 0.00001, ValueError),
    ("memory", -5, ValueError),
    ("object_store_memory", "lots", TypeError),
    ("num_returns", -1, ValueError),
    ("num_returns", "many", ValueError),
    ("num_returns", 1.0, TypeError),
    ("max_retries", -2, ValueError),
    ("max_retries", 1.5, TypeError),
    ("retry_exceptions", "yes", TypeError),
    ("retry_exceptions", [ValueError, "KeyError"], TypeError),
    ("name", "", ValueError),
    ("name", 5, TypeError),
    ("accelerator_type", 100, TypeError),
    ("scheduling_strategy", "spread", ValueError),
    ("scheduling_strategy", 3, TypeError),
    ("label_selector", {"zone": 1}, TypeError),
    ("_metadata", [1], TypeError),
    ("max_calls", -1, ValueError),
])
def test_bad_task_values(name, value, exc):
    with pytest.raises(exc) as info:
        task(**{name: value})
    msg = str(info.value)
    assert repr(name) in msg
    assert repr(value) in msg
    assert "must be" in msg


@pytest.mark.parametrize("name,value,exc", [
    ("max_restarts", -2, ValueError),
    ("max_task_retries", "3", TypeError),
    ("max_concurrency", 0, ValueError),
    ("max_pending_calls", -3, ValueError),
    ("lifetime", "forever", ValueError),
    ("get_if_exists", "yes", TypeError),
    ("namespace", "", ValueError),
    ("concurrency_groups", ["io"], TypeError),
])
def test_bad_actor_values(name, value, exc):
    with pytest.raises(exc) as info:
        validate_actor_options({"name": "a", name: value}, in_options=False)
    assert repr(name) in str(info.value) and repr(value) in str(info.value)


def test_bad_concurrency_group_limit_names_the_group():
    with pytest.raises(ValueError, match="concurrency_groups\\['io'\\]"):
        actor(concurrency_groups={"io": 0})


def test_resources_cannot_hold_cpu_or_gpu():
    with pytest.raises(ValueError, match="num_cpus"):
        task(resources={"CPU": 2})
    with pytest.raises(ValueError, match="num_gpus"):
        task(resources={"GPU": 1})


def test_resources_values_checked():
    with pytest.raises(ValueError, match="custom"):
        task(resources={"custom": -1})
    with pytest.raises(TypeError):
        task(resources={"custom": "1"})
    with pytest.raises(TypeError):
        task(resources=[("custom", 1)])
    assert task(resources={"custom": 0.25})["resources"] == {"custom": 0.25}


def test_fractional_precision_limit():
    with pytest.raises(ValueError, match="0.0001"):
        task(num_cpus=0.12345)
    assert task(num_cpus=0.1)["num_cpus"] == 0.1


# --- option names ---------------------------------------------------------------

def test_typo_suggests_closest_option():
    with pytest.raises(ValueError, match="Did you mean 'num_cpus'"):
        task(num_cpu=1)
    with pytest.raises(ValueError, match="Did you mean 'max_restarts'"):
        actor(max_restart=1)
    with pytest.raises(ValueError, match="Did you mean 'concurrency_group'"):
        validate_actor_method_options({"concurency_group": "io"})


def test_option_of_other_kind_is_explained():
    with pytest.raises(ValueError, match="only valid for actors"):
        task(max_restarts=1)
    with pytest.raises(ValueError, match="only valid for tasks"):
        actor(max_retries=1)
    with pytest.raises(ValueError, match="'num_cpus'"):
        validate_actor_method_options({"num_cpus": 1})


def test_unknown_option_without_close_match():
    with pytest.raises(ValueError) as info:
        task(zzzz=1)
    assert "'zzzz'" in str(info.value) and "Did you mean" not in str(info.value)


def test_option_name_sets_match_spec():
    assert "max_calls" in TASK_OPTION_NAMES and "max_calls" not in ACTOR_OPTION_NAMES
    assert "concurrency_groups" in ACTOR_OPTION_NAMES
    assert "concurrency_groups" not in TASK_OPTION_NAMES
    assert "num_cpus" not in ACTOR_METHOD_OPTION_NAMES
    assert {"num_returns", "concurrency_group", "max_task_retries", "retry_exceptions",
            "name", "_metadata"} == ACTOR_METHOD_OPTION_NAMES


# --- cross-option rules -----------------------------------------------------------

def test_max_calls_not_allowed_in_options_call():
    assert task(max_calls=2)["max_calls"] == 2
    with pytest.raises(ValueError, match="max_calls"):
        validate_task_options({"max_calls": 2}, in_options=True)


def test_concurrency_groups_not_allowed_in_options_call():
    with pytest.raises(ValueError, match="concurrency_groups"):
        validate_actor_options({"concurrency_groups": {"io": 1}}, in_options=True)


def test_get_if_exists_requires_name():
    with pytest.raises(ValueError, match="name"):
        actor(get_if_exists=True)
    assert actor(get_if_exists=False) == {"get_if_exists": False}
    # The name may come from the @remote defaults being overridden.
    out = validate_actor_options({"get_if_exists": True}, in_options=True,
                                 defaults={"name": "counter"})
    assert out == {"get_if_exists": True}


def test_placement_group_and_strategy_conflict():
    with pytest.raises(ValueError, match="scheduling_strategy"):
        task(placement_group=object(), scheduling_strategy="SPREAD")
    assert task(placement_group="default", scheduling_strategy="SPREAD")


def test_non_dict_options_rejected():
    with pytest.raises(TypeError):
        validate_task_options([("num_cpus", 1)], in_options=False)


# --- defaults ------------------------------------------------------------------------

def test_task_defaults_match_ray():
    assert TASK_DEFAULTS["num_cpus"] == 1 and TASK_DEFAULTS["num_gpus"] == 0
    assert TASK_DEFAULTS["num_returns"] == 1 and TASK_DEFAULTS["max_retries"] == 3
    assert TASK_DEFAULTS["retry_exceptions"] is False
    assert set(TASK_DEFAULTS) == TASK_OPTION_NAMES


def test_actor_defaults_match_ray():
    assert ACTOR_DEFAULTS["num_cpus"] is None
    assert ACTOR_DEFAULTS["max_restarts"] == 0 and ACTOR_DEFAULTS["max_task_retries"] == 0
    assert ACTOR_DEFAULTS["max_concurrency"] is None and ACTOR_DEFAULTS["lifetime"] is None
    assert set(ACTOR_DEFAULTS) == ACTOR_OPTION_NAMES


def test_defaults_are_read_only():
    with pytest.raises(TypeError):
        TASK_DEFAULTS["num_cpus"] = 2  # type: ignore[index]


def test_resolve_actor_cpus():
    assert resolve_actor_cpus({}) == (1, 0)
    assert resolve_actor_cpus(dict(ACTOR_DEFAULTS)) == (1, 0)
    assert resolve_actor_cpus({"num_cpus": 2}) == (2, 2)
    assert resolve_actor_cpus({"num_cpus": 0}) == (0, 0)
    assert resolve_actor_cpus({"num_gpus": 1}) == (1, 1)
    assert resolve_actor_cpus({"resources": {"custom": 1}}) == (1, 1)
    assert resolve_actor_cpus({"memory": 10**9}) == (1, 0)


def test_default_max_concurrency():
    assert default_max_concurrency(is_async=False) == 1
    assert default_max_concurrency(is_async=True) == 1000


# --- runtime_env ---------------------------------------------------------------------

def test_runtime_env_supported_fields(tmp_path):
    mod = tmp_path / "mod.py"
    mod.write_text("X = 1\n")
    env = {"env_vars": {"A": "1"}, "working_dir": str(tmp_path),
           "py_modules": [str(mod), str(tmp_path)], "config": {"setup_timeout_seconds": 60}}
    out = validate_runtime_env(env)
    assert out == env
    assert out["env_vars"] is not env["env_vars"]


def test_runtime_env_relative_paths_made_absolute(tmp_path, monkeypatch):
    (tmp_path / "sub").mkdir()
    monkeypatch.chdir(tmp_path)
    out = validate_runtime_env({"working_dir": "sub", "py_modules": ["sub"]})
    assert out["working_dir"] == os.path.join(str(tmp_path), "sub")
    assert out["py_modules"] == [os.path.join(str(tmp_path), "sub")]


def test_runtime_env_module_object_in_py_modules():
    out = validate_runtime_env({"py_modules": [pytest]})
    assert os.path.exists(out["py_modules"][0])


@pytest.mark.parametrize("field", ["pip", "conda", "uv", "container", "image_uri"])
def test_runtime_env_install_fields_rejected(field):
    with pytest.raises(ValueError) as info:
        validate_runtime_env({field: ["requests"]})
    msg = str(info.value)
    assert repr(field) in msg and "env_vars" in msg and "working_dir" in msg


def test_runtime_env_unknown_field_suggests():
    with pytest.raises(ValueError, match="Did you mean 'env_vars'"):
        validate_runtime_env({"env_var": {"A": "1"}})


def test_runtime_env_env_var_values_must_be_str():
    with pytest.raises(TypeError, match="'A'.*str"):
        validate_runtime_env({"env_vars": {"A": 1}})
    with pytest.raises(TypeError):
        validate_runtime_env({"env_vars": ["A=1"]})


def test_runtime_env_missing_paths(tmp_path):
    with pytest.raises(ValueError, match="working_dir"):
        validate_runtime_env({"working_dir": str(tmp_path / "missing")})
    with pytest.raises(ValueError, match="py_modules"):
        validate_runtime_env({"py_modules": [str(tmp_path / "missing.py")]})
    with pytest.raises(TypeError, match="py_modules"):
        validate_runtime_env({"py_modules": str(tmp_path)})
    with pytest.raises(ValueError, match="remote URIs"):
        validate_runtime_env({"working_dir": "s3://bucket/dir"})


def test_runtime_env_validated_through_options():
    with pytest.raises(ValueError, match="pip"):
        task(runtime_env={"pip": ["x"]})
    with pytest.raises(TypeError, match="runtime_env"):
        actor(runtime_env="env")
    assert validate_runtime_env(None) == {}


def test_merge_runtime_envs():
    parent = {"env_vars": {"A": "p", "B": "p"}, "working_dir": "/p", "config": {"x": 1}}
    child = {"env_vars": {"B": "c", "C": "c"}, "working_dir": "/c"}
    merged = merge_runtime_envs(parent, child)
    assert merged == {"env_vars": {"A": "p", "B": "c", "C": "c"}, "working_dir": "/c",
                      "config": {"x": 1}}
    assert parent["env_vars"] == {"A": "p", "B": "p"}  # inputs untouched
    assert merge_runtime_envs(None, None) is None
    assert merge_runtime_envs(None, child) == child
    assert merge_runtime_envs(parent, None) == parent
    assert merge_runtime_envs(parent, {"working_dir": None})["working_dir"] == "/p"


# --- the decorator -----------------------------------------------------------------

def test_remote_with_empty_parentheses_is_refused_as_in_ray():
    import juno

    for target in (lambda: None, type("Plain", (), {})):
        with pytest.raises(TypeError, match=r"@remote\(\) with empty parentheses is not allowed"):
            juno.remote()(target)
    assert isinstance(juno.remote(type("Plain", (), {})), juno.ActorClass)  # no parentheses: fine

"""``juno.job_config.JobConfig``: a job's settings, passed as ``juno.init(job_config=...)`` (Ray's class).

What maps onto Juno: ``runtime_env`` is the job's default runtime env, ``metadata`` is stored
with the job (``juno list jobs``, the state API), ``code_search_path`` goes on the ``sys.path``
of the job's workers, ``ray_namespace`` is the job's namespace and ``default_actor_lifetime``
applies to actors created without ``lifetime=``. Java options mean nothing here: they are
accepted only when empty.
"""
from __future__ import annotations

import os
from typing import Any

from juno.owner import options as opt

LIFETIMES = ("detached", "non_detached")
# The job's runtime_env carries its code search path to the worker pool (runtime/node/worker_pool.py),
# so the job's workers start with it on sys.path; users can't set this key themselves.
CODE_SEARCH_PATH_KEY = "_code_search_path"


class JobConfig:
    """A job's configuration (Ray's ``ray.job_config.JobConfig``)."""

    def __init__(self, jvm_options: list[str] | None = None, code_search_path: list[str] | None = None,
                 runtime_env: dict | None = None, client_job: bool = False, metadata: dict | None = None,
                 ray_namespace: str | None = None, default_actor_lifetime: str = "non_detached",
                 _client_job: bool = False, _py_driver_sys_path: list[str] | None = None) -> None:
        if jvm_options:
            raise ValueError(f"JobConfig(jvm_options={jvm_options!r}): Juno runs Python workers only, so "
                             "JVM options have nothing to apply to; leave jvm_options empty.")
        if client_job or _client_job:
            raise ValueError("JobConfig(client_job=True): Juno has no Ray Client; connect with "
                             "juno.init(address='host:port') instead.")
        self.jvm_options: list[str] = []
        self.client_job = False
        self.code_search_path = _paths("code_search_path", code_search_path)
        self._py_driver_sys_path = _paths("_py_driver_sys_path", _py_driver_sys_path)
        if metadata is not None and not isinstance(metadata, dict):
            raise TypeError(f"JobConfig(metadata=...) must be a dict, got {type(metadata).__name__}.")
        self.metadata: dict = dict(metadata or {})
        self.ray_namespace: str | None = None
        self.set_ray_namespace(ray_namespace)
        self.set_runtime_env(runtime_env)
        self.set_default_actor_lifetime(default_actor_lifetime)

    def set_metadata(self, key: str, value: str) -> None:
        self.metadata[key] = value

    def set_runtime_env(self, runtime_env: dict | None, validate: bool = False) -> None:
        """The job's default runtime env (checked here: a bad field fails now, not at init)."""
        self.runtime_env = opt.validate_runtime_env(runtime_env)

    def set_ray_namespace(self, ray_namespace: str | None) -> None:
        if ray_namespace is not None and (not isinstance(ray_namespace, str) or not ray_namespace):
            raise ValueError(f"JobConfig(ray_namespace=...) must be a non-empty str, got {ray_namespace!r}.")
        self.ray_namespace = ray_namespace

    def set_default_actor_lifetime(self, default_actor_lifetime: str) -> None:
        if default_actor_lifetime not in LIFETIMES:
            raise ValueError(f"JobConfig(default_actor_lifetime={default_actor_lifetime!r}): "
                             "it must be 'detached' or 'non_detached'.")
        self.default_actor_lifetime = default_actor_lifetime

    @classmethod
    def from_json(cls, job_config_json: dict) -> "JobConfig":
        """A JobConfig from a dict with the constructor's argument names."""
        fields = ("jvm_options", "code_search_path", "runtime_env", "client_job", "metadata", "ray_namespace",
                  "default_actor_lifetime")
        return cls(**{k: job_config_json[k] for k in fields if k in job_config_json})

    def search_path(self) -> list[str]:
        """Directories the job's workers import from: code_search_path, then _py_driver_sys_path."""
        return list(dict.fromkeys(self.code_search_path + self._py_driver_sys_path))

    def __repr__(self) -> str:
        return (f"JobConfig(code_search_path={self.code_search_path!r}, runtime_env={self.runtime_env!r}, "
                f"metadata={self.metadata!r}, ray_namespace={self.ray_namespace!r}, "
                f"default_actor_lifetime={self.default_actor_lifetime!r})")


def _paths(name: str, value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
        raise TypeError(f"JobConfig({name}=...) must be a list of directories, got {value!r}.")
    for item in value:
        if not isinstance(item, (str, os.PathLike)):
            raise TypeError(f"JobConfig({name}=...) entries must be paths, got {item!r}.")
    return [os.path.abspath(os.path.expanduser(os.fspath(p))) for p in value]


def job_runtime_env(job_config: JobConfig | None, runtime_env: dict | None) -> dict | None:
    """The job's default runtime env: init's runtime_env, else the JobConfig's, plus its code search path.

    As in Ray, an argument of init wins over the same setting in the JobConfig.
    """
    if job_config is None:
        return runtime_env
    env = dict(runtime_env if runtime_env is not None else job_config.runtime_env)
    search_path = job_config.search_path()
    if search_path:
        env[CODE_SEARCH_PATH_KEY] = search_path
    return env or None


def public_runtime_env(env: dict | None) -> dict:
    """A runtime env as the user wrote it: without the keys Juno adds for itself."""
    return {k: v for k, v in (env or {}).items() if k != CODE_SEARCH_PATH_KEY}


def default_actor_lifetime(cw, job_id: Any) -> str:
    """The lifetime of an actor that job ``job_id`` creates without ``lifetime=``; asks the GCS once per job."""
    lifetime = cw.job_actor_lifetimes.get(job_id)
    if lifetime is None:
        job = cw.gcs_call("get_job", job_id) if job_id is not None else None
        lifetime = (job or {}).get("default_actor_lifetime") or "non_detached"
        cw.job_actor_lifetimes[job_id] = lifetime
    return lifetime

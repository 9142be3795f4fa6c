"""init() as old Ray scripts call it, on a real cluster: job_config=JobConfig(...), local_mode=,
object_store_memory given as a float."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest
from helpers import wait_for_condition

import juno
from juno import internal_api
from juno.exceptions import JunoWarning
from juno.job_config import JobConfig
from juno.util.state import list_jobs


def test_job_config_sets_namespace_env_search_path_and_metadata(shutdown_only, tmp_path):
    code = tmp_path / "code"
    code.mkdir()
    (code / "job_helpers.py").write_text("ANSWER = 42\n")
    ctx = juno.init(num_cpus=1, object_store_memory=2e8, job_config=JobConfig(
        code_search_path=[str(code)], runtime_env={"env_vars": {"JOB_FLAVOUR": "config"}},
        metadata={"team": "vision"}, ray_namespace="job-config-ns"))
    assert ctx["namespace"] == "job-config-ns" == juno.get_runtime_context().namespace
    assert 190_000_000 < internal_api.store_stats()["capacity"] <= 200_000_000  # whole pages of it

    @juno.remote
    def probe():
        import job_helpers  # found only through the job's code_search_path

        return job_helpers.ANSWER, os.environ.get("JOB_FLAVOUR"), juno.get_runtime_context().runtime_env

    assert juno.get(probe.remote()) == (42, "config", {"env_vars": {"JOB_FLAVOUR": "config"}})
    (job,) = [j for j in list_jobs(detail=True) if j["job_id"] == juno.get_runtime_context().get_job_id()]
    assert job["metadata"] == {"team": "vision"}
    assert job["runtime_env"] == {"env_vars": {"JOB_FLAVOUR": "config"}}


def test_local_mode_runs_a_normal_local_cluster_with_a_warning(shutdown_only):
    with pytest.warns(JunoWarning, match="local_mode=True"):
        juno.init(num_cpus=1, local_mode=True)

    @juno.remote
    def where():
        return os.getpid()

    assert juno.get(where.remote()) != os.getpid()


DRIVER = """\
import juno
from juno.job_config import JobConfig

@juno.remote
class Keeper:
    def ping(self):
        return "pong"

@juno.remote
def make_inner():
    # Created by a task of the job: the job's default lifetime applies too.
    inner = Keeper.options(name="inner", namespace="lifetimes").remote()
    return juno.get(inner.ping.remote())

juno.init(address={address!r}, job_config=JobConfig(default_actor_lifetime="detached", ray_namespace="lifetimes"))
outer = Keeper.options(name="outer").remote()
gone = Keeper.options(name="gone", lifetime="non_detached").remote()
print(juno.get([outer.ping.remote(), gone.ping.remote(), make_inner.remote()]), flush=True)
"""


def _alive(name: str) -> bool:
    try:
        return juno.get(juno.get_actor(name, namespace="lifetimes").ping.remote(), timeout=10) == "pong"
    except ValueError:
        return False


def test_default_actor_lifetime_detached_outlives_the_driver(shutdown_only, tmp_path):
    juno.init(num_cpus=3)
    script = tmp_path / "driver.py"
    script.write_text(textwrap.dedent(DRIVER.format(address=juno.get_runtime_context().gcs_address)))
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=90)
    assert out.returncode == 0, out.stderr
    assert "['pong', 'pong', 'pong']" in out.stdout
    wait_for_condition(lambda: not _alive("gone"), timeout=20)  # lifetime= given: it went with its job
    assert _alive("outer") and _alive("inner")
    for name in ("outer", "inner"):
        juno.kill(juno.get_actor(name, namespace="lifetimes"))

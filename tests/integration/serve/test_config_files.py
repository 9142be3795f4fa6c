"""`juno serve deploy config.yaml` and `juno serve build` against a real cluster and real HTTP on loopback:
two applications from one file (one a builder with args), the file's num_replicas and user_config, a
changed file redeployed (user_config reconfigures the same replicas, an application left out is
deleted), and build's output deployed as it is. The CLI runs as a real process, in a folder holding the
user's module, as a user would run it.

One cluster and one Serve (on a free port) for the module; the tests run in order, each starting from
what the one before deployed.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import urllib.request

import pytest

import juno
from juno import serve
from juno.owner.core_worker import global_worker

JUNO_SHARED_INIT = {"num_cpus": 2}

USER_MODULE = """\
import os
from juno import serve

@serve.deployment(ray_actor_options={"num_cpus": 0}, health_check_period_s=0.5)
class Adder:
    def __init__(self):
        self.increment = 0

    def reconfigure(self, config):
        self.increment = config["increment"]

    async def __call__(self, request):
        return {"sum": int(request.query_params.get("x", "0")) + self.increment,
                "replica": serve.get_replica_context().replica_id}

@serve.deployment(ray_actor_options={"num_cpus": 0})
class Greeter:
    def __init__(self, greeting):
        self.greeting = greeting

    async def __call__(self, request):
        return self.greeting + ", " + request.query_params.get("name", "you")

adder = Adder.bind()

def greeter(args):
    return Greeter.bind(args["greeting"])
"""

TWO_APPS = """\
proxy_location: HeadOnly
http_options: {port: 0}
applications:
  - name: adder
    route_prefix: /add
    import_path: cfg_user_app:adder
    deployments:
      - name: Adder
        num_replicas: 2
        user_config: {increment: 10}
  - name: greeter
    route_prefix: /greet
    import_path: cfg_user_app.greeter
    args: {greeting: Hello}
"""


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """Where the user's module and config files live; the CLI runs there."""
    path = tmp_path_factory.mktemp("serve_config")
    (path / "cfg_user_app.py").write_text(USER_MODULE)
    return path


@pytest.fixture
def started(cluster):
    """Serve on a free port (the files ask for port 0 too; a running Serve keeps its options)."""
    serve.start(http_options={"port": 0}, proxy_location="HeadOnly")
    return serve.get_http_address()


def run_cli(folder, *args: str, address: bool = True) -> subprocess.CompletedProcess:
    extra = ["--address", global_worker().gcs_address.replace("tcp://", "")] if address else []
    env = {k: v for k, v in os.environ.items() if k not in ("JUNO_ADDRESS", "RAY_ADDRESS")}
    return subprocess.run([sys.executable, "-m", "juno", "serve", *args, *extra], env=env, cwd=folder,
                          capture_output=True, text=True, timeout=120)


def get(base: str, path: str):
    with urllib.request.urlopen(base + path, timeout=30) as response:
        body = response.read().decode()
    return json.loads(body) if response.headers.get("content-type", "").startswith("application/json") else body


def replica_ids(app: str, deployment: str) -> set[str]:
    controller = juno.get_actor("SERVE_CONTROLLER", namespace="serve")
    return {r["replica_id"] for r in juno.get(controller.get_replicas.remote(app, deployment), timeout=30)["replicas"]}


def test_a_config_with_two_applications_deploys_both_with_the_files_options(folder, cluster):
    assert serve.status().applications == {}
    (folder / "two.yaml").write_text(TWO_APPS)
    r = run_cli(folder, "deploy", "two.yaml")  # Serve is not running: the file's options start it
    assert r.returncode == 0, r.stderr
    started = serve.get_http_address()
    assert juno.get(juno.get_actor("SERVE_CONTROLLER", namespace="serve").get_http_options.remote(),
                    timeout=30) == {**serve.HTTPOptions(port=0).to_dict(), "proxy_location": "HeadOnly"}
    assert "Deployed application 'adder' at route '/add': RUNNING." in r.stdout
    assert "Deployed application 'greeter' at route '/greet': RUNNING." in r.stdout
    apps = serve.status().applications
    assert apps["adder"].deployments["Adder"].replica_states == {"RUNNING": 2}  # the file's num_replicas
    assert get(started, "/add?x=1")["sum"] == 11  # the file's user_config
    assert get(started, "/greet?name=Ada") == "Hello, Ada"  # the builder got the file's args


def test_a_changed_config_reconfigures_in_place_and_deletes_what_it_leaves_out(folder, started):
    before = replica_ids("adder", "Adder")
    assert len(before) == 2
    changed = TWO_APPS.replace("increment: 10", "increment: 100")
    changed = changed[:changed.index("  - name: greeter")]
    (folder / "changed.yaml").write_text(changed)
    r = run_cli(folder, "deploy", "changed.yaml")
    assert r.returncode == 0, r.stderr
    assert "Deleted application 'greeter' (not in the config)." in r.stdout
    assert set(serve.status().applications) == {"adder"}
    assert get(started, "/add?x=1")["sum"] == 101
    assert replica_ids("adder", "Adder") == before  # user_config alone: the same replicas, reconfigured


def test_build_writes_a_config_that_deploys_as_it_is(folder, started):
    r = run_cli(folder, "build", "cfg_user_app:adder", "-o", "built.yaml", address=False)
    assert r.returncode == 0, r.stderr
    text = (folder / "built.yaml").read_text()
    assert "import_path: cfg_user_app:adder" in text and "- name: Adder" in text
    r = run_cli(folder, "deploy", "built.yaml")
    assert r.returncode == 0, r.stderr
    # The file asks for port 8000; the running Serve (port 0) keeps its own and the CLI says so.
    assert "note: Serve is already running with other options than the file's {'port': 8000" in r.stdout
    assert "Deleted application 'adder' (not in the config)." in r.stdout
    status = serve.status().applications
    assert set(status) == {"app1"} and status["app1"].deployments["Adder"].replica_states == {"RUNNING": 1}
    assert get(started, "/?x=1")["sum"] == 1  # the code's options: no user_config


def test_deploy_of_module_colon_app_still_works_beside_a_config(folder, started):
    r = run_cli(folder, "deploy", "cfg_user_app:adder", "--name", "mod", "--route-prefix", "/mod")
    assert r.returncode == 0, r.stderr
    assert "Deployed application 'mod' at route '/mod'" in r.stdout
    assert get(started, "/mod?x=2")["sum"] == 2 and set(serve.status().applications) == {"app1", "mod"}


def test_mistakes_exit_1_with_a_message_before_the_cluster_is_touched(folder):
    (folder / "typo.yaml").write_text(textwrap.dedent("""\
        applications:
          - name: adder
            import_path: cfg_user_app:adder
            deployments: [{name: Addr, num_replicas: 2}]
        """))
    r = run_cli(folder, "deploy", "typo.yaml", address=False)  # fails before it needs a cluster
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert ("typo.yaml: application 'adder': the config sets options of deployment(s) ['Addr'], which the "
            "application does not have; its deployments are ['Adder']") in r.stderr
    r = run_cli(folder, "deploy", "typo.yaml", "--name", "x", address=False)
    assert r.returncode == 2 and "--name and --route-prefix apply to module:app" in r.stderr
    r = run_cli(folder, "build", "cfg_user_app:nope", address=False)
    assert r.returncode == 1 and "module 'cfg_user_app' has no attribute 'nope'" in r.stderr

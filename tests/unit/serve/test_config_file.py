"""Serve config files (juno.serve.config_file), no cluster: parsing and its errors, import paths and
builders, the file's options applied to the graph, and `serve build`'s document read back."""
import json
import textwrap

import pytest

from juno.serve import config_file
from juno.serve.config_file import ConfigFileError, load_config_file, parse_config
from juno.serve.deployment import build_application, graph_deployments

GOOD = """\
proxy_location: HeadOnly
http_options:
  host: 127.0.0.1
  port: 0
  request_timeout_s: 30
applications:
  - name: adder
    route_prefix: /add
    import_path: cfgmod_a:app
    deployments:
      - name: Adder
        num_replicas: 2
        user_config: {increment: 5}
  - name: builder
    route_prefix: null
    import_path: cfgmod_a.build
    args: {greeting: hi}
    runtime_env: {env_vars: {A: "1"}}
"""

MODULE = """\
from juno import serve

@serve.deployment(ray_actor_options={"num_cpus": 0}, max_ongoing_requests=7)
class Adder:
    def __init__(self, inner=None):
        self.inner = inner
    def reconfigure(self, config):
        self.increment = config["increment"]

@serve.deployment(ray_actor_options={"num_cpus": 0, "runtime_env": {"env_vars": {"B": "2"}}},
                  autoscaling_config={"min_replicas": 1, "max_replicas": 3})
class Inner:
    pass

app = Adder.bind(Inner.bind())

def build(args):
    return Adder.options(name="Greeter").bind(args["greeting"])

def not_a_builder(args):
    return 42
"""


@pytest.fixture
def module(tmp_path, monkeypatch):
    """cfgmod_a, importable from the current folder (as a user's module is)."""
    (tmp_path / "cfgmod_a.py").write_text(MODULE)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))  # sys.path is restored afterwards
    monkeypatch.delitem(__import__("sys").modules, "cfgmod_a", raising=False)
    yield tmp_path
    __import__("sys").modules.pop("cfgmod_a", None)


def write(tmp_path, text, name="serve.yaml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return str(path)


def test_a_good_file_parses_to_rays_fields(tmp_path):
    config = load_config_file(write(tmp_path, GOOD))
    assert config.proxy_location == "HeadOnly"
    assert config.http_options == {"host": "127.0.0.1", "port": 0, "request_timeout_s": 30}
    adder, builder = config.applications
    assert (adder.name, adder.route_prefix, adder.import_path) == ("adder", "/add", "cfgmod_a:app")
    assert adder.deployments[0].name == "Adder"
    assert adder.deployments[0].options == {"num_replicas": 2, "user_config": {"increment": 5}}
    assert builder.route_prefix is None and builder.args == {"greeting": "hi"} and builder.deployments == []
    assert config.notes == []


def test_json_works_too_and_defaults_are_rays(tmp_path):
    config = load_config_file(write(tmp_path, json.dumps({"applications": [{"import_path": "m:app"}]}), "c.json"))
    app = config.applications[0]
    assert (app.name, app.route_prefix, app.args, app.runtime_env) == ("default", "/", {}, {})
    assert config.http_options is None and config.proxy_location is None


@pytest.mark.parametrize("document, message", [
    ({"applications": [], "http_port": 1}, r"the top level has unknown field\(s\) \['http_port'\]; allowed: "
                                           r"\['proxy_location', 'http_options', 'applications'"),
    ({"applications": [{"import_path": "m:a", "routeprefix": "/x"}]},
     r"application 'default' has unknown field\(s\) \['routeprefix'\]; allowed: \['name', 'route_prefix'"),
    ({"applications": [{"import_path": "m:a", "deployments": [{"name": "D", "replicas": 2}]}]},
     r"application 'default', deployment 'D' has unknown field\(s\) \['replicas'\]; allowed: \['name', "
     r"'num_replicas'"),
    ({"applications": [{"import_path": "m:a", "deployments": [{"name": "D", "num_replicas": -1}]}]},
     r"application 'default', deployment 'D': num_replicas must be an integer >= 0, got -1"),
    ({"applications": [{"import_path": "m:a", "deployments": [{"name": "D", "num_replicas": 2,
                                                              "autoscaling_config": {"max_replicas": 2}}]}]},
     "num_replicas and autoscaling_config cannot both be set"),
    ({"applications": [{"import_path": "m:a", "deployments": [{"num_replicas": 2}]}]},
     r"deployments\[0\] must be a mapping with a name"),
    ({"applications": [{"name": "x"}]}, "application 'x': import_path is required"),
    ({"applications": [{"import_path": "nodots"}]}, "must be module:attribute or module.attribute"),
    ({"applications": [{"import_path": "m:a", "route_prefix": "api"}]}, "route_prefix must start with '/'"),
    ({"applications": [{"import_path": "m:a", "name": "a"}, {"import_path": "m:b", "name": "a",
                                                             "route_prefix": "/b"}]},
     r"duplicate application name\(s\) \['a'\]"),
    ({"applications": [{"import_path": "m:a", "name": "a"}, {"import_path": "m:b", "name": "b"}]},
     r"duplicate route_prefix\(s\) \['/'\]"),
    ({"applications": [{"import_path": "m:a", "deployments": [{"name": "D"}, {"name": "D"}]}]},
     r"duplicate deployment name\(s\) \['D'\]"),
    ({"applications": [], "http_options": {"prot": 1}}, r"http_options has unknown key\(s\) \['prot'\]"),
    ({"applications": [], "proxy_location": "Everywhere"}, "proxy_location must be one of"),
    ({"applications": {"a": 1}}, "'applications' must be a list"),
    ({"proxy_location": "EveryNode"}, "'applications' is missing"),
    (None, "a Serve config is a mapping .* got nothing"),
])
def test_bad_documents_are_errors_naming_the_place_and_what_is_allowed(document, message):
    with pytest.raises(ConfigFileError, match=message):
        parse_config(document, "c.yaml")


def test_syntax_errors_give_the_line(tmp_path):
    with pytest.raises(ConfigFileError, match=r"bad\.yaml: line 3, column \d+: invalid YAML"):
        load_config_file(write(tmp_path, "applications:\n  - name: a\n   import_path: [\n", "bad.yaml"))
    with pytest.raises(ConfigFileError, match=r"bad\.json: line 2, column \d+: invalid JSON"):
        load_config_file(write(tmp_path, '{"applications":\n  [,]}', "bad.json"))
    with pytest.raises(ConfigFileError, match="cannot read the Serve config file .*missing.yaml"):
        load_config_file(str(tmp_path / "missing.yaml"))


def test_fields_juno_does_not_act_on_are_noted_not_fatal():
    config = parse_config({"applications": [{"import_path": "m:a", "logging_config": {"log_level": "INFO"}}],
                           "grpc_options": {"port": 9000}, "target_capacity": None})
    assert config.notes == ["grpc_options is not supported by Juno Serve yet and is ignored",
                            "application 'default': logging_config is not supported by Juno Serve yet and is ignored"]


@pytest.mark.parametrize("path, expected", [("pkg.mod:app.inner", ("pkg.mod", "app.inner")),
                                            ("pkg.mod.app", ("pkg.mod", "app")), ("m:app", ("m", "app"))])
def test_import_paths_take_both_of_rays_spellings(path, expected):
    assert config_file.split_import_path(path) == expected


@pytest.mark.parametrize("bad", ["app", ":app", "mod:", "", "mod."])
def test_a_bad_import_path_says_what_is_expected(bad):
    with pytest.raises(ValueError, match="module:attribute or module.attribute"):
        config_file.split_import_path(bad)


def test_the_files_options_override_the_graphs(module, tmp_path):
    config = load_config_file(write(tmp_path, GOOD))
    apps = config_file.load_applications(config)
    ingress, infos = build_application(apps["adder"], "adder")
    by_name = {i["name"]: i["config"] for i in infos}
    assert ingress == "Adder"
    assert by_name["Adder"]["num_replicas"] == 2 and by_name["Adder"]["user_config"] == {"increment": 5}
    assert by_name["Adder"]["max_ongoing_requests"] == 7  # not in the file: the code's
    assert by_name["Inner"]["autoscaling_config"]["max_replicas"] == 3  # not named in the file: unchanged
    # The builder got its args; the application's runtime_env reaches every deployment.
    ingress, infos = build_application(apps["builder"], "builder")
    assert ingress == "Greeter" and infos[0]["init_args"] == ("hi",)
    assert infos[0]["config"]["ray_actor_options"] == {"num_cpus": 0, "runtime_env": {"env_vars": {"A": "1"}}}


def test_num_replicas_in_the_file_replaces_autoscaling_in_code(module):
    config = parse_config({"applications": [{"import_path": "cfgmod_a:app", "deployments": [
        {"name": "Inner", "num_replicas": 4, "ray_actor_options": {"num_cpus": 0.5}}],
        "runtime_env": {"env_vars": {"A": "1"}}}]})
    _, infos = build_application(config_file.load_applications(config)["default"], "default")
    inner = {i["name"]: i["config"] for i in infos}["Inner"]
    assert inner["num_replicas"] == 4 and inner["autoscaling_config"] is None
    # The file's ray_actor_options replace the code's; the application's runtime_env goes under them.
    assert inner["ray_actor_options"] == {"num_cpus": 0.5, "runtime_env": {"env_vars": {"A": "1"}}}


def test_runtime_envs_merge_with_the_deployments_winning():
    merged = config_file._merge_runtime_envs({"env_vars": {"A": "1", "B": "app"}, "working_dir": "/w"},
                                             {"env_vars": {"B": "2"}})
    assert merged == {"env_vars": {"A": "1", "B": "2"}, "working_dir": "/w"}


def test_a_deployment_the_application_lacks_is_an_error_listing_its_deployments(module):
    config = parse_config({"applications": [{"import_path": "cfgmod_a:app", "deployments": [{"name": "Adderr"}]}]})
    with pytest.raises(ConfigFileError, match=r"application 'default': the config sets options of deployment\(s\) "
                                              r"\['Adderr'\], which the application does not have; its "
                                              r"deployments are \['Adder', 'Inner'\]"):
        config_file.load_applications(config)


@pytest.mark.parametrize("path, args, message", [
    ("no_such_module_xyz:app", {}, "import_path 'no_such_module_xyz:app': could not import module "
                                   "'no_such_module_xyz'"),
    ("cfgmod_a:nope", {}, "import_path 'cfgmod_a:nope': module 'cfgmod_a' has no attribute 'nope'"),
    ("cfgmod_a:Adder", {}, "names the deployment 'Adder', not an application: bind it first"),
    ("cfgmod_a:app", {"a": 1}, "names a bound application, which takes no args"),
    ("cfgmod_a:not_a_builder", {}, r"the application builder not_a_builder returned 42 \(int\), not an Application"),
    ("cfgmod_a:build", {}, r"the application builder build\(args\) raised KeyError: 'greeting'"),
    ("cfgmod_a:MODULE_CONSTANT", {}, "has no attribute"),
])
def test_import_errors_name_the_path_and_the_problem(module, path, args, message):
    with pytest.raises(ConfigFileError, match=message):
        config_file.application_from(config_file.import_attr(path), args, path)


def test_a_module_that_raises_on_import_is_reported(module):
    (module / "cfgmod_broken.py").write_text("raise RuntimeError('needs a GPU')\n")
    with pytest.raises(ConfigFileError, match="importing module 'cfgmod_broken' raised RuntimeError: needs a GPU"):
        config_file.import_attr("cfgmod_broken:app")


def test_build_writes_every_deployment_and_reads_back_the_same(module, tmp_path):
    document = config_file.build_config(["cfgmod_a:app"])
    assert [a["name"] for a in document["applications"]] == ["app1"]
    assert document["applications"][0]["route_prefix"] == "/"
    adder, inner = document["applications"][0]["deployments"]
    assert adder == {"name": "Adder", "num_replicas": 1, "max_ongoing_requests": 7, "max_queued_requests": -1,
                     "ray_actor_options": {"num_cpus": 0}, "health_check_period_s": 10.0,
                     "health_check_timeout_s": 30.0, "graceful_shutdown_wait_loop_s": 2.0,
                     "graceful_shutdown_timeout_s": 20.0}
    assert "num_replicas" not in inner and inner["autoscaling_config"]["max_replicas"] == 3
    path = write(tmp_path, config_file.dump_config(document, header="written by a test"), "built.yaml")
    assert open(path).read().startswith("# written by a test\nproxy_location: EveryNode\n")
    config = load_config_file(path)
    rebuilt = config_file.load_applications(config)["app1"]
    original = {name: d.config for name, d in graph_deployments(config_file.import_attr("cfgmod_a:app")).items()}
    assert {name: d.config for name, d in graph_deployments(rebuilt).items()} == original
    two = config_file.build_config(["cfgmod_a:app", "cfgmod_a.app"])
    assert [(a["name"], a["route_prefix"]) for a in two["applications"]] == [("app1", "/app1"), ("app2", "/app2")]


def test_a_user_config_yaml_cannot_hold_is_a_clear_error():
    with pytest.raises(ConfigFileError, match="user_config and the other options must be plain data"):
        config_file.dump_config({"applications": [{"deployments": [{"user_config": object()}]}]})


def test_the_code_version_is_the_same_for_the_same_code_and_file_and_moves_with_either(module):
    """What lets a redeploy of a changed user_config reconfigure the live replicas instead of rolling them
    (a class pickled by value differs from process to process, so its bytes cannot be the version)."""
    app = parse_config({"applications": [{"import_path": "cfgmod_a:app"}]}).applications[0]
    config_file.import_attr(app.import_path)
    first = config_file.code_version(app)
    assert config_file.code_version(app) == first
    _, infos = build_application(config_file.load_applications(
        parse_config({"applications": [{"import_path": "cfgmod_a:app"}]}))["default"], "default")
    again = config_file.load_applications(parse_config({"applications": [
        {"import_path": "cfgmod_a:app", "deployments": [{"name": "Adder", "user_config": {"increment": 1}}]}]}))
    _, infos_again = build_application(again["default"], "default")
    assert [i["code_version"] for i in infos] == [i["code_version"] for i in infos_again]
    app.args = {"x": 1}
    assert config_file.code_version(app) != first
    app.args = {}
    (module / "cfgmod_a.py").write_text(MODULE + "\nCHANGED = True\n")
    assert config_file.code_version(app) != first


def test_a_package_versions_with_every_file_in_it(module):
    (module / "cfgpkg" / "models").mkdir(parents=True)
    (module / "cfgpkg" / "__init__.py").write_text("from cfgmod_a import app\n")
    (module / "cfgpkg" / "models" / "net.py").write_text("LAYERS = 2\n")
    app = parse_config({"applications": [{"import_path": "cfgpkg:app"}]}).applications[0]
    config_file.import_attr(app.import_path)
    try:
        first = config_file.code_version(app)
        (module / "cfgpkg" / "models" / "net.py").write_text("LAYERS = 3\n")  # a file the app never imported
        assert config_file.code_version(app) != first
    finally:
        __import__("sys").modules.pop("cfgpkg", None)

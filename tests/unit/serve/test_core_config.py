"""Serve's config checks and the deployment API, without a cluster."""
import pytest

from juno import serve
from juno.serve.config import AutoscalingConfig, DeploymentConfig, HTTPOptions, deployment_config_from_options
from juno.serve.deployment import build_application
from juno.serve.handle import DeploymentHandle


@serve.deployment
class Echo:
    def __call__(self, x):
        return x


@serve.deployment(num_replicas=2, max_ongoing_requests=7, user_config={"k": 1})
def double(x):
    return 2 * x


def test_decorator_bare_and_with_options():
    assert Echo.name == "Echo" and Echo.num_replicas == 1 and Echo.max_ongoing_requests == 5
    assert Echo.ray_actor_options == {"num_cpus": 1}
    assert double.name == "double" and double.num_replicas == 2 and double.user_config == {"k": 1}
    renamed = Echo.options(name="Other", num_replicas=3)
    assert renamed.name == "Other" and renamed.num_replicas == 3 and Echo.num_replicas == 1


def test_calling_a_deployment_directly_says_to_bind():
    with pytest.raises(RuntimeError, match=r"\.bind"):
        Echo()


@pytest.mark.parametrize("options, match", [
    ({"num_replicas": -1}, "num_replicas"),
    ({"num_replicas": "many"}, "num_replicas"),
    ({"max_ongoing_requests": 0}, "max_ongoing_requests"),
    ({"max_queued_requests": -2}, "max_queued_requests"),
    ({"health_check_period_s": 0}, "health_check_period_s"),
    ({"graceful_shutdown_timeout_s": -1}, "graceful_shutdown_timeout_s"),
    ({"ray_actor_options": {"num_cpu": 1}}, "num_cpu"),
    ({"ray_actor_options": {"num_gpus": -1}}, "num_gpus"),
    ({"autoscaling_config": {"min_replicas": 3, "max_replicas": 2}}, "min_replicas"),
    ({"autoscaling_config": {"max_replica": 2}}, "max_replica"),
    ({"num_replicas": 2, "autoscaling_config": {"max_replicas": 3}}, "cannot both"),
    ({"placement_group_strategy": "TIGHT"}, "placement_group_strategy"),
    ({"placement_group_bundles": []}, "placement_group_bundles"),
])
def test_bad_options_name_the_field(options, match):
    with pytest.raises((ValueError, TypeError), match=match):
        serve.deployment(**options)(lambda x: x)


def test_unknown_option_is_a_type_error():
    with pytest.raises(TypeError, match="num_replica"):
        serve.deployment(num_replica=2)


def test_auto_replicas_and_deprecated_max_concurrent_queries():
    cfg = deployment_config_from_options({"num_replicas": "auto"})
    assert cfg.autoscaling_config["min_replicas"] == 1 and cfg.autoscaling_config["max_replicas"] == 100
    assert cfg.autoscaling_config["target_ongoing_requests"] == 2
    with pytest.warns(DeprecationWarning):
        cfg = deployment_config_from_options({"max_concurrent_queries": 9})
    assert cfg.max_ongoing_requests == 9


def test_autoscaling_config_defaults_and_initial_target():
    cfg = AutoscalingConfig()
    assert (cfg.min_replicas, cfg.max_replicas, cfg.upscale_delay_s, cfg.downscale_delay_s) == (1, 1, 30.0, 600.0)
    assert AutoscalingConfig(min_replicas=1, max_replicas=5, initial_replicas=3).initial_target() == 3
    assert DeploymentConfig(autoscaling_config={"min_replicas": 2, "max_replicas": 4}).initial_target() == 2
    with pytest.raises(ValueError, match="initial_replicas"):
        AutoscalingConfig(min_replicas=1, max_replicas=2, initial_replicas=5)


def test_http_options():
    assert HTTPOptions.from_value(None).host == "127.0.0.1"
    assert HTTPOptions.from_value({"port": 0}).port == 0
    with pytest.raises(ValueError, match="port"):
        HTTPOptions(port=70000)
    with pytest.raises(ValueError, match="hots"):
        HTTPOptions.from_value({"hots": "x"})


def test_build_application_turns_nested_apps_into_handles():
    @serve.deployment
    class Model:
        def __init__(self, scale):
            self.scale = scale

    @serve.deployment
    class Ingress:
        def __init__(self, models, extra):
            self.models = models

    app = Ingress.bind([Model.bind(1), Model.options(name="Model2").bind(2)], extra={"m": Model.options(
        name="Model3").bind(3)})
    ingress, infos = build_application(app, "myapp")
    assert ingress == "Ingress"
    by_name = {i["name"]: i for i in infos}
    assert set(by_name) == {"Ingress", "Model", "Model2", "Model3"}
    models = by_name["Ingress"]["init_args"][0]
    assert all(isinstance(h, DeploymentHandle) for h in models)
    assert [h.deployment_name for h in models] == ["Model", "Model2"] and models[0].app_name == "myapp"
    assert by_name["Ingress"]["init_kwargs"]["extra"]["m"].deployment_name == "Model3"


def test_two_different_deployments_with_one_name_is_an_error():
    @serve.deployment
    class A:
        def __init__(self, *children):
            pass

    with pytest.raises(ValueError, match="two different deployments named 'A'"):
        build_application(A.bind(A.bind()), "app")


def test_the_same_bound_node_twice_is_one_deployment():
    @serve.deployment
    class Leaf:
        pass

    @serve.deployment
    class Root:
        def __init__(self, a, b):
            pass

    leaf = Leaf.bind()
    _, infos = build_application(Root.bind(leaf, leaf), "app")
    assert sorted(i["name"] for i in infos) == ["Leaf", "Root"]


def test_code_version_ignores_light_options_only():
    base = build_application(Echo.bind(), "a")[1][0]["code_version"]
    assert build_application(Echo.options(num_replicas=4, user_config=3).bind(), "a")[1][0]["code_version"] == base
    assert build_application(Echo.options(max_ongoing_requests=9).bind(), "a")[1][0]["code_version"] != base
    assert build_application(Echo.bind(), "a")[1][0]["code_version"] == base
    assert build_application(Echo.options(version="v1").bind(), "a")[1][0]["code_version"] != base


def test_run_rejects_a_deployment_that_is_not_bound():
    expects = r"`serve.run` expects an `Application` returned by `Deployment.bind\(\)`"
    with pytest.raises(TypeError, match=expects + r", got the Deployment 'Echo': pass Echo.bind\(...\)"):
        build_application(Echo, "app")

    def plain(request):
        return "hi"

    class Plain:
        pass

    with pytest.raises(TypeError, match=expects + r", got the plain function 'plain': decorate it with "
                                                  r"@serve.deployment, then pass plain.bind"):
        serve.run(plain)
    with pytest.raises(TypeError, match=r"got the plain class 'Plain'"):
        serve.run(Plain)
    with pytest.raises(TypeError, match=expects + ", got int"):
        build_application(3, "app")


def test_a_generator_ingress_is_marked_as_streaming_over_http():
    @serve.deployment
    def chunks(request):
        yield "a"

    @serve.deployment
    class AsyncChunks:
        async def __call__(self, request):
            yield b"a"

    assert build_application(chunks.bind(), "a")[1][0]["stream"] is True
    assert build_application(AsyncChunks.bind(), "a")[1][0]["stream"] is True
    assert build_application(Echo.bind(), "a")[1][0]["stream"] is False
    assert build_application(double.bind(), "a")[1][0]["stream"] is False


def test_a_wildcard_host_is_allowed_and_is_not_loopback():
    from juno.serve.api import _is_loopback

    assert HTTPOptions.from_value({"host": "0.0.0.0"}).host == "0.0.0.0"
    assert _is_loopback("127.0.0.1") and _is_loopback("localhost") and _is_loopback("::1")
    assert not _is_loopback("0.0.0.0") and not _is_loopback("10.1.2.3") and not _is_loopback("myhost")


def test_handle_options_and_pickling():
    import pickle

    h = DeploymentHandle("D", "app")
    m = h.other_method
    assert m._method_name == "other_method" and h._method_name == "__call__"
    s = h.options(stream=True)
    assert s._stream and not h._stream
    back = pickle.loads(pickle.dumps(m))
    assert (back.deployment_name, back.app_name, back._method_name) == ("D", "app", "other_method")
    with pytest.raises(TypeError, match="stream"):
        h.options(stream="yes")


def test_get_replica_context_outside_a_replica():
    with pytest.raises(RuntimeError, match="inside a deployment's replica"):
        serve.get_replica_context()

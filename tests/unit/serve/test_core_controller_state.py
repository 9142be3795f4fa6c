"""The controller's pure state: replica lifecycle, rolls, reconfigure, health, failures, routes, status."""
import pytest

from juno.serve.config import DeploymentConfig
from juno.serve.controller.application_state import ServeState
from juno.serve.controller.controller import infeasible_message
from juno.serve.controller.deployment_state import (CheckHealth, DeploymentState, Reconfigure, StartReplica,
                                                     StopReplica)
from juno.serve.controller.metrics import DeploymentMetrics, percentile


def info(name="D", version="v1", **config):
    return {"name": name, "code_version": version, "config": DeploymentConfig(**config).to_dict(),
            "serialized_def": b"", "init_args": (), "init_kwargs": {}, "is_function": False}


def of(actions, kind):
    return [a for a in actions if isinstance(a, kind)]


def start_all(dep, now=0.0):
    """Reconcile and report every started replica RUNNING."""
    actions = dep.reconcile(now)
    for a in of(actions, StartReplica):
        dep.on_replica_running(a.replica_id, "node", now)
    return actions


def test_starts_replicas_and_becomes_healthy():
    dep = DeploymentState("app", info(num_replicas=2), 0.0)
    actions = dep.reconcile(0.0)
    assert len(of(actions, StartReplica)) == 2
    assert dep.status()[0] == "UPDATING" and dep.replica_states() == {"STARTING": 2}
    assert dep.reconcile(0.1) == []  # nothing twice
    v = dep.version
    for a in actions:
        dep.on_replica_running(a.replica_id, "n1", 0.2)
    assert dep.version > v and len(dep.members()) == 2
    assert dep.status()[0] == "HEALTHY" and dep.replica_states() == {"RUNNING": 2}


def test_scale_up_and_down_without_restart():
    dep = DeploymentState("app", info(num_replicas=1), 0.0)
    start_all(dep)
    first = next(iter(dep.replicas))
    dep.update(info(num_replicas=3), 1.0)
    actions = start_all(dep, 1.0)
    assert len(of(actions, StartReplica)) == 2 and not of(actions, StopReplica)
    dep.update(info(num_replicas=1), 2.0)
    stops = of(dep.reconcile(2.0), StopReplica)
    assert len(stops) == 2 and first not in {s.replica_id for s in stops} and all(s.graceful for s in stops)


def test_user_config_change_reconfigures_in_place():
    dep = DeploymentState("app", info(num_replicas=2, user_config={"a": 1}), 0.0)
    start_all(dep)
    ids = set(dep.replicas)
    dep.update(info(num_replicas=2, user_config={"a": 2}), 1.0)
    actions = dep.reconcile(1.0)
    reconf = of(actions, Reconfigure)
    assert {r.replica_id for r in reconf} == ids and not of(actions, StartReplica) and not of(actions, StopReplica)
    assert dep.status()[0] == "UPDATING" and len(dep.members()) == 2  # still serving while updating
    for r in reconf:
        dep.on_reconfigured(r.replica_id, {"a": 2}, None, 1.1)
    assert dep.status()[0] == "HEALTHY" and set(dep.replicas) == ids


def test_rolling_update_stops_old_only_as_new_run():
    dep = DeploymentState("app", info(num_replicas=2), 0.0)
    start_all(dep)
    old = set(dep.replicas)
    dep.update(info(version="v2", num_replicas=2), 1.0)
    actions = dep.reconcile(1.0)
    new = [a.replica_id for a in of(actions, StartReplica)]
    assert len(new) == 2 and not of(actions, StopReplica)
    assert {r.replica_id for r in dep.members()} == old  # old ones keep serving
    dep.on_replica_running(new[0], "n", 1.5)
    stops = of(dep.reconcile(1.5), StopReplica)
    assert len(stops) == 1 and stops[0].replica_id in old and stops[0].graceful
    assert len(dep.members()) == 2  # one old, one new: never zero
    dep.on_replica_running(new[1], "n", 2.0)
    stops = of(dep.reconcile(2.0), StopReplica)
    assert len(stops) == 1
    for rid in old:
        dep.on_replica_stopped(rid)
    assert dep.status()[0] == "HEALTHY" and set(dep.replicas) == set(new)


def test_constructor_failure_is_deploy_failed_without_retry():
    dep = DeploymentState("app", info(num_replicas=2), 0.0)
    actions = dep.reconcile(0.0)
    dep.on_replica_start_failed(actions[0].replica_id, "ValueError: boom\nTraceback...", 0.1)
    status, trigger, message = dep.status()
    assert status == "DEPLOY_FAILED" and "boom" in message and trigger == "REPLICA_STARTUP_FAILED"
    later = dep.reconcile(5.0)
    assert not of(later, StartReplica)
    assert {a.replica_id for a in of(later, StopReplica)} == {a.replica_id for a in actions}


def test_replacement_failure_retries_with_backoff_and_unhealthy():
    dep = DeploymentState("app", info(num_replicas=1), 0.0)
    start_all(dep)
    rid = next(iter(dep.replicas))
    dep.on_health_check(rid, "actor died", 1.0)
    actions = dep.reconcile(1.0)
    assert of(actions, StopReplica) == [StopReplica(rid, False)]
    assert dep.status()[0] == "UNHEALTHY"
    new = of(actions, StartReplica)[0].replica_id
    dep.on_replica_stopped(rid)
    dep.on_replica_start_failed(new, "boom", 1.2)
    assert dep.status()[0] == "UNHEALTHY"
    assert of(dep.reconcile(1.3), StopReplica) == [StopReplica(new, False)]  # backing off, no start
    dep.on_replica_stopped(new)
    again = of(dep.reconcile(3.0), StartReplica)
    assert len(again) == 1
    dep.on_replica_running(again[0].replica_id, "n", 3.1)
    dep.reconcile(3.1)
    assert dep.status()[0] == "HEALTHY" and dep.status()[2] == ""


def test_health_checks_are_periodic_and_one_at_a_time():
    dep = DeploymentState("app", info(num_replicas=1, health_check_period_s=2.0), 0.0)
    start_all(dep)
    assert not of(dep.reconcile(1.0), CheckHealth)
    checks = of(dep.reconcile(2.5), CheckHealth)
    assert len(checks) == 1 and not of(dep.reconcile(2.6), CheckHealth)  # one in flight
    dep.on_health_check(checks[0].replica_id, None, 2.7)
    assert not of(dep.reconcile(3.0), CheckHealth) and of(dep.reconcile(4.8), CheckHealth)


def test_delete_stops_everything_and_the_app_goes():
    state = ServeState()
    state.deploy("a", "/a", [info("Ingress"), info("Child")], "Ingress", 0.0)
    for dep, action in state.reconcile(0.0):
        dep.on_replica_running(action.replica_id, "n", 0.0)
    assert state.status()["a"]["status"] == "RUNNING"
    v = state.routes_version
    state.delete("a")
    assert state.routes_version == v + 1 and state.routes() == {}
    assert state.status()["a"]["status"] == "DELETING"
    for dep, action in state.reconcile(1.0):
        assert isinstance(action, StopReplica)
        dep.on_replica_stopped(action.replica_id)
    state.reconcile(1.1)
    assert "a" not in state.apps


def test_routes_are_unique_and_checked():
    state = ServeState()
    state.deploy("a", "/x", [info()], "D", 0.0)
    with pytest.raises(ValueError, match="already used by application 'a'"):
        state.deploy("b", "/x", [info()], "D", 0.0)
    with pytest.raises(ValueError, match="must start with '/'"):
        state.deploy("b", "x", [info()], "D", 0.0)
    state.deploy("b", None, [info()], "D", 0.0)
    assert state.routes() == {"/x": {"app": "a", "deployment": "D", "stream": False}}
    state.deploy("a", "/y", [info()], "D", 1.0)  # same app, new prefix
    assert state.routes() == {"/y": {"app": "a", "deployment": "D", "stream": False}}


def test_a_streaming_ingress_route_says_so_and_a_change_bumps_the_version():
    state = ServeState()
    state.deploy("a", "/s", [dict(info(), stream=True)], "D", 0.0)
    assert state.routes() == {"/s": {"app": "a", "deployment": "D", "stream": True}}
    v = state.routes_version
    state.deploy("a", "/s", [info(version="v2")], "D", 1.0)  # the new code answers in one piece
    assert state.routes()["/s"]["stream"] is False and state.routes_version == v + 1


def test_app_status_failed_names_deployment_and_message():
    state = ServeState()
    state.deploy("a", "/", [info("Ingress"), info("Bad")], "Ingress", 0.0)
    for dep, action in state.reconcile(0.0):
        if dep.name == "Bad":
            dep.on_replica_start_failed(action.replica_id, "ZeroDivisionError: division by zero", 0.1)
    app = state.status()["a"]
    assert app["status"] == "DEPLOY_FAILED"
    assert "Deploying app 'a' failed" in app["message"] and "'Bad'" in app["message"]
    assert "ZeroDivisionError" in app["message"]


def test_redeploy_drops_deployments_no_longer_in_the_graph():
    state = ServeState()
    state.deploy("a", "/", [info("Ingress"), info("Old")], "Ingress", 0.0)
    for dep, action in state.reconcile(0.0):
        dep.on_replica_running(action.replica_id, "n", 0.0)
    state.deploy("a", "/", [info("Ingress")], "Ingress", 1.0)
    stops = [(d.name, a) for d, a in state.reconcile(1.0) if isinstance(a, StopReplica)]
    assert [n for n, _ in stops] == ["Old"]
    state.deployment("a", "Old").on_replica_stopped(stops[0][1].replica_id)
    state.reconcile(1.1)
    assert list(state.apps["a"].deployments) == ["Ingress"]
    assert state.status()["a"]["status"] == "RUNNING"


def test_autoscaled_target_reports_upscaling():
    dep = DeploymentState("app", info(autoscaling_config={"min_replicas": 1, "max_replicas": 4}), 0.0)
    start_all(dep)
    assert dep.target == 1 and dep.status()[0] == "HEALTHY"
    dep.set_autoscaled_target(3)
    assert dep.status()[0] == "UPSCALING"
    start_all(dep, 1.0)
    assert dep.status() == ("HEALTHY", "UPSCALE_COMPLETED", "")


def test_infeasible_resources_name_the_resource_and_totals():
    nodes = [{"Alive": True, "Resources": {"CPU": 2.0, "memory": 1e9}}]
    totals = {"CPU": 2.0, "memory": 1e9}
    assert infeasible_message(info(ray_actor_options={"num_cpus": 1}), nodes, totals) is None
    msg = infeasible_message(info(ray_actor_options={"num_cpus": 64}), nodes, totals)
    assert "CPU=64" in msg and "'CPU': 2.0" in msg
    msg = infeasible_message(info(ray_actor_options={"num_cpus": 0, "num_gpus": 1}), nodes, totals)
    assert "GPU=1" in msg


def test_metrics_window():
    m = DeploymentMetrics(window_s=10.0)
    m.record("r1", {"requests": 10, "errors": 1, "ongoing": 2, "latencies_ms": [1.0] * 9 + [100.0]}, 0.0)
    m.record("r1", {"requests": 15, "errors": 1, "ongoing": 1, "latencies_ms": [2.0] * 5}, 1.0)
    s = m.summary(1.0)
    assert s["requests"] == 15 and s["errors"] == 1 and s["ongoing"] == 1 and s["qps"] == 1.5
    assert s["p50_ms"] in (1.0, 2.0) and s["p99_ms"] == 100.0
    assert m.summary(20.0)["qps"] == 0.0 and m.summary(20.0)["requests"] == 15
    assert percentile([], 50) == 0.0

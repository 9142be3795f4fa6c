"""Every application and its deployments, and the route table, as pure state (no processes).

The controller actor is a thin shell around one ``ServeState``: it calls ``deploy``/``delete``
from its methods and ``reconcile(now)`` from its loop, runs the actions, and reports back.
"""
from __future__ import annotations

import time

from juno.serve.controller.deployment_state import DeploymentState
from juno.serve.schema import ApplicationStatus, DeploymentStatus


class ApplicationState:
    def __init__(self, name: str, route_prefix: str | None, ingress: str, now: float) -> None:
        self.name = name
        self.route_prefix = route_prefix
        self.ingress = ingress
        self.deployments: dict[str, DeploymentState] = {}
        self.last_deployed_time_s = time.time()  # wall time, shown to people (``now`` is monotonic)
        self.deleting = False

    def deploy(self, route_prefix: str | None, infos: list[dict], ingress: str, now: float) -> None:
        self.route_prefix = route_prefix
        self.ingress = ingress
        self.last_deployed_time_s = time.time()  # wall time, shown to people (``now`` is monotonic)
        self.deleting = False
        names = {info["name"] for info in infos}
        for info in infos:
            current = self.deployments.get(info["name"])
            if current is None:
                self.deployments[info["name"]] = DeploymentState(self.name, info, now)
            else:
                current.update(info, now)
        for name, dep in self.deployments.items():
            if name not in names:  # gone from the new graph: its replicas stop
                dep.delete()

    def ingress_streams(self) -> bool:
        ingress = self.deployments.get(self.ingress)
        return bool(ingress is not None and ingress.info.get("stream", False))

    def delete(self) -> None:
        self.deleting = True
        for dep in self.deployments.values():
            dep.delete()

    def status(self) -> dict:
        deployments = {}
        for name, dep in self.deployments.items():
            status, trigger, message = dep.status()
            deployments[name] = {"status": status, "status_trigger": trigger,
                                 "replica_states": dep.replica_states(), "message": message}
        statuses = [d["status"] for name, d in deployments.items() if not self.deployments[name].deleting]
        message = ""
        if self.deleting:
            status = ApplicationStatus.DELETING
        elif DeploymentStatus.DEPLOY_FAILED in statuses:
            status = ApplicationStatus.DEPLOY_FAILED
            failed = [n for n, d in deployments.items() if d["status"] == DeploymentStatus.DEPLOY_FAILED]
            message = f"Deploying app {self.name!r} failed: " + "; ".join(
                f"deployment {n!r}: {deployments[n]['message']}" for n in failed)
        elif all(s == DeploymentStatus.HEALTHY for s in statuses) and not any(
                d.deleting for d in self.deployments.values()):
            status = ApplicationStatus.RUNNING
        elif DeploymentStatus.UNHEALTHY in statuses:
            status = ApplicationStatus.UNHEALTHY
            message = "; ".join(f"deployment {n!r}: {d['message']}" for n, d in deployments.items()
                                if d["status"] == DeploymentStatus.UNHEALTHY)
        elif all(s in (DeploymentStatus.HEALTHY, DeploymentStatus.UPSCALING, DeploymentStatus.DOWNSCALING)
                 for s in statuses) and not any(d.deleting for d in self.deployments.values()):
            status = ApplicationStatus.RUNNING  # autoscaling moves happen in a running app
        else:
            status = ApplicationStatus.DEPLOYING
        return {"status": status, "message": message, "last_deployed_time_s": self.last_deployed_time_s,
                "deployments": deployments, "route_prefix": self.route_prefix}


def check_route_prefix(route_prefix: object) -> None:
    """Raise ValueError unless ``route_prefix`` is None (no HTTP route) or a path like ``/api``."""
    if route_prefix is None:
        return
    if not isinstance(route_prefix, str) or not route_prefix.startswith("/"):
        raise ValueError(f"route_prefix must start with '/', got {route_prefix!r} (None: no HTTP route)")
    if route_prefix != "/" and route_prefix.endswith("/"):
        raise ValueError(f"route_prefix must not end with '/', got {route_prefix!r}")


class ServeState:
    """The controller's decisions: applications, routes and replica targets."""

    def __init__(self) -> None:
        self.apps: dict[str, ApplicationState] = {}
        self.routes_version = 0

    def deploy(self, name: str, route_prefix: str | None, infos: list[dict], ingress: str, now: float) -> None:
        """Deploy or update application ``name``; bad names and route clashes raise ValueError."""
        if not isinstance(name, str) or not name:
            raise ValueError(f"an application name must be a non-empty string, got {name!r}")
        if route_prefix is not None:
            check_route_prefix(route_prefix)
            for other in self.apps.values():
                if other.name != name and other.route_prefix == route_prefix and not other.deleting:
                    raise ValueError(f"route_prefix {route_prefix!r} is already used by application {other.name!r}: "
                                     "choose another prefix, or delete that application first")
        if not infos or ingress not in {info["name"] for info in infos}:
            raise ValueError(f"application {name!r} must contain its ingress deployment {ingress!r}")
        app = self.apps.get(name)
        old_routes = self.routes()
        if app is None:
            app = self.apps[name] = ApplicationState(name, route_prefix, ingress, now)
        app.deploy(route_prefix, infos, ingress, now)
        if self.routes() != old_routes:
            self.routes_version += 1

    def delete(self, name: str) -> bool:
        """Start deleting application ``name``; False if there is none."""
        app = self.apps.get(name)
        if app is None:
            return False
        old_routes = self.routes()
        app.delete()
        if self.routes() != old_routes:
            self.routes_version += 1
        return True

    def deployment(self, app: str, deployment: str) -> DeploymentState | None:
        a = self.apps.get(app)
        return a.deployments.get(deployment) if a is not None else None

    def reconcile(self, now: float) -> list[tuple[DeploymentState, object]]:
        """Every deployment's actions; applications and deployments fully deleted are dropped."""
        out = []
        for app in list(self.apps.values()):
            for dep in list(app.deployments.values()):
                out.extend((dep, action) for action in dep.reconcile(now))
                if dep.is_gone():
                    del app.deployments[dep.name]
            if app.deleting and not app.deployments:
                del self.apps[app.name]
        return out

    def routes(self) -> dict[str, dict]:
        """{route_prefix: {"app", "deployment" (the ingress), "stream" (its HTTP answers are generators)}}."""
        return {app.route_prefix: {"app": app.name, "deployment": app.ingress, "stream": app.ingress_streams()}
                for app in self.apps.values() if app.route_prefix is not None and not app.deleting}

    def status(self) -> dict[str, dict]:
        return {name: app.status() for name, app in self.apps.items()}

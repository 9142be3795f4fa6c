"""What ``serve.status()`` returns (Ray Serve's names), built from the controller's plain dicts."""
from __future__ import annotations

import dataclasses
from typing import Any


class ApplicationStatus:
    NOT_STARTED = "NOT_STARTED"
    DEPLOYING = "DEPLOYING"
    DEPLOY_FAILED = "DEPLOY_FAILED"
    RUNNING = "RUNNING"
    UNHEALTHY = "UNHEALTHY"
    DELETING = "DELETING"


class DeploymentStatus:
    UPDATING = "UPDATING"
    HEALTHY = "HEALTHY"
    UNHEALTHY = "UNHEALTHY"
    DEPLOY_FAILED = "DEPLOY_FAILED"
    UPSCALING = "UPSCALING"
    DOWNSCALING = "DOWNSCALING"


class DeploymentStatusTrigger:
    UNSPECIFIED = "UNSPECIFIED"
    CONFIG_UPDATE_STARTED = "CONFIG_UPDATE_STARTED"
    CONFIG_UPDATE_COMPLETED = "CONFIG_UPDATE_COMPLETED"
    UPSCALE_COMPLETED = "UPSCALE_COMPLETED"
    DOWNSCALE_COMPLETED = "DOWNSCALE_COMPLETED"
    AUTOSCALING = "AUTOSCALING"
    REPLICA_STARTUP_FAILED = "REPLICA_STARTUP_FAILED"
    HEALTH_CHECK_FAILED = "HEALTH_CHECK_FAILED"
    INTERNAL_ERROR = "INTERNAL_ERROR"
    DELETING = "DELETING"


class ReplicaState:
    STARTING = "STARTING"
    UPDATING = "UPDATING"
    RECOVERING = "RECOVERING"
    RUNNING = "RUNNING"
    STOPPING = "STOPPING"
    PENDING_MIGRATION = "PENDING_MIGRATION"


class ProxyStatus:
    STARTING = "STARTING"
    HEALTHY = "HEALTHY"
    UNHEALTHY = "UNHEALTHY"


@dataclasses.dataclass
class DeploymentStatusOverview:
    status: str
    status_trigger: str
    replica_states: dict[str, int]
    message: str = ""

    @classmethod
    def from_dict(cls, d: dict) -> "DeploymentStatusOverview":
        return cls(status=d["status"], status_trigger=d.get("status_trigger", DeploymentStatusTrigger.UNSPECIFIED),
                   replica_states=dict(d.get("replica_states", {})), message=d.get("message", ""))


@dataclasses.dataclass
class ApplicationStatusOverview:
    status: str
    message: str
    last_deployed_time_s: float
    deployments: dict[str, DeploymentStatusOverview]
    route_prefix: str | None = None

    @classmethod
    def from_dict(cls, d: dict) -> "ApplicationStatusOverview":
        return cls(status=d["status"], message=d.get("message", ""),
                   last_deployed_time_s=d.get("last_deployed_time_s", 0.0),
                   deployments={name: DeploymentStatusOverview.from_dict(dep)
                                for name, dep in d.get("deployments", {}).items()},
                   route_prefix=d.get("route_prefix"))


@dataclasses.dataclass
class ServeStatus:
    proxies: dict[str, str] = dataclasses.field(default_factory=dict)
    applications: dict[str, ApplicationStatusOverview] = dataclasses.field(default_factory=dict)
    target_capacity: float | None = None

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ServeStatus":
        return cls(proxies=dict(d.get("proxies", {})),
                   applications={name: ApplicationStatusOverview.from_dict(app)
                                 for name, app in d.get("applications", {}).items()},
                   target_capacity=d.get("target_capacity"))

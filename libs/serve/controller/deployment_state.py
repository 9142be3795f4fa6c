"""One deployment's replicas as a pure state machine: events in, actions out, time passed in.

The controller actor feeds it what happened (a replica started, failed, passed or failed a health
check, finished reconfiguring, stopped) and acts on what ``reconcile(now)`` returns. Rules:

* a new code version rolls: new replicas start, and old ones stop only as new ones become
  RUNNING, so the routers never see zero replicas and requests in flight finish;
* a changed user_config alone reconfigures the live replicas (no restart); a changed replica
  count alone scales;
* a constructor error before any replica of that version ran is DEPLOY_FAILED (no retry loop);
  later (a replacement) it is retried with a growing pause, the deployment UNHEALTHY meanwhile;
* a failed or timed-out health check (or a dead actor) replaces the replica.
"""
from __future__ import annotations

import dataclasses
import uuid
from typing import Any, Callable

from juno.serve.config import AutoscalingConfig
from juno.serve.schema import DeploymentStatus, DeploymentStatusTrigger, ReplicaState

RETRY_BACKOFF_S = (1.0, 2.0, 5.0, 10.0, 30.0)


@dataclasses.dataclass(frozen=True)
class StartReplica:
    replica_id: str


@dataclasses.dataclass(frozen=True)
class StopReplica:
    replica_id: str
    graceful: bool  # False: the replica is broken or dead; kill it without waiting


@dataclasses.dataclass(frozen=True)
class Reconfigure:
    replica_id: str
    user_config: Any


@dataclasses.dataclass(frozen=True)
class CheckHealth:
    replica_id: str


@dataclasses.dataclass
class ReplicaRecord:
    replica_id: str
    version: str
    state: str
    user_config: Any
    started_at: float
    node_id: str = ""
    stop_sent: bool = False
    graceful_stop: bool = True
    health_inflight: bool = False
    next_health_check: float = 0.0


def new_replica_suffix() -> str:
    return uuid.uuid4().hex[:8]


class DeploymentState:
    """The replicas of one deployment and the target they move towards."""

    def __init__(self, app: str, info: dict, now: float, *,
                 make_suffix: Callable[[], str] = new_replica_suffix) -> None:
        self.app = app
        self.name = info["name"]
        self.info = info
        self.replicas: dict[str, ReplicaRecord] = {}
        self.version = 0  # of the membership (RUNNING/UPDATING replicas) the routers see
        self.failed_message = ""
        self.unhealthy_message = ""
        self.trigger = DeploymentStatusTrigger.CONFIG_UPDATE_STARTED
        self.scaling = ""  # "", UPSCALING or DOWNSCALING while an autoscaling decision is carried out
        self.deleting = False
        self.version_ran = False  # a replica of the current code version reached RUNNING
        self.retry_at = 0.0
        self.start_failures = 0
        self._make_suffix = make_suffix
        self.target = self._initial_target(None)
        self.queued: dict[str, int] = {}  # router id -> requests waiting there (autoscaling input)

    # ------------------------------------------------------------------ targets
    @property
    def config(self) -> dict:
        return self.info["config"]

    @property
    def code_version(self) -> str:
        return self.info["code_version"]

    def _initial_target(self, previous: dict | None) -> int:
        auto = self.config.get("autoscaling_config")
        if auto is None:
            return int(self.config["num_replicas"])
        cfg = AutoscalingConfig.from_value(auto)
        if previous is not None and previous["config"].get("autoscaling_config") is not None:
            return min(max(self.target, cfg.min_replicas), cfg.max_replicas)  # keep what autoscaling chose
        return cfg.initial_target()

    def update(self, info: dict, now: float) -> None:
        """A redeploy: move towards the new code version, config and replica count."""
        previous = self.info
        self.info = info
        self.target = self._initial_target(previous)
        self.failed_message = ""
        self.start_failures = 0
        self.retry_at = 0.0
        self.deleting = False
        if info["code_version"] != previous["code_version"]:
            self.version_ran = False
        if info["code_version"] != previous["code_version"] or info["config"] != previous["config"]:
            self.trigger = DeploymentStatusTrigger.CONFIG_UPDATE_STARTED

    def set_autoscaled_target(self, target: int) -> None:
        if target != self.target:
            self.scaling = DeploymentStatus.UPSCALING if target > self.target else DeploymentStatus.DOWNSCALING
            self.trigger = DeploymentStatusTrigger.AUTOSCALING
            self.target = target

    def delete(self) -> None:
        self.deleting = True
        self.trigger = DeploymentStatusTrigger.DELETING

    def fail(self, message: str) -> None:
        """DEPLOY_FAILED with this message; replicas of the failed version stop. The membership version
        moves too, so routers' long polls wake and fail the requests waiting for a replica."""
        self.failed_message = message
        self.version += 1
        self.trigger = DeploymentStatusTrigger.REPLICA_STARTUP_FAILED
        for r in self.replicas.values():
            if r.version == self.code_version and r.state == ReplicaState.STARTING:
                self._stop(r, graceful=False)

    # ------------------------------------------------------------------ the loop
    def reconcile(self, now: float) -> list:
        """The actions that move the replicas towards the target now."""
        actions: list = []
        target = 0 if self.deleting else self.target
        live = [r for r in self.replicas.values() if r.state != ReplicaState.STOPPING]
        new = [r for r in live if r.version == self.code_version]
        old = [r for r in live if r.version != self.code_version]
        if len(new) > target:  # scale down: replicas still starting go first, then the newest
            order = sorted(new, key=lambda r: (r.state != ReplicaState.STARTING, -r.started_at))
            for r in order[:len(new) - target]:
                self._stop(r, graceful=True)
            new = [r for r in new if r.state != ReplicaState.STOPPING]
        if not self.failed_message and now >= self.retry_at:
            while len(new) < target:
                record = ReplicaRecord(self._make_suffix(), self.code_version, ReplicaState.STARTING,
                                       self.config.get("user_config"), now)
                self.replicas[record.replica_id] = record
                new.append(record)
                actions.append(StartReplica(record.replica_id))
        running_new = sum(r.state in (ReplicaState.RUNNING, ReplicaState.UPDATING) for r in new)
        keep_old = max(0, target - running_new) if not self.failed_message else len(old)
        if len(old) > keep_old:  # roll: an old replica goes only once a new one serves in its place
            order = sorted(old, key=lambda r: (r.state != ReplicaState.STARTING, r.started_at))
            for r in order[:len(old) - keep_old]:
                self._stop(r, graceful=True)
        user_config = self.config.get("user_config")
        for r in new:
            if r.state == ReplicaState.RUNNING and r.user_config != user_config:
                r.state = ReplicaState.UPDATING
                actions.append(Reconfigure(r.replica_id, user_config))
        for r in self.replicas.values():
            if r.state == ReplicaState.STOPPING and not r.stop_sent:
                r.stop_sent = True
                actions.append(StopReplica(r.replica_id, r.graceful_stop))
            elif r.state == ReplicaState.RUNNING and not r.health_inflight and now >= r.next_health_check:
                r.health_inflight = True
                actions.append(CheckHealth(r.replica_id))
        return actions

    def _stop(self, record: ReplicaRecord, *, graceful: bool) -> None:
        was_member = record.state in (ReplicaState.RUNNING, ReplicaState.UPDATING)
        record.state = ReplicaState.STOPPING
        record.graceful_stop = graceful
        if was_member:
            self.version += 1

    # ------------------------------------------------------------------ events
    def on_replica_running(self, replica_id: str, node_id: str, now: float) -> None:
        r = self.replicas.get(replica_id)
        if r is None or r.state != ReplicaState.STARTING:
            return
        r.state = ReplicaState.RUNNING
        r.node_id = node_id
        r.next_health_check = now + float(self.config["health_check_period_s"])
        if r.version == self.code_version:
            self.version_ran = True
            self.start_failures = 0
        self.version += 1

    def on_replica_start_failed(self, replica_id: str, error: str, now: float) -> None:
        r = self.replicas.get(replica_id)
        if r is None:
            return
        self._stop(r, graceful=False)
        if r.version != self.code_version:
            return
        if not self.version_ran:
            self.fail(f"a replica of deployment {self.name!r} failed to start:\n{error}")
            return
        self.start_failures += 1
        self.retry_at = now + RETRY_BACKOFF_S[min(self.start_failures, len(RETRY_BACKOFF_S)) - 1]
        self.unhealthy_message = f"a replacement replica failed to start (retrying):\n{error}"
        self.trigger = DeploymentStatusTrigger.REPLICA_STARTUP_FAILED

    def on_health_check(self, replica_id: str, error: str | None, now: float) -> None:
        """``error`` None: healthy. Else the replica is replaced."""
        r = self.replicas.get(replica_id)
        if r is None:
            return
        r.health_inflight = False
        r.next_health_check = now + float(self.config["health_check_period_s"])
        if error is None or r.state == ReplicaState.STOPPING:
            return
        self.unhealthy_message = f"replica {replica_id} failed its health check and is being replaced: {error}"
        self.trigger = DeploymentStatusTrigger.HEALTH_CHECK_FAILED
        self._stop(r, graceful=False)

    def on_reconfigured(self, replica_id: str, user_config: Any, error: str | None, now: float) -> None:
        r = self.replicas.get(replica_id)
        if r is None or r.state != ReplicaState.UPDATING:
            return
        if error is None:
            r.state = ReplicaState.RUNNING
            r.user_config = user_config
            return
        self.unhealthy_message = f"replica {replica_id} failed to reconfigure and is being replaced: {error}"
        self.trigger = DeploymentStatusTrigger.HEALTH_CHECK_FAILED
        self._stop(r, graceful=False)

    def on_replica_stopped(self, replica_id: str) -> None:
        self.replicas.pop(replica_id, None)

    # ------------------------------------------------------------------ views
    def members(self) -> list[ReplicaRecord]:
        """The replicas routers may send requests to."""
        return [r for r in self.replicas.values() if r.state in (ReplicaState.RUNNING, ReplicaState.UPDATING)]

    def is_gone(self) -> bool:
        return self.deleting and not self.replicas

    def replica_states(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for r in self.replicas.values():
            counts[r.state] = counts.get(r.state, 0) + 1
        return counts

    def status(self) -> tuple[str, str, str]:
        """(DeploymentStatus, trigger, message)."""
        if self.failed_message:
            return DeploymentStatus.DEPLOY_FAILED, self.trigger, self.failed_message
        user_config = self.config.get("user_config")
        settled = [r for r in self.replicas.values()
                   if r.version == self.code_version and r.state == ReplicaState.RUNNING
                   and r.user_config == user_config]
        if not self.deleting and len(settled) == self.target and len(self.replicas) == self.target:
            self.unhealthy_message = ""
            if self.scaling:
                self.trigger = (DeploymentStatusTrigger.UPSCALE_COMPLETED if self.scaling == DeploymentStatus.UPSCALING
                                else DeploymentStatusTrigger.DOWNSCALE_COMPLETED)
                self.scaling = ""
            elif self.trigger == DeploymentStatusTrigger.CONFIG_UPDATE_STARTED:
                self.trigger = DeploymentStatusTrigger.CONFIG_UPDATE_COMPLETED
            return DeploymentStatus.HEALTHY, self.trigger, ""
        if self.unhealthy_message:
            return DeploymentStatus.UNHEALTHY, self.trigger, self.unhealthy_message
        if self.scaling:
            return self.scaling, self.trigger, ""
        return DeploymentStatus.UPDATING, self.trigger, ""

    def total_queued(self) -> int:
        return sum(self.queued.values())

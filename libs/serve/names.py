"""The names Serve's actors go by on a cluster, in one place: a later driver, the proxies and the
CLI find the controller, and people find replicas in `juno list actors`, by these."""
from __future__ import annotations

CONTROLLER_NAME = "SERVE_CONTROLLER"
SERVE_NAMESPACE = "serve"


def replica_actor_name(app: str, deployment: str, replica_id: str) -> str:
    return f"SERVE_REPLICA::{app}#{deployment}#{replica_id}"


def proxy_name(node_id: str) -> str:
    return f"SERVE_PROXY::{node_id}"

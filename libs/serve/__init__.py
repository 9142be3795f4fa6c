"""Juno Serve: Ray Serve's API (deployments, applications, handles) on Juno's core.

``from juno import serve`` and use it as ``ray.serve``. ``serve.ingress`` loads on first use
(FastAPI and Starlette are the optional ``serve`` extra).
"""
from juno.serve.api import (delete, get_app_handle, get_deployment_handle, get_http_address, get_replica_context, run,
                            shutdown, start, status)
from juno.serve import exceptions
from juno.serve.batching import batch
from juno.serve.config import AutoscalingConfig, DeploymentConfig, HTTPOptions
from juno.serve.deployment import Application, Deployment, deployment
from juno.serve.handle import DeploymentHandle, DeploymentResponse, DeploymentResponseGenerator
from juno.serve.replica import ReplicaContext
from juno.serve.schema import (ApplicationStatus, ApplicationStatusOverview, DeploymentStatus,
                               DeploymentStatusOverview, ReplicaState, ServeStatus)

_LAZY = {"ingress": ("juno.serve.http.ingress", "ingress")}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'juno.serve' has no attribute {name!r}")


__all__ = ["Application", "ApplicationStatus", "ApplicationStatusOverview", "AutoscalingConfig", "Deployment",
           "DeploymentConfig", "DeploymentHandle", "DeploymentResponse", "DeploymentResponseGenerator",
           "DeploymentStatus", "DeploymentStatusOverview", "HTTPOptions", "ReplicaContext", "ReplicaState",
           "ServeStatus", "batch", "delete", "deployment", "exceptions", "get_app_handle", "get_deployment_handle", "get_http_address",
           "get_replica_context", "run", "shutdown", "start", "status"]

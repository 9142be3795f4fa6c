"""Serve's controller: pure state (applications, deployments, replicas) and the actor around it."""
from juno.serve.controller.controller import ServeController
from juno.serve.names import CONTROLLER_NAME, SERVE_NAMESPACE

__all__ = ["CONTROLLER_NAME", "SERVE_NAMESPACE", "ServeController"]

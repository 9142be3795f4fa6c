"""Serve's controller: pure state (applications, deployments, replicas) and the actor around it."""
from juno.serve.controller.controller import CONTROLLER_NAME, SERVE_NAMESPACE, ServeController

__all__ = ["CONTROLLER_NAME", "SERVE_NAMESPACE", "ServeController"]

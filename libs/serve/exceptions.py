"""Serve's errors, under Ray Serve's names (``ray.serve.exceptions``), each saying what to do.

Each keeps its fields in ``_fields`` (constructor order), so it crosses processes whole
(``RayError.__reduce__``): a replica's or a proxy's error arrives with its numbers."""
from __future__ import annotations

from juno.exceptions import RayError


class RayServeException(RayError):
    """Base class of Serve's own errors."""


class BackPressureError(RayServeException):
    """More requests wait for a deployment's replicas than its ``max_queued_requests`` allows.

    Over HTTP this is a 503 answer; through a handle the call raises it at once, so the caller can
    back off instead of piling up more work."""
    _fields = ("num_queued_requests", "max_queued_requests", "deployment", "message")

    def __init__(self, num_queued_requests: int = 0, max_queued_requests: int = 0, deployment: str = "",
                 message: str | None = None) -> None:
        self.num_queued_requests = num_queued_requests
        self.max_queued_requests = max_queued_requests
        self.deployment = deployment
        if message is None:
            who = f"deployment '{deployment}'" if deployment else "the deployment"
            message = (f"Request dropped: {num_queued_requests} requests already wait for a replica of {who} "
                       f"(max_queued_requests={max_queued_requests}). Retry later, add replicas (num_replicas "
                       f"or autoscaling), or raise max_queued_requests (-1 means no limit).")
        self.message = message
        super().__init__(message)


class RequestCancelledError(RayServeException):
    """The request was cancelled (``response.cancel()``, the client went away, or its router shut down)
    before it finished."""
    _fields = ("request_id", "message")

    def __init__(self, request_id: str = "", message: str | None = None) -> None:
        self.request_id = request_id
        if message is None:
            ident = f" {request_id}" if request_id else ""
            message = f"Request{ident} was cancelled before it finished; send it again if you still need its result."
        self.message = message
        super().__init__(message)


class DeploymentUnavailableError(RayServeException):
    """A deployment has no replica to take the request: it failed to deploy, was deleted, Serve shut
    down, or none came up within the request's timeout."""
    _fields = ("deployment", "message")

    def __init__(self, deployment: str = "", message: str | None = None) -> None:
        self.deployment = deployment
        if message is None:
            who = f"Deployment '{deployment}'" if deployment else "The deployment"
            message = (f"{who} is unavailable: it has no running replica. Check serve.status() for why "
                       f"(DEPLOY_FAILED, deleted, or replicas that cannot be scheduled) and redeploy it.")
        self.message = message
        super().__init__(message)


class RequestTimeoutError(RayServeException, TimeoutError):
    """A request waited longer than its timeout for a free replica (every replica stayed at
    ``max_ongoing_requests``). Over HTTP this is a timeout answer."""
    _fields = ("deployment", "timeout_s", "message")

    def __init__(self, deployment: str = "", timeout_s: float = 0.0, message: str | None = None) -> None:
        self.deployment = deployment
        self.timeout_s = timeout_s
        if message is None:
            who = f"deployment '{deployment}'" if deployment else "the deployment"
            message = (f"Request timed out after {timeout_s:g} s waiting for a free replica of {who} (every "
                       f"replica stayed at max_ongoing_requests). Add replicas, raise max_ongoing_requests, or "
                       f"allow a longer request timeout.")
        self.message = message
        super().__init__(message)


__all__ = ["BackPressureError", "DeploymentUnavailableError", "RayServeException", "RequestCancelledError",
           "RequestTimeoutError"]

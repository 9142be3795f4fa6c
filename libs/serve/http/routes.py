"""The proxy's route table: route prefix -> (application, ingress deployment), longest prefix first.

Pure: the proxy feeds it the controller's ``get_routes``/``wait_for_routes`` answers and asks it where a
path goes. A prefix matches at a path segment boundary ("/api" takes "/api" and "/api/x", not "/apix");
"/" takes every path no longer prefix matches.
"""
from __future__ import annotations

from typing import NamedTuple


class Route(NamedTuple):
    prefix: str
    app: str
    deployment: str
    stream: bool  # the ingress answers with a stream (its replica's streaming method is called)


def normalize_prefix(prefix: str) -> str:
    """"/api/" -> "/api"; "/" stays; anything not starting with "/" is refused (as Ray does)."""
    if not isinstance(prefix, str) or not prefix.startswith("/"):
        raise ValueError(f"a route prefix must be a string starting with '/', got {prefix!r}")
    return prefix.rstrip("/") or "/"


class RouteTable:
    """The routes of one version of the controller's table, matched by longest prefix."""

    def __init__(self) -> None:
        self.version = -1
        self._routes: list[Route] = []  # longest prefix first

    def update(self, answer: dict) -> bool:
        """Take a ``get_routes``/``wait_for_routes`` answer; whether anything changed."""
        version = answer["version"]
        if version == self.version:
            return False
        routes = [Route(normalize_prefix(prefix), entry["app"], entry["deployment"], bool(entry.get("stream")))
                  for prefix, entry in answer["routes"].items() if prefix is not None]
        routes.sort(key=lambda r: len(r.prefix), reverse=True)
        self.version, self._routes = version, routes
        return True

    def match(self, path: str) -> Route | None:
        for route in self._routes:
            prefix = route.prefix
            if prefix == "/" or path == prefix or (path.startswith(prefix) and path[len(prefix)] == "/"):
                return route
        return None

    def prefixes(self) -> dict[str, str]:
        """{prefix: application}, what ``/-/routes`` answers."""
        return {route.prefix: route.app for route in sorted(self._routes)}

    def deployments(self) -> set[tuple[str, str]]:
        """The (application, deployment) pairs the table routes to: the proxy keeps a Router for each."""
        return {(route.app, route.deployment) for route in self._routes}

    def __len__(self) -> int:
        return len(self._routes)

"""The proxy's route table: longest prefix at segment boundaries, versions, bad prefixes."""
from __future__ import annotations

import pytest

from juno.serve.http.routes import RouteTable, normalize_prefix


def table(*prefixes, version=1):
    t = RouteTable()
    t.update({"version": version, "routes": {p: {"app": f"app{p}", "deployment": "Ingress"} for p in prefixes}})
    return t


@pytest.mark.parametrize("path, prefix", [
    ("/api", "/api"), ("/api/", "/api"), ("/api/x/y", "/api"), ("/api/v2", "/api/v2"), ("/api/v2/m", "/api/v2"),
    ("/api/v2x", "/api"), ("/apix", "/"), ("/", "/"), ("/other", "/"),
])
def test_longest_prefix_at_segment_boundaries(path, prefix):
    assert table("/", "/api", "/api/v2").match(path).prefix == prefix


def test_without_a_root_route_unmatched_paths_have_none():
    t = table("/api")
    assert t.match("/apix") is None and t.match("/") is None and t.match("/api/1").app == "app/api"


def test_trailing_slashes_are_dropped_and_bad_prefixes_refused():
    assert normalize_prefix("/a/") == "/a" and normalize_prefix("/") == "/"
    with pytest.raises(ValueError, match="starting with '/'"):
        normalize_prefix("api")


def test_update_reports_changes_by_version_and_lists_what_it_routes():
    t = table("/a", "/b", version=3)
    assert not t.update({"version": 3, "routes": {}})
    assert len(t) == 2 and t.prefixes() == {"/a": "app/a", "/b": "app/b"}
    assert t.deployments() == {("app/a", "Ingress"), ("app/b", "Ingress")}
    assert t.update({"version": 4, "routes": {"/c": {"app": "c", "deployment": "D", "stream": True}}})
    assert t.match("/a") is None and t.match("/c/1").stream

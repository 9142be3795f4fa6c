"""`juno serve status`'s document (runtime/cli/serve.py), pure: Ray's order, routes, --name, bad input."""
import dataclasses
import enum

import pytest

from juno.cli.commands import CliError
from juno.cli.serve import plain, status_document
from juno.observability.state_schema import format_yaml

STATUS = {"proxies": {"n1": "HEALTHY"}, "target_capacity": None, "applications": {
    "default": {"status": "RUNNING", "message": "", "last_deployed_time_s": 2.5, "deployments": {
        "Ingress": {"status": "HEALTHY", "status_trigger": "CONFIG_UPDATE_COMPLETED",
                    "replica_states": {"RUNNING": 2}, "message": ""}}}}}
ROUTES = {"version": 3, "routes": {"/api": {"app": "default", "deployment": "Ingress"}}}


def test_the_document_is_rays_with_each_route_after_the_status():
    doc = status_document(STATUS, ROUTES)
    assert list(doc) == ["proxies", "applications", "target_capacity"]
    assert list(doc["applications"]["default"])[:2] == ["status", "route_prefix"]
    text = format_yaml(doc)
    assert "    route_prefix: /api\n" in text and "          RUNNING: 2\n" in text
    assert '    message: ""' in text


def test_name_picks_one_application_or_says_which_exist():
    assert list(status_document(STATUS, None, "default")) == ["default"]
    with pytest.raises(CliError, match=r"no Serve application named 'x' \(applications: default\)"):
        status_document(STATUS, None, "x")


def test_status_objects_become_plain_data():
    class State(str, enum.Enum):
        RUNNING = "RUNNING"

    @dataclasses.dataclass
    class Overview:
        status: State
        replica_states: dict

    assert plain({"a": Overview(State.RUNNING, {State.RUNNING: 1})}) == \
        {"a": {"status": "RUNNING", "replica_states": {"RUNNING": 1}}}

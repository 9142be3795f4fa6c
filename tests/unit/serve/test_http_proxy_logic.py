"""The proxy's decisions without processes: which proxies to start and stop, how errors map to statuses,
which http_options are accepted."""
from __future__ import annotations

import pytest
from juno.exceptions import ActorDiedError
from juno.serve.http.proxy_manager import HEALTHY, RESTART_BACKOFF_S, STARTING, UNHEALTHY, ProxyStates
from juno.serve.http.server import HTTPError, ProxyOptions, error_answer


def test_a_proxy_per_alive_node_and_none_for_dead_ones():
    states = ProxyStates()
    start, stop = states.plan({"n1", "n2"}, now=0)
    assert (start, stop) == (["n1", "n2"], [])
    for node in start:
        states.starting(node, 0)
    states.started("n1", ["127.0.0.1", 8000], 1)
    assert states.status() == {"n1": HEALTHY, "n2": STARTING}
    assert states.plan({"n1", "n2"}, now=2) == ([], [])
    assert states.plan({"n2", "n3"}, now=3) == (["n3"], ["n1"])
    assert "n1" not in states.status()


def test_a_failed_proxy_restarts_after_a_growing_backoff():
    states = ProxyStates()
    states.plan({"n"}, 0)
    states.starting("n", 0)
    states.failed("n", "boom", 10)
    assert states.status() == {"n": UNHEALTHY}
    assert states.plan({"n"}, 10) == ([], [])
    assert states.plan({"n"}, 10 + RESTART_BACKOFF_S) == (["n"], [])
    states.starting("n", 12)
    states.failed("n", "boom again", 13)
    assert states.plan({"n"}, 13 + RESTART_BACKOFF_S) == ([], [])  # two failures: twice the wait
    assert states.plan({"n"}, 13 + 2 * RESTART_BACKOFF_S) == (["n"], [])


def test_health_checks_are_due_by_period_and_time_out():
    states = ProxyStates()
    states.plan({"n"}, 0)
    states.starting("n", 0)
    assert not states.due_for_check("n", 100)  # not started yet
    assert states.timed_out("n", 100, pending_since=0)
    states.started("n", ["h", 1], 0)
    assert not states.due_for_check("n", 1) and states.due_for_check("n", 11)


class BackPressureError(Exception):
    pass


def test_errors_map_to_statuses():
    busy = error_answer(BackPressureError("5 queued"), "GET")
    assert busy.status == 503 and (b"retry-after", b"1") in busy.headers
    died = ActorDiedError(error_msg="the replica's process exited")
    assert error_answer(died, "POST").status == 500 and "not retried" in error_answer(died, "POST").text
    assert "3 tries" in error_answer(died, "GET", 3).text
    assert error_answer(RuntimeError("x"), "GET").status == 500
    same = HTTPError(413, "too big")
    assert error_answer(same, "POST") is same


def test_http_options_are_checked():
    opts = ProxyOptions.from_dict({"host": "0.0.0.0", "port": 0, "unknown": 1, "request_timeout_s": 2})
    assert (opts.host, opts.port, opts.request_timeout_s, opts.max_body_bytes) == ("0.0.0.0", 0, 2, 100 * 2**20)
    assert ProxyOptions.from_dict(None).host == "127.0.0.1"  # loopback unless told otherwise
    for bad, match in [({"port": 70000}, "port"), ({"max_body_bytes": -1}, "max_body_bytes"),
                       ({"request_timeout_s": 0}, "request_timeout_s")]:
        with pytest.raises(ValueError, match=match):
            ProxyOptions.from_dict(bad)

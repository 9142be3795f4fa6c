"""The cluster token's decisions without a cluster: validation, where a client finds it, the
0600 store beside the current-cluster file, CURVE keys, the ZAP verdicts, the refusal log,
and which addresses `juno start` may listen on."""
from __future__ import annotations

import logging
import os
import socket
import stat

import pytest
import zmq

from juno.comm import auth
from juno.cluster import local_cluster
from juno.cluster.access import AddressError, check_listen_ip, network_warning

TOKEN = "t" * 20 + "A1-_"


@pytest.fixture
def store(tmp_path, monkeypatch):
    """A private current-cluster file (hence token folder) and no token in the environment."""
    monkeypatch.setenv(local_cluster.CLUSTER_FILE_ENV, str(tmp_path / "current"))
    monkeypatch.delenv(auth.TOKEN_ENV, raising=False)
    return tmp_path


def test_check_token_rejects_short_or_unprintable_tokens():
    assert auth.check_token(f"  {TOKEN}\n", "x") == TOKEN
    with pytest.raises(auth.ClusterAuthError, match="too short"):
        auth.check_token("short", "--token")
    with pytest.raises(auth.ClusterAuthError, match="--token .*spaces"):
        auth.check_token("a" * 10 + " " + "b" * 10, "--token")
    assert len(auth.new_token()) >= 40 and auth.new_token() != auth.new_token()


def test_clients_find_the_token_explicit_then_env_then_store(store, monkeypatch):
    address = "tcp://127.0.0.1:6390"
    with pytest.raises(auth.ClusterAuthError, match="No cluster token .*127.0.0.1:6390.*JUNO_CLUSTER_TOKEN"):
        auth.resolve_token(address)
    token, missing = auth.resolve_token(address, required=False)
    assert token is None and "juno token --address 127.0.0.1:6390" in missing

    local_cluster.write_cluster_token("localhost:6390", TOKEN)  # localhost and 127.0.0.1 are one address
    assert auth.resolve_token(address) == (TOKEN, local_cluster.token_path(address))
    monkeypatch.setenv(auth.TOKEN_ENV, "e" * 30)
    assert auth.resolve_token(address) == ("e" * 30, "$JUNO_CLUSTER_TOKEN")
    assert auth.resolve_token(address, "x" * 30) == ("x" * 30, "--token")


def test_token_store_is_private_and_forgets_only_its_own_token(store):
    address = "127.0.0.1:6391"
    local_cluster.write_cluster_token(address, TOKEN)
    folder, path = local_cluster.token_dir(), local_cluster.token_path(address)
    assert os.path.dirname(path) == folder and folder == str(store / local_cluster.TOKEN_DIR_NAME)
    assert stat.S_IMODE(os.stat(folder).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert local_cluster.read_cluster_token(address) == TOKEN

    local_cluster.forget_cluster_token(address, "another cluster's token on this port")
    assert local_cluster.read_cluster_token(address) == TOKEN
    local_cluster.forget_cluster_token(address, TOKEN)
    assert local_cluster.read_cluster_token(address) is None

    os.chmod(folder, 0o755)  # others could read what is in it: refuse to use it
    with pytest.raises(auth.ClusterAuthError, match="only you can use"):
        local_cluster.read_cluster_token(address)


def test_session_token_survives_for_a_restarted_gcs(tmp_path):
    assert local_cluster.read_session_token(str(tmp_path)) is None
    local_cluster.write_session_token(str(tmp_path), TOKEN)
    assert local_cluster.read_session_token(str(tmp_path)) == TOKEN
    assert stat.S_IMODE(os.stat(tmp_path / local_cluster.SESSION_TOKEN_FILE).st_mode) == 0o600


def test_curve_keys_come_from_the_token_only():
    a, b, c = auth.CurveKeys(TOKEN), auth.CurveKeys(TOKEN), auth.CurveKeys(TOKEN + "x")
    assert (a.server_public, a.client_public, a.client_secret) == (b.server_public, b.client_public, b.client_secret)
    assert a.server_public != c.server_public and a.client_public != c.client_public
    assert a.server_public != a.client_public
    assert zmq.curve_public(a.server_secret) == a.server_public and len(a.client_public_raw) == 32


def test_zap_admits_only_the_tokens_client_key(caplog):
    ctx = zmq.Context()
    try:
        zap = auth.ZapAuthenticator(ctx)
        keys = auth.CurveKeys(TOKEN)
        zap.allow("gcs-1", keys.client_public_raw, "juno-gcs")

        def ask(domain: bytes, mechanism: bytes, key: bytes) -> bytes:
            return zap.answer([b"1.0", b"7", domain, b"10.1.2.3", b"", mechanism, key])[2]

        with caplog.at_level(logging.WARNING, logger="juno.comm.auth"):
            assert ask(b"gcs-1", b"CURVE", keys.client_public_raw) == b"200"
            assert ask(b"gcs-1", b"CURVE", auth.CurveKeys(TOKEN + "x").client_public_raw) == b"400"
            assert ask(b"gcs-1", b"NULL", b"") == b"400"
            assert ask(b"other", b"CURVE", keys.client_public_raw) == b"400"
            assert zap.answer([b"1.0"])[2] == b"500"
        text = caplog.text
        assert "juno-gcs: refused a connection from 10.1.2.3: its CURVE key does not come from this cluster's " \
               "token" in text
        assert "did not use CURVE" in text
        zap.forget("gcs-1")
        assert ask(b"gcs-1", b"CURVE", keys.client_public_raw) == b"400"
    finally:
        ctx.term()  # the ZAP thread closes its socket on ETERM; term() would hang otherwise


def test_refusals_are_logged_once_per_interval_with_a_count(caplog):
    log = auth.RefusalLog(interval_s=60)
    with caplog.at_level(logging.WARNING, logger="juno.comm.auth"):
        for port in range(50000, 50020):  # a client retrying from new ports
            log.log("juno-gcs", f"10.0.0.9:{port}", "wrong token")
        log.log("juno-gcs", "10.0.0.10:1", "wrong token")
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2 and "10.0.0.9:50000" in lines[0] and "10.0.0.10:1" in lines[1]
    log.interval_s = 0
    with caplog.at_level(logging.WARNING, logger="juno.comm.auth"):
        log.log("juno-gcs", "10.0.0.9:1", "wrong token")
    assert "19 more refusals like it" in caplog.records[-1].getMessage()


def test_listener_monitor_names_the_peer_of_a_failed_handshake(caplog):
    server = socket.create_server(("127.0.0.1", 0))
    client = socket.create_connection(server.getsockname())
    accepted, _ = server.accept()
    try:
        monitor = auth.ListenerMonitor("juno-gcs", auth.RefusalLog())
        with caplog.at_level(logging.WARNING, logger="juno.comm.auth"):
            monitor.on_event(zmq.EVENT_ACCEPTED, accepted.fileno())
            monitor.on_event(zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL, zmq.PROTOCOL_ERROR_ZMTP_CRYPTOGRAPHIC)
            monitor.on_event(zmq.EVENT_DISCONNECTED, accepted.fileno())
            monitor.on_event(zmq.EVENT_ACCEPTED, 10**6)  # a peer gone before we looked: unknown
            monitor.on_event(zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL, zmq.PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH)
            monitor.on_event(zmq.EVENT_DISCONNECTED, 10**6)
            monitor.on_event(zmq.EVENT_ACCEPTED, accepted.fileno())  # a good client: nothing logged
            monitor.on_event(zmq.EVENT_DISCONNECTED, accepted.fileno())
        lines = [r.getMessage() for r in caplog.records]
        host, port = client.getsockname()
        assert len(lines) == 2
        assert f"from {host}:{port}: its CURVE handshake failed: it does not hold this cluster's token" in lines[0]
        assert "from an unknown peer: it did not use CURVE encryption" in lines[1]
    finally:
        for s in (client, accepted, server):
            s.close()


def non_loopback_ipv4() -> str | None:
    import psutil

    for addrs in psutil.net_if_addrs().values():
        for a in addrs:
            if a.family == socket.AF_INET and not a.address.startswith("127."):
                return a.address
    return None


@pytest.mark.parametrize("value, needle", [
    ("0.0.0.0", "every interface"), ("::1", "IPv6"), ("my-host", "IPv4 address"), ("224.0.0.1", "multicast"),
    ("255.255.255.255", "broadcast"), ("203.0.113.77", "not an address of this machine"),
])
def test_listen_addresses_that_are_refused(value, needle):
    with pytest.raises(AddressError, match=needle):
        check_listen_ip(value, "--node-ip-address")


def test_listen_addresses_that_are_accepted():
    assert check_listen_ip("localhost", "--host") == "127.0.0.1"
    assert check_listen_ip("127.0.0.2", "--host") == "127.0.0.2"
    assert network_warning("GCS", "127.0.0.1") is None
    ip = non_loopback_ipv4()
    if ip is not None:  # this machine has a network address: it may be listened on, with a warning
        assert check_listen_ip(ip, "--node-ip-address") == ip
        assert "other machines on the network can reach" in network_warning("node", ip)

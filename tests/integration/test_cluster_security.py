"""The cluster token keeps strangers out, and members' garbage never brings a process down.

- a driver with the right token works; with a wrong one juno.init(address=...) fails at once,
  clearly, and the GCS log records the refusal (who, why);
- clients without the token (plain ZeroMQ, CURVE with other keys, raw TCP) sending a pickle
  that would create a file when unpickled never get it unpickled; a member's would be;
- random, mutated and oversized frames from a member leave the GCS and a node manager answering;
- `juno start` listens beyond loopback only on this machine's own addresses, with a warning,
  and nodes, drivers and `juno start --address` there need the token.
"""
from __future__ import annotations

import json
import os
import pickle
import pickletools
import random
import re
import socket
import stat
import subprocess
import sys
import time
import warnings

import psutil
import pytest
import zmq

import juno
from helpers import wait_for_condition
from juno.comm import auth
from juno.cluster import local_cluster
from juno.cluster.probe import GcsProbe
from juno.cluster_utils import Cluster
from juno.comm.rpc import RpcNode
from juno.comm.transport import EventLoop


def gcs_log(cluster: Cluster) -> str:
    with open(os.path.join(cluster.session_dir, "logs", "gcs.log")) as f:
        return f.read()


def node_log(cluster: Cluster) -> str:
    path = os.path.join(cluster.session_dir, "logs", f"node-{cluster.head_node.node_id[:8]}.log")
    with open(path) as f:
        return f.read()


class CreatesFile:
    """Unpickling this creates ``path`` (open(path, "w")): proof that a frame was unpickled."""

    def __init__(self, path: str):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


class Member(RpcNode):
    """A process holding the token: sends raw frames and requests from its own event loop."""

    def __init__(self, token: str):
        self.install_rpc(EventLoop("tcp://127.0.0.1:0", name="test-member", token=token))
        self.loop.start_thread()

    def send_raw(self, address: str, frames: list[bytes]) -> None:
        done = []

        def go():
            for frame in frames:
                self.loop.send_raw(address, frame)
            done.append(True)

        self.loop.call_soon(go)
        wait_for_condition(lambda: done, timeout=30)

    def close(self) -> None:
        self.loop.stop()
        self.loop.join(5)


@pytest.fixture
def cluster(shutdown_only, monkeypatch):
    monkeypatch.delenv(auth.TOKEN_ENV, raising=False)
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 1},
                _system_config={"max_message_bytes": 1 << 20})
    try:
        yield c
    finally:
        if juno.is_initialized():
            juno.shutdown()
        c.shutdown()


def token_of(cluster: Cluster) -> str:
    token = local_cluster.read_cluster_token(cluster.address)
    assert token and token == local_cluster.read_session_token(cluster.session_dir)
    return token


@juno.remote
def plus_one(x):
    return x + 1


def test_right_token_works_wrong_token_fails_fast_and_is_logged(cluster, monkeypatch):
    token = token_of(cluster)
    monkeypatch.setenv(auth.TOKEN_ENV, "w" * 43)
    start = time.monotonic()
    with pytest.raises(auth.ClusterAuthError) as info:
        juno.init(address=cluster.address)
    assert time.monotonic() - start < 3.0, "a refused token must fail at once, not time out"
    message = str(info.value)
    assert f"cluster at {cluster.address} refused" in message and "$JUNO_CLUSTER_TOKEN" in message
    assert "juno token" in message
    assert not juno.is_initialized()
    wait_for_condition(lambda: re.search(
        r"juno-gcs: refused a connection from 127\.0\.0\.1:\d+: its CURVE handshake failed: it does not hold "
        r"this cluster's token", gcs_log(cluster)), timeout=5)

    # No token anywhere: the error says so (and where it looked).
    monkeypatch.delenv(auth.TOKEN_ENV)
    monkeypatch.setenv(local_cluster.CLUSTER_FILE_ENV, os.path.join(cluster.session_dir, "elsewhere", "f"))
    with pytest.raises(auth.ClusterAuthError, match=f"No cluster token for the Juno cluster at {cluster.address}"):
        juno.init(address=cluster.address)

    # The right token from the environment...
    monkeypatch.setenv(auth.TOKEN_ENV, token)
    juno.init(address=cluster.address)
    assert juno.get(plus_one.remote(1)) == 2
    juno.shutdown()
    # ... or from the file `juno start` / the cluster keeps for clients on this machine.
    monkeypatch.delenv(auth.TOKEN_ENV)
    monkeypatch.delenv(local_cluster.CLUSTER_FILE_ENV)
    juno.init(address=cluster.address)
    assert juno.get(plus_one.remote(2)) == 3
    # The ipc sockets' folder (and the session's) is the user's alone.
    for folder in (cluster.session_dir, os.path.join(cluster.session_dir, "sock")):
        assert stat.S_IMODE(os.stat(folder).st_mode) == 0o700, folder
    # The token reaches processes through the environment, never their command lines.
    for proc in psutil.Process(cluster.head_node.pid).children() + [psutil.Process(cluster.head_node.pid)]:
        assert token not in " ".join(proc.cmdline())


def zmtp_null_greeting() -> bytes:
    """A ZMTP 3.0 greeting offering the NULL mechanism (no security), as a raw TCP client sends it."""
    return b"\xff" + b"\x00" * 8 + b"\x7f" + b"\x03\x00" + b"NULL".ljust(20, b"\x00") + b"\x00" + b"\x00" * 31


def test_clients_without_the_token_never_get_a_pickle_read(cluster, tmp_path):
    token = token_of(cluster)
    gcs = cluster.gcs_address
    evil = pickle.dumps(CreatesFile(str(tmp_path / "pwned")), 5)
    ctx = zmq.Context()
    socks = []
    try:
        plain = ctx.socket(zmq.DEALER)  # no CURVE at all
        wrong = ctx.socket(zmq.DEALER)  # CURVE with another token's keys
        auth.configure_client(wrong, auth.CurveKeys("x" * 43))
        stranger = ctx.socket(zmq.DEALER)  # the cluster's server key (leaked), but a key of its own
        public, secret = zmq.curve_keypair()
        stranger.curve_serverkey = auth.CurveKeys(token).server_public
        stranger.curve_publickey, stranger.curve_secretkey = public, secret
        for sock in (plain, wrong, stranger):
            sock.setsockopt(zmq.LINGER, 0)
            sock.connect(gcs)
            sock.send(evil)
            socks.append(sock)
        host, port = gcs.replace("tcp://", "").rsplit(":", 1)
        with socket.create_connection((host, int(port)), timeout=5) as raw:  # raw bytes on the port
            try:
                raw.sendall(zmtp_null_greeting() + b"\x04\x05READY" + b"\x00" + bytes([len(evil)]) + evil)
                time.sleep(0.2)
                raw.sendall(evil * 3)
            except ConnectionError:
                pass  # the GCS hangs up on it: as it should

        wait_for_condition(lambda: all(s in gcs_log(cluster) for s in (
            "it did not use CURVE encryption",
            "its CURVE handshake failed: it does not hold this cluster's token",
            "its CURVE key does not come from this cluster's token")), timeout=10)
        time.sleep(0.5)
        assert not (tmp_path / "pwned").exists(), "an unauthenticated frame was unpickled"
        with GcsProbe(gcs, token) as probe:  # the GCS is fine
            assert any(n["alive"] for n in probe.call_gcs("get_nodes", timeout=10))
    finally:
        for sock in socks:
            sock.close(0)
        ctx.term()

    # Control: the same frame from a member is unpickled (members are trusted), so the test can fail.
    member = Member(token)
    try:
        member.send_raw(gcs, [evil])
        wait_for_condition(lambda: (tmp_path / "pwned").exists(), timeout=10)
    finally:
        member.close()


def memo_bomb(frame: bytes) -> bool:
    """A frame making CPython's unpickler grow its memo to gigabytes (see tests/unit/test_message_fuzz.py)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            for op, arg, _ in pickletools.genops(frame):
                if op.name in ("PUT", "LONG_BINPUT") and not (isinstance(arg, int) and arg < 256):
                    return True
        except Exception:  # noqa: BLE001
            pass
    return False


def fuzz_frames(seeds: list[tuple], n: int, rng: random.Random) -> list[bytes]:
    frames = [pickle.dumps(s, 5) for s in seeds]
    out = []
    while len(out) < n:
        kind = len(out) % 3
        if kind == 0:
            frame = rng.randbytes(rng.randrange(1, 300))
        else:
            frame = bytearray(rng.choice(frames))
            if kind == 1:
                for _ in range(rng.randrange(1, 5)):
                    frame[rng.randrange(len(frame))] = rng.randrange(256)
            else:
                frame = frame[: rng.randrange(1, len(frame))]
            frame = bytes(frame)
        if not memo_bomb(frame):
            out.append(frame)
    shapes = [pickle.dumps(x, 5) for x in (None, 1, [], {}, (), ("no_such_op",), ("rpc",), ("rpc", 1, 2),
                                           ("rpc", 1, None, "no_such_method", ()), ("rpc", 1, None, 7, ()),
                                           ("rpc", 1, None, "get_nodes", (1, 2, 3)), ("rpc_reply", [1], 2, 3))]
    return out + shapes


def test_fuzzed_and_oversized_frames_leave_gcs_and_node_answering(cluster):
    token = token_of(cluster)
    node = cluster.head_node.address
    rng = random.Random(1234)
    member = Member(token)
    try:
        gcs_frames = fuzz_frames([("rpc", 0, None, "get_nodes", ()), ("rpc", 0, None, "kv_get", ("ns", b"k")),
                                  ("rpc", 0, None, "get_cluster_view", ())], 1500, rng)
        node_frames = fuzz_frames([("rpc", 0, None, "get_resources", ()), ("rpc", 0, None, "list_workers", ())],
                                  1500, rng)
        oversized = b"\x80\x05" + b"x" * (2 << 20)  # over this cluster's 1 MiB max_message_bytes
        member.send_raw(cluster.gcs_address, gcs_frames + [oversized] + gcs_frames[:50])
        member.send_raw(node, node_frames + [oversized] + node_frames[:50])

        # An oversized but well-formed request is refused unread: the GCS drops the connection (what
        # followed it on that connection is lost too) and ZeroMQ reconnects; the same request under
        # the limit is served. Every request below is repeated until the connection is back.
        def put(key: bytes, size: int) -> None:
            member.send_raw(cluster.gcs_address, [pickle.dumps(("rpc", 0, None, "kv_put", ("sec", key, b"v" * size)))])

        def ask(address: str, method: str, *args):
            return member.call_sync(address, method, *args, timeout=2)

        put(b"big", 2 << 20)
        wait_for_condition(lambda: put(b"small", 1000) or ask(cluster.gcs_address, "kv_get", "sec", b"small"),
                           timeout=30)
        assert ask(cluster.gcs_address, "kv_get", "sec", b"big") is None

        # Both still answer the member, and a driver works end to end.
        nodes = wait_for_condition(lambda: ask(cluster.gcs_address, "get_nodes"), timeout=30)
        assert [n["node_id"] for n in nodes if n["alive"]] == [cluster.head_node.node_id]
        assert wait_for_condition(lambda: ask(node, "get_resources"), timeout=30)["total"]["CPU"] == 1.0
    finally:
        member.close()
    assert cluster.gcs_process.poll() is None and cluster.head_node.alive()
    juno.init(address=cluster.address)
    assert juno.get(plus_one.remote(41)) == 42
    for log in (gcs_log(cluster), node_log(cluster)):
        assert "dropped a frame that does not unpickle" in log and "dropped a message with unknown op" in log


# ============================================================================ the CLI
def juno_cli(env: dict, *args, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "juno", *map(str, args)], env=env, capture_output=True,
                          text=True, timeout=timeout)


def network_ip() -> str:
    """An IPv4 address of this machine that is not loopback (else 127.0.0.1: the test then checks
    the loopback rules only)."""
    for addrs in psutil.net_if_addrs().values():
        for a in addrs:
            if a.family == socket.AF_INET and not a.address.startswith("127."):
                return a.address
    return "127.0.0.1"


def assert_user_error(r: subprocess.CompletedProcess, code: int, *needles: str) -> None:
    assert r.returncode == code, f"exit {r.returncode}:\n{r.stdout}\n{r.stderr}"
    assert "Traceback" not in r.stderr and r.stderr.startswith("juno: error: "), r.stderr
    for needle in needles:
        assert needle in r.stderr, f"{needle!r} not in {r.stderr}"


def test_cli_listens_beyond_loopback_only_on_this_machines_addresses(_juno_leak_guard, tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("JUNO_ADDRESS", "RAY_ADDRESS", auth.TOKEN_ENV)}
    env[local_cluster.CLUSTER_FILE_ENV] = str(tmp_path / "current")
    for flag, value, needle in (("--host", "0.0.0.0", "every interface"),
                                ("--node-ip-address", "203.0.113.77", "not an address of this machine"),
                                ("--node-ip-address", "my-laptop", "IPv4 address"),
                                ("--host", "::1", "IPv6")):
        assert_user_error(juno_cli(env, "start", "--head", "--port", 0, flag, value), 2, flag, needle)

    ip = network_ip()
    r = juno_cli(env, "start", "--head", "--port", 0, "--num-cpus", 1, "--node-ip-address", ip)
    assert r.returncode == 0, r.stdout + r.stderr
    address = (tmp_path / "current").read_text().strip()
    try:
        assert address.startswith(f"{ip}:")
        if ip != "127.0.0.1":
            assert f"the GCS and the head node listens on {ip}, which other machines on the network can reach" \
                   in r.stderr
        assert "juno start --address" in r.stdout and "--token" in r.stdout
        token_file = tmp_path / local_cluster.TOKEN_DIR_NAME / address.replace(":", "_")
        assert oct(token_file.stat().st_mode & 0o777) == "0o600" and str(token_file) in r.stdout
        t = juno_cli(env, "token")
        token = t.stdout.strip()
        assert t.returncode == 0 and token == token_file.read_text().strip() and token not in r.stdout

        # A wrong --token: `juno start --address` fails clearly; the right one (found here) joins.
        assert_user_error(juno_cli(env, "start", "--address", address, "--token", "z" * 43, "--num-cpus", 1),
                          1, f"cluster at {address} refused", "--token")
        # (Its node IP defaults to this machine's address toward the GCS.)
        r = juno_cli(env, "start", "--address", address, "--num-cpus", 1)
        assert r.returncode == 0 and "Added node" in r.stdout, r.stdout + r.stderr

        # A driver with only the token in its environment (nothing stored where it looks).
        driver_env = dict(env, JUNO_CLUSTER_TOKEN=token, JUNO_CLUSTER_FILE=str(tmp_path / "none" / "f"))
        code = ("import json, juno\n"
                "from juno.owner.core_worker import global_worker\n"
                f"juno.init(address={address!r})\n"
                "where = juno.remote(lambda x: (x * 2, global_worker().address))\n"
                "nodes = juno.nodes()\n"
                "print(json.dumps({'ok': juno.get(where.remote(21)), 'driver': global_worker().address,\n"
                "                  'addresses': [n['NodeManagerAddress'] for n in nodes if n['Alive']]}))\n"
                "juno.shutdown()\n")
        d = subprocess.run([sys.executable, "-c", code], env=driver_env, capture_output=True, text=True, timeout=90)
        assert d.returncode == 0, d.stdout + d.stderr
        out = json.loads(d.stdout.strip().splitlines()[-1])
        result, worker_address = out["ok"]
        assert result == 42 and out["addresses"] == [ip, ip]
        with GcsProbe(local_cluster.normalize_address(address), token) as probe:
            listening = [n["address"] for n in probe.call_gcs("get_nodes", timeout=10) if n["alive"]]
        # Off loopback, node managers, workers and drivers listen on TCP there (CURVE), not on ipc sockets.
        listening += [worker_address, out["driver"]]
        assert len(listening) == 4 and all(
            a.startswith(f"tcp://{ip}:") if ip != "127.0.0.1" else a.startswith("ipc://") for a in listening), \
            listening
    finally:
        stop = juno_cli(env, "stop", "--address", address, "--force")
        assert stop.returncode == 0, stop.stdout + stop.stderr

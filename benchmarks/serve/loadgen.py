"""A cheap keep-alive HTTP load generator: the same client drives Juno Serve, Ray Serve and bare servers.

    python benchmarks/serve/loadgen.py http://127.0.0.1:8000/ --concurrency 8 --requests 500
    python benchmarks/serve/loadgen.py http://127.0.0.1:8000/echo --json '{"x": 1}' --duration 10

Each of ``concurrency`` threads holds one keep-alive connection and sends its requests one after another
over a raw socket (the request bytes are built once; the reply is parsed only as far as its status line,
Content-Length or chunked framing), so on a 2-core machine the client costs as little as it can and both
servers under test pay the same for it. A connection the server closes is reopened and counted.
"""
from __future__ import annotations

import argparse
import json
import socket
import threading
import time
from urllib.parse import urlsplit


class Connection:
    """One keep-alive connection that sends a prebuilt request and reads one reply at a time."""

    def __init__(self, host: str, port: int, timeout_s: float) -> None:
        self.address = (host, port)
        self.timeout_s = timeout_s
        self.sock: socket.socket | None = None
        self.buffer = b""
        self.reconnects = 0

    def request(self, data: bytes) -> tuple[int, bytes]:
        """Send ``data``; (status, body). Reopens a connection the server closed, once per request."""
        for attempt in range(2):
            if self.sock is None:
                self.sock = socket.create_connection(self.address, timeout=self.timeout_s)
                self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                self.buffer = b""
                self.reconnects += attempt
            try:
                self.sock.sendall(data)
                return self._read_reply()
            except (ConnectionError, EOFError):
                self.close()
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def _recv(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise EOFError("server closed the connection")
        self.buffer += chunk

    def _read_until(self, marker: bytes) -> bytes:
        while (end := self.buffer.find(marker)) < 0:
            self._recv()
        line, self.buffer = self.buffer[:end], self.buffer[end + len(marker):]
        return line

    def _read_exactly(self, n: int) -> bytes:
        while len(self.buffer) < n:
            self._recv()
        data, self.buffer = self.buffer[:n], self.buffer[n:]
        return data

    def _read_reply(self) -> tuple[int, bytes]:
        head = self._read_until(b"\r\n\r\n").split(b"\r\n")
        status = int(head[0].split(b" ", 2)[1])
        headers = {}
        for line in head[1:]:
            name, _, value = line.partition(b":")
            headers[name.strip().lower()] = value.strip()
        if headers.get(b"transfer-encoding", b"").lower() == b"chunked":
            body = []
            while size := int(self._read_until(b"\r\n").split(b";")[0], 16):
                body.append(self._read_exactly(size))
                self._read_exactly(2)
            self._read_until(b"\r\n")  # the empty trailer
            body = b"".join(body)
        else:
            body = self._read_exactly(int(headers.get(b"content-length", b"0")))
        if headers.get(b"connection", b"").lower() == b"close":
            self.close()
        return status, body

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None


def build_request(url: str, body: bytes | None, method: str | None = None) -> tuple[str, int, bytes]:
    """(host, port, the request's bytes) for ``url``; a body makes it a JSON POST."""
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        raise ValueError(f"loadgen speaks plain http: give a URL like http://127.0.0.1:8000/path, not {url!r}")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    method = method or ("POST" if body is not None else "GET")
    lines = [f"{method} {path} HTTP/1.1", f"Host: {parts.netloc}", "Connection: keep-alive"]
    if body is not None:
        lines += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
    return parts.hostname, parts.port or 80, ("\r\n".join(lines) + "\r\n\r\n").encode() + (body or b"")


def run(url: str, concurrency: int = 8, requests: int | None = 500, duration_s: float | None = None,
        json_body=None, method: str | None = None, timeout_s: float = 30.0, warmup: int = 0) -> dict:
    """Drive ``url`` from ``concurrency`` threads for ``requests`` requests in all (or ``duration_s`` seconds);
    returns {"requests", "errors", "seconds", "rps", "p50_ms", "p99_ms", "statuses", "reconnects"}.
    ``warmup`` requests per thread go first, untimed. A status >= 400 or a failed connection is an error."""
    body = None if json_body is None else json.dumps(json_body).encode()
    host, port, data = build_request(url, body, method)
    connections: list[Connection] = []

    def make_call():
        conn = Connection(host, port, timeout_s)
        connections.append(conn)

        def call() -> int:
            try:
                return conn.request(data)[0]
            except (OSError, EOFError, ValueError, IndexError):
                conn.close()
                raise
        return call

    result = drive(make_call, concurrency, requests, duration_s, warmup)
    for conn in connections:
        conn.close()
    result["reconnects"] = sum(conn.reconnects for conn in connections)
    return result


def drive(make_call, concurrency: int = 8, requests: int | None = 500, duration_s: float | None = None,
          warmup: int = 0) -> dict:
    """The timing loop of ``run``, for any call: ``make_call()`` gives each thread its own ``call()``, which
    returns a status (an int; >= 400 is an error) or raises (an error). Handle calls reuse it."""
    if concurrency < 1:
        raise ValueError(f"concurrency must be at least 1, got {concurrency}")
    if (requests is None) == (duration_s is None):
        raise ValueError("give exactly one of requests or duration_s")
    latencies: list[list[float]] = [[] for _ in range(concurrency)]
    statuses: list[dict] = [{} for _ in range(concurrency)]
    failures = [0] * concurrency
    lock = threading.Lock()
    left = [requests or 0]
    start_barrier = threading.Barrier(concurrency + 1)
    deadline = [0.0]

    def take() -> bool:
        if duration_s is not None:
            return time.perf_counter() < deadline[0]
        with lock:
            left[0] -= 1
            return left[0] >= 0

    def worker(i: int) -> None:
        call = make_call()
        for _ in range(warmup):
            try:
                call()
            except Exception:  # noqa: BLE001  (warm-up: not counted)
                pass
        start_barrier.wait()
        mine, codes = latencies[i], statuses[i]
        while take():
            t0 = time.perf_counter()
            try:
                status = call()
            except Exception:  # noqa: BLE001  (counted as an error)
                failures[i] += 1
                continue
            mine.append(time.perf_counter() - t0)
            codes[status] = codes.get(status, 0) + 1

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(concurrency)]
    for t in threads:
        t.start()
    start_barrier.wait()
    began = time.perf_counter()
    deadline[0] = began + (duration_s or 0)
    for t in threads:
        t.join()
    seconds = time.perf_counter() - began
    all_lat = sorted(x for mine in latencies for x in mine)
    codes: dict[int, int] = {}
    for mine in statuses:
        for status, n in mine.items():
            codes[status] = codes.get(status, 0) + n
    bad = sum(n for status, n in codes.items() if status >= 400) + sum(failures)
    return {"requests": len(all_lat) + sum(failures), "errors": bad, "seconds": seconds,
            "rps": len(all_lat) / seconds if seconds else 0.0, "p50_ms": percentile(all_lat, 50) * 1e3,
            "p99_ms": percentile(all_lat, 99) * 1e3, "statuses": codes}


def percentile(sorted_values: list[float], q: float) -> float:
    """The nearest-rank percentile of an already sorted list (0.0 when empty)."""
    if not sorted_values:
        return 0.0
    rank = max(0, min(len(sorted_values) - 1, int(round(q / 100 * len(sorted_values) + 0.5)) - 1))
    return sorted_values[rank]


def summary(result: dict) -> str:
    return (f"{result['requests']} requests in {result['seconds']:.2f} s: {result['rps']:.0f} req/s, "
            f"p50 {result['p50_ms']:.2f} ms, p99 {result['p99_ms']:.2f} ms, errors {result['errors']}"
            f" (statuses {result['statuses']})")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("url")
    p.add_argument("--concurrency", "-c", type=int, default=8, help="threads, one keep-alive connection each")
    p.add_argument("--requests", "-n", type=int, help="requests in all (default 500 unless --duration)")
    p.add_argument("--duration", "-d", type=float, help="seconds to run instead of a request count")
    p.add_argument("--json", help="a JSON body: makes the requests POSTs")
    p.add_argument("--warmup", type=int, default=5, help="untimed requests per thread first")
    p.add_argument("--as-json", action="store_true", help="print the result as one JSON line")
    args = p.parse_args()
    requests = args.requests if args.requests is not None or args.duration is not None else 500
    result = run(args.url, args.concurrency, requests, args.duration,
                 None if args.json is None else json.loads(args.json), warmup=args.warmup)
    print(json.dumps(result) if args.as_json else summary(result))


if __name__ == "__main__":
    main()

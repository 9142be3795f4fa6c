"""Which HTTP server the Serve proxy runs: uvicorn (uvloop + httptools) against tornado's HTTPServer.

    .venv/bin/python benchmarks/serve/server_choice.py --requests 5000 --repeat 3

Each server is one process answering a trivial JSON reply on loopback (no Juno in the way), driven by
``loadgen.py`` with 8 keep-alive threads; the runs alternate so load on a shared machine hits both alike.
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import loadgen  # noqa: E402

SERVERS = ("uvicorn", "tornado", "tornado-bare")


def serve_uvicorn(port: int) -> None:
    import uvicorn

    body = json.dumps({"ok": True}).encode()

    async def app(scope, receive, send):
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})

    uvicorn.run(app, host="127.0.0.1", port=port, loop="uvloop", http="httptools", log_level="warning",
                access_log=False, lifespan="off")


def serve_tornado(port: int) -> None:
    import asyncio

    import tornado.httpserver
    import tornado.web

    class Handler(tornado.web.RequestHandler):
        def get(self):
            self.write({"ok": True})

    async def main():
        server = tornado.httpserver.HTTPServer(tornado.web.Application([(r"/.*", Handler)]))
        server.listen(port, "127.0.0.1")
        await asyncio.Event().wait()

    asyncio.run(main())


def serve_tornado_bare(port: int) -> None:
    """tornado's HTTPServer with a bare request callback: no RequestHandler, its fastest path."""
    import asyncio

    import tornado.httpserver
    import tornado.httputil

    body = json.dumps({"ok": True}).encode()

    def on_request(request):
        start = tornado.httputil.ResponseStartLine("HTTP/1.1", 200, "OK")
        headers = tornado.httputil.HTTPHeaders({"Content-Type": "application/json", "Content-Length": str(len(body))})
        request.connection.write_headers(start, headers, body)
        request.connection.finish()

    async def main():
        tornado.httpserver.HTTPServer(on_request).listen(port, "127.0.0.1")
        await asyncio.Event().wait()

    asyncio.run(main())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def measure(server: str, requests: int, concurrency: int) -> dict:
    port = free_port()
    proc = subprocess.Popen([sys.executable, __file__, "--serve", server, "--port", str(port)])
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError(f"{server} did not start listening on port {port}")
                time.sleep(0.05)
        return loadgen.run(f"http://127.0.0.1:{port}/", concurrency, requests, warmup=20)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--requests", type=int, default=5000)
    p.add_argument("--concurrency", type=int, default=8)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--serve", choices=SERVERS, help=argparse.SUPPRESS)
    p.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.serve:
        return {"uvicorn": serve_uvicorn, "tornado": serve_tornado, "tornado-bare": serve_tornado_bare}[args.serve](
            args.port)
    results: dict[str, list[dict]] = {s: [] for s in SERVERS}
    for round_ in range(args.repeat):
        for server in SERVERS:
            out = measure(server, args.requests, args.concurrency)
            results[server].append(out)
            print(f"round {round_ + 1}: {server:8} {loadgen.summary(out)}", file=sys.stderr, flush=True)
    print(f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}; {args.requests} requests from "
          f"{args.concurrency} keep-alive threads, median of {args.repeat} runs")
    print("| server | req/s | p50 ms | p99 ms |\n|---|---|---|---|")
    for server, runs in results.items():
        med = {k: statistics.median(r[k] for r in runs) for k in ("rps", "p50_ms", "p99_ms")}
        print(f"| {server} | {med['rps']:.0f} | {med['p50_ms']:.2f} | {med['p99_ms']:.2f} |")


if __name__ == "__main__":
    main()

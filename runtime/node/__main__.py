"""Entry point of a node manager: ``python -m juno.node`` (started by juno.init or `juno start`)."""
from __future__ import annotations

import argparse
import json
import logging
import os
import select
import sys
import time

from juno.config import Config
from juno.node.gpu import detect_gpu_ids
from juno.node.manager import NodeManager
from juno.cluster.processes import report_ready, take_lifeline


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m juno.node")
    p.add_argument("--node-id", required=True)
    p.add_argument("--session-dir", required=True)
    p.add_argument("--gcs-address", required=True,
                   help="'-': read it as one line on stdin once started (a head node started beside its GCS)")
    p.add_argument("--store-dir", required=True)
    p.add_argument("--num-cpus", type=float, default=None)
    p.add_argument("--num-gpus", type=float, default=None)
    p.add_argument("--resources", default="{}")
    p.add_argument("--object-store-memory", type=int, default=0)
    p.add_argument("--owner-pid", type=int, default=0)
    p.add_argument("--head", action="store_true")
    p.add_argument("--node-ip-address", default="127.0.0.1",
                   help="this node's IP: loopback listens on ipc sockets, any other on TCP there (CURVE)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s node %(name)s: %(message)s")
    resources = dict(json.loads(args.resources))
    resources["CPU"] = args.num_cpus if args.num_cpus is not None else float(os.cpu_count() or 1)
    detected = detect_gpu_ids()
    if args.num_gpus is None:
        gpu_ids = detected
    else:
        n = int(args.num_gpus)
        gpu_ids = detected[:n] if len(detected) >= n else list(range(n))
    if gpu_ids:
        resources["GPU"] = float(len(gpu_ids))
    object_store_memory = args.object_store_memory or default_object_store_memory(args.store_dir)
    resources.setdefault("memory", float(_memory_bytes() - object_store_memory))
    resources["object_store_memory"] = float(object_store_memory)
    resources[f"node:{args.node_ip_address}"] = 1.0
    if args.head:
        resources["node:__internal_head__"] = 1.0
    config = Config.from_env()
    if args.gcs_address == "-":
        args.gcs_address = await_gcs_address(config.process_start_timeout_s)
        if args.gcs_address is None:
            return 1
    nm = NodeManager(node_id=args.node_id, session_dir=args.session_dir, gcs_address=args.gcs_address,
                     resources=resources, gpu_ids=gpu_ids, config=config,
                     owner_pid=args.owner_pid or None, store_dir=args.store_dir,
                     object_store_memory=object_store_memory, is_head=args.head, node_ip=args.node_ip_address)
    nm.watch_owner(take_lifeline())
    nm.start(lambda: report_ready(json.dumps(nm.node)))
    try:
        nm.loop.run()
    finally:
        nm.cleanup()
    return 0


def await_gcs_address(timeout: float) -> str | None:
    """The GCS's address, one line on stdin from the process that started us beside the GCS (the
    imports are done by now: that overlap is the point). None, logged, if the line does not come
    within ``timeout`` or stdin closes first: the GCS never came (its starter stops us or died).
    Stdin becomes /dev/null again, so the workers we start inherit no pipe."""
    log = logging.getLogger("juno.node")
    deadline = time.monotonic() + timeout
    buf = b""
    try:
        while b"\n" not in buf:
            left = deadline - time.monotonic()
            if left <= 0:
                log.error("The GCS never came: no GCS address on stdin within %.0f s; exiting.", timeout)
                return None
            if not select.select([0], [], [], left)[0]:
                continue
            chunk = os.read(0, 4096)
            if not chunk:
                log.error("The GCS never came: stdin closed before the GCS address was sent "
                          "(the GCS failed to start, or the process starting the cluster died); exiting.")
                return None
            buf += chunk
    finally:
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.close(devnull)
    return buf.split(b"\n", 1)[0].decode().strip()


def default_object_store_memory(store_dir: str) -> int:
    """Ray's default: 30% of the machine's memory, but no more than /dev/shm can hold."""
    total = _physical_memory()
    shm = os.path.dirname(store_dir.rstrip("/")) or "/"
    try:
        st = os.statvfs(shm)
        shm_free = st.f_bavail * st.f_frsize
    except OSError:
        shm_free = total
    return max(64 << 20, min(int(total * 0.3), int(shm_free * 0.8)))


def _physical_memory() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):
        return 8 << 30


def _memory_bytes() -> int:
    """Memory for tasks' ``memory=`` requests: 70% of the machine, as Ray reserves."""
    return _physical_memory() * 7 // 10


if __name__ == "__main__":
    sys.exit(main())

"""Entry point of a node manager: ``python -m juno.node`` (started by juno.init or `juno start`)."""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys

from juno.config import Config
from juno.node.gpu import detect_gpu_ids
from juno.node.manager import NodeManager
from juno.proc_util import report_ready


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m juno.node")
    p.add_argument("--node-id", required=True)
    p.add_argument("--session-dir", required=True)
    p.add_argument("--gcs-address", required=True)
    p.add_argument("--store-dir", required=True)
    p.add_argument("--num-cpus", type=float, default=None)
    p.add_argument("--num-gpus", type=float, default=None)
    p.add_argument("--resources", default="{}")
    p.add_argument("--object-store-memory", type=int, default=0)
    p.add_argument("--owner-pid", type=int, default=0)
    p.add_argument("--head", action="store_true")
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
    resources.setdefault("memory", float(_memory_bytes()))
    if args.object_store_memory:
        resources["object_store_memory"] = float(args.object_store_memory)
    resources["node:127.0.0.1"] = 1.0
    if args.head:
        resources["node:__internal_head__"] = 1.0
    nm = NodeManager(node_id=args.node_id, session_dir=args.session_dir, gcs_address=args.gcs_address,
                     resources=resources, gpu_ids=gpu_ids, config=Config.from_env(),
                     owner_pid=args.owner_pid or None, store_dir=args.store_dir,
                     object_store_memory=args.object_store_memory, is_head=args.head)
    nm.start(lambda: report_ready(json.dumps(nm.node)))
    try:
        nm.loop.run()
    finally:
        nm.cleanup()
    return 0


def _memory_bytes() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") * 7 // 10
    except (ValueError, OSError):
        return 0


if __name__ == "__main__":
    sys.exit(main())

"""Entry point of the GCS: ``python -m juno.gcs`` (started by juno.init or `juno start --head`)."""
from __future__ import annotations

import argparse
import logging
import os
import sys

from juno.comm import auth
from juno.config import Config
from juno.gcs.server import GcsServer
from juno.cluster.processes import report_ready, take_lifeline


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m juno.gcs")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--session-dir", required=True)
    p.add_argument("--owner-pid", type=int, default=0)
    p.add_argument("--owner-linger-s", type=float, default=0.0,
                   help="once the owner is gone, wait this long for another process to claim the cluster")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s gcs %(name)s: %(message)s")
    if not os.environ.get(auth.TOKEN_ENV):
        # Restarted by hand (runtime/gcs/recovery.py): the session folder keeps the cluster's token.
        from juno.cluster.local_cluster import read_session_token

        token = read_session_token(args.session_dir)
        if token:
            os.environ[auth.TOKEN_ENV] = token
    gcs = GcsServer(bind=f"tcp://{args.host}:{args.port}", session_dir=args.session_dir,
                    config=Config.from_env(), owner_pid=args.owner_pid or None, owner_linger_s=args.owner_linger_s)
    gcs.watch_owner(take_lifeline())
    report_ready(gcs.address)
    gcs.loop.run()
    if gcs.abandoned:  # its owner died (and nobody claimed it): leave nothing of the cluster behind
        from juno.cluster.local_cluster import forget_cluster

        forget_cluster(args.session_dir, gcs.address, os.environ.get(auth.TOKEN_ENV))
    return 0


if __name__ == "__main__":
    sys.exit(main())

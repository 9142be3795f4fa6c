"""Entry point of the GCS: ``python -m juno.gcs`` (started by juno.init or `juno start --head`)."""
from __future__ import annotations

import argparse
import logging
import sys

from juno.config import Config
from juno.gcs.server import GcsServer
from juno.proc_util import report_ready


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m juno.gcs")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--session-dir", required=True)
    p.add_argument("--owner-pid", type=int, default=0)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s gcs %(name)s: %(message)s")
    gcs = GcsServer(bind=f"tcp://{args.host}:{args.port}", session_dir=args.session_dir,
                    config=Config.from_env(), owner_pid=args.owner_pid or None)
    report_ready(gcs.address)
    gcs.loop.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())

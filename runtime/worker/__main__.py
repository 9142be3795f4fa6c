"""Entry point of a worker process: ``python -m juno.worker`` (started by a node manager),
or of a node's worker fork server: ``python -m juno.worker --zygote NODE_PID`` (runtime/worker/zygote.py)."""
from __future__ import annotations

import json
import logging
import os
import sys

from juno.config import Config
from juno.owner.core_worker import MODE_WORKER, CoreWorker, set_global_worker
from juno.cluster.processes import die_with_parent
from juno.worker.executor import TaskExecutor


def main() -> int:
    info = json.loads(os.environ.pop("JUNO_WORKER_INFO"))
    # A worker never outlives its node manager: the kernel kills it when the node manager dies,
    # and if that happened already (while this process was starting), it stops here.
    if not die_with_parent(info["node"]["pid"]):
        print(f"juno worker {os.getpid()}: its node manager (pid {info['node']['pid']}) is gone; exiting",
              file=sys.stderr)
        return 1
    logging.basicConfig(level=logging.WARNING, stream=sys.__stderr__,
                        format="%(asctime)s %(levelname)s worker %(process)d %(name)s: %(message)s")
    config = Config.from_env()
    worker_id = bytes.fromhex(info["worker_id"])
    cw = CoreWorker(mode=MODE_WORKER, worker_id=worker_id, session_dir=info["session_dir"],
                    node=info["node"], gcs_address=info["gcs_address"], config=config)
    set_global_worker(cw)
    executor = TaskExecutor(cw)
    cw.executor = executor
    cw.start()
    cw.node_call("register_worker", worker_id, cw.address, os.getpid())
    try:
        executor.run()
    except KeyboardInterrupt:
        pass
    finally:
        cw.stop()
        set_global_worker(None)  # so juno.shutdown() at exit has nothing to detach from
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--zygote":
        from juno.worker.zygote import serve
        sys.exit(serve(int(sys.argv[2])))
    sys.exit(main())

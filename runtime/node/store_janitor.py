"""Who removes a node's store when its node manager is SIGKILLed: the node's store janitor.

A node manager that stops removes its store folder in /dev/shm (and its spill folder) itself;
a killed one can't, and nothing else on the machine knows the folder is dead. So each node
manager starts, before it creates its store, one tiny process (/bin/sh, no Python): it holds
the read end of a pipe whose only write end the node manager holds and never writes to. When
the node manager exits, by any death, the pipe reads EOF and the janitor removes the folders
and exits; after a clean stop it finds nothing left to remove. It runs in a session of its own
so that a SIGKILL of the node's process group (its manager and workers) does not take it too.
"""
from __future__ import annotations

import os
import subprocess

# Block until EOF (the node manager never writes a line), then remove the folders named after $0.
_SCRIPT = 'while read -r _; do :; done; exec rm -rf -- "$@"'
NAME = "juno-store-janitor"  # $0: what ps shows


class StoreJanitor:
    """The janitor process of one node manager and the write end of its pipe (held for life)."""

    def __init__(self, paths: list[str]):
        r, self._lifeline = os.pipe()  # the write end is close-on-exec: workers never hold it
        try:
            self.proc = subprocess.Popen(["/bin/sh", "-c", _SCRIPT, NAME, *paths], stdin=r,
                                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                         close_fds=True, start_new_session=True)
        finally:
            os.close(r)

    def release(self) -> None:
        """After a clean stop: let the janitor go (it removes what is left, if anything)."""
        if self._lifeline >= 0:
            os.close(self._lifeline)
            self._lifeline = -1
        try:
            self.proc.wait(5)  # reap it: a node manager that stopped cleanly leaves no zombie
        except subprocess.TimeoutExpired:
            pass

"""Which Juno cluster the Jupyter extension shows.

In order: the address the user set (``PUT /juno/api/connection``); for a request
naming a kernel (``?kernel_id=``), the cluster that kernel started or attached to
(its record, runtime/cluster/kernel_cluster.py) or the JUNO_ADDRESS of its environment;
JUNO_ADDRESS in the server's environment; the cluster of any other live kernel of
this server; the cluster ``juno start --head`` recorded on this machine.

Kernel ids: the server's kernel manager names a kernel by a UUID; the kernel's
record is named by its connection file's name (``kernel-<uuid>.json`` for kernels
Jupyter starts), which is what ``kernel_cluster.kernel_key()`` returns inside the
kernel. The map goes through each kernel's connection file, so a server that
names connection files differently still matches.
"""
from __future__ import annotations

import logging
import os
import threading
from typing import Any, Iterator

logger = logging.getLogger("juno.jupyter_extension")

SOURCES = ("user", "kernel", "JUNO_ADDRESS", "juno start")


def _shown(address: str | None) -> str | None:
    if not address:
        return None
    address = address.strip()
    for prefix in ("tcp://", "juno://", "ray://"):
        if address.startswith(prefix):
            address = address[len(prefix):]
    return address if address not in ("", "auto", "local") else None


class Discovery:
    """The extension's connection: a user-set address, else what :meth:`candidates` finds."""

    def __init__(self, kernel_manager: Any = None, environ: dict | None = None):
        self.kernel_manager = kernel_manager
        self.environ = os.environ if environ is None else environ
        self._lock = threading.Lock()
        self._user_address: str | None = None

    # ------------------------------------------------------------------ the user's choice
    @property
    def user_address(self) -> str | None:
        with self._lock:
            return self._user_address

    def set_user_address(self, address: str | None) -> None:
        """Pin the connection to ``address`` (``host:port``), or None to go back to discovery."""
        with self._lock:
            self._user_address = address

    # ------------------------------------------------------------------ discovery
    def current(self, kernel_id: str | None = None) -> tuple[str | None, str | None, list[dict]]:
        """(address, its source, every candidate) for a request (naming ``kernel_id`` or not)."""
        found = self.candidates(kernel_id)
        if not found:
            return None, None, found
        return found[0]["address"], found[0]["source"], found

    def first(self, kernel_id: str | None = None) -> str | None:
        """The address :meth:`current` would give, looking no further than needed (every API request
        without ``?address=`` asks this)."""
        return next(self._discover(kernel_id), {}).get("address")

    def candidates(self, kernel_id: str | None = None) -> list[dict]:
        """Every cluster this server could show, best first, each address once."""
        return list(self._discover(kernel_id))

    def _discover(self, kernel_id: str | None) -> Iterator[dict]:
        seen: set[str] = set()

        def entry(address: str | None, source: str, kernel: str | None = None) -> dict | None:
            address = _shown(address)
            if not address or address in seen:
                return None
            seen.add(address)
            found = {"address": address, "source": source}
            if kernel is not None:
                found["kernel_id"] = kernel
            return found

        def sources() -> Iterator[dict | None]:
            yield entry(self.user_address, "user")
            if kernel_id:
                yield entry(self.kernel_address(kernel_id), "kernel", kernel_id)
            yield entry(self.environ.get("JUNO_ADDRESS") or self.environ.get("RAY_ADDRESS"), "JUNO_ADDRESS")
            for other in self.kernel_ids():
                if other != kernel_id:
                    yield entry(self.kernel_address(other), "kernel", other)
            from juno.cluster import local_cluster

            yield entry(local_cluster.read_current_cluster(), "juno start")

        return (found for found in sources() if found is not None)

    def kernel_ids(self) -> list[str]:
        km = self.kernel_manager
        if km is None:
            return []
        try:
            return list(km.list_kernel_ids())
        except Exception:  # noqa: BLE001 - a kernel manager mid-shutdown
            return []

    def kernel_address(self, kernel_id: str) -> str | None:
        """The cluster of one kernel: its live record, else JUNO_ADDRESS in its environment."""
        from juno.cluster import kernel_cluster
        from juno.cluster.processes import pid_alive

        for key in self.record_keys(kernel_id):
            record = kernel_cluster.read(key)
            pids = record.get("pids") if record else None
            if pids and all(isinstance(pid, int) and pid_alive(pid) for pid in pids):
                return record["gcs_address"]
        env = self._kernel_environ(kernel_id)
        return env.get("JUNO_ADDRESS") or env.get("RAY_ADDRESS")

    def record_keys(self, kernel_id: str) -> list[str]:
        """The record names a kernel's records may have: its connection file's name (without
        .json), and ``kernel-<id>`` (Jupyter's naming) when the kernel manager does not say."""
        keys = []
        km = self._kernel(kernel_id)
        connection_file = getattr(km, "connection_file", None) if km is not None else None
        if connection_file:
            name = os.path.basename(connection_file)
            keys.append(name[: -len(".json")] if name.endswith(".json") else name)
        keys.append(f"kernel-{kernel_id}")
        return [k for i, k in enumerate(keys) if k not in keys[:i]]

    def _kernel(self, kernel_id: str) -> Any:
        km = self.kernel_manager
        if km is None:
            return None
        try:
            return km.get_kernel(kernel_id)
        except Exception:  # noqa: BLE001 - unknown or gone kernel
            return None

    def _kernel_environ(self, kernel_id: str) -> dict:
        """The environment of a kernel process on this machine ({} if it cannot be read)."""
        km = self._kernel(kernel_id)
        if km is None:
            return {}
        env = (getattr(km, "_launch_args", None) or {}).get("env")
        pid = getattr(getattr(km, "provisioner", None), "pid", None)
        if pid:
            try:
                import psutil

                return psutil.Process(pid).environ()
            except Exception:  # noqa: BLE001 - gone, or another user's process
                pass
        return dict(env) if isinstance(env, dict) else {}

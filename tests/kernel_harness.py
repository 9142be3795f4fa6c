"""A real IPython kernel for tests, driven over the Jupyter protocol (jupyter_client).

    with KernelHarness() as k:
        cell = k.execute("%load_ext juno")
        assert cell.ok, cell.error_text
        cell = k.execute("print(1 + 1)")
        assert cell.stdout == "2\\n"

The kernel runs the venv's python (the one running the tests), in its own process.
Every message on iopub is collected per cell (by the parent msg_id), also after the cell
finished, so tests can check output that arrives under an earlier cell. ``close()``
calls ``juno.shutdown()`` inside the kernel, shuts the kernel down and waits for it,
so the leak checks of tests/conftest.py find nothing left behind.
"""

from __future__ import annotations

import os
import queue
import sys
import threading
import time
from dataclasses import dataclass, field

from jupyter_client import KernelManager

DEFAULT_TIMEOUT_S = 60.0
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"


@dataclass
class CellResult:
    """What one execute request produced: its reply and every iopub message whose parent it is."""

    msg_id: str
    reply: dict | None = None
    messages: list[dict] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.reply is not None and self.reply["content"]["status"] == "ok"

    def _of_type(self, *types: str) -> list[dict]:
        return [m for m in list(self.messages) if m["header"]["msg_type"] in types]

    def stream(self, name: str) -> str:
        return "".join(m["content"]["text"] for m in self._of_type("stream") if m["content"]["name"] == name)

    @property
    def stdout(self) -> str:
        return self.stream("stdout")

    @property
    def stderr(self) -> str:
        return self.stream("stderr")

    @property
    def results(self) -> list[dict]:
        """The data bundles of execute_result messages (``Out[n]``)."""
        return [m["content"]["data"] for m in self._of_type("execute_result")]

    @property
    def displays(self) -> list[dict]:
        return [m["content"]["data"] for m in self._of_type("display_data", "update_display_data")]

    @property
    def result_text(self) -> str | None:
        results = self.results
        return results[-1].get("text/plain") if results else None

    def live_widget(self) -> tuple[list[str], dict]:
        """For a cell that showed exactly one progress widget: the HTML values it was updated with in
        place, and the final bundle its display was rewritten with (what a saved notebook keeps)."""
        shown = [d for d in (m["content"]["data"] for m in self._of_type("display_data")) if WIDGET_MIME in d]
        assert len(shown) == 1, shown
        model_id = shown[0][WIDGET_MIME]["model_id"]
        live = [m["content"]["data"]["state"]["value"] for m in self._of_type("comm_msg")
                if m["content"]["comm_id"] == model_id and "value" in m["content"]["data"].get("state", {})]
        finals = [m["content"]["data"] for m in self._of_type("update_display_data")
                  if m["content"]["data"].get(WIDGET_MIME, {}).get("model_id") == model_id]
        assert finals, "the display was never rewritten with the final state"
        return live, finals[-1]

    @property
    def error(self) -> dict | None:
        """The content of the cell's error (ename, evalue, traceback), or None."""
        if self.reply is not None and self.reply["content"]["status"] == "error":
            return self.reply["content"]
        errors = self._of_type("error")
        return errors[-1]["content"] if errors else None

    @property
    def error_text(self) -> str:
        err = self.error
        if err is None:
            return ""
        return f"{err['ename']}: {err['evalue']}\n" + _strip_ansi("\n".join(err.get("traceback", [])))


def _strip_ansi(text: str) -> str:
    import re

    return re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", text)


class KernelHarness:
    """Start an ipykernel with this interpreter; execute cells; collect iopub per cell."""

    def __init__(self, env: dict | None = None, startup_timeout: float = 60.0) -> None:
        self.km = KernelManager(kernel_name="python3")
        # the venv's python, whatever kernelspec is installed
        self.km.kernel_spec.argv[0] = sys.executable
        kernel_env = dict(os.environ)
        kernel_env.update(env or {})
        self.km.start_kernel(env=kernel_env)
        self.kc = self.km.blocking_client()
        self.kc.start_channels()
        self.cells: dict[str, CellResult] = {}
        self.unparented: list[dict] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        try:
            self.kc.wait_for_ready(timeout=startup_timeout)
        except BaseException:
            self._kill()
            raise
        self._reader = threading.Thread(target=self._read_iopub, name="kernel-harness-iopub", daemon=True)
        self._reader.start()

    # ---------------------------------------------------------------- iopub
    def _read_iopub(self) -> None:
        while not self._stop.is_set():
            try:
                msg = self.kc.get_iopub_msg(timeout=0.1)
            except queue.Empty:
                continue
            except Exception:  # noqa: BLE001 - channels closed while stopping
                if self._stop.is_set():
                    return
                continue
            parent = msg.get("parent_header", {}).get("msg_id")
            with self._lock:
                cell = self.cells.get(parent) if parent else None
                if cell is None:
                    self.unparented.append(msg)
                else:
                    cell.messages.append(msg)

    def _idle(self, cell: CellResult) -> bool:
        return any(m["header"]["msg_type"] == "status" and m["content"]["execution_state"] == "idle"
                   for m in list(cell.messages))

    # ---------------------------------------------------------------- cells
    def submit(self, code: str) -> CellResult:
        """Send an execute request; return its (still filling) CellResult at once."""
        return self._register(self.kc.execute(code, allow_stdin=False))

    def _register(self, msg_id: str) -> CellResult:
        """Start collecting a request's iopub messages, taking over any that raced ahead of this call
        (on a busy machine a quick request's whole busy/idle pair can arrive before it)."""
        with self._lock:
            cell = CellResult(msg_id)
            self.cells[msg_id] = cell
            early = [m for m in self.unparented if m.get("parent_header", {}).get("msg_id") == msg_id]
            for m in early:
                self.unparented.remove(m)
                cell.messages.append(m)
        return cell

    def wait(self, cell: CellResult, timeout: float = DEFAULT_TIMEOUT_S) -> CellResult:
        """Wait for the cell's reply and its idle status (all of its output up to then)."""
        deadline = time.monotonic() + timeout
        while cell.reply is None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no execute_reply within {timeout}s for cell {cell.msg_id}")
            try:
                reply = self.kc.get_shell_msg(timeout=min(remaining, 0.5))
            except queue.Empty:
                continue
            parent = reply.get("parent_header", {}).get("msg_id")
            target = self.cells.get(parent)
            if target is not None:
                target.reply = reply
        self.wait_for(lambda: self._idle(cell), timeout=max(0.1, deadline - time.monotonic()),
                      what=f"idle status of cell {cell.msg_id}")
        return cell

    def execute(self, code: str, timeout: float = DEFAULT_TIMEOUT_S) -> CellResult:
        return self.wait(self.submit(code), timeout)

    def run_ok(self, code: str, timeout: float = DEFAULT_TIMEOUT_S) -> CellResult:
        """Execute and fail (AssertionError with the kernel's traceback) unless the cell succeeded."""
        cell = self.execute(code, timeout)
        assert cell.ok, f"cell failed:\n{code}\n---\n{cell.error_text}"
        return cell

    def eval(self, expr: str, timeout: float = DEFAULT_TIMEOUT_S) -> str | None:
        """The text/plain repr of ``expr`` evaluated in the kernel (via user_expressions)."""
        cell = self._register(self.kc.execute("", silent=True, user_expressions={"v": expr}))
        self.wait(cell, timeout)
        value = cell.reply["content"]["user_expressions"]["v"]
        if value["status"] != "ok":
            raise RuntimeError(f"{expr!r} failed in the kernel: {value['ename']}: {value['evalue']}")
        return value["data"].get("text/plain")

    def interrupt(self) -> None:
        self.km.interrupt_kernel()

    @staticmethod
    def wait_for(predicate, timeout: float = 10.0, what: str = "condition", interval: float = 0.02):
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() >= deadline:
                raise TimeoutError(f"{what} not met within {timeout}s")
            time.sleep(interval)

    # ---------------------------------------------------------------- teardown
    def restart(self, timeout: float = 60.0) -> None:
        """Restart the kernel as Jupyter's restart button does (same connection file, new process).
        Readiness is a cell that runs (not kc.wait_for_ready: it would read iopub beside our reader
        thread, and ZeroMQ sockets are not thread-safe)."""
        self.km.restart_kernel(now=False)
        deadline = time.monotonic() + timeout
        while True:  # iopub (a SUB socket) reconnects late and can miss the first cells' messages
            try:
                self.run_ok("pass", timeout=min(5.0, max(0.1, deadline - time.monotonic())))
                return
            except TimeoutError:
                if time.monotonic() >= deadline:
                    raise

    def close(self, timeout: float = 30.0) -> None:
        """Shut juno down in the kernel (if it was imported), then the kernel; wait for both."""
        try:
            if self.km.is_alive():
                cell = self.submit("import sys as _s\nif 'juno' in _s.modules: _s.modules['juno'].shutdown()")
                try:
                    self.wait(cell, timeout)
                except TimeoutError:
                    pass
        finally:
            self._stop.set()
            try:
                self.kc.stop_channels()
            finally:
                self._kill(timeout)

    def _kill(self, timeout: float = 30.0) -> None:
        try:
            self.km.shutdown_kernel(now=False)
        except Exception:  # noqa: BLE001 - already gone: make sure
            self.km.shutdown_kernel(now=True)
        deadline = time.monotonic() + timeout
        while self.km.is_alive() and time.monotonic() < deadline:
            time.sleep(0.05)

    def __enter__(self) -> "KernelHarness":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

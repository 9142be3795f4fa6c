"""Interrupting the kernel cancels the remote work the interrupted cell launched.

The stop button sends SIGINT; the cell waiting in ``juno.get``/``juno.wait`` gets a
KeyboardInterrupt and the kernel is idle again at once. IPython's ``post_run_cell`` event
then sees the interrupt, and we cancel (like ``juno.cancel``: the running task gets a
KeyboardInterrupt on its worker, queued ones are dropped) every task and actor call that
this cell submitted and that has not finished, so the cluster stops doing work nobody
waits for. Work launched by earlier cells keeps running; the kernel and cluster survive.
The cell tasks are known from ``juno.kernel_ext.output``'s submit tracking.
"""
from __future__ import annotations

import sys
from typing import Any

from juno.kernel_ext import output
from juno.util import notebook

_installed_on: Any = None  # the shell whose post_run_cell event we registered with
_disabled = False


def cancel_cell_work(msg_id: str) -> int:
    """Cancel the unfinished tasks and actor calls launched by the cell ``msg_id``; how many."""
    r = output.router()
    if r is None:
        return 0
    # newest first: queued work is dropped before the running work it waits behind is interrupted
    return notebook.cancel_unfinished(list(reversed(r.tasks_of_cell(msg_id))))


def _on_post_run_cell(result: Any) -> None:
    if not isinstance(getattr(result, "error_in_exec", None), KeyboardInterrupt):
        return
    r = output.router()
    cell = r.current_cell() if r is not None else None
    if cell is None:
        return
    n = cancel_cell_work(cell["header"]["msg_id"])
    if n:
        sys.stderr.write(f"juno: interrupted; cancelled {n} unfinished task{'s' if n != 1 else ''} "
                         "this cell launched.\n")


def _register(ip: Any) -> None:
    global _installed_on
    if _installed_on is ip:
        return
    ip.events.register("post_run_cell", _on_post_run_cell)
    _installed_on = ip


def attach(cw: Any) -> None:
    """Called as a driver starts: inside an ipykernel, cancel a cell's work when it is interrupted."""
    if _disabled:
        return
    ip = output._kernel_shell()
    if ip is None:
        return
    output.track(cw)
    _register(ip)


def install(ip: Any) -> None:
    """``%load_ext juno``: interrupts cancel the interrupted cell's remote work."""
    global _disabled
    _disabled = False
    if getattr(ip, "kernel", None) is None:
        return  # plain IPython: Ctrl-C already interrupts the local wait; nothing to route
    _register(ip)
    cw = notebook.connection()
    if cw is not None:
        output.track(cw)


def uninstall(ip: Any) -> None:
    """``%unload_ext juno``: interrupts no longer cancel remote work."""
    global _installed_on, _disabled
    _disabled = True
    if _installed_on is not None:
        try:
            _installed_on.events.unregister("post_run_cell", _on_post_run_cell)
        except ValueError:
            pass
        _installed_on = None

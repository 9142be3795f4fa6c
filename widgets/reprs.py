"""Rich reprs of Juno's objects: ObjectRef, ActorHandle, the init context, task errors.

The runtime's classes delegate here with one-line ``_repr_html_`` / ``_repr_mimebundle_`` methods. These
functions never block on the cluster (an ObjectRef's readiness and an actor's state come from this
process's own tables) and never raise: a repr that fails would hide the user's value.
"""
from __future__ import annotations

from typing import Any

from juno.util import notebook
from juno.widgets import formatting as fmt

_BOX = ('<div style="font-family:monospace;font-size:12px;border-left:3px solid {color};'
        'padding:2px 8px">{body}</div>')


def _box(body: str, color: str = "#4c8bf5") -> str:
    return _BOX.format(color=color, body=body)


def object_ref_status(ref: Any) -> str:
    """``ready``, ``pending`` (owned here, not computed yet) or ``not fetched`` (borrowed, not local)."""
    status = notebook.ref_status(ref)
    return "unknown (not connected)" if status is None else status


def object_ref_html(ref: Any) -> str:
    status = object_ref_status(ref)
    color = {"ready": "#5cb85c", "pending": "#f0ad4e"}.get(status, "#999")
    return _box(f"<b>ObjectRef</b> <code>{fmt.escape(ref.hex())}</code><br>"
                f"owner: <code>{fmt.escape(ref.owner_address)}</code> &middot; "
                f'<span style="color:{color}">{fmt.escape(status)}</span>', color)


def actor_state(handle: Any) -> str:
    """The actor's state as this process last heard it (no request is sent)."""
    if notebook.connection() is None:
        return "unknown (not connected)"
    state = notebook.known_actor_state(handle)
    return state if state is not None else "unknown (not called yet)"


def actor_html(handle: Any) -> str:
    state = actor_state(handle)
    color = {"ALIVE": "#5cb85c", "DEAD": "#d9534f", "RESTARTING": "#f0ad4e"}.get(state, "#999")
    class_name, actor_id = notebook.actor_identity(handle)
    return _box(f"<b>Actor</b> {fmt.escape(class_name)} <code>{fmt.escape(actor_id)}</code>"
                f' &middot; <span style="color:{color}">{fmt.escape(state)}</span>', color)


def context_mimebundle(context: Any) -> dict:
    """What ``juno.init()`` shows as a cell's result: the live cluster widget, titled with the session."""
    from juno.widgets.cluster import ClusterWidget

    info = context.address_info
    try:
        widget = ClusterWidget(title=f"Juno session (namespace {info.get('namespace')})")
        bundle = widget._repr_mimebundle_()
    except Exception as e:  # noqa: BLE001 - a repr must not raise
        bundle = {"text/html": _box(f"Juno: cluster view unavailable: {fmt.escape(e)}", "#999")}
    details = fmt.html_table(["", ""], [(k, info.get(k)) for k in ("address", "node_id", "namespace",
                                                                   "job_id", "session_dir")])
    bundle["text/html"] = bundle.get("text/html", "") + f"<details><summary>session</summary>{details}</details>"
    bundle["text/plain"] = repr(context)
    return bundle


def task_error_html(err: Any) -> str:
    """The user-facing message first; the remote traceback collapsed under it."""
    cause = getattr(err, "cause", None)
    if cause is not None:
        message = f"{type(cause).__name__}: {cause}"
    else:
        message = f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
    where = []
    for label, attr in (("task", "function_name"), ("pid", "pid"), ("ip", "ip"), ("actor", "actor_repr")):
        value = getattr(err, attr, None)
        if value:
            where.append(f"{label} {value}")
    tb = getattr(err, "traceback_str", "") or str(err)
    return _box(f'<div style="color:#a94442"><b>{fmt.escape(message)}</b></div>'
                f"<div>{fmt.escape(' · '.join(where))}</div>"
                f"<details><summary>remote traceback</summary><pre>{fmt.escape(tb.rstrip())}</pre></details>",
                "#d9534f")


def error_html(err: BaseException) -> str:
    """Any Juno error: RayTaskError gets the traceback layout, others their message."""
    from juno.exceptions import RayTaskError

    if isinstance(err, RayTaskError):
        return task_error_html(err)
    return _box(f'<b style="color:#a94442">{fmt.escape(type(err).__name__)}</b>: '
                f"<pre style='display:inline;white-space:pre-wrap'>{fmt.escape(err)}</pre>", "#d9534f")

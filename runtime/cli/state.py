"""The state commands of ``juno``: list, summary, memory, timeline (wired into runtime/cli/commands.py).

    juno list tasks|actors|objects|nodes|workers|jobs|placement-groups
              [--filter "key=value"]... [--limit N] [--detail] [--format table|json|yaml]
    juno summary tasks|actors|objects [--format table|json|yaml]
    juno memory                       object references grouped by owner, with totals
    juno timeline [--output FILE]     Chrome-trace JSON of the tasks that ran

Each takes --address HOST:PORT (else $JUNO_ADDRESS, else the cluster `juno start --head`
recorded) and --timeout S.
"""
from __future__ import annotations

import argparse
import datetime
import os
import sys
import tempfile
import warnings
from typing import Any, Callable

from juno.observability import state_schema as schema

RESOURCES = ("tasks", "actors", "objects", "nodes", "workers", "jobs", "placement-groups")
SUMMARIES = ("tasks", "actors", "objects")
FORMATS = ("table", "json", "yaml")


def add_parsers(sub, cli) -> None:
    """Add the state commands to the ``juno`` parser; ``cli`` is runtime/cli/commands.py (CliError, resolve_address)."""

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--address", metavar="HOST:PORT", help="GCS address of the cluster")
        p.add_argument("--timeout", type=float, default=30.0, metavar="S",
                       help="how long to wait for the cluster to answer (default 30)")

    ls = sub.add_parser("list", help="list tasks, actors, objects, nodes, workers, jobs or placement groups",
                        description="List the cluster's tasks, actors, objects, nodes, workers, jobs or placement "
                                    "groups (Ray's `ray list`).")
    ls.add_argument("resource", choices=RESOURCES, metavar="RESOURCE", help=" | ".join(RESOURCES))
    ls.add_argument("--filter", "-f", action="append", default=[], metavar="KEY=VALUE",
                    help='keep rows where KEY equals VALUE ("key!=value" for the opposite); repeatable')
    ls.add_argument("--limit", type=int, default=schema.DEFAULT_LIMIT, metavar="N",
                    help=f"show at most N rows (default {schema.DEFAULT_LIMIT})")
    ls.add_argument("--detail", action="store_true", help="every column, not just the main ones")
    ls.add_argument("--format", choices=FORMATS, default="table")
    common(ls)
    ls.set_defaults(func=lambda a: cmd_list(a, cli))

    sm = sub.add_parser("summary", help="summarize tasks, actors or objects",
                        description="Count tasks per function, actors per class or objects per call site, by state.")
    sm.add_argument("resource", choices=SUMMARIES, metavar="RESOURCE", help=" | ".join(SUMMARIES))
    sm.add_argument("--format", choices=FORMATS, default="table")
    common(sm)
    sm.set_defaults(func=lambda a: cmd_summary(a, cli))

    mem = sub.add_parser("memory", help="object references in the cluster, grouped by owner",
                         description="Every object reference held in the cluster, grouped by the process that owns "
                                     "the object, with sizes, reference types, call sites "
                                     "(record_ref_creation_sites=1) and totals.")
    common(mem)
    mem.set_defaults(func=lambda a: cmd_memory(a, cli))

    tl = sub.add_parser("timeline", help="write a Chrome-trace timeline of the tasks that ran",
                        description="Write the tasks the cluster ran as Chrome-trace JSON; open it in "
                                    "chrome://tracing or https://ui.perfetto.dev.")
    tl.add_argument("--output", "-o", metavar="FILE",
                    help="where to write (default: juno-timeline-<time>.json in the temp folder)")
    common(tl)
    tl.set_defaults(func=lambda a: cmd_timeline(a, cli))


# ============================================================================ helpers
def _client(args, cli):
    from juno.observability.state_client import StateClient

    address, source = cli.resolve_address(args.address)
    try:
        return StateClient(address, args.timeout)
    except (ValueError, ConnectionError) as e:
        raise cli.CliError(f"{e} (from {source})", 2) from None


def _run(cli, fn: Callable[[], Any]) -> Any:
    from juno.observability.state_schema import StateApiException

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            result = fn()
        except StateApiException as e:
            raise cli.CliError(str(e)) from None
        except (TimeoutError, ConnectionError) as e:
            raise cli.CliError(str(e)) from None
        except ValueError as e:
            raise cli.CliError(str(e), 2) from None
    for w in caught:
        print(f"juno: warning: {w.message}", file=sys.stderr)
    return result


def _emit(value: Any, fmt: str, table: Callable[[], str]) -> None:
    if fmt == "json":
        print(schema.format_json(value))
    elif fmt == "yaml":
        print(schema.format_yaml(value))
    else:
        print(table())


def _banner(title: str) -> str:
    return f"======== {title}: {datetime.datetime.now():%Y-%m-%d %H:%M:%S} ========"


# ============================================================================ list
def cmd_list(args, cli) -> int:
    from juno.util import state

    if args.limit is not None and args.limit < 0:
        raise cli.CliError("--limit must be a non-negative number.", 2)
    fn = {
        "tasks": state.list_tasks, "actors": state.list_actors, "objects": state.list_objects,
        "nodes": state.list_nodes, "workers": state.list_workers, "jobs": state.list_jobs,
        "placement-groups": state.list_placement_groups,
    }[args.resource]
    try:
        filters = [schema.parse_filter(f) for f in args.filter]
    except ValueError as e:
        raise cli.CliError(str(e), 2) from None
    address, _ = cli.resolve_address(args.address)
    rows = _run(cli, lambda: fn(address=address, filters=filters, limit=args.limit, timeout=args.timeout,
                                detail=args.detail, raise_on_missing_output=False))
    plain = [dict(r) for r in rows]

    def table() -> str:
        title = args.resource.replace("-", " ").capitalize()
        return f"{_banner('List ' + title)}\nTotal: {len(plain)}\n\n{schema.format_table(plain)}"

    _emit(plain, args.format, table)
    return 0


# ============================================================================ summary
def cmd_summary(args, cli) -> int:
    from juno.util import state

    fn = {"tasks": state.summarize_tasks, "actors": state.summarize_actors,
          "objects": state.summarize_objects}[args.resource]
    address, _ = cli.resolve_address(args.address)
    summary = _run(cli, lambda: fn(address=address, timeout=args.timeout, raise_on_missing_output=False))
    _emit(summary, args.format, lambda: render_summary(args.resource, summary))
    return 0


def _counts(counts: dict) -> str:
    return ", ".join(f"{k}: {v}" for k, v in sorted(counts.items()))


def render_summary(resource: str, summary: dict) -> str:
    cluster = summary["cluster"]
    stats = [f"{k}: {v:.2f}" if isinstance(v, float) else f"{k}: {v}" for k, v in cluster.items()
             if k not in ("summary", "summary_by")]
    rows = []
    for key, group in cluster["summary"].items():
        if resource == "tasks":
            rows.append({"func_or_class_name": key, "type": group["type"],
                         "state_counts": _counts(group["state_counts"])})
        elif resource == "actors":
            rows.append({"class_name": key, "state_counts": _counts(group["state_counts"])})
        else:
            rows.append({"call_site": key, "total_objects": group["total_objects"],
                         "total_size_mb": f"{group['total_size_mb']:.2f}",
                         "total_num_workers": group["total_num_workers"], "total_num_nodes": group["total_num_nodes"],
                         "task_state_counts": _counts(group["task_state_counts"]),
                         "ref_type_counts": _counts(group["ref_type_counts"])})
    return "\n".join([_banner(f"{resource.capitalize()} Summary"), "Stats:", "-" * 36, *stats, "",
                      f"Table (group by {cluster['summary_by']}):", "-" * 36, schema.format_table(rows)])


# ============================================================================ memory
def cmd_memory(args, cli) -> int:
    with _client(args, cli) as client:
        rows, sites = _run(cli, client.objects)
        missing = list(client.missing)
    for text in missing:
        print(f"juno: warning: no answer from {text}", file=sys.stderr)
    print(render_memory(rows, sites))
    return 0


def render_memory(rows: list[dict], call_sites: bool) -> str:
    """References grouped by the process owning the object, with per-owner and overall totals."""
    kinds = {r["pid"]: r["type"] for r in rows}
    groups: dict[Any, list[dict]] = {}
    for r in rows:
        groups.setdefault(r["owner_pid"], []).append(r)
    out = [_banner("Object references"), f"Grouped by owner; call sites "
           f"{'recorded' if call_sites else 'not recorded (set record_ref_creation_sites=1 to record them)'}.", ""]
    all_sizes: dict[str, int] = {}
    ref_counts: dict[str, int] = {}
    for owner, items in sorted(groups.items(), key=lambda kv: (kv[0] is None, kv[0] or 0)):
        sizes = {r["object_id"]: r["object_size"] or 0 for r in items}
        all_sizes.update(sizes)
        label = f"{kinds.get(owner, 'process').lower()} pid {owner}" if owner is not None else "an unknown owner"
        out.append(f"--- Owned by {label}: {len(sizes)} object(s), {schema.human_bytes(sum(sizes.values()))} ---")
        table = []
        for r in sorted(items, key=lambda r: -(r["object_size"] or 0)):
            ref_counts[r["reference_type"]] = ref_counts.get(r["reference_type"], 0) + 1
            table.append({"object_id": r["object_id"], "size": schema.human_bytes(r["object_size"]),
                          "reference_type": r["reference_type"], "held_by": f"{r['type'].lower()} pid {r['pid']}",
                          "storage": r["storage"], "task_status": r["task_status"], "call_site": r["call_site"]})
        out.append(schema.format_table(table))
        out.append("")
    out.append(f"Total: {len(all_sizes)} object(s), {schema.human_bytes(sum(all_sizes.values()))}, "
               f"{sum(ref_counts.values())} reference(s)" + (f" ({_counts(ref_counts)})" if ref_counts else ""))
    return "\n".join(out)


# ============================================================================ timeline
def cmd_timeline(args, cli) -> int:
    import json

    with _client(args, cli) as client:
        def collect():
            records, _ = client.task_records()
            names = {n["node_id"]: f"Node {n['node_id'][:12]} ({n.get('ip', '')})" for n in client.nodes()}
            return schema.timeline_events(records, names)

        events = _run(cli, collect)
    path = args.output or os.path.join(
        tempfile.gettempdir(), f"juno-timeline-{datetime.datetime.now():%Y-%m-%d_%H-%M-%S}.json")
    try:
        with open(path, "w") as f:
            json.dump(events, f)
    except OSError as e:
        raise cli.CliError(f"cannot write {path}: {e.strerror}") from None
    runs = sum(1 for e in events if e.get("ph") == "X")
    print(f"Wrote {runs} task run(s) to {path}; open it in chrome://tracing or https://ui.perfetto.dev.")
    return 0

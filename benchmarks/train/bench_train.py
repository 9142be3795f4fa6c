"""Juno Train beside Ray Train and plain torch.distributed DDP: the same training loop, timed three ways.

    .venv/bin/python benchmarks/train/bench_train.py --impl all      # ddp and juno here, ray with $RAY_PYTHON
    .venv/bin/python benchmarks/train/bench_train.py --impl ray --ray-python /path/to/ray-venv/bin/python
    .venv/bin/python benchmarks/train/bench_train.py --impl ddp --checkpoint --repeat 5

The workload (a 2-hidden-layer MLP regressing synthetic data, 2 CPU workers, gloo, DDP) is one
function for all three; only who starts the two processes differs. Every run is a fresh process
(so start-up is honest), runs are alternated between implementations, and each figure is the
median (and min) of ``--repeat`` runs. Rank 0 writes its own timestamps, so time-to-first-epoch
and the time per epoch are measured inside the loop the same way everywhere.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # benchmarks/: the shared runner
from peer_runs import add_run_arguments, log_path, parse_impls, run_child  # noqa: E402

ROWS, FEATURES, HIDDEN, BATCH, WORKERS = 4096, 32, 64, 64, 2
IMPLS = ("ddp", "ray", "juno")


# --- the workload: the same for all three -----------------------------------------------------------------------

def train_loop(config: dict) -> None:
    """One worker's training: DDP over the process group its launcher set up (gloo, loopback).

    ``config["impl"]`` says which library's ``report`` and ``Checkpoint`` to use: Ray's, Juno's (the same
    API), or none for plain DDP. Rank 0 writes its timestamps to ``config["timings"]``.
    """
    import torch
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel
    from torch.utils.data import DataLoader, DistributedSampler, TensorDataset

    loop_start = time.time()
    torch.set_num_threads(1)  # one CPU per worker everywhere (Ray sets OMP_NUM_THREADS=1 for its workers)
    train = _train_module(config["impl"])
    rank = train.get_context().get_world_rank() if train else dist.get_rank()

    gen = torch.Generator().manual_seed(0)  # the same data on every rank; the sampler splits it
    x = torch.randn(ROWS, FEATURES, generator=gen)
    y = x @ torch.randn(FEATURES, 1, generator=gen) + 0.1 * torch.randn(ROWS, 1, generator=gen)
    data = TensorDataset(x, y)
    sampler = DistributedSampler(data, num_replicas=dist.get_world_size(), rank=dist.get_rank(), seed=0)
    loader = DataLoader(data, batch_size=BATCH, sampler=sampler)
    torch.manual_seed(0)
    model = DistributedDataParallel(torch.nn.Sequential(
        torch.nn.Linear(FEATURES, HIDDEN), torch.nn.ReLU(), torch.nn.Linear(HIDDEN, HIDDEN), torch.nn.ReLU(),
        torch.nn.Linear(HIDDEN, 1)))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = torch.nn.MSELoss()

    epoch_times, report_times, epoch_ends, losses = [], [], [], []
    for epoch in range(config["epochs"]):
        start = time.perf_counter()
        sampler.set_epoch(epoch)
        total, batches = 0.0, 0
        for xb, yb in loader:
            optimizer.zero_grad()
            loss = loss_fn(model(xb), yb)
            loss.backward()
            optimizer.step()
            total, batches = total + loss.item(), batches + 1
        losses.append(total / batches)
        reported = time.perf_counter()
        _report(train, config, rank, epoch, losses[-1], model, torch)
        epoch_times.append(time.perf_counter() - start)
        report_times.append(time.perf_counter() - reported)
        epoch_ends.append(time.time())
    if rank == 0:
        with open(config["timings"], "w") as f:
            json.dump({"loop_start": loop_start, "epoch_times": epoch_times, "report_times": report_times,
                       "epoch_ends": epoch_ends, "losses": losses}, f)


def _train_module(impl: str):
    if impl == "ray":
        from ray import train
        return train
    if impl == "juno":
        from juno import train
        return train
    return None


def _report(train, config: dict, rank: int, epoch: int, loss: float, model, torch) -> None:
    """What a tutorial does each epoch: report the metrics, with a checkpoint saved by rank 0 if asked."""
    metrics = {"epoch": epoch, "loss": loss}
    if not config["checkpoint"]:
        if train:
            train.report(metrics)
        return
    with tempfile.TemporaryDirectory() as folder:
        checkpoint = None
        if rank == 0:
            torch.save(model.module.state_dict(), os.path.join(folder, "model.pt"))
            checkpoint = train.Checkpoint.from_directory(folder) if train else None
        if train:
            train.report(metrics, checkpoint=checkpoint)


# --- one run of one implementation, in a process of its own ------------------------------------------------------

def run_ddp(config: dict) -> dict:
    """Plain torch.distributed: spawn two processes, each joins a gloo group on loopback and trains."""
    import torch.multiprocessing as mp

    start = time.time()
    mp.spawn(_ddp_worker, args=(config, _free_port()), nprocs=WORKERS, join=True)
    return {"run_start": start, "run_end": time.time()}


def _ddp_worker(rank: int, config: dict, port: int) -> None:
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORKERS)
    try:
        train_loop(config)
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_trainer(impl: str, config: dict, fits: int) -> dict:
    """Ray Train or Juno Train: init a 2-CPU cluster, then ``fits`` TorchTrainer.fit() calls one after another."""
    imported = time.time()
    if impl == "ray":
        import ray
        from ray.train import RunConfig, ScalingConfig
        from ray.train.torch import TorchTrainer
    else:
        import juno as ray
        from juno.train import RunConfig, ScalingConfig
        from juno.train.torch import TorchTrainer
    import torch  # noqa: F401  (the driver imports it in a real script too)

    out = {"import": time.time() - imported}
    start = time.time()
    ray.init(num_cpus=WORKERS, include_dashboard=False)
    out["init"] = time.time() - start
    out["fits"] = []
    try:
        with tempfile.TemporaryDirectory() as storage:
            for i in range(fits):
                timings = os.path.join(storage, f"timings-{i}.json")
                trainer = TorchTrainer(train_loop, train_loop_config={**config, "timings": timings},
                                       scaling_config=ScalingConfig(num_workers=WORKERS, use_gpu=False),
                                       run_config=RunConfig(name=f"bench-{i}", storage_path=storage))
                start = time.time()
                result = trainer.fit()
                end = time.time()
                if result.error is not None:
                    raise RuntimeError(f"fit() failed: {result.error!r}")
                with open(timings) as f:
                    out["fits"].append({"run_start": start, "run_end": end, **json.load(f)})
    finally:
        ray.shutdown()
    return out


def child(impl: str, epochs: int, checkpoint: bool, fits: int) -> None:
    """Run one implementation once and print its measurements as one JSON line."""
    with tempfile.TemporaryDirectory() as tmp:
        config = {"impl": impl, "epochs": epochs, "checkpoint": checkpoint, "timings": os.path.join(tmp, "t.json")}
        if impl == "ddp":
            out = run_ddp(config)
            with open(config["timings"]) as f:
                out = {"fits": [{**out, **json.load(f)}]}
        else:
            out = run_trainer(impl, config, fits)
    print("RESULT " + json.dumps(out), flush=True)


# --- the parent: alternate the runs, summarize ----------------------------------------------------------------

def figures(impl: str, out: dict) -> dict[str, float]:
    """The rows of one run, in seconds."""
    first = out["fits"][0]
    rows = {}
    if impl == "ddp":
        rows["spawn to join"] = first["run_end"] - first["run_start"]
    else:
        rows["import (the library and torch, on the driver)"] = out["import"]
        rows["init"] = out["init"]
        rows["fit() alone (cluster already up)"] = first["run_end"] - first["run_start"]
        rows["init + fit"] = out["init"] + rows["fit() alone (cluster already up)"]
        if len(out["fits"]) > 1:
            rows["second fit() in the same session"] = out["fits"][1]["run_end"] - out["fits"][1]["run_start"]
    rows["  start to loop start (rank 0)"] = first["loop_start"] - first["run_start"]
    rows["  time to first epoch (start to end of epoch 0)"] = first["epoch_ends"][0] - first["run_start"]
    rows["  last epoch end to return"] = first["run_end"] - first["epoch_ends"][-1]
    later = first["epoch_times"][1:] or first["epoch_times"]
    rows["per epoch after the first (rank 0, median)"] = statistics.median(later)
    rows["  of which report() and checkpoint (median)"] = statistics.median(first["report_times"][1:])
    rows["final loss / first loss"] = first["losses"][-1] / first["losses"][0]
    return rows


def launch(impl: str, python: str, args) -> dict | str:
    """One fresh process for one run; the measurements, or why there are none."""
    cmd = [python, os.path.abspath(__file__), "--child", impl, "--epochs", str(args.epochs), "--fits", str(args.fits)]
    cmd += ["--checkpoint"] if args.checkpoint else []
    return run_child(cmd, impl, python, args.run_timeout, log_path(args.log_dir, impl))


def summarize(results: dict[str, list]) -> None:
    """Print median and min of every row per implementation, and the per-epoch overhead over plain DDP."""
    print("\n| Implementation | Row | median | min | runs |\n|---|---|---|---|---|")
    epoch = {}
    for impl, runs in results.items():
        done = [r for r in runs if isinstance(r, dict)]
        for failure in sorted({r for r in runs if isinstance(r, str)}):
            print(f"| {impl} | {failure} | | | {sum(r == failure for r in runs)} of {len(runs)} |")
        if not done:
            continue
        table = [figures(impl, r) for r in done]
        for row in table[0]:
            values = [t[row] for t in table if row in t]
            unit = "" if "loss" in row else " s"
            print(f"| {impl} | {row} | {statistics.median(values):.3f}{unit} | {min(values):.3f}{unit} | "
                  f"{len(values)} of {len(runs)} |")
        epoch[impl] = statistics.median(t["per epoch after the first (rank 0, median)"] for t in table)
    if "ddp" in epoch:
        for impl in (i for i in epoch if i != "ddp"):
            print(f"\nper-epoch overhead of {impl} over plain DDP: {100 * (epoch[impl] / epoch['ddp'] - 1):+.1f}% "
                  f"({epoch[impl] * 1000:.1f} ms vs {epoch['ddp'] * 1000:.1f} ms)")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--impl", default="all", help=f"all, or some of {', '.join(IMPLS)} separated by commas")
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument("--checkpoint", action="store_true", help="rank 0 saves a checkpoint each epoch (torch.save)")
    p.add_argument("--fits", type=int, default=2, help="fit() calls per Ray/Juno run (the second on a warm cluster)")
    add_run_arguments(p, IMPLS, "train", repeat_help="runs of each implementation, each a fresh process")
    args = p.parse_args()
    if args.epochs < 2:
        p.error("--epochs must be at least 2: the time per epoch leaves out the first")
    if args.child:
        return child(args.child, args.epochs, args.checkpoint, args.fits)
    impls, pythons = parse_impls(p, args, IMPLS, "train")
    results: dict[str, list] = {impl: [] for impl in impls}
    for round_ in range(args.repeat):  # alternated, so a burst of load on the shared machine hits all alike
        for impl in impls:
            out = launch(impl, pythons[impl], args)
            results[impl].append(out)
            shown = out if isinstance(out, str) else ", ".join(f"{k} {v:.2f}" for k, v in list(figures(impl, out).items())[:3])
            print(f"round {round_ + 1}: {impl:4} {shown}", file=sys.stderr, flush=True)
    print(f"epochs {args.epochs}, checkpoint each epoch: {args.checkpoint}, {WORKERS} CPU workers, "
          f"{ROWS}x{FEATURES} rows, batch {BATCH}")
    summarize(results)


if __name__ == "__main__":
    main()

"""Juno quick start: tasks, actors and objects on a local cluster, then Data, Train, Tune, Serve and RL.

    bash scripts/demo.sh            # sets up .venv, then runs this file
    .venv/bin/python examples/quickstart.py

Uses only the public API (Ray's API, under the name ``juno``). Every step checks its
result, so the program exits non-zero if anything is wrong.
"""

from __future__ import annotations

import faulthandler
import time

import numpy as np

import juno
from juno import serve

# If the runtime hangs, dump every thread's stack and exit(1) instead of waiting
# forever (the demo itself takes a few seconds).
WATCHDOG_S = 300


def section(title: str) -> None:
    print(f"\n== {title} " + "=" * max(0, 60 - len(title)), flush=True)


# --- remote functions and classes -------------------------------------------------

@juno.remote
def square(x: int) -> int:
    return x * x


@juno.remote
def sum_of_squares(n: int) -> int:
    # A task can submit tasks of its own and wait for them.
    return sum(juno.get([square.remote(i) for i in range(n)]))


@juno.remote
def array_stats(a: np.ndarray) -> tuple[float, tuple[int, ...]]:
    # An ObjectRef passed as a top-level argument arrives as its value.
    return float(a.sum()), a.shape


@juno.remote
def sleep_then_return(seconds: float, value: str) -> str:
    time.sleep(seconds)
    return value


@juno.remote
class Counter:
    def __init__(self, start: int = 0) -> None:
        self.n = start

    def incr(self, k: int = 1) -> int:
        self.n += k
        return self.n

    def value(self) -> int:
        return self.n


class InsufficientFunds(Exception):
    """An ordinary user exception, raised inside a task."""


@juno.remote
def withdraw(balance: int, amount: int) -> int:
    if amount > balance:
        raise InsufficientFunds(f"cannot withdraw {amount} from a balance of {balance}")
    return balance - amount


# --- the tour ---------------------------------------------------------------------

def main() -> None:
    section("Start a local cluster")
    juno.init()
    total = juno.cluster_resources()
    print("cluster resources:", total)
    assert total.get("CPU", 0) >= 1, total

    section("Tasks: square numbers in parallel")
    refs = [square.remote(i) for i in range(10)]
    squares = juno.get(refs)
    print("squares:", squares)
    assert squares == [i * i for i in range(10)], squares

    section("Actor: a Counter keeps state between calls")
    counter = Counter.remote(start=100)
    calls = [counter.incr.remote(k) for k in (1, 2, 3)]  # run in submission order
    print("incr results:", juno.get(calls))
    assert juno.get(calls) == [101, 103, 106]
    assert juno.get(counter.value.remote()) == 106

    section("Objects: put a numpy array, pass its ref to a task")
    array = np.arange(1_000_000, dtype=np.float64).reshape(1000, 1000)  # 8 MB
    array_ref = juno.put(array)
    print("ref:", array_ref)
    fetched = juno.get(array_ref)
    assert np.array_equal(fetched, array)
    remote_sum, remote_shape = juno.get(array_stats.remote(array_ref))
    print(f"sum computed remotely: {remote_sum:.0f}, shape {tuple(remote_shape)}")
    assert remote_sum == float(array.sum()) and tuple(remote_shape) == array.shape

    section("Nested tasks: a task that launches tasks")
    nested = juno.get(sum_of_squares.remote(20))
    print("sum of squares below 20:", nested)
    assert nested == sum(i * i for i in range(20)), nested

    section("Errors: the remote exception, with its remote traceback")
    assert juno.get(withdraw.remote(100, 30)) == 70
    try:
        juno.get(withdraw.remote(10, 50))
    except InsufficientFunds as exc:  # caught as the user's own exception type
        text = str(exc)
        print(text)
        assert "cannot withdraw 50 from a balance of 10" in text, text
        assert "in withdraw" in text, "the remote traceback is missing:\n" + text
    else:
        raise AssertionError("withdraw should have raised InsufficientFunds")

    section("Cluster info")
    available = juno.available_resources()
    nodes = juno.nodes()
    print("cluster_resources():  ", juno.cluster_resources())
    print("available_resources():", available)
    for node in nodes:
        print(f"node {node['NodeID']}: alive={node['Alive']} resources={node['Resources']}")
    assert len(nodes) == 1 and nodes[0]["Alive"], nodes
    assert nodes[0]["Resources"].get("CPU") == total["CPU"], nodes
    assert 0 <= available.get("CPU", 0) <= total["CPU"], available

    section("juno.wait: take results as they become ready")
    slow = sleep_then_return.remote(1.0, "slow")
    fast = [sleep_then_return.remote(0.0, f"fast-{i}") for i in range(2)]
    ready, not_ready = juno.wait([slow, *fast], num_returns=2)
    print("ready:", juno.get(ready), "| still running:", len(not_ready))
    assert len(ready) == 2 and len(not_ready) == 1
    ready, not_ready = juno.wait(not_ready, timeout=0.0)  # poll, don't block
    print(f"polled with timeout=0: {len(ready)} ready, {len(not_ready)} not ready")
    assert juno.get(slow) == "slow"
    ready, not_ready = juno.wait([slow, *fast], num_returns=3)
    assert len(ready) == 3 and not not_ready

    section("juno.data: a lazy pipeline of Arrow blocks (Ray Data's API)")
    import juno.data as rd

    ds = (rd.range(100_000)
          .map_batches(lambda b: {"id": b["id"], "square": b["id"] ** 2})
          .filter(expr="square % 7 == 0"))
    print(ds)  # the plan: nothing has run yet
    total = ds.sum("square")  # now it runs: range, map_batches and filter fused into one task per block
    print("sum of the squares divisible by 7:", total)
    assert total == sum(i * i for i in range(0, 100_000, 7))

    section("juno.train: data-parallel torch on two workers (Ray Train's API)")
    import tempfile

    from juno import train
    from juno.train.torch import TorchTrainer

    with tempfile.TemporaryDirectory() as storage:
        result = TorchTrainer(fit_a_line, train_loop_config={"epochs": 10},
                              scaling_config=train.ScalingConfig(num_workers=2),
                              run_config=train.RunConfig(storage_path=storage, name="line", verbose=0)).fit()
        losses = list(result.metrics_dataframe["loss"])
        print(f"DDP over {result.metrics['world_size']} workers: loss {losses[0]:.3f} -> {losses[-1]:.3f} "
              f"in {len(losses)} epochs; checkpoint {result.checkpoint.path.rsplit('/', 1)[-1]}")
        assert result.metrics["world_size"] == 2 and losses[-1] < losses[0] / 4

    section("juno.tune: a grid of trials, each in an actor (Ray Tune's API)")
    from juno import tune

    with tempfile.TemporaryDirectory() as storage:
        grid = tune.Tuner(parabola, param_space={"x": tune.grid_search([-2, 0, 1, 3])},
                          tune_config=tune.TuneConfig(metric="y", mode="min"),
                          run_config=tune.RunConfig(storage_path=storage, name="grid", verbose=0)).fit()
        best = grid.get_best_result()
        print(f"{len(grid)} trials; best x = {best.config['x']} (y = {best.metrics['y']})")
        assert best.config["x"] == 1 and not grid.errors

    section("juno.serve: a deployment over HTTP and by handle (Ray Serve's API)")
    import json
    import urllib.request

    serve.start(http_options={"port": 0})  # any free port (the default is 8000)
    handle = serve.run(Doubler.bind(), name="doubler", route_prefix="/double")
    request = urllib.request.Request(serve.get_http_address() + "/double", data=json.dumps({"x": 21}).encode())
    with urllib.request.urlopen(request, timeout=30) as response:
        over_http = json.loads(response.read())
    by_handle = handle.double.remote(4).result(timeout_s=30)
    print(f"HTTP: {over_http} | handle: {by_handle}")
    assert over_http == {"doubled": 42} and by_handle == 8
    serve.shutdown()

    section("juno.rl: PPO on CartPole (RLlib's API)")
    from juno.rl.algorithms.ppo import PPOConfig

    algo = (PPOConfig().environment("CartPole-v1")
            .env_runners(num_env_runners=0, num_envs_per_env_runner=8, rollout_fragment_length=64)
            .training(lr=1e-3, train_batch_size=512, minibatch_size=128, num_epochs=6, use_kl_loss=False)
            .debugging(seed=0)).build_algo()
    returns = [algo.train()["env_runners"]["episode_return_mean"] for _ in range(6)]
    algo.stop()
    print("mean episode return per iteration:", [round(r, 1) for r in returns])
    assert returns[-1] > returns[0]


def parabola(config: dict) -> None:
    """A Tune trainable: one report of (x - 1)^2."""
    from juno import tune

    tune.report({"y": (config["x"] - 1) ** 2})


@serve.deployment(ray_actor_options={"num_cpus": 0.25})
class Doubler:
    """A Serve deployment: JSON over HTTP, or a method by handle."""

    def double(self, x: int) -> int:
        return 2 * x

    async def __call__(self, request) -> dict:
        return {"doubled": self.double((await request.json())["x"])}


def fit_a_line(config: dict) -> None:
    """Each worker fits y = 3x + 1 on its own samples; DDP averages the gradients."""
    import os
    import tempfile

    import torch

    from juno import train
    from juno.train.torch import prepare_model

    rank = train.get_context().get_world_rank()
    model = prepare_model(torch.nn.Linear(1, 1))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.2)
    x = torch.rand(256, 1, generator=torch.Generator().manual_seed(rank))
    y = 3 * x + 1
    for epoch in range(config["epochs"]):
        loss = torch.nn.functional.mse_loss(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        with tempfile.TemporaryDirectory() as d:
            checkpoint = None
            if rank == 0 and epoch == config["epochs"] - 1:
                torch.save(model.module.state_dict(), os.path.join(d, "model.pt"))
                checkpoint = train.Checkpoint.from_directory(d)
            train.report({"loss": loss.item(), "world_size": train.get_context().get_world_size()},
                         checkpoint=checkpoint)


if __name__ == "__main__":
    faulthandler.dump_traceback_later(WATCHDOG_S, exit=True)
    started = time.perf_counter()
    try:
        main()
    finally:
        juno.shutdown()
        faulthandler.cancel_dump_traceback_later()
    print(f"\nAll checks passed in {time.perf_counter() - started:.1f}s.")

"""Juno RL beside RLlib 2.60: time and env steps to a mean episode return, in fresh processes.

    .venv/bin/python benchmarks/rl/bench_rl.py --rows ppo,ppo-rllib-example --repeat 3   # $RAY_PYTHON for ray
    .venv/bin/python benchmarks/rl/bench_rl.py --rows ppo --impl juno --repeat 5
    .venv/bin/python benchmarks/rl/bench_rl.py --rows dqn,sac --impl juno                 # learning curves

Every (row, implementation, run) is a process of its own: it imports the library, calls
``init(num_cpus=2)``, then starts the clock, builds the algorithm (env runners start) and calls
``train()`` until the row's target mean return, its env-step budget or its time budget. The driver
code is the same for both; only the package behind it differs (``ray.rllib`` or ``juno.rl``). A run
records its learning curve (iteration, env steps, seconds, mean return) and when it first crossed
each of the row's thresholds. Runs alternate between the implementations so a burst of load on a
shared machine hits both alike; the 1-minute load average is sampled while they run.
"""
from __future__ import annotations

import argparse
import importlib
import json
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))  # benchmarks/: the shared runner
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tune"))  # the load sampler
from bench_tune import LoadSampler  # noqa: E402
from peer_runs import log_path, python_for, run_child  # noqa: E402

IMPLS = ("juno", "ray")
CPUS = 2

# PPO settings that learn CartPole fast on 2 cores (from a small sweep, see README.md): 16 envs in the
# driver (no sampling actors: on two cores they compete with the learner), small batches, 10 epochs,
# lr 1e-3, GAE lambda 0.95, no KL penalty, the value loss unclipped, gradients clipped at 0.5.
PPO_FAST = dict(
    env_runners=dict(num_env_runners=0, num_envs_per_env_runner=16, rollout_fragment_length=32),
    training=dict(lr=1e-3, gamma=0.99, lambda_=0.95, train_batch_size=512, minibatch_size=128, num_epochs=10,
                  clip_param=0.2, vf_loss_coeff=0.5, entropy_coeff=0.0, kl_coeff=0.0, use_kl_loss=False,
                  vf_clip_param=10000.0, grad_clip=0.5),
    model_config=dict(fcnet_hiddens=[64, 64], fcnet_activation="tanh"),
)
# RLlib's own tuned example for PPO on CartPole (rllib/tuned_examples/ppo/cartpole_ppo.py, 2.x) with
# its default two env runners.
PPO_RLLIB_EXAMPLE = dict(
    env_runners=dict(num_env_runners=2),
    training=dict(lr=3e-4, num_epochs=6, vf_loss_coeff=0.01),
    model_config=dict(fcnet_hiddens=[32], fcnet_activation="linear", vf_share_layers=True),
)
DQN_CARTPOLE = dict(
    env_runners=dict(num_env_runners=0, num_envs_per_env_runner=1),
    training=dict(lr=5e-4, train_batch_size=32, n_step=3, double_q=True, dueling=True,
                  target_network_update_freq=500,
                  replay_buffer_config={"type": "PrioritizedEpisodeReplayBuffer", "capacity": 50000}),
    model_config=dict(fcnet_hiddens=[256], fcnet_activation="relu"),
)
SAC_PENDULUM = dict(
    env_runners=dict(num_env_runners=0, num_envs_per_env_runner=1, rollout_fragment_length=1),
    training=dict(actor_lr=2e-4, critic_lr=8e-4, alpha_lr=9e-4, tau=0.005, train_batch_size=256,
                  initial_alpha=1.001, n_step=1, target_entropy="auto",
                  replay_buffer_config={"type": "PrioritizedEpisodeReplayBuffer", "capacity": 100000}),
    model_config=dict(fcnet_hiddens=[256, 256], fcnet_activation="relu"),
)

# name -> (algorithm, env, settings, thresholds (ascending), env-step budget, seconds budget)
ROWS = {
    "ppo": ("PPO", "CartPole-v1", PPO_FAST, (150.0, 450.0), 150_000, 300.0),
    "ppo-rllib-example": ("PPO", "CartPole-v1", PPO_RLLIB_EXAMPLE, (150.0, 450.0), 300_000, 300.0),
    "dqn": ("DQN", "CartPole-v1", DQN_CARTPOLE, (150.0, 450.0), 100_000, 300.0),
    "sac": ("SAC", "Pendulum-v1", SAC_PENDULUM, (-800.0, -250.0), 20_000, 300.0),
}


EPISODE_RETURNS: list[float] = []  # every episode the driver's envs ended, in order (num_env_runners=0 rows)
WINDOW = 100  # RLlib's documented metrics_num_episodes_for_smoothing


def build_config(lib_name: str, algo: str, env: str, settings: dict, seed: int):
    """The same builder calls for both libraries (RLlib's new-stack names, which Juno keeps). Rows that
    sample in the driver get the episode recorder around their env."""
    module = importlib.import_module(f"{lib_name}.rllib.algorithms.{algo.lower()}")
    if settings["env_runners"].get("num_env_runners") == 0:
        gym_id, env = env, f"Recorded-{env}"
        importlib.import_module(f"{lib_name}.tune").register_env(env, lambda _env_config: recorded(gym_id))
    config = getattr(module, f"{algo}Config")().environment(env).framework("torch").debugging(seed=seed)
    return (config.env_runners(**settings["env_runners"]).training(**settings["training"])
            .rl_module(model_config=dict(settings["model_config"])))


def recorded(gym_id: str):
    """The env, wrapped to append each finished episode's return to EPISODE_RETURNS: the benchmark's own
    measure, the same for both libraries. RLlib 2.60's ``episode_return_mean`` covers only the episodes
    that ended in the iteration (NaN when none did); Juno's the last 100, as RLlib documents."""
    import gymnasium as gym

    class Recorded(gym.Wrapper):

        def __init__(self) -> None:
            super().__init__(gym.make(gym_id))
            self.total = 0.0

        def reset(self, **kwargs):
            self.total = 0.0
            return self.env.reset(**kwargs)

        def step(self, action):
            obs, reward, terminated, truncated, info = self.env.step(action)
            self.total += float(reward)
            if terminated or truncated:
                # looked up at run time: RLlib pickles the env creator by value, which would copy the list
                sys.modules["__main__"].EPISODE_RETURNS.append(self.total)
                self.total = 0.0
            return obs, reward, terminated, truncated, info

    return Recorded()


def library_mean(result: dict) -> float | None:
    value = result.get("env_runners", {}).get("episode_return_mean")
    return None if value is None or value != value else float(value)  # NaN: no episode ended (yet)


def return_mean(result: dict) -> float | None:
    """The mean return of the last WINDOW episodes where the benchmark records them, else the library's."""
    if EPISODE_RETURNS:
        window = EPISODE_RETURNS[-WINDOW:]
        return sum(window) / len(window)
    return library_mean(result)


def child(impl: str, row: str, seed: int) -> None:
    """Init, then time build + train() to the row's thresholds; print the measurements as one JSON line."""
    algo, env, settings, thresholds, step_budget, time_budget = ROWS[row]
    lib = importlib.import_module("ray" if impl == "ray" else "juno")
    init = {"log_to_driver": False} if impl == "ray" else {}
    lib.init(num_cpus=CPUS, include_dashboard=False, **init)
    try:
        config = build_config(lib.__name__, algo, env, settings, seed)  # imports the rl package: not timed
        start = time.perf_counter()
        algorithm = config.build_algo()
        built = time.perf_counter()
        curve, crossed, crossed_library = [], {}, {}
        while True:
            result = algorithm.train()
            elapsed = time.perf_counter() - start
            steps = int(result.get("num_env_steps_sampled_lifetime") or 0)
            mean = return_mean(result)
            curve.append([result["training_iteration"], steps, round(elapsed, 3), mean, library_mean(result)])
            point = {"seconds": elapsed, "train_seconds": elapsed - (built - start), "env_steps": steps,
                     "iterations": result["training_iteration"]}
            for threshold in thresholds:
                if mean is not None and mean >= threshold and str(threshold) not in crossed:
                    crossed[str(threshold)] = point
                own = library_mean(result)
                if own is not None and own >= threshold and str(threshold) not in crossed_library:
                    crossed_library[str(threshold)] = point
            if len(crossed) == len(thresholds) or steps >= step_budget or elapsed >= time_budget:
                break
        algorithm.stop()
    finally:
        lib.shutdown()
    print("RESULT " + json.dumps({"build_s": built - start, "crossed": crossed, "crossed_library": crossed_library,
                                  "recorded": bool(EPISODE_RETURNS), "curve": curve}), flush=True)


def summarize(results: dict[tuple[str, str], list], key: str = "crossed") -> None:
    """A markdown table: per threshold, the median and min of seconds, env steps and iterations."""
    print(f"\n{key}: " + ("the mean return of the last 100 episodes, recorded by the benchmark where the row samples "
                          "in the driver" if key == "crossed" else "each library's own episode_return_mean"))
    print("| Row | Impl | Target | runs reaching it | seconds (median / min) | train s (median) | env steps "
          "(median) | iterations (median) |\n|---|---|---|---|---|---|---|---|")
    for (row, impl), runs in results.items():
        for failure in sorted({r for r in runs if isinstance(r, str)}):
            print(f"| {row} | {impl} | {failure} | {sum(r == failure for r in runs)} of {len(runs)} | | | | |")
        done = [r for r in runs if isinstance(r, dict)]
        for threshold in ROWS[row][3]:
            hits = [r[key][str(threshold)] for r in done if str(threshold) in r[key]]
            if not hits:
                print(f"| {row} | {impl} | {threshold:g} | 0 of {len(runs)} | | | | |")
                continue
            secs = [h["seconds"] for h in hits]
            print(f"| {row} | {impl} | {threshold:g} | {len(hits)} of {len(runs)} | {statistics.median(secs):.1f} / "
                  f"{min(secs):.1f} | {statistics.median(h['train_seconds'] for h in hits):.1f} | "
                  f"{statistics.median(h['env_steps'] for h in hits):.0f} | "
                  f"{statistics.median(h['iterations'] for h in hits):.0f} |")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rows", default="ppo,ppo-rllib-example", help=f"some of {', '.join(ROWS)}, comma separated")
    p.add_argument("--impl", default="all", help="all, juno or ray")
    p.add_argument("--repeat", type=int, default=3, help="runs per row and implementation, each a fresh process")
    p.add_argument("--seed", type=int, default=0, help="the first run's seed; run k uses seed + k")
    p.add_argument("--ray-python", default=os.environ.get("RAY_PYTHON"),
                   help="the python of a venv with ray[rllib]==2.60 (default $RAY_PYTHON; never a Juno dependency)")
    p.add_argument("--log-dir", help="keep every run's stdout and stderr here")
    p.add_argument("--curves", help="write every run's learning curve to this JSON file")
    p.add_argument("--child", choices=IMPLS, help=argparse.SUPPRESS)
    args = p.parse_args()
    rows = args.rows.split(",")
    if set(rows) - set(ROWS):
        p.error(f"--rows {args.rows!r}: give some of {', '.join(ROWS)} separated by commas")
    if args.child:
        return child(args.child, rows[0], args.seed)
    impls = list(IMPLS) if args.impl == "all" else [args.impl]
    if set(impls) - set(IMPLS) or args.repeat < 1:
        p.error("--impl is all, juno or ray; --repeat at least 1")
    pythons = {impl: python_for(impl, args.ray_python) for impl in impls}
    if "ray" in impls and pythons["ray"] is None:
        print("skipping ray: set $RAY_PYTHON or pass --ray-python", file=sys.stderr)
        impls.remove("ray")
    if args.log_dir:
        os.makedirs(args.log_dir, exist_ok=True)
    load = LoadSampler()
    began = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    results: dict[tuple[str, str], list] = {(row, impl): [] for row in rows for impl in impls}
    for k in range(args.repeat):
        for row in rows:
            for impl in impls:
                cmd = [pythons[impl], os.path.abspath(__file__), "--child", impl, "--rows", row,
                       "--seed", str(args.seed + k)]
                out = run_child(cmd, impl, pythons[impl], ROWS[row][5] + 120, log_path(args.log_dir, f"{impl}-{row}"))
                results[(row, impl)].append(out)
                shown = out if isinstance(out, str) else json.dumps(out["crossed"])
                print(f"run {k + 1}, {row}: {impl:4} {shown}", file=sys.stderr, flush=True)
    print(f"{began} to {time.strftime('%H:%M:%S UTC', time.gmtime())}, {os.cpu_count()} CPUs, "
          f"init(num_cpus={CPUS}); {load.stop()}")
    summarize(results)
    summarize(results, "crossed_library")
    if args.curves:
        with open(args.curves, "w") as f:
            json.dump({f"{row}/{impl}": runs for (row, impl), runs in results.items()}, f)


if __name__ == "__main__":
    main()

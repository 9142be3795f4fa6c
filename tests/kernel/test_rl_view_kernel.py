"""RL in a real notebook kernel: training's view is one live widget that follows train() into later
cells (every copy shares one display, rewritten with the final static HTML at stop()), and a watched
policy shows as an animated GIF under its returns."""
from __future__ import annotations

import base64
import io
import re

WIDGET_MIME = "application/vnd.jupyter.widget-view+json"

TRAIN = '''
import time
from juno.rl.progress import RLProgress

def result(i):
    return {"training_iteration": i, "time_this_iter_s": 0.05, "num_env_steps_sampled_lifetime": 400 * i,
            "env_runners": {"episode_return_mean": 10.0 * i, "episode_return_min": 5.0 * i,
                            "episode_return_max": 20.0 * i, "num_episodes": 4},
            "learners": {"default_policy": {"total_loss": 1.0 / i}}}

view = RLProgress("PPO", {"env": "CartPole-v1", "env runners": 2, "lr": 5e-5})
for i in (1, 2, 3):
    view.begin()
    time.sleep(0.3)
    view.on_result(result(i))
time.sleep(1.0)  # the display is updated at most every 0.25 s: let the last one out while this cell runs
print("state:", view.snapshot().state)
'''

LATER = '''
view.begin()
view.on_result(result(4))
time.sleep(0.3)
view.finish()
print("state:", view.snapshot().state, view.snapshot().done)
'''

WATCH = '''
import torch
from juno.rl.rollout import watch_policy

class Balance(torch.nn.Module):
    def forward_inference(self, obs):
        return {"actions": (obs @ torch.tensor([0.0, 0.0, 1.0, 0.5]) > 0).long()}

print("returns:", watch_policy(Balance(), env="CartPole-v1", episodes=2, max_steps=40, seed=0))
'''


def _widget_displays(cell) -> list[dict]:
    return [m["content"] for m in cell.messages
            if m["header"]["msg_type"] == "display_data" and WIDGET_MIME in m["content"]["data"]]


def test_the_training_view_follows_train_into_a_later_cell_and_ends_static(own_kernel):
    first = own_kernel.run_ok(TRAIN)
    assert "state: running" in first.stdout
    shown = _widget_displays(first)
    assert len(shown) == 1
    model_id = shown[0]["data"][WIDGET_MIME]["model_id"]
    display_id = shown[0]["transient"]["display_id"]
    live = [m["content"]["data"]["state"]["value"] for m in first.messages
            if m["header"]["msg_type"] == "comm_msg" and m["content"]["comm_id"] == model_id
            and "value" in m["content"]["data"].get("state", {})]
    assert any('data-metric="episode return"' in v and "3 iterations" in v for v in live), live[-1:]

    later = own_kernel.run_ok(LATER)
    assert "state: finished 4" in later.stdout
    again = _widget_displays(later)
    assert len(again) == 1  # the same view, shown in this cell too
    assert again[0]["data"][WIDGET_MIME]["model_id"] == model_id and again[0]["transient"]["display_id"] == display_id
    finals = [m["content"]["data"] for m in later.messages if m["header"]["msg_type"] == "update_display_data"
              and m["content"]["transient"]["display_id"] == display_id]
    html = finals[-1]["text/html"]
    assert 'data-kind="rl"' in html and 'data-state="finished"' in html and "<script" not in html
    assert "4 iterations" in html and "return 40 (min 20, max 80)" in html and "env runners=2" in html
    assert len(re.findall(r"<polyline", html)) >= 3
    assert finals[-1]["text/plain"].startswith("[rl] PPO on CartPole-v1: iter 4, return 40")


def test_watching_a_policy_shows_a_small_animation_and_its_returns(own_kernel):
    cell = own_kernel.run_ok(WATCH, timeout=120)
    assert "returns: [40.0, 40.0]" in cell.stdout
    html = [d["text/html"] for d in cell.displays if 'data-juno="rollout"' in d.get("text/html", "")]
    assert len(html) == 1 and "CartPole-v1: 2 episodes, returns 40, 40 (mean 40)" in html[0]
    data = re.search(r'src="data:image/gif;base64,([^"]+)"', html[0]).group(1)
    from PIL import Image

    gif = Image.open(io.BytesIO(base64.b64decode(data)))
    assert gif.format == "GIF" and max(gif.size) <= 240 and gif.n_frames > 10
    assert len(data) < 400_000  # the saved notebook stays small


SLOW_ALGO = '''
import os, sys, time
import gymnasium as gym
import juno
sys.path.insert(0, {tests!r})
from rl_standin import StandInConfig
from juno.tune.registry import register_env

juno.init(num_cpus=2)

class SlowCartPole(gym.Env):
    """CartPole whose every step leaves a mark in a file (to see sampling stop) and, while the
    test's "slow" file exists, takes 20 ms (so only the interrupted loop waits on the env)."""
    def __init__(self, config):
        self.inner = gym.make("CartPole-v1")
        self.observation_space, self.action_space = self.inner.observation_space, self.inner.action_space
        self.log, self.slow = config["log"], config["slow"]
    def reset(self, *, seed=None, options=None):
        return self.inner.reset(seed=seed)
    def step(self, action):
        if os.path.exists(self.slow):
            time.sleep(0.02)
        with open(self.log, "a") as f:
            f.write(".")
        return self.inner.step(action)

register_env("slow_cartpole", lambda config: SlowCartPole(config))
algo = (StandInConfig().environment("slow_cartpole", env_config={{"log": {log!r}, "slow": {slow!r}}})
        .env_runners(num_env_runners=2, rollout_fragment_length=200).training(train_batch_size=400)
        .evaluation(evaluation_duration=2, evaluation_duration_unit="episodes").debugging(seed=0).build_algo())
print("iteration", algo.train()["training_iteration"])
'''


def test_interrupting_a_training_loop_stops_sampling_and_the_algorithm_stays_usable(own_kernel, tmp_path):
    import os

    log, slow, checkpoint = tmp_path / "steps.log", tmp_path / "slow", str(tmp_path / "ckpt")
    tests = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    first = own_kernel.run_ok(SLOW_ALGO.format(tests=tests, log=str(log), slow=str(slow)), timeout=120)
    assert "iteration 1" in first.stdout
    before = log.stat().st_size
    slow.touch()  # from here every env step takes 20 ms: the interrupt lands inside a sample
    cell = own_kernel.submit("for _ in range(100):\n    algo.train()")
    own_kernel.wait_for(lambda: log.stat().st_size > before + 100, timeout=60, what="sampling under way")
    own_kernel.interrupt()
    own_kernel.wait(cell, timeout=30)
    assert not cell.ok and cell.error["ename"] == "KeyboardInterrupt"
    # The sample calls are cancelled by the algorithm itself (as in a script) or by the kernel's
    # interrupt handler (which then says so in stderr), whichever comes first: either way they stop.
    stopped = log.stat().st_size
    import time

    time.sleep(1.5)  # a runner still sampling would add ~75 steps a second
    assert log.stat().st_size - stopped <= 4, "env runners kept sampling after the interrupt"
    slow.unlink()

    after = own_kernel.run_ok(
        "ev = algo.evaluate()\n"
        "r = algo.train()\n"
        f"path = algo.save({checkpoint!r})\n"
        "print('usable', r['training_iteration'], ev['env_runners']['num_episodes'] >= 2)\n"
        "restored = type(algo).from_checkpoint(path)\n"
        "obs = [0.01, 0.02, -0.03, 0.04]\n"
        "print('same', restored.compute_single_action(obs) == algo.compute_single_action(obs))\n"
        "restored.stop()", timeout=120)
    assert "usable 2 True" in after.stdout and "same True" in after.stdout, after.stdout + after.error_text
    own_kernel.run_ok("algo.stop()")

"""Watching a policy (juno.rl.rollout): the frame plan, the GIF, the returns line, and real episodes of
gymnasium's CartPole with a small fixed torch policy (no cluster, no kernel)."""
import base64
import io

import gymnasium as gym
import numpy as np
import pytest
import torch
from PIL import Image

from juno.rl import rollout
from juno.rl.rollout import animation_html, frame_ms, frame_stride, gif_bytes, returns_line, scaled_size, watch


class BalancePolicy(torch.nn.Module):
    """A fixed linear policy that keeps CartPole's pole up: push towards where the pole falls.
    It has the RLModule's inference methods (greedy and exploring)."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.tensor([0.0, 0.0, 1.0, 0.5]), requires_grad=False)

    def forward_inference(self, obs):
        return {"actions": (obs @ self.w > 0).long()}

    def forward_exploration(self, obs, t):
        return self.forward_inference(obs)


class BoxPolicy(torch.nn.Module):
    """Always asks for more torque than Pendulum allows (the watcher clips it to the space)."""

    def forward_inference(self, obs):
        return {"actions": torch.full((obs.shape[0], 1), 5.0)}


def test_the_frame_plan_fits_the_budget():
    assert frame_stride(3, 500, 400) == 4 and frame_stride(1, 100, 400) == 1
    assert 3 * (500 + 1) / frame_stride(3, 500, 400) <= 400
    assert scaled_size(600, 400, 240) == (240, 160) and scaled_size(100, 50, 240) == (100, 50)
    assert scaled_size(1, 5000, 240) == (1, 240)
    assert frame_ms(30, 1) == 33 and frame_ms(30, 4) == 133 and frame_ms(1000, 1) == 20


def test_the_returns_line():
    assert returns_line("CartPole-v1", [500.0, 212.0], [500, 212]) == \
        "CartPole-v1: 2 episodes, returns 500, 212 (mean 356), lengths 500, 212"
    assert returns_line("X", [1.5], [3]) == "X: 1 episode, return 1.5, length 3"


def test_frames_become_a_small_looping_gif_in_self_contained_html():
    env = gym.make("CartPole-v1", render_mode="rgb_array")
    env.reset(seed=0)
    frames = []
    for action in (0, 0, 0):
        env.step(action)
        frames.append(Image.fromarray(env.render()).resize(scaled_size(600, 400)))
    env.close()
    gif = gif_bytes(frames, 40)
    image = Image.open(io.BytesIO(gif))
    assert image.format == "GIF" and image.size == (240, 160) and image.info.get("loop") == 0
    durations = []
    for i in range(image.n_frames):  # pillow folds identical frames into one that lasts longer
        image.seek(i)
        durations.append(image.info["duration"])
    assert 1 < image.n_frames <= 3 and sum(durations) == 120
    html = animation_html(gif, "CartPole-v1: <1 episode>")
    assert f'src="data:image/gif;base64,{base64.b64encode(gif).decode()}"' in html
    assert "&lt;1 episode&gt;" in html and "<script" not in html


def test_watching_cartpole_runs_greedy_episodes_and_prints_the_returns():
    out = io.StringIO()
    returns = watch(BalancePolicy(), env="CartPole-v1", episodes=2, max_steps=150, seed=0, stream=out)
    assert returns == [150.0, 150.0]  # balanced to the step limit
    assert out.getvalue() == "CartPole-v1: 2 episodes, returns 150, 150 (mean 150), lengths 150, 150\n"


def test_the_same_seed_gives_the_same_episodes_and_display_false_prints_nothing():
    out = io.StringIO()
    once = watch(BalancePolicy(), env="CartPole-v1", episodes=1, max_steps=500, seed=3, display=False, stream=out)
    again = watch(BalancePolicy(), env=lambda cfg: gym.make("CartPole-v1", **cfg), env_config={"max_episode_steps": 500},
                  episodes=1, seed=3, display=False, stream=out)
    assert once == again and out.getvalue() == ""


def test_box_actions_are_clipped_to_the_space():
    env = gym.make("Pendulum-v1")
    returns = watch(BoxPolicy(), env=env, episodes=1, max_steps=5, seed=0, display=False)
    assert len(returns) == 1 and np.isfinite(returns[0])
    env.close()  # an Env passed in is left open for its owner


def test_bad_input_says_what_was_wrong():
    with pytest.raises(ValueError, match="unknown env 'NoSuchEnv-v9'.*register_env"):
        watch(BalancePolicy(), env="NoSuchEnv-v9", display=False)
    with pytest.raises(ValueError, match="has no env of its own; pass env="):
        watch(BalancePolicy())
    with pytest.raises(TypeError, match="takes an Algorithm or an RLModule, got str"):
        watch("PPO", env="CartPole-v1")
    with pytest.raises(ValueError, match="episodes must be a positive int"):
        watch(BalancePolicy(), env="CartPole-v1", episodes=0)
    with pytest.raises(ValueError, match="fps must be a positive number"):
        watch(BalancePolicy(), env="CartPole-v1", fps=0)
    with pytest.raises(TypeError, match="returned int, not a gymnasium.Env"):
        watch(BalancePolicy(), env=lambda cfg: 3, display=False)


def test_watch_policy_is_the_same_helper():
    assert rollout.watch_policy is watch

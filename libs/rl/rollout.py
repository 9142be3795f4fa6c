"""Watching a trained policy: a few episodes in a local env, shown in the notebook as a short animation.

    returns = juno.rl.rollout.watch(algo)                  # greedy actions, 3 episodes of the algo's env
    returns = watch_policy(algo.get_module(), env="CartPole-v1", episodes=1, seed=0)

The episodes run here, in this process (no cluster needed), with the module's greedy actions
(``forward_inference``; ``explore=True`` samples as training does). Where the env renders
``rgb_array`` frames, a notebook shows them as one animated GIF (pillow; frames downscaled and
thinned so the saved notebook stays small) under a line of the returns; a terminal, or an env that
cannot render frames, gets the returns as one line (and says why there are no pictures). The
decisions (how many frames, how small, the text) are plain functions tested without an env.
"""
from __future__ import annotations

import base64
import io
import math
import os
import sys
from typing import Any, Sequence

MAX_FRAMES = 400     # frames in one animation, over all episodes (the rest are skipped evenly)
MAX_SIDE = 240       # pixels of a frame's longer side
MAX_FPS = 50         # a GIF frame lasts at least 20 ms


def frame_stride(episodes: int, max_steps: int, max_frames: int = MAX_FRAMES) -> int:
    """Keep every ``stride``-th step's frame so that ``episodes`` full-length episodes fit ``max_frames``."""
    return max(1, math.ceil(episodes * (max_steps + 1) / max_frames))


def scaled_size(width: int, height: int, max_side: int = MAX_SIDE) -> tuple[int, int]:
    """A frame's size with its longer side at most ``max_side`` (never enlarged, never zero)."""
    scale = min(1.0, max_side / max(width, height, 1))
    return max(1, round(width * scale)), max(1, round(height * scale))


def frame_ms(fps: float, stride: int) -> int:
    """How long each kept frame shows, so that the animation plays at the env's speed (``fps`` steps a second)."""
    return max(round(1000 / MAX_FPS), round(1000 * stride / fps))


def returns_line(env_name: str, returns: Sequence[float], lengths: Sequence[int]) -> str:
    """``CartPole-v1: 3 episodes, returns 500, 500, 212 (mean 404), lengths 500, 500, 212``."""
    n = len(returns)
    text = f"{env_name}: {n} episode{'' if n == 1 else 's'}"
    if n:
        text += (f", return{'s' if n > 1 else ''} {', '.join(f'{r:.4g}' for r in returns)}"
                 + (f" (mean {sum(returns) / n:.4g})" if n > 1 else "")
                 + f", length{'s' if n > 1 else ''} {', '.join(str(n_) for n_ in lengths)}")
    return text


def gif_bytes(frames: Sequence[Any], duration_ms: int) -> bytes:
    """The frames (PIL images, one size) as one looping animated GIF."""
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=list(frames[1:]), duration=duration_ms, loop=0,
                   optimize=True)
    return buf.getvalue()


def animation_html(gif: bytes, caption: str) -> str:
    """The animation and its caption as self-contained HTML (a data URL: a saved notebook keeps it)."""
    from juno.widgets.formatting import escape

    data = base64.b64encode(gif).decode("ascii")
    return (f'<div data-juno="rollout" style="font-size:12px"><img src="data:image/gif;base64,{data}" '
            f'alt="{escape(caption)}"/><div style="font-family:monospace">{escape(caption)}</div></div>')


# ------------------------------------------------------------------ the env and the policy
def _env_name(env: Any) -> str:
    if isinstance(env, str):
        return env
    spec = getattr(env, "spec", None)
    if getattr(spec, "id", None):
        return spec.id
    return getattr(env, "__name__", None) or type(env).__name__


def _make_env(env: Any, env_config: dict) -> tuple[Any, bool]:
    """(the env, whether we made it and so close it): an Env as given; a registered name's creator,
    a gymnasium id made with render_mode="rgb_array", or a creator/class called with ``env_config``."""
    import gymnasium as gym

    if isinstance(env, gym.Env):
        return env, False
    creator = env
    if isinstance(env, str):
        try:
            from juno.tune.registry import registered_env_creator
        except ImportError:  # a Tune without the env registry: gymnasium ids only
            creator = None
        else:
            creator = registered_env_creator(env)
        if creator is None:
            try:
                return gym.make(env, render_mode="rgb_array", **env_config), True
            except gym.error.Error as e:
                raise ValueError(f"watch(): unknown env {env!r} ({type(e).__name__}: {e}). Pass a gymnasium id, a "
                                 f"name given to juno.tune.register_env, an Env, or env=creator.") from None
    if not callable(creator):
        raise TypeError(f"watch(): env must be a gymnasium id, a registered name, an Env, an Env class or a "
                        f"creator function; got {type(env).__name__}.")
    made = creator(env_config)
    if not hasattr(made, "reset") or not hasattr(made, "step"):
        raise TypeError(f"watch(): the creator of env {_env_name(env)!r} returned {type(made).__name__}, not a "
                        "gymnasium.Env.")
    return made, True


def _can_render(env: Any) -> str | None:
    """None if ``env.render()`` gives rgb frames (switching an unset render_mode on), else why not."""
    mode = getattr(env, "render_mode", None)
    if mode is None:
        try:
            env.unwrapped.render_mode = "rgb_array"  # classic control and most envs read it at render()
            mode = "rgb_array"
        except Exception:  # noqa: BLE001 - some envs refuse: then no pictures
            return "its render_mode is None and cannot be set"
    if mode != "rgb_array":
        return f"its render_mode is {mode!r}, not 'rgb_array' (make it with render_mode='rgb_array')"
    if not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
        os.environ.setdefault("SDL_VIDEODRIVER", "dummy")  # headless: pygame's frames need no window (nor its stderr noise)
    return None


def _frame(env: Any, size: tuple[int, int] | None) -> Any:
    """The env's current frame as a downscaled PIL image (None if it gave no rgb array)."""
    import numpy as np
    from PIL import Image

    rgb = env.render()
    if not isinstance(rgb, np.ndarray) or rgb.ndim != 3 or rgb.shape[2] not in (3, 4):
        return None
    image = Image.fromarray(np.ascontiguousarray(rgb[:, :, :3]).astype(np.uint8))
    return image.resize(size or scaled_size(*image.size), Image.BILINEAR)


class _Policy:
    """The module's action for one observation (flattened to float32, as the env runners feed it)."""

    def __init__(self, module: Any, action_space: Any, explore: bool, timestep: int):
        self.module, self.space, self.explore, self.timestep = module, action_space, explore, timestep

    def __call__(self, obs: Any) -> Any:
        import gymnasium as gym
        import numpy as np
        import torch

        x = torch.as_tensor(np.asarray(obs, dtype=np.float32).reshape(1, -1))
        with torch.no_grad():
            out = (self.module.forward_exploration(x, self.timestep) if self.explore
                   else self.module.forward_inference(x))
        action = out["actions"][0].detach().cpu().numpy()
        if isinstance(self.space, gym.spaces.Discrete):
            return int(action)
        if isinstance(self.space, gym.spaces.Box):
            return np.clip(action.reshape(self.space.shape), self.space.low, self.space.high).astype(self.space.dtype)
        return action


def _module_of(algo_or_module: Any) -> tuple[Any, Any, dict, int]:
    """(module, the algorithm's env or None, its env_config, its env steps so far)."""
    if callable(getattr(algo_or_module, "get_module", None)):
        config = getattr(algo_or_module, "config", None)
        return (algo_or_module.get_module(), getattr(config, "env", None),
                dict(getattr(config, "env_config", None) or {}), int(getattr(algo_or_module, "global_env_steps", 0)))
    if callable(getattr(algo_or_module, "forward_inference", None)):
        return algo_or_module, None, {}, 0
    raise TypeError(f"watch() takes an Algorithm or an RLModule, got {type(algo_or_module).__name__}.")


def _check(episodes: Any, max_steps: Any, fps: Any) -> None:
    for name, value in (("episodes", episodes), ("max_steps", max_steps)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"watch(): {name} must be a positive int, got {value!r}")
    if isinstance(fps, bool) or not isinstance(fps, (int, float)) or not fps > 0:
        raise ValueError(f"watch(): fps must be a positive number, got {fps!r}")


def watch(algo_or_module: Any, env: Any = None, episodes: int = 3, max_steps: int = 500, explore: bool = False,
          seed: int | None = None, fps: float = 30, *, env_config: dict | None = None,
          display: bool | None = None, stream: Any = None) -> list[float]:
    """Run ``episodes`` episodes (at most ``max_steps`` steps each) of the policy in a local env and show
    them; returns the episode returns. ``env``: the algorithm's env when None (a gymnasium id, a name
    given to ``juno.tune.register_env``, an Env, an Env class or a creator), made with ``env_config``
    (the algorithm's when None). ``seed`` seeds the first reset (episode i gets ``seed + i``).
    ``display``: None shows the animation in a kernel and prints the returns elsewhere; False shows
    nothing."""
    _check(episodes, max_steps, fps)
    module, algo_env, algo_env_config, timestep = _module_of(algo_or_module)
    env_spec = algo_env if env is None else env
    if env_spec is None:
        raise ValueError("watch(): an RLModule has no env of its own; pass env= (a gymnasium id, an Env, ...).")
    env_, owned = _make_env(env_spec, dict(algo_env_config if env_config is None else env_config))
    name = _env_name(env_spec)
    from juno.widgets.live import kernel_shell

    in_kernel = kernel_shell() is not None
    shown = display is not False
    no_frames = _can_render(env_) if shown and in_kernel else "not in a notebook"
    stride = frame_stride(episodes, max_steps)
    policy = _Policy(module, env_.action_space, explore, timestep)
    frames: list[Any] = []
    returns: list[float] = []
    lengths: list[int] = []
    was_training = getattr(module, "training", False)
    if hasattr(module, "eval"):
        module.eval()
    try:
        for episode in range(episodes):
            obs, _ = env_.reset(seed=None if seed is None else seed + episode)
            total, steps = 0.0, 0
            if no_frames is None:
                no_frames = _keep(env_, frames)
            for steps in range(1, max_steps + 1):
                obs, reward, terminated, truncated, _ = env_.step(policy(obs))
                total += float(reward)
                if no_frames is None and (steps % stride == 0 or terminated or truncated):
                    no_frames = _keep(env_, frames)
                if terminated or truncated:
                    break
            returns.append(total)
            lengths.append(steps)
    finally:
        if was_training and hasattr(module, "train"):
            module.train()
        if owned:
            env_.close()
    if shown:
        _show(returns_line(name, returns, lengths), frames, frame_ms(fps, stride), no_frames, in_kernel, stream)
    return returns


def _keep(env: Any, frames: list) -> str | None:
    """Add the env's frame (downscaled to the first frame's size); why not, if it has none."""
    frame = _frame(env, frames[0].size if frames else None)
    if frame is None:
        return "its render() returned no rgb array"
    frames.append(frame)
    return None


def _show(caption: str, frames: list, duration_ms: int, no_frames: str | None, in_kernel: bool, stream: Any) -> None:
    if in_kernel and frames and no_frames is None:
        from IPython.display import HTML, display

        display(HTML(animation_html(gif_bytes(frames, duration_ms), caption)))
        return
    if in_kernel and no_frames:
        caption += f" (no animation: the env cannot render frames: {no_frames})"
    print(caption, file=stream or sys.stdout, flush=True)


watch_policy = watch

__all__ = ["watch", "watch_policy", "frame_stride", "scaled_size", "frame_ms", "returns_line", "gif_bytes",
           "animation_html", "MAX_FRAMES", "MAX_SIDE"]

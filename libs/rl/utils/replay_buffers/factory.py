"""``replay_buffer_config`` (RLlib's dict) -> a replay buffer.

RLlib names its buffers by class: the new stack's ``EpisodeReplayBuffer`` and
``PrioritizedEpisodeReplayBuffer``, the older ``(MultiAgent)(Prioritized)ReplayBuffer``. Each maps
onto one of Juno's two transition buffers; settings that only mean something in RLlib's storage
layout are accepted and ignored.
"""
from __future__ import annotations

from juno.rl.utils.replay_buffers.replay_buffer import PrioritizedReplayBuffer, ReplayBuffer

UNIFORM_NAMES = ("EpisodeReplayBuffer", "ReplayBuffer", "MultiAgentReplayBuffer", "MultiAgentEpisodeReplayBuffer")
PRIORITIZED_NAMES = ("PrioritizedEpisodeReplayBuffer", "PrioritizedReplayBuffer",
                     "MultiAgentPrioritizedReplayBuffer", "MultiAgentPrioritizedEpisodeReplayBuffer")
# Keys of RLlib's replay_buffer_config with no effect on a single-agent transition buffer.
IGNORED_KEYS = frozenset({"storage_unit", "replay_mode", "replay_sequence_length", "replay_burn_in",
                          "replay_zero_init_states", "worker_side_prioritization", "learning_starts",
                          "prioritized_replay", "replay_batch_size", "underlying_buffer_config",
                          "_enable_replay_buffer_api", "num_shards", "batch_length_T",
                          "prioritized_replay_eps", "eps"})


def _resolve_type(buffer_type) -> type[ReplayBuffer]:
    if isinstance(buffer_type, type) and issubclass(buffer_type, ReplayBuffer):
        return buffer_type
    name = buffer_type.__name__ if isinstance(buffer_type, type) else buffer_type
    if isinstance(name, str):
        name = name.rsplit(".", 1)[-1]  # "ray.rllib....PrioritizedReplayBuffer" forms
        if name in UNIFORM_NAMES:
            return ReplayBuffer
        if name in PRIORITIZED_NAMES:
            return PrioritizedReplayBuffer
    raise ValueError(f"Unknown replay buffer type {buffer_type!r} in replay_buffer_config: use one of "
                     f"{list(UNIFORM_NAMES + PRIORITIZED_NAMES)}.")


def make_replay_buffer(replay_buffer_config: dict | None) -> ReplayBuffer:
    """Build the buffer ``replay_buffer_config`` asks for (``type``, ``capacity``, ``alpha``, ``beta``)."""
    config = dict(replay_buffer_config or {})
    buffer_class = _resolve_type(config.pop("type", "EpisodeReplayBuffer"))
    # The older names of the prioritized settings.
    for old, new in (("prioritized_replay_alpha", "alpha"), ("prioritized_replay_beta", "beta")):
        if old in config:
            config.setdefault(new, config.pop(old))
    epsilon = config.pop("prioritized_replay_eps", config.pop("eps", None))
    unknown = sorted(set(config) - IGNORED_KEYS - {"capacity", "alpha", "beta"})
    if unknown:
        raise ValueError(f"replay_buffer_config has unknown keys {unknown}: it takes 'type', 'capacity', "
                         "'alpha' and 'beta' (prioritized).")
    kwargs = {"capacity": config.get("capacity", 50000)}
    if issubclass(buffer_class, PrioritizedReplayBuffer):
        kwargs.update(alpha=config.get("alpha", 0.6), beta=config.get("beta", 0.4))
        if epsilon is not None:
            kwargs["epsilon"] = epsilon
    return buffer_class(**kwargs)

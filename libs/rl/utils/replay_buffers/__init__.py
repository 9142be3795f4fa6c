"""Replay buffers for the off-policy algorithms (DQN, SAC), and n-step transitions."""
from juno.rl.utils.replay_buffers.factory import make_replay_buffer
from juno.rl.utils.replay_buffers.n_step import NStepTransitions, n_step_transitions
from juno.rl.utils.replay_buffers.replay_buffer import PrioritizedReplayBuffer, ReplayBuffer
from juno.rl.utils.replay_buffers.sum_tree import SumTree

# RLlib's names, so `from juno.rllib.utils.replay_buffers import PrioritizedEpisodeReplayBuffer` ports.
EpisodeReplayBuffer = ReplayBuffer
PrioritizedEpisodeReplayBuffer = PrioritizedReplayBuffer

__all__ = ["EpisodeReplayBuffer", "NStepTransitions", "PrioritizedEpisodeReplayBuffer", "PrioritizedReplayBuffer", "ReplayBuffer",
           "SumTree", "make_replay_buffer", "n_step_transitions"]

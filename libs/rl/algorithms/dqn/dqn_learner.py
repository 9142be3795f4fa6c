"""DQN's learner: one gradient step per replayed batch on the (double) Q-learning n-step target,
and a target network that follows the module (hard copy or polyak) every
``target_network_update_freq`` env steps."""
from __future__ import annotations

import copy

import numpy as np
import torch
import torch.nn.functional as F

from juno.rl.algorithms.dqn.off_policy import TargetNetworkSchedule, polyak_update
from juno.rl.core.learner import Learner


def q_targets(rewards: torch.Tensor, discounts: torch.Tensor, terminateds: torch.Tensor,
              q_next_target: torch.Tensor, q_next_online: torch.Tensor | None) -> torch.Tensor:
    """r + gamma^m * (1 - terminated) * Q_target(s', a*), with a* = argmax of the online net (double Q)
    or of the target net itself (plain DQN: pass ``q_next_online=None``)."""
    chooser = q_next_online if q_next_online is not None else q_next_target
    best = chooser.argmax(dim=-1, keepdim=True)
    q_next = q_next_target.gather(-1, best).squeeze(-1)
    return rewards + discounts * (1.0 - terminateds.float()) * q_next


def td_loss(td_error: torch.Tensor, weights: torch.Tensor, loss_fn: str = "huber") -> torch.Tensor:
    """Importance-weighted mean of huber(td) (delta 1) or 0.5 * td^2."""
    if loss_fn == "huber":
        per_item = F.huber_loss(td_error, torch.zeros_like(td_error), reduction="none", delta=1.0)
    else:
        per_item = 0.5 * td_error.pow(2)
    return (weights * per_item).mean()


class DQNLearner(Learner):
    def build(self) -> None:
        self.target_module = copy.deepcopy(self.module).requires_grad_(False)
        self.target_schedule = TargetNetworkSchedule(self.config.target_network_update_freq)

    def update(self, batch: dict[str, np.ndarray], timestep: int) -> dict:
        config = self.config
        t = self.to_tensors(batch)
        out = self.module.forward_train(t)
        q_taken = out["q"].gather(-1, t["actions"].long().unsqueeze(-1)).squeeze(-1)
        with torch.no_grad():
            q_next_target = self.target_module.q_values(t["next_obs"])
            targets = q_targets(t["rewards"], t["discounts"], t["terminateds"], q_next_target,
                                out["q_next"].detach() if config.double_q else None)
        td_error = q_taken - targets
        weights = t.get("weights", torch.ones_like(td_error))
        loss = td_loss(td_error, weights, config.td_error_loss_fn)
        grad_norm = self.apply_gradients(loss)
        if self.target_schedule.due(timestep):
            polyak_update(self.target_module, self.module, config.tau)
        return {"qf_loss": loss.item(), "mean_q": q_taken.mean().item(), "mean_td_error": td_error.mean().item(),
                "gradients_default_optimizer_global_norm": grad_norm,
                "num_target_updates": self.target_schedule.num_updates,
                "td_error": td_error.detach().cpu().numpy()}

    def get_extra_state(self) -> dict:
        return {"target_module": self.target_module.get_state(), "target_schedule": self.target_schedule.get_state()}

    def set_extra_state(self, state: dict) -> None:
        if state:
            self.target_module.set_state(state["target_module"])
            self.target_schedule.set_state(state["target_schedule"])

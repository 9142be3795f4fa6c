"""SAC's learner (Haarnoja et al. 2018): twin Q critics against a soft n-step target from polyak-
averaged target critics, an actor that maximises min Q - alpha * log pi, and alpha tuned so the
policy's entropy tracks ``target_entropy``."""
from __future__ import annotations

import copy

import numpy as np
import torch

from juno.rl.algorithms.dqn.off_policy import TargetNetworkSchedule, polyak_update
from juno.rl.core.learner import Learner


class SACLearner(Learner):
    def configure_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        config = self.config
        module = self.module
        self.log_alpha = torch.nn.Parameter(torch.tensor(float(np.log(config.initial_alpha)), device=self.device))
        critic_params = [p for q in module.critics() for p in q.parameters()]
        return {"actor": torch.optim.Adam(module.policy.parameters(), lr=config.actor_lr),
                "critic": torch.optim.Adam(critic_params, lr=config.critic_lr),
                "alpha": torch.optim.Adam([self.log_alpha], lr=config.alpha_lr)}

    def build(self) -> None:
        self.target_critics = [copy.deepcopy(q).requires_grad_(False) for q in self.module.critics()]
        self.target_schedule = TargetNetworkSchedule(self.config.target_network_update_freq)
        target = self.config.target_entropy
        self.target_entropy = -float(self.module.action_dim) if target in ("auto", None) else float(target)

    def update(self, batch: dict[str, np.ndarray], timestep: int) -> dict:
        module = self.module
        t = self.to_tensors(batch)
        weights = t.get("weights", torch.ones_like(t["rewards"]))
        alpha = self.log_alpha.exp().detach()
        out = module.forward_train(t)

        # Critics: regress on r + gamma^m (1 - done) (min target Q(s', a') - alpha log pi(a'|s')).
        with torch.no_grad():
            next_q = torch.stack(module.q_values(t["next_obs"], out["next_actions"], self.target_critics)).min(0).values
            targets = t["rewards"] + t["discounts"] * (1.0 - t["terminateds"].float()) * \
                (next_q - alpha * out["next_logp"])
        qs = module.q_values(t["obs"], t["actions"])
        td_errors = [q - targets for q in qs]
        critic_loss = sum((weights * 0.5 * td.pow(2)).mean() for td in td_errors)
        self.apply_gradients(critic_loss, "critic")

        # Actor: maximise min Q(s, a~pi) - alpha log pi; the critics are held fixed (no gradients for them).
        for critic in module.critics():
            critic.requires_grad_(False)
        q_new = torch.stack(module.q_values(t["obs"], out["actions_new"])).min(0).values
        for critic in module.critics():
            critic.requires_grad_(True)
        actor_loss = (alpha * out["logp"] - q_new).mean()
        self.apply_gradients(actor_loss, "actor")

        # Temperature: raise alpha when the entropy (-logp) falls below the target, lower it above.
        alpha_loss = -(self.log_alpha * (out["logp"].detach() + self.target_entropy)).mean()
        self.apply_gradients(alpha_loss, "alpha")

        if self.target_schedule.due(timestep):
            for target, critic in zip(self.target_critics, module.critics()):
                polyak_update(target, critic, self.config.tau)
        td_error = torch.stack(td_errors).abs().mean(0).detach().cpu().numpy()
        return {"actor_loss": actor_loss.item(), "critic_loss": critic_loss.item(), "alpha_loss": alpha_loss.item(),
                "alpha_value": self.log_alpha.exp().item(), "mean_q": qs[0].mean().item(),
                "log_alpha_value": self.log_alpha.item(), "td_error": td_error}

    def get_extra_state(self) -> dict:
        return {"log_alpha": float(self.log_alpha.detach()), "target_schedule": self.target_schedule.get_state(),
                "target_critics": [{k: v.detach().cpu().numpy().copy() for k, v in q.state_dict().items()}
                                   for q in self.target_critics]}

    def set_extra_state(self, state: dict) -> None:
        if not state:
            return
        with torch.no_grad():
            self.log_alpha.fill_(state["log_alpha"])
        self.target_schedule.set_state(state["target_schedule"])
        for target, saved in zip(self.target_critics, state["target_critics"]):
            target.load_state_dict({k: torch.from_numpy(np.array(v, copy=True)) for k, v in saved.items()})

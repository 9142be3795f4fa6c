"""PPO's Learner: one ``update`` is one training step on one train batch.

GAE runs once over the whole time-major batch (values of ``obs`` and ``next_obs`` in one forward pass);
then ``num_epochs`` passes over shuffled minibatches, all in torch: the batch becomes tensors once, the
minibatches are index views, and the loss parts stay tensors until the update ends (no numpy round
trip per minibatch). The adaptive KL coefficient is learner state, saved with checkpoints.
"""
from __future__ import annotations

import numpy as np
import torch

from juno.rl.core.learner import Learner

from .ppo_math import compute_gae, explained_variance, ppo_surrogate_loss, standardize, update_kl_coeff

STAT_KEYS = ("policy_loss", "vf_loss", "vf_loss_unclipped", "entropy", "mean_kl_loss", "total_loss")


class PPOLearner(Learner):
    def configure_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """Adam at ``config.lr``, fused where torch has it for the device: PPO takes many small steps
        (tens per iteration), and the fused kernel makes the whole update ~30% cheaper on a CPU."""
        params = list(self.module.parameters())
        try:
            return {"default": torch.optim.Adam(params, lr=self.config.lr, fused=True)}
        except (RuntimeError, TypeError):  # no fused Adam for this device or torch version
            return {"default": torch.optim.Adam(params, lr=self.config.lr)}

    def build(self) -> None:
        self.curr_kl_coeff = float(self.config.kl_coeff)

    def get_extra_state(self) -> dict:
        return {"curr_kl_coeff": self.curr_kl_coeff}

    def set_extra_state(self, state: dict) -> None:
        self.curr_kl_coeff = float(state.get("curr_kl_coeff", self.config.kl_coeff))

    def advantages(self, batch: dict[str, np.ndarray], obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(advantages standardized, value targets), flat [T * N], from the current critic."""
        config = self.config
        rewards = batch["rewards"]
        T, N = rewards.shape
        if config.use_critic:
            next_obs = self.as_tensor(np.asarray(batch["next_obs"], np.float32).reshape(T * N, -1))
            with torch.no_grad():
                values = self.module.compute_values(torch.cat([obs, next_obs])).cpu().numpy()
            values, next_values = values[:T * N].reshape(T, N), values[T * N:].reshape(T, N)
        else:
            values = next_values = np.zeros((T, N), np.float32)
        lambda_ = config.lambda_ if config.use_gae and config.use_critic else 1.0
        adv, targets = compute_gae(rewards, values, next_values, batch["terminateds"], batch["truncateds"],
                                   config.gamma, lambda_)
        adv = torch.as_tensor(adv.reshape(-1), device=self.device)
        return standardize(adv), torch.as_tensor(targets.reshape(-1), device=self.device)

    def update(self, batch: dict[str, np.ndarray], timestep: int) -> dict[str, float]:
        config, module = self.config, self.module
        module.train()
        T, N = np.shape(batch["rewards"])
        size = T * N
        obs = self.as_tensor(np.asarray(batch["obs"], np.float32).reshape(size, -1))
        advantages, value_targets = self.advantages(batch, obs)
        action_key = "actions_raw" if "actions_raw" in batch else "actions"
        actions = self.as_tensor(np.asarray(batch[action_key]).reshape((size,) + np.shape(batch[action_key])[2:]))
        old_logp = self.as_tensor(np.asarray(batch["action_logp"], np.float32).reshape(size))
        old_inputs = self.as_tensor(np.asarray(batch["action_dist_inputs"], np.float32).reshape(size, -1))
        minibatch = min(config.minibatch_size or size, size)
        use_kl = config.use_kl_loss
        totals = torch.zeros(len(STAT_KEYS), device=self.device)
        grad_norms, count = 0.0, 0
        # With several learners, every rank runs the minibatch count of the biggest shard (a smaller one
        # wraps around its rows), so their gradient all-reduces pair up.
        steps = -(-self.lockstep_max(size) // minibatch)
        for _ in range(config.num_epochs):
            order = torch.randperm(size, device=self.device)
            for step in range(steps):
                start = (step * minibatch) % size
                idx = order[start:start + minibatch]
                out = module.forward_train({"obs": obs[idx]})
                dist = module.dist_class(out["action_dist_inputs"])
                kl = module.dist_class(old_inputs[idx]).kl(dist) if use_kl else None
                loss, stats = ppo_surrogate_loss(
                    logp=dist.logp(actions[idx]), old_logp=old_logp[idx], advantages=advantages[idx],
                    values=out["vf_preds"] if config.use_critic else None, value_targets=value_targets[idx],
                    entropy=dist.entropy(), kl=kl, clip_param=config.clip_param, vf_clip_param=config.vf_clip_param,
                    vf_loss_coeff=config.vf_loss_coeff, entropy_coeff=config.entropy_coeff,
                    kl_coeff=self.curr_kl_coeff if use_kl else 0.0)
                grad_norms += self.apply_gradients(loss)
                totals += torch.stack([stats[k] for k in STAT_KEYS])
                count += 1
        metrics = dict(zip(STAT_KEYS, self.mean_across_learners(totals / count).tolist()))  # KL coeff: same on all
        if use_kl:
            self.curr_kl_coeff = update_kl_coeff(self.curr_kl_coeff, metrics["mean_kl_loss"], config.kl_target)
        module.eval()
        with torch.no_grad():
            values = module.compute_values(obs)
        metrics.update(curr_kl_coeff=self.curr_kl_coeff if use_kl else 0.0, gradients_global_norm=grad_norms / count,
                       vf_explained_var=explained_variance(value_targets, values) if config.use_critic else 0.0,
                       num_minibatch_updates=float(count), curr_lr=float(config.lr))
        return metrics

"""Proximal Policy Optimisation (clipped objective), the algorithm only: it takes minibatches.

One minibatch (as from :meth:`robo.rl.rollout_storage.RolloutStorage.minibatches`) gives one
gradient step of::

    ratio   = exp(log pi(a|s) - log pi_old(a|s))
    A       = (A - mean A) / std A                                  (per minibatch, optional)
    policy  = -mean(min(ratio * A, clip(ratio, 1 - eps, 1 + eps) * A))
    value   = mean(max((V - R)^2, (V_old + clip(V - V_old, -eps, eps) - R)^2))   (clipped, optional)
    loss    = policy + value_coef * value - entropy_coef * entropy

and a gradient-norm clip. The KL between the collecting and the current policy is estimated per
minibatch with ``mean((ratio - 1) - log ratio)`` (unbiased and never negative, Schulman's "k3"); with
``schedule="adaptive"`` it steers the learning rate as rsl_rl does: divided by 1.5 when the KL passes
twice ``desired_kl``, multiplied by 1.5 when it falls under half, kept in [1e-5, 1e-2].

Defaults are rsl_rl's PPO settings for its legged robots (5 epochs of 4 minibatches, lr 1e-3 adaptive,
value loss weight 1 with clipping, entropy 0.01, gradient norm 1); clip 0.2, gamma 0.99 and lambda 0.95
are the same in CleanRL.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from robo.nets.actor_critic import ActorCritic
from robo.rl.checkpoint import NonFiniteLoss

MIN_LR, MAX_LR, LR_FACTOR = 1e-5, 1e-2, 1.5


@dataclass
class PPOConfig:
    learning_rate: float = 1e-3
    schedule: Literal["fixed", "adaptive"] = "adaptive"
    desired_kl: float = 0.01  # target of the adaptive schedule
    num_epochs: int = 5  # passes over each rollout
    num_minibatches: int = 4  # per epoch
    clip: float = 0.2  # ratio clip; also the value clip
    clip_value: bool = True
    value_coef: float = 1.0
    entropy_coef: float = 0.01
    max_grad_norm: float = 1.0
    normalize_advantages: bool = True
    gamma: float = 0.99
    lam: float = 0.95  # GAE lambda
    critic_learning_rate: float = 0.0  # > 0: the critic's own (fixed) learning rate; 0: learning_rate
    target_kl: float = 0.0  # > 0: an update stops at the first minibatch whose KL exceeds it; 0: never

    def __post_init__(self) -> None:
        for name in ("learning_rate", "desired_kl", "num_epochs", "num_minibatches", "clip",
                     "max_grad_norm"):
            if not getattr(self, name) > 0:
                raise ValueError(f"ppo.{name} must be > 0, got {getattr(self, name)}")
        for name in ("value_coef", "entropy_coef", "critic_learning_rate", "target_kl"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"ppo.{name} must be >= 0, got {getattr(self, name)}")
        for name in ("gamma", "lam"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"ppo.{name} must be in [0, 1], got {getattr(self, name)}")
        if self.schedule not in ("fixed", "adaptive"):
            raise ValueError(f"ppo.schedule must be 'fixed' or 'adaptive', got {self.schedule!r}")


class PPO:
    """Updates ``model`` from minibatches with keys obs, actions, log_probs, values, advantages, returns."""

    def __init__(self, model: ActorCritic, config: PPOConfig):
        self.model, self.config = model, config
        self.learning_rate = config.learning_rate
        params: list = list(model.parameters())
        if config.critic_learning_rate > 0:  # the critic in a group of its own that no schedule moves
            critic = {id(p) for p in model.critic.parameters()}
            params = [{"params": [p for p in params if id(p) not in critic]},
                      {"params": list(model.critic.parameters()), "lr": config.critic_learning_rate,
                       "fixed_lr": True}]
        self.optimizer = torch.optim.Adam(params, lr=config.learning_rate)

    def loss(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        cfg = self.config
        log_prob, entropy, value = self.model.evaluate(batch["obs"], batch["actions"])
        log_ratio = log_prob - batch["log_probs"]
        ratio = log_ratio.exp()
        advantages = batch["advantages"]
        if cfg.normalize_advantages:
            advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-8)
        clipped_ratio = ratio.clamp(1 - cfg.clip, 1 + cfg.clip)
        policy_loss = -torch.min(ratio * advantages, clipped_ratio * advantages).mean()

        value_loss = (value - batch["returns"]).pow(2)
        if cfg.clip_value:
            # A value that moved further than `clip` from the one that collected the batch earns no
            # more than the clipped move: the critic's counterpart of the ratio clip.
            clipped = batch["values"] + (value - batch["values"]).clamp(-cfg.clip, cfg.clip)
            value_loss = torch.max(value_loss, (clipped - batch["returns"]).pow(2))
        value_loss = value_loss.mean()
        entropy = entropy.mean()
        loss = policy_loss + cfg.value_coef * value_loss - cfg.entropy_coef * entropy
        with torch.no_grad():
            stats = {"policy_loss": policy_loss.detach(), "value_loss": value_loss.detach(),
                     "entropy": entropy.detach(), "kl": ((ratio - 1) - log_ratio).mean(),
                     "clip_fraction": ((ratio - 1).abs() > cfg.clip).float().mean()}
        return loss, stats

    def update(self, batches: Iterable[dict[str, torch.Tensor]]) -> dict[str, float]:
        """One gradient step per minibatch; returns the means of the losses, KL and clip fraction over
        them, and the learning rate after the last step. Raises :class:`NonFiniteLoss` before a
        non-finite loss reaches the parameters."""
        totals: dict[str, float] = {}
        count = 0
        for batch in batches:
            loss, stats = self.loss(batch)
            if not math.isfinite(loss.item()):
                raise NonFiniteLoss(f"PPO: non-finite loss {loss.item()} (policy {stats['policy_loss']:.4g}, "
                                    f"value {stats['value_loss']:.4g})")
            if self.config.target_kl and float(stats["kl"]) > self.config.target_kl:
                break  # the policy moved far enough from the one that collected the batch (CleanRL)
            if self.config.schedule == "adaptive":
                self._adapt_learning_rate(float(stats["kl"]))
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(self.model.parameters(), self.config.max_grad_norm)
            self.optimizer.step()
            for name, value in stats.items():
                totals[name] = totals.get(name, 0.0) + float(value)
            count += 1
        means = {name: total / max(count, 1) for name, total in totals.items()}
        means["learning_rate"] = self.learning_rate
        means["gradient_steps"] = float(count)
        return means

    def _adapt_learning_rate(self, kl: float) -> None:
        if kl > 2.0 * self.config.desired_kl:
            self.learning_rate = max(self.learning_rate / LR_FACTOR, MIN_LR)
        elif 0.0 < kl < 0.5 * self.config.desired_kl:
            self.learning_rate = min(self.learning_rate * LR_FACTOR, MAX_LR)
        for group in self.optimizer.param_groups:
            if not group.get("fixed_lr"):
                group["lr"] = self.learning_rate

    def state_dict(self) -> dict:
        return {"optimizer": self.optimizer.state_dict(), "learning_rate": self.learning_rate}

    def load_state_dict(self, state: dict) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
        self.learning_rate = float(state["learning_rate"])

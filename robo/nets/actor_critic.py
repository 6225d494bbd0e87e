"""The Gaussian actor-critic that on-policy methods (PPO) train.

* Actor: an :class:`~robo.nets.policy.MLPPolicy` ``obs -> action mean``; the exploration noise has a
  state-independent, learned log standard deviation (rsl_rl's and CleanRL's continuous PPO).
* Critic: a separate MLP ``obs -> V(obs)``; actor and critic share no layers, so the value loss never
  pulls on the policy's features.
* Actions are CLIPPED to [-1, 1] by whoever applies them, not squashed: the sampled Gaussian action is
  stored and scored unclipped, so the PPO ratio is the ratio of two plain Gaussians (no tanh Jacobian,
  no ``atanh`` of a saturated action to invert). Clipping is what rsl_rl and CleanRL do, and it
  exports as nothing more than the card's ``action_clip`` that every runtime applies.
* Optional :class:`RunningObsNorm` (running mean and variance of the observations, as buffers so the
  statistics travel in ``state_dict``).

:meth:`ActorCritic.deterministic_actor` is the exportable policy: a registered policy ``obs -> mean``
with the observation normalisation folded in (:class:`~robo.nets.policy.NormalizedMLPPolicy`).
"""

from __future__ import annotations

import copy
import math

import torch
from torch import nn

from robo.nets.policy import MLPPolicy, NormalizedMLPPolicy


class RunningObsNorm(nn.Module):
    """``clip((obs - mean) / sqrt(var + eps))`` with mean and variance over every observation seen."""

    def __init__(self, size: int, clip: float = 10.0, eps: float = 1e-8):
        super().__init__()
        self.clip, self.eps = clip, eps
        # float64 statistics: millions of updates of a float32 count and mean would drift.
        self.register_buffer("mean", torch.zeros(size, dtype=torch.float64))
        self.register_buffer("var", torch.ones(size, dtype=torch.float64))
        self.register_buffer("count", torch.zeros((), dtype=torch.float64))

    @torch.no_grad()
    def update(self, obs: torch.Tensor) -> None:
        """Merge a batch ``[B, size]`` into the statistics (Chan et al.'s parallel variance)."""
        x = obs.reshape(-1, self.mean.numel()).to(torch.float64)
        n = x.shape[0]
        batch_mean, batch_var = x.mean(0), x.var(0, unbiased=False)
        total = self.count + n
        delta = batch_mean - self.mean
        self.var.copy_((self.var * self.count + batch_var * n + delta**2 * self.count * n / total) / total)
        self.mean.add_(delta * n / total)
        self.count.copy_(total)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        mean = self.mean.to(obs.dtype)
        std = torch.sqrt(self.var + self.eps).to(obs.dtype)
        return ((obs - mean) / std).clamp(-self.clip, self.clip)


class ActorCritic(nn.Module):
    """Gaussian policy ``N(actor(obs), exp(log_std))`` and value ``critic(obs)``.

    The methods take observations already normalised by :attr:`obs_norm` (what the rollout stores), so
    the statistics can move between collecting a batch and learning from it without changing the
    log-probabilities PPO compares.
    """

    def __init__(self, obs_size: int, act_size: int, actor_hidden: tuple[int, ...] = (64, 64),
                 critic_hidden: tuple[int, ...] = (64, 64), activation: str = "tanh",
                 init_std: float = 1.0, normalize_observations: bool = False, actor_head_gain: float = 0.01,
                 learn_std: bool = True):
        super().__init__()
        self.actor = MLPPolicy(obs_size, act_size, actor_hidden, activation)
        self.critic = MLPPolicy(obs_size, 1, critic_hidden, activation)
        self.log_std = nn.Parameter(torch.full((act_size,), math.log(init_std)), requires_grad=learn_std)
        self.obs_norm: nn.Module = RunningObsNorm(obs_size) if normalize_observations else nn.Identity()
        # CleanRL's initialisation: orthogonal hidden layers, a near-zero policy head (every action
        # starts near 0 with the full exploration noise) and a unit-gain value head. A head gain of 0
        # starts the mean at exactly 0 (a residual policy that first leaves its base unchanged).
        _orthogonal_init(self.actor, last_gain=actor_head_gain)
        _orthogonal_init(self.critic, last_gain=1.0)

    def normalize(self, obs: torch.Tensor, update: bool = False) -> torch.Tensor:
        """``obs`` through :attr:`obs_norm`, first merging it into the statistics when ``update``."""
        if update and isinstance(self.obs_norm, RunningObsNorm):
            self.obs_norm.update(obs)
        return self.obs_norm(obs)

    def value(self, obs: torch.Tensor) -> torch.Tensor:
        return self.critic(obs).squeeze(-1)

    def act(self, obs: torch.Tensor, generator: torch.Generator | None = None
            ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Sampled (unclipped) action, its log-probability and the value: ``[B, act]``, ``[B]``, ``[B]``."""
        mean = self.actor(obs)
        std = self.log_std.exp()
        noise = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
        action = mean + std * noise
        return action, self._log_prob(mean, action), self.value(obs)

    def evaluate(self, obs: torch.Tensor, action: torch.Tensor
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Log-probability of ``action``, the policy's entropy and the value, each ``[B]``."""
        mean = self.actor(obs)
        entropy = (0.5 + 0.5 * math.log(2 * math.pi) + self.log_std).sum().expand(mean.shape[0])
        return self._log_prob(mean, action), entropy, self.value(obs)

    def _log_prob(self, mean: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        z = (action - mean) / self.log_std.exp()
        return (-0.5 * z**2 - self.log_std - 0.5 * math.log(2 * math.pi)).sum(-1)

    def deterministic_actor(self) -> MLPPolicy:
        """A detached copy ``obs -> action mean`` (normalisation included) for evaluation and export, a
        registered policy that :func:`robo.nets.policy.save_policy` writes; clip its output to [-1, 1]
        as the environment does."""
        if not isinstance(self.obs_norm, RunningObsNorm):
            return copy.deepcopy(self.actor).eval()
        norm = self.obs_norm
        arch = {k: v for k, v in self.actor.arch.items() if k != "kind"}
        policy = NormalizedMLPPolicy(**arch, clip=norm.clip).to(self.log_std.device)
        # The same float32 statistics RunningObsNorm.forward computes, so both give the same actions.
        policy.load_state_dict({**self.actor.state_dict(), "obs_mean": norm.mean.float(),
                                "obs_std": torch.sqrt(norm.var + norm.eps).float()})
        return policy.eval()


def _orthogonal_init(net: MLPPolicy, last_gain: float) -> None:
    linears = [m for m in net.modules() if isinstance(m, nn.Linear)]
    for i, layer in enumerate(linears):
        nn.init.orthogonal_(layer.weight, gain=last_gain if i == len(linears) - 1 else math.sqrt(2))
        nn.init.zeros_(layer.bias)

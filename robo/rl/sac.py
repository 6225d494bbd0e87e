"""Soft Actor-Critic for K independent agents, trained as one batched program: the algorithm only.

Read top to bottom like CleanRL's ``sac_continuous_action.py``, with one difference: every tensor has a
leading member dimension K. K agents ("teachers" in RAPTOR), each on its own environment, share no
data and no parameters; their networks are stacked (:mod:`robo.nets.ensemble`) so one ``bmm`` per layer
serves all of them. What keeps the members independent:

* each member gets its own minibatch rows (``batch[name][k]``) and its own noise;
* per-member losses are SUMMED over members before ``backward`` (a mean would scale every member's
  gradient by 1/K), so member k's gradient is exactly the gradient of its own loss;
* Adam is elementwise, so one Adam over stacked parameters equals K Adams (same step count);
* each member has its own temperature alpha and its own target-network update.

A member can be frozen (``active[k] = False``, e.g. a teacher that met its acceptance threshold):
its parameters, optimiser moments, alpha and target network no longer change, although it is still
computed until :meth:`SACGroup.select` drops it from the batch.

:meth:`SACGroup.update` takes a batch (``{obs, action, reward, next_obs, terminated}``, ``[K, B, ...]``);
where batches come from is :mod:`robo.rl.replay`, the interaction loop is :mod:`robo.rl.off_policy_runner`.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from robo.nets.ensemble import EnsembleMLP, select_members
from robo.nets.policy import MLPPolicy, save_policy

# ---------------------------------------------------------------------------------------------
# Configuration (defaults: the RAPTOR teachers' settings, reference/quadrotor.md)
# ---------------------------------------------------------------------------------------------


@dataclass
class SACConfig:
    # buffer_size and learning_starts are read by the runner (robo.rl.off_policy_runner), which owns
    # the replay and the loop; they live here because they are SAC's hyperparameters in the paper.
    buffer_size: int = 1_000_000  # per member; storage grows as it fills, so early stops cost less
    batch_size: int = 128
    gamma: float = 0.99
    tau: float = 0.005
    actor_lr: float = 3e-4
    critic_lr: float = 3e-4
    alpha_lr: float = 1e-4
    initial_alpha: float = 0.5
    target_entropy: float = -2.0
    learning_starts: int = 10_000  # env steps of uniform random actions before the first update
    actor_hidden: tuple[int, ...] = (64, 64, 64)
    critic_hidden: tuple[int, ...] = (256, 256, 256)
    log_std_min: float = -5.0
    log_std_max: float = 2.0
    policy_frequency: int = 1  # actor and alpha update every n-th critic update
    target_frequency: int = 1
    # torch.compile the critic and actor losses (forward and backward; the optimiser steps stay eager).
    # Off by default: on CPU it does not pay (robo bench raptor: 0.87-1.09x eager for 1-64 teachers at
    # the paper's critics and batch 256; the update is compute-bound there).
    compile: bool = False
    # OERLD's (Nair et al. 2018) Q-filtered behaviour cloning: the actor loss gains bc_weight x the
    # squared error between the actor's mean action and the demonstrated action, on the batch's
    # demonstration rows (``batch["demo"]``) where the critic rates the demonstrated action above the
    # actor's. 0 (the default): plain SAC.
    bc_weight: float = 0.0
    # False: the behaviour-cloning term on every demonstration row, whatever the critic says (TD3+BC's
    # way); the filter trusts a critic that may over-rate the actor's own actions.
    bc_q_filter: bool = True
    # True: the behaviour-cloning term is the negative log-likelihood of the demonstrated action under
    # the actor's Gaussian (before tanh) instead of the squared error of tanh(mean), so it trains the
    # std too: the agent explores around the demonstrations, not at the std's upper bound.
    bc_log_likelihood: bool = False
    # LayerNorm (no affine parameters) after every hidden layer of the critic, before the activation, as
    # in RLPD (Ball et al. 2023): it bounds how far Q can extrapolate to actions the data never showed.
    # False (the default): the plain MLP critic.
    critic_layer_norm: bool = False
    # Q-networks per member. 2 (the default): SAC's twin critics, the minimum of both in the target and
    # the actor loss. More: a REDQ-style ensemble (Chen et al. 2021), each update takes the minimum of a
    # random pair of them in both, so a guess one critic extrapolates to unseen actions is seldom
    # shared by the pair, and the actor has less to chase.
    critics: int = 2

    def __post_init__(self) -> None:
        for name in ("buffer_size", "batch_size", "policy_frequency", "target_frequency"):
            if getattr(self, name) <= 0:
                raise ValueError(f"sac.{name} must be > 0, got {getattr(self, name)}")
        if self.learning_starts < 0:
            raise ValueError(f"sac.learning_starts must be >= 0, got {self.learning_starts}")
        if not 0.0 <= self.gamma <= 1.0:
            raise ValueError(f"sac.gamma must be in [0, 1], got {self.gamma}")
        if not 0.0 < self.tau <= 1.0:
            raise ValueError(f"sac.tau must be in (0, 1], got {self.tau}")
        if self.initial_alpha <= 0:
            raise ValueError(f"sac.initial_alpha must be > 0, got {self.initial_alpha}")
        for name in ("actor_lr", "critic_lr", "alpha_lr"):
            if getattr(self, name) <= 0:
                raise ValueError(f"sac.{name} must be > 0, got {getattr(self, name)}")
        if self.bc_weight < 0:
            raise ValueError(f"sac.bc_weight must be >= 0, got {self.bc_weight}")
        if self.critics < 2:
            raise ValueError(f"sac.critics must be >= 2 (a pair to take the minimum of), got {self.critics}")
        for name in ("actor_hidden", "critic_hidden"):
            sizes = getattr(self, name)
            if not sizes or min(sizes) < 1:
                raise ValueError(f"sac.{name}: at least one layer, every size >= 1, got {list(sizes)}")
        if self.log_std_min >= self.log_std_max:
            raise ValueError("sac.log_std_min must be below sac.log_std_max")


# ---------------------------------------------------------------------------------------------
# Networks
# ---------------------------------------------------------------------------------------------

_LOG_2 = math.log(2.0)
_LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)


class SquashedGaussianActor(nn.Module):
    """K actors ``obs -> (mean, log_std)``; actions ``tanh(mean + std * noise)``."""

    def __init__(self, members: int, obs_size: int, act_size: int, hidden: tuple[int, ...],
                 log_std_min: float, log_std_max: float, device: torch.device | str | None = None):
        super().__init__()
        self.act_size = act_size
        self.log_std_min, self.log_std_max = log_std_min, log_std_max
        self.net = EnsembleMLP(members, obs_size, hidden, 2 * act_size, device=device)

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean, raw = self.net(obs).chunk(2, dim=-1)
        # tanh keeps log_std in range with a gradient everywhere (CleanRL's choice).
        log_std = self.log_std_min + 0.5 * (self.log_std_max - self.log_std_min) * (torch.tanh(raw) + 1)
        return mean, log_std

    def sample(self, obs: torch.Tensor, noise: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Reparameterised action and its log-probability (``[K, B, act]``, ``[K, B]``)."""
        mean, log_std = self(obs)
        u = mean + log_std.exp() * noise
        log_prob = (-0.5 * noise.pow(2) - log_std - _LOG_SQRT_2PI).sum(-1)
        # Change of variables through tanh: log(1 - tanh(u)^2) = 2 (log 2 - u - softplus(-2u)),
        # the form that stays finite when |u| is large.
        log_prob = log_prob - (2 * (_LOG_2 - u - F.softplus(-2 * u))).sum(-1)
        return torch.tanh(u), log_prob

    def deterministic(self, obs: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self(obs)[0])


class TwinCritic(nn.Module):
    """``critics`` (two by default) Q-networks per member, stored as one ensemble of ``critics`` x K
    (rows ``q * K + k``); with ``layer_norm`` every hidden layer's output is normalised
    (parameter-free) before the activation."""

    def __init__(self, members: int, obs_size: int, act_size: int, hidden: tuple[int, ...],
                 device: torch.device | str | None = None, layer_norm: bool = False, critics: int = 2):
        super().__init__()
        self.critics = critics
        self.net = EnsembleMLP(critics * members, obs_size + act_size, hidden, 1, device=device,
                               layer_norm=layer_norm)

    def forward(self, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """``[K, B, obs]``, ``[K, B, act]`` -> ``[critics, K, B]``."""
        x = torch.cat((obs, action), -1)
        k, b = x.shape[:2]
        return self.net(x.repeat(self.critics, 1, 1)).view(self.critics, k, b)


def pessimistic(q: torch.Tensor, pair: torch.Tensor | None) -> torch.Tensor:
    """The minimum over the critics ``pair`` picks (None: over all of them) of ``[critics, ...]``."""
    return (q if pair is None else q[pair]).min(0).values


# ---------------------------------------------------------------------------------------------
# The group of K agents
# ---------------------------------------------------------------------------------------------


class SACGroup:
    """K SAC agents with stacked networks, per-member alpha and a freeze mask."""

    def __init__(self, members: int, obs_size: int, act_size: int, config: SACConfig | None = None,
                 *, device: torch.device | str = "cpu", seed: int = 0):
        self.config = cfg = config or SACConfig()
        self.members, self.obs_size, self.act_size = members, obs_size, act_size
        self.device = torch.device(device)
        # Initialise from a private seed so two groups built with one seed are identical.
        with torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else []):
            torch.manual_seed(seed)
            self.actor = SquashedGaussianActor(members, obs_size, act_size, cfg.actor_hidden,
                                               cfg.log_std_min, cfg.log_std_max, device=self.device)
            self.critic = TwinCritic(members, obs_size, act_size, cfg.critic_hidden, device=self.device,
                                     layer_norm=cfg.critic_layer_norm, critics=cfg.critics)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self.log_alpha = nn.Parameter(torch.full((members,), math.log(cfg.initial_alpha), device=self.device))
        self._make_optimizers()
        # The losses update() calls: compiled with sac.compile (recompiled when select() changes K).
        self._critic_loss = torch.compile(self.critic_loss) if cfg.compile else self.critic_loss
        self._actor_loss = torch.compile(self.actor_loss) if cfg.compile else self.actor_loss
        # Draws acting noise and update noise; the runner samples replay indices from it too, so one
        # seed fixes a whole run.
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(seed + 1)
        self.active = torch.ones(members, dtype=torch.bool, device=self.device)
        self.any_frozen = False
        self.updates = 0
        # Per-member "a loss was not finite" flags, kept on the device so checking costs no sync.
        self.nonfinite = torch.zeros(members, dtype=torch.bool, device=self.device)

    def _make_optimizers(self) -> None:
        cfg = self.config
        fused = {"fused": True} if self.device.type == "cuda" else {}
        self.actor_opt = torch.optim.Adam(self.actor.parameters(), lr=cfg.actor_lr, **fused)
        self.critic_opt = torch.optim.Adam(self.critic.parameters(), lr=cfg.critic_lr, **fused)
        self.alpha_opt = torch.optim.Adam([self.log_alpha], lr=cfg.alpha_lr, **fused)

    @property
    def alpha(self) -> torch.Tensor:
        return self.log_alpha.detach().exp()

    # ----- acting --------------------------------------------------------------------------
    @torch.no_grad()
    def act(self, obs: torch.Tensor, deterministic: bool = False) -> torch.Tensor:
        """``obs [K, obs]`` or ``[K, E, obs]`` (E environments per member) -> actions in [-1, 1]."""
        single = obs.dim() == 2
        if single:
            obs = obs.unsqueeze(1)
        if deterministic:
            action = self.actor.deterministic(obs)
        else:
            noise = torch.randn(*obs.shape[:2], self.act_size, generator=self.generator, device=self.device)
            action = self.actor.sample(obs, noise)[0]
        return action[:, 0] if single else action

    def random_action(self, envs: int = 1) -> torch.Tensor:
        """Uniform actions ``[K, envs, act]``."""
        u = torch.rand(self.members, envs, self.act_size, generator=self.generator, device=self.device)
        return u * 2 - 1

    # ----- losses (each returns one value per member, shape [K]) ----------------------------
    def critic_pair(self) -> torch.Tensor | None:
        """A random pair of the ensemble's critics for one update; None (both) with two."""
        if self.config.critics == 2:  # draws nothing: plain SAC's random stream stays as it was
            return None
        return torch.randperm(self.config.critics, generator=self.generator, device=self.device)[:2]

    def critic_loss(self, batch: dict[str, torch.Tensor], noise: torch.Tensor,
                    pair: torch.Tensor | None = None) -> torch.Tensor:
        cfg = self.config
        with torch.no_grad():
            next_action, next_log_prob = self.actor.sample(batch["next_obs"], noise)
            next_q = pessimistic(self.critic_target(batch["next_obs"], next_action), pair)
            next_v = next_q - self.alpha[:, None] * next_log_prob
            # Truncated episodes bootstrap; only a real termination cuts the return.
            target = batch["reward"] + cfg.gamma * (1.0 - batch["terminated"]) * next_v
        q = self.critic(batch["obs"], batch["action"])
        return (q - target).pow(2).mean(-1).sum(0)  # the sum of every critic's MSE, per member

    def actor_loss(self, obs: torch.Tensor, noise: torch.Tensor,
                   pair: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-member actor loss and the (detached) log-probabilities the alpha loss needs."""
        self.critic.requires_grad_(False)  # no critic gradients to compute and throw away
        try:
            action, log_prob = self.actor.sample(obs, noise)
            q = pessimistic(self.critic(obs, action), pair)
        finally:
            self.critic.requires_grad_(True)
        loss = (self.alpha[:, None] * log_prob - q).mean(-1)
        return loss, log_prob.detach()

    def bc_loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """OERLD's Q-filtered behaviour cloning per member ([K]): mean over the demonstration rows of
        ``|tanh(mean(s)) - a_demo|^2`` where ``Q(s, a_demo) > Q(s, tanh(mean(s)))`` (on every
        demonstration row without ``bc_q_filter``); with ``bc_log_likelihood`` the error is
        ``-log N(atanh(a_demo); mean(s), std(s))`` up to a constant."""
        demo = batch["demo"].to(batch["reward"].dtype)
        mean, log_std = self.actor(batch["obs"])
        mean_action = torch.tanh(mean)
        keep = demo
        if self.config.bc_q_filter:
            with torch.no_grad():
                q_demo = self.critic(batch["obs"], batch["action"]).min(0).values
                q_actor = self.critic(batch["obs"], mean_action).min(0).values
                keep = demo * (q_demo > q_actor).to(demo.dtype)
        if self.config.bc_log_likelihood:
            # atanh of an action on the bound is infinite: clip just inside it (tanh(2.65) = 0.99).
            u = torch.atanh(batch["action"].clamp(-0.99, 0.99))
            error = (0.5 * ((u - mean) / log_std.exp()).pow(2) + log_std).sum(-1)
        else:
            error = (mean_action - batch["action"]).pow(2).sum(-1)
        return (keep * error).sum(-1) / demo.sum(-1).clamp(min=1.0)

    def alpha_loss(self, log_prob: torch.Tensor) -> torch.Tensor:
        return (-self.log_alpha[:, None] * (log_prob + self.config.target_entropy)).mean(-1)

    # ----- one gradient step ---------------------------------------------------------------
    def update(self, batch: dict[str, torch.Tensor],
               noise: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """One SAC update of every active member on ``batch`` (``[K, B, ...]`` per field); ``noise``
        ([2, K, B, act]) is drawn from the group's generator unless given (tests)."""
        cfg = self.config
        if noise is None:
            b = batch["reward"].shape[1]
            noise = torch.randn(2, self.members, b, self.act_size, generator=self.generator,
                                device=self.device)

        pair = self.critic_pair()
        q_loss = self._critic_loss(batch, noise[0], pair)
        self.critic_opt.zero_grad(set_to_none=True)
        q_loss.sum().backward()  # sum, not mean: each member gets the gradient of its own loss
        self._step(self.critic_opt)
        out = {"critic_loss": q_loss.detach()}
        bad = ~torch.isfinite(out["critic_loss"])

        if self.updates % cfg.policy_frequency == 0:
            pi_loss, log_prob = self._actor_loss(batch["obs"], noise[1], pair)
            if cfg.bc_weight > 0 and "demo" in batch:
                bc = self.bc_loss(batch)
                pi_loss = pi_loss + cfg.bc_weight * bc
                out["bc_loss"] = bc.detach()
            self.actor_opt.zero_grad(set_to_none=True)
            pi_loss.sum().backward()
            self._step(self.actor_opt)
            a_loss = self.alpha_loss(log_prob)
            self.alpha_opt.zero_grad(set_to_none=True)
            a_loss.sum().backward()
            self._step(self.alpha_opt)
            out.update(actor_loss=pi_loss.detach(), alpha_loss=a_loss.detach(), entropy=-log_prob.mean(-1))
            bad = bad | ~torch.isfinite(out["actor_loss"]) | ~torch.isfinite(out["alpha_loss"])

        if self.updates % cfg.target_frequency == 0:
            with torch.no_grad():
                weight = (self.active.repeat(cfg.critics).to(torch.float32) * cfg.tau).view(-1, 1, 1)
                pairs = zip(self.critic_target.parameters(), self.critic.parameters(), strict=True)
                for target, source in pairs:
                    target.lerp_(source, weight.to(target.dtype))
        self.nonfinite |= bad & self.active
        self.updates += 1
        return out

    def _step(self, optimizer: torch.optim.Optimizer) -> None:
        """``optimizer.step()`` that leaves frozen members (parameters and Adam moments) untouched."""
        if not self.any_frozen:  # a Python flag, so the common case costs no device sync
            optimizer.step()
            return
        frozen = ~self.active
        saved = []
        for group in optimizer.param_groups:
            for p in group["params"]:
                rows = frozen.repeat(p.shape[0] // self.members)
                state = optimizer.state.get(p, {})
                moments = {k: v[rows].clone() for k, v in state.items() if torch.is_tensor(v) and v.dim() > 0}
                saved.append((p, rows, p.detach()[rows].clone(), moments))
        optimizer.step()
        with torch.no_grad():
            for p, rows, value, moments in saved:
                p[rows] = value
                for k, v in moments.items():
                    optimizer.state[p][k][rows] = v

    # ----- membership ----------------------------------------------------------------------
    def freeze(self, members: torch.Tensor) -> None:
        """Stop updating the members in the boolean mask ``members`` (permanent)."""
        self.active &= ~members.to(self.device)
        self.any_frozen = not bool(self.active.all())

    def select(self, index: torch.Tensor | list[int]) -> None:
        """Keep only members ``index`` (in that order), optimiser state included."""
        index = torch.as_tensor(index, dtype=torch.long, device=self.device)
        critic_rows = torch.cat([index + q * self.members for q in range(self.config.critics)])
        old_states = [[opt.state.get(p, {}) for g in opt.param_groups for p in g["params"]]
                      for opt in (self.actor_opt, self.critic_opt, self.alpha_opt)]
        select_members(self.actor, index)
        select_members(self.critic, critic_rows)
        select_members(self.critic_target, critic_rows)
        self.critic_target.requires_grad_(False)
        self.log_alpha = nn.Parameter(self.log_alpha.detach()[index].clone())
        self.members = int(index.numel())
        self._make_optimizers()
        # Carry each kept member's Adam moments over (the step count is shared and stays).
        for opt, states, rows in zip((self.actor_opt, self.critic_opt, self.alpha_opt), old_states,
                                     (index, critic_rows, index), strict=True):
            params = [p for g in opt.param_groups for p in g["params"]]
            for p, state in zip(params, states, strict=True):
                opt.state[p] = {k: (v[rows].clone() if torch.is_tensor(v) and v.dim() > 0 else v)
                                for k, v in state.items()}
        self.active = self.active[index]
        self.any_frozen = not bool(self.active.all())
        self.nonfinite = self.nonfinite[index]

    # ----- single-member views -------------------------------------------------------------
    def member_actor(self, k: int) -> nn.Sequential:
        """Member ``k``'s actor as a plain MLP with 2 * act outputs (mean, raw log-std)."""
        return self.actor.net.member(k)

    def member_policy(self, k: int) -> nn.Sequential:
        """Member ``k``'s deterministic policy ``tanh(mean)`` as a plain ``nn.Sequential``."""
        return deterministic_policy(self.member_actor(k), self.act_size)

    # ----- checkpoints ---------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {
            "config": dataclasses.asdict(self.config), "members": self.members,
            "obs_size": self.obs_size, "act_size": self.act_size,
            "actor": self.actor.state_dict(), "critic": self.critic.state_dict(),
            "critic_target": self.critic_target.state_dict(), "log_alpha": self.log_alpha.detach().clone(),
            "actor_opt": self.actor_opt.state_dict(), "critic_opt": self.critic_opt.state_dict(),
            "alpha_opt": self.alpha_opt.state_dict(),
            "generator": self.generator.get_state(), "active": self.active.clone(),
            "updates": self.updates, "nonfinite": self.nonfinite.clone(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if (state["members"], state["obs_size"], state["act_size"]) != (
                self.members, self.obs_size, self.act_size):
            raise ValueError(f"checkpoint holds {state['members']} members of obs {state['obs_size']} / act "
                             f"{state['act_size']}, this group {self.members} / {self.obs_size} / "
                             f"{self.act_size}")
        self.actor.load_state_dict(state["actor"])
        self.critic.load_state_dict(state["critic"])
        self.critic_target.load_state_dict(state["critic_target"])
        with torch.no_grad():
            self.log_alpha.copy_(state["log_alpha"])
        self.actor_opt.load_state_dict(state["actor_opt"])
        self.critic_opt.load_state_dict(state["critic_opt"])
        self.alpha_opt.load_state_dict(state["alpha_opt"])
        self.generator.set_state(state["generator"].cpu())
        self.active = state["active"].to(self.device).clone()
        self.any_frozen = not bool(self.active.all())
        self.nonfinite = state["nonfinite"].to(self.device).clone()
        self.updates = int(state["updates"])

    @classmethod
    def from_state_dict(cls, state: dict[str, Any], device: torch.device | str = "cpu") -> SACGroup:
        from robo.config import from_dict

        group = cls(state["members"], state["obs_size"], state["act_size"],
                    from_dict(SACConfig, state["config"]), device=device)
        group.load_state_dict(state)
        return group


def deterministic_policy(actor: nn.Sequential, act_size: int) -> MLPPolicy:
    """``tanh(mean)`` of a single actor MLP whose last layer outputs (mean, raw log-std), as the
    registered :class:`MLPPolicy` that export, runtime and codegen read."""
    linears = [m for m in actor if isinstance(m, nn.Linear)]
    w = linears[0].weight
    policy = MLPPolicy(linears[0].in_features, act_size, tuple(m.out_features for m in linears[:-1]),
                       "relu", "tanh").to(device=w.device, dtype=w.dtype)
    with torch.no_grad():
        for dst, src in zip([m for m in policy.net if isinstance(m, nn.Linear)], linears, strict=True):
            dst.weight.copy_(src.weight[: dst.out_features])
            dst.bias.copy_(src.bias[: dst.out_features])
    return policy


def save_actor(path: str | Path, actor: nn.Sequential, act_size: int, meta: dict[str, Any]) -> Path:
    """One member's deterministic policy (from :meth:`SACGroup.member_actor`) in the one policy format
    (:func:`robo.nets.policy.save_policy`; read it back with ``load_policy``). The log-std head is
    training state: it stays in the group checkpoint."""
    return save_policy(path, deterministic_policy(actor, act_size).cpu().float(), meta)


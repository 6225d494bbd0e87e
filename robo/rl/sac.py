"""Soft Actor-Critic for K independent agents, trained as one batched program.

Read top to bottom like CleanRL's ``sac_continuous_action.py``, with one difference: every tensor has a
leading member dimension K. K agents ("teachers" in RAPTOR), each on its own environment, share no
data and no parameters; their networks are stacked (:mod:`robo.nets.ensemble`) so one ``bmm`` per layer
serves all of them. What keeps the members independent:

* each member samples its own minibatch from its own replay slice and its own noise;
* per-member losses are SUMMED over members before ``backward`` (a mean would scale every member's
  gradient by 1/K), so member k's gradient is exactly the gradient of its own loss;
* Adam is elementwise, so one Adam over stacked parameters equals K Adams (same step count);
* each member has its own temperature alpha and its own target-network update.

A member can be frozen (``active[k] = False``, e.g. a teacher that met its acceptance threshold):
its parameters, optimiser moments, alpha and target network no longer change, although it is still
computed until :meth:`SACGroup.select` drops it from the batch.

:class:`GroupTrainer` runs the interaction loop over a batched environment with Gymnasium's vector
API and same-step autoreset (``info["final_observation"]``), tracks each member's episodes, freezes
members that meet the acceptance threshold, writes atomic checkpoints and stops on a non-finite loss.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
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
        if self.log_std_min >= self.log_std_max:
            raise ValueError("sac.log_std_min must be below sac.log_std_max")


# ---------------------------------------------------------------------------------------------
# Replay: one slice per member, on the training device
# ---------------------------------------------------------------------------------------------


class ReplayBuffer:
    """``[K, capacity, ...]`` ring buffers filled in lockstep (every member adds one row per env step)."""

    FIELDS = ("obs", "action", "reward", "next_obs", "terminated")

    def __init__(self, members: int, obs_size: int, act_size: int, capacity: int,
                 device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32):
        self.members, self.obs_size, self.act_size = members, obs_size, act_size
        self.capacity = capacity
        self.device, self.dtype = torch.device(device), dtype
        self.pos = 0
        self.size = 0
        self.data = self._empty(min(capacity, 4096))

    def _empty(self, rows: int) -> dict[str, torch.Tensor]:
        k, kw = self.members, {"device": self.device, "dtype": self.dtype}
        return {"obs": torch.zeros(k, rows, self.obs_size, **kw),
                "action": torch.zeros(k, rows, self.act_size, **kw),
                "reward": torch.zeros(k, rows, **kw),
                "next_obs": torch.zeros(k, rows, self.obs_size, **kw),
                "terminated": torch.zeros(k, rows, **kw)}

    @property
    def allocated(self) -> int:
        return self.data["reward"].shape[1]

    def add(self, obs: torch.Tensor, action: torch.Tensor, reward: torch.Tensor,
            next_obs: torch.Tensor, terminated: torch.Tensor) -> None:
        """One transition per member (``obs [K, obs]``) or E per member (``obs [K, E, obs]``)."""
        if reward.dim() == 1:
            obs, action, reward, next_obs, terminated = (
                t.unsqueeze(1) for t in (obs, action, reward, next_obs, terminated))
        rows = reward.shape[1]
        if rows > self.capacity:
            raise ValueError(f"{rows} transitions per member do not fit a buffer of {self.capacity}")
        while self.pos + rows > self.allocated < self.capacity:
            # Grow by doubling until the capacity: a teacher that stops early never pays for 1M rows.
            bigger = self._empty(min(2 * self.allocated, self.capacity))
            for name, old in self.data.items():
                bigger[name][:, : old.shape[1]] = old
            self.data = bigger
        index = (self.pos + torch.arange(rows, device=self.device)) % self.capacity
        row = {"obs": obs, "action": action, "reward": reward, "next_obs": next_obs,
               "terminated": terminated.to(self.dtype)}
        for name, value in row.items():
            self.data[name].index_copy_(1, index, value.to(self.dtype))
        self.pos = (self.pos + rows) % self.capacity
        self.size = min(self.size + rows, self.capacity)

    def sample(self, batch_size: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
        """Independent indices per member: ``[K, batch_size, ...]`` per field."""
        idx = torch.randint(0, self.size, (self.members, batch_size), generator=generator, device=self.device)
        rows = torch.arange(self.members, device=self.device)[:, None]
        return {name: value[rows, idx] for name, value in self.data.items()}

    def select(self, index: torch.Tensor) -> None:
        self.data = {name: value[index] for name, value in self.data.items()}
        self.members = int(index.numel())

    def state_dict(self) -> dict[str, Any]:
        return {"pos": self.pos, "size": self.size, "capacity": self.capacity,
                **{name: value[:, : self.size].clone() for name, value in self.data.items()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.capacity, self.pos, self.size = state["capacity"], state["pos"], state["size"]
        self.members = state["reward"].shape[0]
        self.data = self._empty(max(self.size, min(self.capacity, 4096)))
        for name in self.FIELDS:
            self.data[name][:, : self.size] = state[name].to(self.device, self.dtype)


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
    """Two Q-networks per member, stored as one ensemble of 2K (rows ``q * K + k``)."""

    def __init__(self, members: int, obs_size: int, act_size: int, hidden: tuple[int, ...],
                 device: torch.device | str | None = None):
        super().__init__()
        self.net = EnsembleMLP(2 * members, obs_size + act_size, hidden, 1, device=device)

    def forward(self, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """``[K, B, obs]``, ``[K, B, act]`` -> ``[2, K, B]``."""
        x = torch.cat((obs, action), -1)
        k, b = x.shape[:2]
        return self.net(x.repeat(2, 1, 1)).view(2, k, b)


# ---------------------------------------------------------------------------------------------
# The group of K agents
# ---------------------------------------------------------------------------------------------


class SACGroup:
    """K SAC agents with stacked networks, per-member alpha, replay slices and freeze mask."""

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
            self.critic = TwinCritic(members, obs_size, act_size, cfg.critic_hidden, device=self.device)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self.log_alpha = nn.Parameter(torch.full((members,), math.log(cfg.initial_alpha), device=self.device))
        self._make_optimizers()
        self.buffer = ReplayBuffer(members, obs_size, act_size, cfg.buffer_size, self.device)
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
    def critic_loss(self, batch: dict[str, torch.Tensor], noise: torch.Tensor) -> torch.Tensor:
        cfg = self.config
        with torch.no_grad():
            next_action, next_log_prob = self.actor.sample(batch["next_obs"], noise)
            next_q = self.critic_target(batch["next_obs"], next_action).min(0).values
            next_v = next_q - self.alpha[:, None] * next_log_prob
            # Truncated episodes bootstrap; only a real termination cuts the return.
            target = batch["reward"] + cfg.gamma * (1.0 - batch["terminated"]) * next_v
        q = self.critic(batch["obs"], batch["action"])
        return (q - target).pow(2).mean(-1).sum(0)  # MSE of Q1 + MSE of Q2, per member

    def actor_loss(self, obs: torch.Tensor, noise: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-member actor loss and the (detached) log-probabilities the alpha loss needs."""
        self.critic.requires_grad_(False)  # no critic gradients to compute and throw away
        try:
            action, log_prob = self.actor.sample(obs, noise)
            q = self.critic(obs, action).min(0).values
        finally:
            self.critic.requires_grad_(True)
        loss = (self.alpha[:, None] * log_prob - q).mean(-1)
        return loss, log_prob.detach()

    def alpha_loss(self, log_prob: torch.Tensor) -> torch.Tensor:
        return (-self.log_alpha[:, None] * (log_prob + self.config.target_entropy)).mean(-1)

    # ----- one gradient step ---------------------------------------------------------------
    def update(self, batch: dict[str, torch.Tensor] | None = None,
               noise: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """One SAC update of every active member; ``batch``/``noise`` ([2, K, B, act]) for tests."""
        cfg = self.config
        if batch is None:
            batch = self.buffer.sample(cfg.batch_size, self.generator)
        if noise is None:
            b = batch["reward"].shape[1]
            noise = torch.randn(2, self.members, b, self.act_size, generator=self.generator,
                                device=self.device)

        q_loss = self.critic_loss(batch, noise[0])
        self.critic_opt.zero_grad(set_to_none=True)
        q_loss.sum().backward()  # sum, not mean: each member gets the gradient of its own loss
        self._step(self.critic_opt)
        out = {"critic_loss": q_loss.detach()}
        bad = ~torch.isfinite(out["critic_loss"])

        if self.updates % cfg.policy_frequency == 0:
            pi_loss, log_prob = self.actor_loss(batch["obs"], noise[1])
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
                weight = (self.active.repeat(2).to(torch.float32) * cfg.tau).view(-1, 1, 1)
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
        """Keep only members ``index`` (in that order), optimiser state and replay included."""
        index = torch.as_tensor(index, dtype=torch.long, device=self.device)
        both = torch.cat((index, index + self.members))
        old_states = [[opt.state.get(p, {}) for g in opt.param_groups for p in g["params"]]
                      for opt in (self.actor_opt, self.critic_opt, self.alpha_opt)]
        select_members(self.actor, index)
        select_members(self.critic, both)
        select_members(self.critic_target, both)
        self.critic_target.requires_grad_(False)
        self.log_alpha = nn.Parameter(self.log_alpha.detach()[index].clone())
        self.members = int(index.numel())
        self._make_optimizers()
        # Carry each kept member's Adam moments over (the step count is shared and stays).
        for opt, states, rows in zip((self.actor_opt, self.critic_opt, self.alpha_opt), old_states,
                                     (index, both, index), strict=True):
            params = [p for g in opt.param_groups for p in g["params"]]
            for p, state in zip(params, states, strict=True):
                opt.state[p] = {k: (v[rows].clone() if torch.is_tensor(v) and v.dim() > 0 else v)
                                for k, v in state.items()}
        self.buffer.select(index)
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
            "alpha_opt": self.alpha_opt.state_dict(), "buffer": self.buffer.state_dict(),
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
        self.buffer.load_state_dict(state["buffer"])
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


def atomic_save(obj: Any, path: str | Path) -> Path:
    """``torch.save`` to a temporary file, then rename: a crash never leaves half a checkpoint."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    torch.save(obj, tmp)
    tmp.replace(path)
    return path


def _load(path: str | Path) -> Any:
    path = Path(path)
    if not path.is_file():
        raise OSError(f"checkpoint not found: {path}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ValueError(f"{path}: not a readable checkpoint ({exc.__class__.__name__}: {exc})") from None


# ---------------------------------------------------------------------------------------------
# The interaction loop
# ---------------------------------------------------------------------------------------------


@dataclass
class AcceptanceConfig:
    """When a member counts as trained: means over its last ``window`` training episodes and, with
    ``evaluate``, also over deterministic episodes (one per environment, from one fixed set of start
    states) run when the training episodes pass. Training episodes are stochastic, and with several
    environments per member the last ones to end are a biased sample (those started together and
    survived end together); the deterministic policy is also what a teacher hands on."""

    episode_length: float | None = None  # e.g. 500 for RAPTOR's full 5 s episodes
    episode_return: float | None = None
    window: int = 10
    evaluate: bool = False

    def __post_init__(self) -> None:
        if self.window <= 0:
            raise ValueError(f"acceptance.window must be > 0, got {self.window}")


@dataclass
class GroupTrainConfig:
    steps: int = 1_000_000  # env steps (transitions) per member (RAPTOR's fixed budget)
    log_interval: int = 1_000  # env steps per member between learning-curve points and acceptance checks
    checkpoint_interval: int = 50_000
    # E environments per member step together, so the group collects E transitions per member for one
    # batched environment step; one SAC update follows every `update_interval` transitions per member.
    # RLtools trains its RAPTOR teachers once per 16 env steps; E = 16 with an interval of 16 is that
    # ratio at one update per batched step, with the environment's cost spread over 16 rows.
    envs_per_member: int = 1
    update_interval: int = 1
    stop_on_accept: bool = True  # freeze a member once it meets the acceptance threshold
    compact: bool = True  # drop frozen members from the batch (needs an env factory that can subset)
    acceptance: AcceptanceConfig = field(default_factory=AcceptanceConfig)

    def __post_init__(self) -> None:
        for name in ("steps", "log_interval", "checkpoint_interval", "envs_per_member", "update_interval"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")


EnvFactory = Callable[[list[int]], Any]
GROUP_FORMAT = "robo-sac-group/2"


class NonFiniteLoss(RuntimeError):
    """A member's loss became NaN or infinite; training stopped at the last good checkpoint."""


class GroupTrainer:
    """Train the members ``ids`` of one group on ``make_env(ids)``: ``envs_per_member`` environments per
    member, member-major (member k owns rows ``k * E .. k * E + E - 1``).

    ``make_env`` is called again with the remaining ids when finished members are dropped
    (``compact``), so it must build the environments of exactly the ids it is given, in that order.
    ``on_finish(id, record, actor)`` is called once per member when it is accepted or its budget ends.
    """

    def __init__(self, ids: list[int], make_env: EnvFactory, sac: SACConfig, train: GroupTrainConfig,
                 *, device: torch.device | str = "cpu", seed: int = 0,
                 checkpoint: str | Path | None = None,
                 on_finish: Callable[[int, dict[str, Any], nn.Sequential], None] | None = None):
        self.ids = list(ids)
        self.make_env, self.train, self.seed = make_env, train, seed
        self.device = torch.device(device)
        self.checkpoint = Path(checkpoint) if checkpoint is not None else None
        self.on_finish = on_finish
        self.on_log: Callable[[GroupTrainer], None] | None = None  # after each curve point
        self.envs = train.envs_per_member
        self.env = make_env(self.ids)
        if self.env.num_envs != len(self.ids) * self.envs:
            raise ValueError(f"make_env built {self.env.num_envs} environments for {len(self.ids)} members "
                             f"x {self.envs} environments each")
        obs_size = self.env.observation_size
        act_size = self.env.action_size
        self.group = SACGroup(len(self.ids), obs_size, act_size, sac, device=self.device, seed=seed)
        self.step = 0  # env steps (transitions) per member
        self.pending = 0  # transitions per member collected since the last update
        self.obs = self.env.reset(seed=seed)[0].to(self.device)
        k = len(self.ids)
        self.episode_return = torch.zeros(k, self.envs, device=self.device)
        self.episode_length = torch.zeros(k, self.envs, device=self.device)
        # The last `window` finished episodes per member, plus one spare column that absorbs the
        # environments whose episode did not end (so one scatter records every ending at once).
        window = train.acceptance.window
        self.window_return = torch.zeros(k, window + 1, device=self.device)
        self.window_length = torch.zeros(k, window + 1, device=self.device)
        self.episodes = torch.zeros(k, dtype=torch.long, device=self.device)  # counted after learning starts
        self.curves: dict[int, list[dict[str, float]]] = {i: [] for i in self.ids}
        self.finished: dict[int, dict[str, Any]] = {}
        self.last_losses: dict[str, torch.Tensor] = {}
        self.running = True  # some member still trains

    # ----- the loop ------------------------------------------------------------------------
    def run(self, progress: Callable[[int], None] | None = None,
            until: int | None = None) -> dict[int, dict[str, Any]]:
        """Train until every member is finished (or env step ``until``); returns ``{id: record}``."""
        stop = self.train.steps if until is None else min(until, self.train.steps)
        while self.running and self.step < stop:
            self.collect_step()
            self.train_step()
            if self._crossed(self.train.log_interval):
                self.check_finite()
                self.log_and_accept()
                if self.on_log is not None:
                    self.on_log(self)
            if self.checkpoint is not None and self._crossed(self.train.checkpoint_interval):
                self.save(self.checkpoint)
            if progress is not None:
                progress(self.envs)
        self.check_finite()
        if bool(self.group.active.any()) and self.step >= self.train.steps:
            self.log_and_accept(final=True)
        if self.checkpoint is not None:
            self.save(self.checkpoint)
        return self.finished

    def _crossed(self, interval: int) -> bool:
        """Did the last batched step pass a multiple of ``interval`` env steps per member?"""
        return self.step // interval > (self.step - self.envs) // interval

    def collect_step(self) -> None:
        """One step of every environment: E transitions per member into the replay buffer."""
        group, k, e = self.group, len(self.ids), self.envs
        exploring = self.step < group.config.learning_starts
        obs = self.obs.view(k, e, -1)
        action = group.random_action(e) if exploring else group.act(obs)
        next_obs, reward, terminated, truncated, info = self.env.step(action.reshape(k * e, -1))
        next_obs, reward = next_obs.to(self.device), reward.to(self.device)
        terminated, truncated = terminated.to(self.device), truncated.to(self.device)
        done = terminated | truncated
        real_next = next_obs
        if "final_observation" in info:
            # Same-step autoreset: the transition ends in the old episode's last state.
            real_next = torch.where(done[:, None], info["final_observation"].to(self.device), next_obs)
        group.buffer.add(obs, action, reward.view(k, e), real_next.view(k, e, -1), terminated.view(k, e))
        self.obs = next_obs
        self.step += e

        done = done.view(k, e)
        self.episode_return += reward.view(k, e)
        self.episode_length += 1
        # Only episodes that end after learning started say anything about the learned policy.
        count = done & (self.step > group.config.learning_starts)
        window = self.train.acceptance.window
        rank = count.long().cumsum(1) - 1
        slot = torch.where(count, (self.episodes[:, None] + rank) % window, window)
        self.window_return.scatter_(1, slot, self.episode_return)
        self.window_length.scatter_(1, slot, self.episode_length)
        self.episodes += count.sum(1)
        self.episode_return = torch.where(done, 0.0, self.episode_return)
        self.episode_length = torch.where(done, 0.0, self.episode_length)

    def train_step(self) -> None:
        """The SAC updates the transitions collected so far are due (one per ``update_interval``)."""
        if self.step < self.group.config.learning_starts:
            return
        self.pending += self.envs
        while self.pending >= self.train.update_interval:
            self.last_losses = self.group.update()
            self.pending -= self.train.update_interval

    def window_means(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Mean return and length over each member's last ``window`` counted episodes, and that count."""
        window = self.train.acceptance.window
        n = self.episodes.clamp(max=window)
        denom = n.clamp(min=1).to(self.window_return.dtype)
        return (self.window_return[:, :window].sum(1) / denom, self.window_length[:, :window].sum(1) / denom,
                n)

    def log_and_accept(self, final: bool = False) -> None:
        acc = self.train.acceptance
        mean_return, mean_length, n = self.window_means()
        full = n >= acc.window
        ok = full.clone()
        if acc.episode_length is not None:
            ok &= mean_length >= acc.episode_length
        if acc.episode_return is not None:
            ok &= mean_return >= acc.episode_return
        if acc.episode_length is None and acc.episode_return is None:
            ok &= False  # no threshold: every member trains for its full budget
        ok &= self.group.active
        evaluated = None
        if acc.evaluate and bool(ok.any()):
            evaluated = ok.clone()
            eval_return, eval_length = self.evaluate(evaluated)
            if acc.episode_length is not None:
                ok &= eval_length >= acc.episode_length
            if acc.episode_return is not None:
                ok &= eval_return >= acc.episode_return
        alpha = self.group.alpha.cpu()
        critic = self.last_losses.get("critic_loss")
        rows = zip(self.ids, mean_return.tolist(), mean_length.tolist(), n.tolist(), alpha.tolist(),
                   strict=True)
        for k, (i, ret, length, count, a) in enumerate(rows):
            point = {"step": self.step, "return": ret, "length": length, "episodes": count, "alpha": a}
            if critic is not None:
                point["critic_loss"] = float(critic[k])
            if evaluated is not None and bool(evaluated[k]):
                point.update(eval_return=float(eval_return[k]), eval_length=float(eval_length[k]))
            self.curves[i].append(point)
        done = (ok & self.train.stop_on_accept) | torch.full_like(ok, final or self.step >= self.train.steps)
        done &= self.group.active
        if not bool(done.any()):
            return
        ok_list = ok.tolist()
        for k in done.nonzero()[:, 0].tolist():
            i = self.ids[k]
            record = {"id": i, "accepted": bool(ok_list[k]), "steps": self.step,
                      "updates": self.group.updates,
                      "mean_return": float(mean_return[k]), "mean_length": float(mean_length[k]),
                      "episodes": int(n[k]), "alpha": float(alpha[k])}
            if evaluated is not None and bool(evaluated[k]):
                record.update(eval_return=float(eval_return[k]), eval_length=float(eval_length[k]))
            self.finished[i] = record
            if self.on_finish is not None:
                self.on_finish(i, record, self.group.member_actor(k))
        self.group.freeze(done)
        self.running = bool(self.group.active.any())
        if self.train.compact:
            self._drop_finished()

    @torch.no_grad()
    def evaluate(self, members: torch.Tensor, max_steps: int = 100_000) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean return and length of one deterministic episode per environment for the members in the
        mask (NaN for the others), on fresh environments from one fixed seed, so every evaluation
        starts from the same states and training's environments and random streams are untouched."""
        index = members.nonzero()[:, 0]
        m, e = int(index.numel()), self.envs
        env = self.make_env([self.ids[k] for k in index.tolist()])
        obs = env.reset(seed=self.seed + 1)[0].to(self.device)
        total = torch.zeros(m, e, device=self.device)
        length = torch.zeros(m, e, device=self.device)
        running = torch.ones(m, e, dtype=torch.bool, device=self.device)
        stacked = torch.zeros(self.group.members, e, obs.shape[-1], device=self.device)
        for _ in range(max_steps):
            stacked[index] = obs.view(m, e, -1)
            action = self.group.actor.deterministic(stacked)[index]
            obs, reward, terminated, truncated, _ = env.step(action.reshape(m * e, -1))
            obs = obs.to(self.device)
            total += torch.where(running, reward.to(self.device).view(m, e), 0.0)
            length += running.float()
            running &= ~(terminated | truncated).to(self.device).view(m, e)
            if not bool(running.any()):
                break
        out_return = torch.full((self.group.members,), math.nan, device=self.device)
        out_length = torch.full((self.group.members,), math.nan, device=self.device)
        out_return[index], out_length[index] = total.mean(1), length.mean(1)
        return out_return, out_length

    def _drop_finished(self) -> None:
        keep = self.group.active.nonzero()[:, 0]
        if keep.numel() in (0, len(self.ids)):
            return  # nothing to drop, or nothing left to train (keep the last group for inspection)
        self.group.select(keep)
        self.ids = [self.ids[k] for k in keep.tolist()]
        for name in ("episode_return", "episode_length", "window_return", "window_length", "episodes"):
            setattr(self, name, getattr(self, name)[keep])
        # The remaining members start fresh episodes on an environment of just their vehicles.
        self.env = self.make_env(self.ids)
        self.obs = self.env.reset(seed=self.seed + self.step)[0].to(self.device)
        self.episode_return.zero_()
        self.episode_length.zero_()

    def check_finite(self) -> None:
        bad = self.group.nonfinite
        if bool(bad.any()):
            which = [self.ids[k] for k in bad.nonzero()[:, 0].tolist()]
            where = f"; last good checkpoint: {self.checkpoint}" if self.checkpoint is not None else ""
            raise NonFiniteLoss(f"SAC: non-finite loss for member(s) {which} by env step {self.step}, "
                                f"stopping{where}")

    # ----- checkpoints ---------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        state = {"format": GROUP_FORMAT, "ids": list(self.ids), "step": self.step, "pending": self.pending,
                 "envs_per_member": self.envs,
                 "group": self.group.state_dict(), "obs": self.obs,
                 "episode_return": self.episode_return, "episode_length": self.episode_length,
                 "window_return": self.window_return, "window_length": self.window_length,
                 "episodes": self.episodes, "curves": self.curves, "finished": self.finished,
                 "env": self.env.state_dict() if hasattr(self.env, "state_dict") else None}
        return state

    def save(self, path: str | Path) -> Path:
        """Write the whole training state atomically; refuses to overwrite it with non-finite numbers."""
        self.check_finite()
        return atomic_save(self.state_dict(), path)

    def load(self, path: str | Path) -> None:
        """Continue from :meth:`save`'s file (the environment too when it supports ``state_dict``)."""
        state = _load(path)
        if not isinstance(state, dict) or state.get("format") != GROUP_FORMAT:
            raise ValueError(f"{path}: not a SAC group checkpoint of this version ({GROUP_FORMAT})")
        if state["envs_per_member"] != self.envs:
            raise ValueError(f"{path}: checkpoint ran {state['envs_per_member']} environments per member, "
                             f"the config asks for {self.envs}")
        saved_ids = list(state["ids"]) + sorted(state["finished"])
        if sorted(saved_ids) != sorted(set(self.ids) | set(state["finished"])):
            raise ValueError(f"{path}: checkpoint is for members {sorted(saved_ids)}, not {sorted(self.ids)}")
        if list(state["ids"]) != self.ids:
            self.ids = list(state["ids"])
            self.env = self.make_env(self.ids)
        self.group = SACGroup.from_state_dict(state["group"], device=self.device)
        self.step, self.pending = int(state["step"]), int(state["pending"])
        self.running = bool(self.group.active.any())
        for name in ("obs", "episode_return", "episode_length", "window_return", "window_length", "episodes"):
            setattr(self, name, state[name].to(self.device))
        self.curves, self.finished = state["curves"], state["finished"]
        if state["env"] is not None and hasattr(self.env, "load_state_dict"):
            self.env.load_state_dict(state["env"])
        else:
            self.obs = self.env.reset(seed=self.seed + self.step)[0].to(self.device)
            self.episode_return.zero_()
            self.episode_length.zero_()

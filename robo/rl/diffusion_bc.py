"""Diffusion behaviour cloning (Diffusion Policy as ResiP trains it), one readable module.

Training: windows of the demonstrations (``obs_horizon`` observations, the next ``pred_horizon``
actions, the last action repeated past an episode's end), min-max normalised to [-1, 1]; noise at a
uniformly drawn step of a 100-step DDPM (``squaredcos_cap_v2``) is added to the action window and the
U-Net learns to predict it (epsilon prediction, MSE), AdamW (lr 1e-4, weight decay 1e-6) with a
linear warm-up and a cosine decay. The policy that acts is an exponential moving average of the
trained weights (Diffusion Policy's EMA, decay warming up as ``(1 + k) / (10 + k)`` to ``ema_decay``):
the raw weights of a short run sample visibly worse chunks, because each step's noise-level draw moves
them around. Sampling: DDIM with few steps (16 at evaluation, 4 inside RL), from
noise drawn by a seeded generator so evaluations repeat. :class:`ChunkedPolicy` turns chunks into one
action per control step for a batch of environments: ``action_horizon`` actions of each chunk are
executed, then that environment's queue is refilled. :class:`ChunkBC` and :class:`RegressionSampler`
train and sample a chunk policy without diffusion (the MLP-BC baseline) through the same loop.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from robo.nets.chunking import MLPChunkPolicy
from robo.nets.diffusion import DiffusionPolicy

BETA_SCHEDULES = ("squaredcos_cap_v2", "linear", "scaled_linear")


@dataclass
class DiffusionConfig:
    pred_horizon: int = 32
    obs_horizon: int = 1
    action_horizon: int = 8
    down_dims: list[int] = field(default_factory=lambda: [256, 512, 1024])
    kernel_size: int = 5
    groups: int = 8
    step_embed_dim: int = 256
    train_diffusion_steps: int = 100
    beta_schedule: str = "squaredcos_cap_v2"
    eval_ddim_steps: int = 16
    rl_ddim_steps: int = 4
    lr: float = 1e-4
    weight_decay: float = 1e-6
    batch_size: int = 256
    warmup_steps: int = 500
    gradient_steps: int = 100_000  # the cosine schedule's length
    # [start, stop) of the observation values the first action channels are predicted relative to
    # (robo.nets.diffusion.DiffusionPolicy); empty: absolute chunks, as the paper
    relative_obs: list[int] = field(default_factory=list)
    ema_decay: float = 0.9999  # of the acting weights' moving average; 0: act with the trained weights

    def __post_init__(self) -> None:
        for key in ("pred_horizon", "obs_horizon", "action_horizon", "train_diffusion_steps",
                    "eval_ddim_steps", "rl_ddim_steps", "batch_size", "gradient_steps"):
            if getattr(self, key) < 1:
                raise ValueError(f"diffusion.{key}: must be >= 1, got {getattr(self, key)}")
        if self.action_horizon > self.pred_horizon:
            raise ValueError(f"diffusion.action_horizon: {self.action_horizon} exceeds pred_horizon "
                             f"{self.pred_horizon}")
        if self.obs_horizon != 1:
            raise ValueError("diffusion.obs_horizon: only 1 (the current observation, as ResiP) is supported")
        span = self.relative_obs
        if span and (len(span) != 2 or not 0 <= span[0] < span[1]):
            raise ValueError(f"diffusion.relative_obs: [start, stop) of observation values, got {span}")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ValueError(f"diffusion.ema_decay: must be in [0, 1), got {self.ema_decay}")
        if not self.down_dims or min(self.down_dims) < 1:
            raise ValueError(f"diffusion.down_dims: needs at least one level, every width >= 1, "
                             f"got {self.down_dims}")
        if self.groups < 1 or any(d % self.groups for d in self.down_dims):
            raise ValueError(f"diffusion.groups: every width of down_dims {self.down_dims} must be "
                             f"divisible by the GroupNorm groups, got {self.groups}")
        if self.kernel_size < 1 or self.kernel_size % 2 == 0:
            raise ValueError(f"diffusion.kernel_size: must be odd and >= 1 (the convolutions keep the "
                             f"chunk's length), got {self.kernel_size}")
        halvings = len(self.down_dims) - 1
        if self.pred_horizon % 2**halvings:
            raise ValueError(f"diffusion.pred_horizon: {self.pred_horizon} must be "
                             f"divisible by {2**halvings} (the U-Net halves it {halvings} times)")
        if self.step_embed_dim < 4 or self.step_embed_dim % 2:
            raise ValueError(f"diffusion.step_embed_dim: must be even and >= 4, got {self.step_embed_dim}")
        if self.beta_schedule not in BETA_SCHEDULES:
            raise ValueError(f"diffusion.beta_schedule: {self.beta_schedule!r} is not one of "
                             f"{', '.join(BETA_SCHEDULES)} (the ones both DDPM and DDIM implement)")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"diffusion.lr: must be finite and > 0, got {self.lr}")
        if not (math.isfinite(self.weight_decay) and self.weight_decay >= 0):
            raise ValueError(f"diffusion.weight_decay: must be finite and >= 0, got {self.weight_decay}")
        if self.warmup_steps < 0:
            raise ValueError(f"diffusion.warmup_steps: must be >= 0, got {self.warmup_steps}")


def build_policy(config: DiffusionConfig, obs_dim: int, act_dim: int,
                 mlp_hidden: tuple[int, ...] | None = None) -> DiffusionPolicy | MLPChunkPolicy:
    """The diffusion U-Net, or with ``mlp_hidden`` the MLP-BC baseline's chunk regressor, with the same
    horizon and relative channels."""
    relative = tuple(range(*config.relative_obs)) if config.relative_obs else ()
    if mlp_hidden is not None:
        return MLPChunkPolicy(obs_dim, act_dim, config.pred_horizon, mlp_hidden, relative_obs=relative)
    return DiffusionPolicy(obs_dim, act_dim, config.pred_horizon, config.obs_horizon, tuple(config.down_dims),
                           config.kernel_size, config.groups, config.step_embed_dim, relative)


def ddpm_scheduler(train_steps: int = 100, beta_schedule: str = "squaredcos_cap_v2"):
    from diffusers import DDPMScheduler

    return DDPMScheduler(num_train_timesteps=train_steps, beta_schedule=beta_schedule, clip_sample=True,
                         prediction_type="epsilon")


def windows(episodes: list[tuple[np.ndarray, np.ndarray]], pred_horizon: int
            ) -> tuple[np.ndarray, np.ndarray]:
    """Every step of every episode as (observation ``[N, obs]``, next actions ``[N, H, act]``), the last
    action repeated past the episode's end (the robot holds still there)."""
    obs, act = [], []
    for o, a in episodes:
        index = np.minimum(np.arange(len(a))[:, None] + np.arange(pred_horizon)[None], len(a) - 1)
        obs.append(o)
        act.append(a[index])
    return np.concatenate(obs).astype(np.float32), np.concatenate(act).astype(np.float32)


class ChunkBC:
    """Behaviour cloning of a chunk policy that has ``loss(obs, chunks)`` (the MLP-BC baseline,
    :class:`robo.nets.chunking.MLPChunkPolicy`): the policy, AdamW with warm-up and cosine decay from
    ``config``, and :attr:`ema`, the moving average of ``policy`` (the one to save and act with);
    :meth:`train_step` on a minibatch of windows."""

    def __init__(self, policy: nn.Module, config: DiffusionConfig):
        self.policy, self.config = policy, config
        self.ema = copy.deepcopy(policy).requires_grad_(False)
        self.updates = 0
        self.optimizer = torch.optim.AdamW(policy.parameters(), lr=config.lr,
                                           weight_decay=config.weight_decay)

        def warmup_cosine(step: int) -> float:
            if step < config.warmup_steps:
                return (step + 1) / config.warmup_steps
            decay = max(1, config.gradient_steps - config.warmup_steps)
            progress = min(1.0, (step - config.warmup_steps) / decay)
            return 0.5 * (1 + math.cos(math.pi * progress))

        self.lr_schedule = torch.optim.lr_scheduler.LambdaLR(self.optimizer, warmup_cosine)

    def loss(self, obs: torch.Tensor, actions: torch.Tensor, generator: torch.Generator | None = None
             ) -> torch.Tensor:
        """The policy's own loss for raw ``obs [B, obs]`` and ``actions [B, H, act]``."""
        return self.policy.loss(obs, actions)

    def train_step(self, obs: torch.Tensor, actions: torch.Tensor, generator: torch.Generator | None = None
                   ) -> float:
        self.policy.train()
        loss = self.loss(obs, actions, generator)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.lr_schedule.step()
        self._update_ema()
        return loss.item()

    @torch.no_grad()
    def _update_ema(self) -> None:
        self.updates += 1
        decay = min(self.config.ema_decay, (1 + self.updates) / (10 + self.updates))
        for averaged, trained in zip(self.ema.parameters(), self.policy.parameters(), strict=True):
            averaged.lerp_(trained, 1.0 - decay)
        for averaged, trained in zip(self.ema.buffers(), self.policy.buffers(), strict=True):
            averaged.copy_(trained)  # normalisation bounds are not averaged

    def state_dict(self) -> dict:
        return {"policy": self.policy.state_dict(), "ema": self.ema.state_dict(), "updates": self.updates,
                "optimizer": self.optimizer.state_dict(), "lr_schedule": self.lr_schedule.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.policy.load_state_dict(state["policy"])
        self.ema.load_state_dict(state["ema"])
        self.updates = int(state["updates"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.lr_schedule.load_state_dict(state["lr_schedule"])


class DiffusionBC(ChunkBC):
    """:class:`ChunkBC` of a :class:`DiffusionPolicy`: its loss is noise prediction at a random step of
    the DDPM schedule."""

    def __init__(self, policy: DiffusionPolicy, config: DiffusionConfig):
        super().__init__(policy, config)
        self.noise_schedule = ddpm_scheduler(config.train_diffusion_steps, config.beta_schedule)

    def loss(self, obs: torch.Tensor, actions: torch.Tensor, generator: torch.Generator | None = None
             ) -> torch.Tensor:
        """Noise-prediction MSE for raw ``obs [B, obs]`` and ``actions [B, H, act]``."""
        x0 = self.policy.encode_chunk(actions, obs)
        noise = torch.randn(x0.shape, generator=generator)
        steps = torch.randint(0, self.config.train_diffusion_steps, (len(x0),), generator=generator)
        noisy = self.noise_schedule.add_noise(x0, noise, steps)
        return nn.functional.mse_loss(self.policy(noisy, steps, self.policy.normalize_obs(obs)), noise)


def check_noise_scale(scale: float, name: str = "noise_scale") -> float:
    """``scale`` if it is a valid DDIM start-noise scale (in [0, 1]), else a ValueError naming ``name``."""
    if not 0.0 <= scale <= 1.0:
        raise ValueError(f"{name}: must be in [0, 1], got {scale}")
    return scale


class DDIMSampler:
    """Action chunks ``[B, pred_horizon, act]`` (raw units) from observations, with ``steps`` DDIM steps.

    ``noise_scale`` shrinks the start noise (1: the trained distribution; 0: DDIM from zero, one chunk
    per observation, the mode-seeking end); DDIM itself adds no noise after the start (eta 0)."""

    def __init__(self, policy: DiffusionPolicy, steps: int, train_steps: int = 100,
                 beta_schedule: str = "squaredcos_cap_v2", noise_scale: float = 1.0):
        from diffusers import DDIMScheduler

        if not float(policy.fitted):
            raise ValueError("the diffusion policy's normalisation statistics are missing (never fitted)")
        self.policy, self.steps, self.noise_scale = policy, steps, check_noise_scale(noise_scale)
        self.scheduler = DDIMScheduler.from_config(ddpm_scheduler(train_steps, beta_schedule).config)
        self.scheduler.set_timesteps(steps)

    @torch.no_grad()
    def __call__(self, obs: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        self.policy.eval()
        cond = self.policy.normalize_obs(obs.float())
        arch = self.policy.arch
        shape = (len(obs), arch["pred_horizon"], arch["act_dim"])
        x = self.noise_scale * torch.randn(shape, generator=generator)
        for t in self.scheduler.timesteps:
            eps = self.policy(x, t.reshape(1), cond)
            x = self.scheduler.step(eps, t, x).prev_sample
        return self.policy.decode_chunk(x.clamp(-1, 1), obs.float())


class RegressionSampler:
    """Chunks of a policy that predicts them directly (``policy.sample(obs)``, e.g. the MLP-BC baseline),
    in the place of a :class:`DDIMSampler`."""

    def __init__(self, policy: nn.Module):
        self.policy = policy

    def __call__(self, obs: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        return self.policy.sample(obs)


class ChunkedPolicy:
    """One action per control step for ``num_envs`` environments: each row executes the first
    ``action_horizon`` actions of a chunk predicted from its observation, then asks for a new one.
    Rows whose episodes restart are emptied with :meth:`reset`. Seeded: the same observations give the
    same actions."""

    def __init__(self, sampler: DDIMSampler | RegressionSampler, num_envs: int, action_horizon: int = 8,
                 seed: int = 0):
        self.sampler, self.horizon = sampler, action_horizon
        self.generator = torch.Generator().manual_seed(seed)
        act_dim = sampler.policy.arch["act_dim"]
        self.queue = torch.zeros(num_envs, action_horizon, act_dim)
        self.left = torch.zeros(num_envs, dtype=torch.long)  # actions still queued per row
        self.chunks = 0

    def reset(self, rows: torch.Tensor | np.ndarray | None = None) -> None:
        if rows is None:
            self.left.zero_()
        else:
            self.left[torch.as_tensor(rows, dtype=torch.long)] = 0

    def __call__(self, obs: torch.Tensor) -> torch.Tensor:
        empty = torch.nonzero(self.left == 0).flatten()
        if len(empty):
            self.queue[empty] = self.sampler(obs[empty], self.generator)[:, : self.horizon]
            self.left[empty] = self.horizon
            self.chunks += len(empty)
        rows = torch.arange(len(self.queue))
        action = self.queue[rows, self.horizon - self.left]
        self.left -= 1
        return action

"""Action-chunk policies' normalisation, and the chunked MLP policy (the MLP-BC baseline of ResiP).

:class:`ChunkNormalizer` holds min-max bounds that map observations and actions to [-1, 1], as buffers
so ``save_policy``/``load_policy`` carry them. ``fitted`` is 0 until :meth:`fit_normalizer` has run: a
policy whose statistics are missing is refused instead of acting on raw units.

``relative_obs`` (observation indices, e.g. the tip position's): a chunk holds the first
``len(relative_obs)`` action channels minus those observation values (where to go, seen from where the
tool is), min-max normalised with their own bounds. Absolute targets span the whole workspace, so a
millimetre is a few thousandths of the normalised range; relative ones span only the next chunk's
motion, and the same millimetre is several times larger. :meth:`encode_chunk` and
:meth:`decode_chunk` convert; :meth:`normalize_actions` stays the absolute one (a residual's).

:class:`MLPChunkPolicy` (kind ``mlp-chunk``) regresses a whole normalised chunk from the normalised
observation with an :class:`~robo.nets.policy.MLPPolicy`, the "MLP with action chunking" that ResiP's
authors fine-tune with PPO as a baseline.
"""

from __future__ import annotations

import torch
from torch import nn

from robo.nets.policy import MLPPolicy, register_policy


class ChunkNormalizer(nn.Module):
    """Bounds of observations, single actions and (relative) chunk actions; see the module docstring."""

    def __init__(self, obs_dim: int, act_dim: int, relative_obs: tuple[int, ...] = ()):
        super().__init__()
        if len(relative_obs) > act_dim or any(not 0 <= i < obs_dim for i in relative_obs):
            raise ValueError(f"relative_obs: {list(relative_obs)} must be at most {act_dim} indices into the "
                             f"{obs_dim} observation values")
        self.relative_obs, self.act_dim = list(relative_obs), act_dim
        for prefix, size in (("obs", obs_dim), ("act", act_dim), ("chunk", act_dim)):
            self.register_buffer(f"{prefix}_min", torch.zeros(size))
            self.register_buffer(f"{prefix}_max", torch.zeros(size))
        self.register_buffer("fitted", torch.zeros(()))

    def fit_normalizer(self, obs: torch.Tensor, chunks: torch.Tensor) -> None:
        """Bounds from the training windows (``[N, obs]``, ``[N, H, act]``)."""
        relative = chunks - self._offset(obs)
        for prefix, x in (("obs", obs), ("act", chunks.flatten(0, 1)), ("chunk", relative.flatten(0, 1))):
            getattr(self, f"{prefix}_min").copy_(x.min(0).values)
            getattr(self, f"{prefix}_max").copy_(x.max(0).values)
        self.fitted.fill_(1.0)

    def _offset(self, obs: torch.Tensor) -> torch.Tensor:
        """``[B, 1, act]``: what the chunk is relative to (zero in absolute channels)."""
        offset = torch.zeros(len(obs), 1, self.act_dim, dtype=obs.dtype, device=obs.device)
        if self.relative_obs:
            offset[:, 0, : len(self.relative_obs)] = obs[:, self.relative_obs]
        return offset

    def encode_chunk(self, chunks: torch.Tensor, obs: torch.Tensor) -> torch.Tensor:
        """Raw action chunks ``[B, H, act]`` at raw ``obs [B, obs]`` -> [-1, 1] targets."""
        mid, half, _ = self._scale(self.chunk_min, self.chunk_max)
        return (chunks - self._offset(obs) - mid) / half

    def decode_chunk(self, x: torch.Tensor, obs: torch.Tensor) -> torch.Tensor:
        mid, half, constant = self._scale(self.chunk_min, self.chunk_max)
        return torch.where(constant, mid, x * half + mid) + self._offset(obs)

    @staticmethod
    def _scale(lo: torch.Tensor, hi: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(middle, half span, constant mask): a constant value (the closed gripper) maps to 0 and back
        to itself exactly, never to a division by zero."""
        constant = hi - lo <= 1e-6
        return (hi + lo) / 2, torch.where(constant, torch.ones_like(hi), (hi - lo) / 2), constant

    def normalize_obs(self, obs: torch.Tensor) -> torch.Tensor:
        mid, half, _ = self._scale(self.obs_min, self.obs_max)
        return (obs - mid) / half

    def normalize_actions(self, actions: torch.Tensor) -> torch.Tensor:
        mid, half, _ = self._scale(self.act_min, self.act_max)
        return (actions - mid) / half

    def unnormalize_actions(self, actions: torch.Tensor) -> torch.Tensor:
        mid, half, constant = self._scale(self.act_min, self.act_max)
        return torch.where(constant, mid, actions * half + mid)


@register_policy("mlp-chunk")
class MLPChunkPolicy(ChunkNormalizer):
    """``pred_horizon`` actions at once from one observation, by an MLP on normalised values."""

    recurrent = False

    def __init__(self, obs_dim: int, act_dim: int, pred_horizon: int = 8,
                 hidden: tuple[int, ...] = (256, 256), activation: str = "relu",
                 relative_obs: tuple[int, ...] = ()):
        super().__init__(obs_dim, act_dim, relative_obs)
        self.arch = {"kind": "mlp-chunk", "obs_dim": obs_dim, "act_dim": act_dim,
                     "pred_horizon": pred_horizon, "hidden": list(hidden), "activation": activation,
                     "relative_obs": list(relative_obs)}
        self.mlp = MLPPolicy(obs_dim, pred_horizon * act_dim, tuple(hidden), activation)

    def forward(self, obs_normalized: torch.Tensor) -> torch.Tensor:
        """Normalised chunks ``[B, pred_horizon, act]`` from normalised observations ``[B, obs]``."""
        return self.mlp(obs_normalized).unflatten(-1, (self.arch["pred_horizon"], self.act_dim))

    def loss(self, obs: torch.Tensor, chunks: torch.Tensor) -> torch.Tensor:
        """Regression MSE of raw ``obs [B, obs]`` to raw ``chunks [B, pred_horizon, act]``."""
        return nn.functional.mse_loss(self(self.normalize_obs(obs)), self.encode_chunk(chunks, obs))

    @torch.no_grad()
    def sample(self, obs: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Raw chunks for raw observations (deterministic; ``generator`` is there to stand in for a
        diffusion sampler)."""
        if not float(self.fitted):
            raise ValueError("the chunk policy's normalisation statistics are missing (never fitted)")
        self.eval()
        return self.decode_chunk(self(self.normalize_obs(obs.float())).clamp(-1, 1), obs.float())

"""The diffusion policy's noise-prediction network: Chi et al.'s ``ConditionalUnet1D`` (Diffusion
Policy, 2023) as ResiP uses it, with the min-max normalisation that travels with it
(:class:`robo.nets.chunking.ChunkNormalizer`).

A 1-D U-Net over the action sequence (channels = action values, length = prediction horizon): each
level has two residual blocks of Conv1d(kernel 5) + GroupNorm(8) + Mish, conditioned by FiLM (a
per-channel scale and bias from the diffusion step's sinusoidal embedding and the observation), then
a stride-2 downsampling; the way up mirrors it with skip connections.

:class:`DiffusionPolicy` (registered as ``diffusion-unet1d``) holds the U-Net and the normalisation
bounds as buffers, so ``save_policy``/``load_policy`` carry both; sampling (DDPM/DDIM schedulers) is
:mod:`robo.rl.diffusion_bc`.
"""

from __future__ import annotations

import itertools
import math

import torch
from torch import nn

from robo.nets.chunking import ChunkNormalizer
from robo.nets.policy import register_policy


class SinusoidalStepEmbedding(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.dim = dim

    def forward(self, step: torch.Tensor) -> torch.Tensor:
        half = self.dim // 2
        freq = torch.exp(torch.arange(half, device=step.device) * (-math.log(10000) / (half - 1)))
        angle = step.float()[:, None] * freq[None]
        return torch.cat([angle.sin(), angle.cos()], dim=-1)


def conv_block(inp: int, out: int, kernel: int, groups: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv1d(inp, out, kernel, padding=kernel // 2), nn.GroupNorm(groups, out),
                         nn.Mish())


class FiLMResidualBlock(nn.Module):
    """Two conv blocks; between them the condition scales and shifts every channel (FiLM)."""

    def __init__(self, inp: int, out: int, cond_dim: int, kernel: int, groups: int):
        super().__init__()
        self.first = conv_block(inp, out, kernel, groups)
        self.second = conv_block(out, out, kernel, groups)
        self.film = nn.Sequential(nn.Mish(), nn.Linear(cond_dim, 2 * out))
        self.skip = nn.Conv1d(inp, out, 1) if inp != out else nn.Identity()

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        scale, bias = self.film(cond).unsqueeze(-1).chunk(2, dim=1)
        h = self.first(x) * scale + bias
        return self.second(h) + self.skip(x)


class ConditionalUnet1D(nn.Module):
    """``forward(sample [B, T, A], step [B], cond [B, C]) -> [B, T, A]`` (the predicted noise).
    ``T`` must be divisible by ``2 ** (len(down_dims) - 1)``."""

    def __init__(self, action_dim: int, cond_dim: int, down_dims: tuple[int, ...] = (256, 512, 1024),
                 kernel_size: int = 5, groups: int = 8, step_embed_dim: int = 256):
        super().__init__()
        if any(d % groups for d in down_dims):
            raise ValueError(f"down_dims: every width must be divisible by the {groups} GroupNorm groups, "
                             f"got {list(down_dims)}")
        self.step_encoder = nn.Sequential(SinusoidalStepEmbedding(step_embed_dim),
                                          nn.Linear(step_embed_dim, 4 * step_embed_dim), nn.Mish(),
                                          nn.Linear(4 * step_embed_dim, step_embed_dim))
        cond = step_embed_dim + cond_dim
        widths = [action_dim, *down_dims]
        pairs = list(itertools.pairwise(widths))

        def block(i: int, o: int) -> FiLMResidualBlock:
            return FiLMResidualBlock(i, o, cond, kernel_size, groups)

        self.down = nn.ModuleList()
        for level, (i, o) in enumerate(pairs):
            last = level == len(pairs) - 1
            self.down.append(nn.ModuleList([block(i, o), block(o, o),
                                            nn.Identity() if last else nn.Conv1d(o, o, 3, 2, 1)]))
        self.mid = nn.ModuleList([block(down_dims[-1], down_dims[-1]), block(down_dims[-1], down_dims[-1])])
        self.up = nn.ModuleList()
        for i, o in reversed(pairs[1:]):  # one upsampling per downsampling
            self.up.append(nn.ModuleList([block(2 * o, i), block(i, i), nn.ConvTranspose1d(i, i, 4, 2, 1)]))
        self.final = nn.Sequential(conv_block(down_dims[0], down_dims[0], kernel_size, groups),
                                   nn.Conv1d(down_dims[0], action_dim, 1))

    def forward(self, sample: torch.Tensor, step: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        c = torch.cat([self.step_encoder(step.expand(sample.shape[0])), cond], dim=-1)
        x = sample.transpose(1, 2)
        skips = []
        for first, second, downsample in self.down:
            x = second(first(x, c), c)
            skips.append(x)
            x = downsample(x)
        for mid in self.mid:
            x = mid(x, c)
        for first, second, upsample in self.up:
            x = upsample(second(first(torch.cat([x, skips.pop()], dim=1), c), c))
        return self.final(x).transpose(1, 2)


@register_policy("diffusion-unet1d")
class DiffusionPolicy(ChunkNormalizer):
    """The U-Net conditioned on ``obs_horizon`` observations, with the min-max bounds and relative chunks
    of :class:`~robo.nets.chunking.ChunkNormalizer` (``relative_obs``: the observation values the first
    action channels are predicted relative to)."""

    recurrent = False

    def __init__(self, obs_dim: int, act_dim: int, pred_horizon: int = 32, obs_horizon: int = 1,
                 down_dims: tuple[int, ...] = (256, 512, 1024), kernel_size: int = 5, groups: int = 8,
                 step_embed_dim: int = 256, relative_obs: tuple[int, ...] = ()):
        super().__init__(obs_dim, act_dim, relative_obs)
        levels = 2 ** (len(down_dims) - 1)
        if pred_horizon % levels:
            raise ValueError(f"pred_horizon: {pred_horizon} is not divisible by {levels} "
                             f"(2 ** (len(down_dims) - 1))")
        self.arch = {"kind": "diffusion-unet1d", "obs_dim": obs_dim, "act_dim": act_dim,
                     "pred_horizon": pred_horizon, "obs_horizon": obs_horizon, "down_dims": list(down_dims),
                     "kernel_size": kernel_size, "groups": groups, "step_embed_dim": step_embed_dim,
                     "relative_obs": list(relative_obs)}
        self.unet = ConditionalUnet1D(act_dim, obs_dim * obs_horizon, tuple(down_dims), kernel_size, groups,
                                      step_embed_dim)

    def forward(self, noisy_actions: torch.Tensor, step: torch.Tensor, obs_normalized: torch.Tensor
                ) -> torch.Tensor:
        """Predicted noise for normalised ``[B, pred_horizon, act]`` at diffusion step ``step``, given
        normalised observations ``[B, obs_horizon * obs]``."""
        return self.unet(noisy_actions, step, obs_normalized)

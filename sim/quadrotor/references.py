"""Reference trajectories as pure batched functions: position hold, smoothed Langevin walk, figure-eight.

Each environment has a reference kind, a time since its episode began, and (for the walk) a small
state. :func:`reference_at` turns these into the reference position and velocity (world frame).
Batches are component-major ([components, N]), as the simulator keeps them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from sim.quadrotor.counter_noise import key_uniform

HOLD, LANGEVIN, FIGURE8 = 0, 1, 2
KINDS = {"hold": HOLD, "langevin": LANGEVIN, "figure8": FIGURE8}
WALK_SIZE = 12  # raw position, raw velocity, smoothed position, smoothed velocity


@dataclass(frozen=True)
class LangevinSettings:
    """Second-order Langevin walk x'' = -gamma x' - omega^2 x + sigma xi, smoothed with alpha per step.

    With ``sigma_max`` each episode draws its own sigma uniformly from [sigma, sigma_max] (a function
    of its episode key), so one batch holds slow and fast walks: the walk is linear in its noise, so
    its speed scales with the episode's sigma.
    """

    gamma: float = 1.0
    omega: float = 2.0
    sigma: float = 0.5
    alpha: float = 0.01
    sigma_max: float | None = None

    def episode_sigma(self, key: torch.Tensor, dtype: torch.dtype) -> torch.Tensor | float:
        """Each episode's sigma [N] from its int64 key [N] (a float when every episode shares it)."""
        if self.sigma_max is None:
            return self.sigma
        return self.sigma + (self.sigma_max - self.sigma) * key_uniform(key, dtype)


@dataclass(frozen=True)
class Figure8Settings:
    """Lissajous figure-eight x = A sin(phi), y = (A / 2) sin(2 phi) in the horizontal plane.

    The phase rate ramps linearly from 0 to 2 pi / period over ``ramp`` seconds, so the
    reference starts at rest at the origin.
    """

    period: float = 10.0
    scale: float = 1.0
    ramp: float = 2.0


def figure8(t: torch.Tensor, settings: Figure8Settings, dim: int = -1) -> tuple[torch.Tensor, torch.Tensor]:
    """Position and velocity of the figure-eight at times ``t`` [...] (seconds), x, y, z along ``dim``."""
    rate = 2 * math.pi / settings.period
    ramp = max(settings.ramp, 1e-9)
    in_ramp = t < ramp
    phase = torch.where(in_ramp, rate * t * t / (2 * ramp), rate * (ramp / 2 + (t - ramp)))
    phase_rate = torch.where(in_ramp, rate * t / ramp, torch.full_like(t, rate))
    a = settings.scale
    pos = torch.stack((a * torch.sin(phase), 0.5 * a * torch.sin(2 * phase), torch.zeros_like(t)), dim)
    vel = torch.stack((a * torch.cos(phase) * phase_rate, a * torch.cos(2 * phase) * phase_rate,
                       torch.zeros_like(t)), dim)
    return pos, vel


def advance_walk(walk: torch.Tensor, noise: torch.Tensor, dt: float, s: LangevinSettings,
                 sigma: torch.Tensor | float) -> torch.Tensor:
    """One Euler-Maruyama step of the walk, component-major [12, N]; ``noise`` [3, N] is standard normal
    and ``sigma`` each episode's (:meth:`LangevinSettings.episode_sigma`)."""
    x, xd, smooth = walk[0:3], walk[3:6], walk[6:9]
    xd = xd + dt * (-s.gamma * xd - s.omega**2 * x) + sigma * math.sqrt(dt) * noise
    x = x + dt * xd
    new_smooth = smooth + s.alpha * (x - smooth)
    return torch.cat((x, xd, new_smooth, (new_smooth - smooth) / dt), 0)


def reference_at(kind: torch.Tensor, time: torch.Tensor, walk: torch.Tensor,
                 fig8: Figure8Settings) -> tuple[torch.Tensor, torch.Tensor]:
    """Reference position and velocity, component-major [3, N], for each environment's kind [N],
    time [N] and walk state [12, N]."""
    f8_pos, f8_vel = figure8(time, fig8, dim=0)
    is_walk = kind == LANGEVIN
    is_f8 = kind == FIGURE8
    zero = torch.zeros_like(f8_pos)
    pos = torch.where(is_f8, f8_pos, torch.where(is_walk, walk[6:9], zero))
    vel = torch.where(is_f8, f8_vel, torch.where(is_walk, walk[9:12], zero))
    return pos, vel

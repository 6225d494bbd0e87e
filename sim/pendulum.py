"""Batched pendulum swing-up: a small continuous-control task for tests and learning checks.

The dynamics and reward are those of Gymnasium's ``Pendulum-v1`` (torque-limited swing-up, reward
``-(angle^2 + 0.1 omega^2 + 0.001 torque^2)``, no termination), but every environment has its own
mass and length, so K agents can learn K different pendulums in one batch. The API is Gymnasium's
vector style on torch tensors: ``reset() -> (obs, info)``, ``step(action) -> (obs, reward,
terminated, truncated, info)``, and an episode that ends is reset in the same step, its last
observation in ``info["final_observation"]`` (the convention of ``sim.quadrotor.QuadrotorEnv``).

Actions are in [-1, 1] and scale to +-``max_torque``. Observation: (cos angle, sin angle, omega).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from sim.layout import Field, ObservationLayout

OBSERVATION = ObservationLayout((
    Field("cos", "1", clip=(-1.0, 1.0)),     # cos of the angle from upright
    Field("sin", "1", clip=(-1.0, 1.0)),
    Field("omega", "rad/s"),                 # angular velocity, within +-max_speed
))


@dataclass
class PendulumConfig:
    dt: float = 0.05
    gravity: float = 10.0
    max_speed: float = 8.0
    max_torque: float = 2.0
    episode_steps: int = 200

    def __post_init__(self) -> None:
        if self.dt <= 0 or self.episode_steps <= 0 or self.max_torque <= 0:
            raise ValueError("pendulum: dt, episode_steps and max_torque must be > 0")


class PendulumEnv:
    """``num_envs`` pendulums stepped as one tensor program; ``mass``/``length`` per environment."""

    observation_size = OBSERVATION.size
    action_size = 1

    def __init__(self, mass: Sequence[float] | torch.Tensor, length: Sequence[float] | torch.Tensor,
                 config: PendulumConfig | None = None, *, device: str | torch.device = "cpu",
                 dtype: torch.dtype = torch.float32, seed: int = 0):
        self.config = config or PendulumConfig()
        self.device = torch.device(device)
        self.dtype = dtype
        self.mass = torch.as_tensor(mass, device=self.device, dtype=dtype).reshape(-1)
        self.length = torch.as_tensor(length, device=self.device, dtype=dtype).reshape(-1)
        if self.mass.shape != self.length.shape:
            raise ValueError(f"pendulum: {self.mass.numel()} masses but {self.length.numel()} lengths")
        if bool((self.mass <= 0).any()) or bool((self.length <= 0).any()):
            raise ValueError("pendulum: every mass and length must be > 0")
        self.num_envs = int(self.mass.numel())
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(seed)
        self.angle = torch.zeros(self.num_envs, device=self.device, dtype=dtype)
        self.omega = torch.zeros_like(self.angle)
        self.steps = torch.zeros(self.num_envs, dtype=torch.long, device=self.device)

    def reset(self, seed: int | None = None) -> tuple[torch.Tensor, dict]:
        if seed is not None:
            self.generator.manual_seed(seed)
        self._reset_where(torch.ones(self.num_envs, dtype=torch.bool, device=self.device))
        return self.observe(), {}

    def step(self, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor,
                                                 torch.Tensor, dict]:
        cfg = self.config
        if action.shape != (self.num_envs, 1):
            raise ValueError(f"action must have shape ({self.num_envs}, 1), got {tuple(action.shape)}")
        torque = action[:, 0].to(device=self.device, dtype=self.dtype).clamp(-1.0, 1.0) * cfg.max_torque
        # The reward scores the state the action was taken in, as in Pendulum-v1.
        upright_error = _wrap(self.angle)
        reward = -(upright_error**2 + 0.1 * self.omega**2 + 0.001 * torque**2)
        m, length = self.mass, self.length
        # Semi-implicit Euler, angle measured from upright (so gravity pushes away from 0).
        accel = 3 * cfg.gravity / (2 * length) * torch.sin(self.angle) + 3.0 / (m * length**2) * torque
        self.omega = (self.omega + accel * cfg.dt).clamp(-cfg.max_speed, cfg.max_speed)
        self.angle = self.angle + self.omega * cfg.dt
        self.steps = self.steps + 1
        obs = self.observe()
        terminated = torch.zeros(self.num_envs, dtype=torch.bool, device=self.device)
        truncated = self.steps >= cfg.episode_steps
        info = {"termination_reason": torch.zeros_like(self.steps), "episode_steps": self.steps.clone()}
        if bool(truncated.any()):
            info["final_observation"] = obs
            self._reset_where(truncated)
            obs = torch.where(truncated[:, None], self.observe(), obs)
        return obs, reward, terminated, truncated, info

    def observe(self) -> torch.Tensor:
        return torch.stack((torch.cos(self.angle), torch.sin(self.angle), self.omega), -1)

    def state_dict(self) -> dict:
        """Everything a resumed run needs to continue bit for bit."""
        return {"angle": self.angle.clone(), "omega": self.omega.clone(), "steps": self.steps.clone(),
                "generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.angle = state["angle"].to(self.device, self.dtype).clone()
        self.omega = state["omega"].to(self.device, self.dtype).clone()
        self.steps = state["steps"].to(self.device).clone()
        self.generator.set_state(state["generator"].cpu())

    def _reset_where(self, mask: torch.Tensor) -> None:
        u = torch.rand(2, self.num_envs, generator=self.generator, device=self.device, dtype=self.dtype)
        self.angle = torch.where(mask, (u[0] * 2 - 1) * math.pi, self.angle)
        self.omega = torch.where(mask, u[1] * 2 - 1, self.omega)
        self.steps = torch.where(mask, torch.zeros_like(self.steps), self.steps)


def _wrap(angle: torch.Tensor) -> torch.Tensor:
    """Angle in [-pi, pi)."""
    return torch.remainder(angle + math.pi, 2 * math.pi) - math.pi

"""Batched quadrotor environment in Gymnasium's vector style, with RAPTOR's observations and reward.

``QuadrotorEnv(params, config)`` simulates N environments at once, each with its own vehicle.
``reset()`` returns (obs, info); ``step(action)`` returns (obs, reward, terminated, truncated, info),
all torch tensors with a leading dimension N. Environments that end are reset in the same step
(``auto_reset``): the returned observation is then the first of the new episode and
``info["final_observation"]`` holds the last one of the old.

The whole step (physics, reference, reward, termination, observation) is one pure function of
tensors, :func:`step_batch`, so ``compile=True`` fuses it into a few loops; the rows that end are then
reset on their own.
Random numbers come from the environment's own seeded generator, drawn only for the rows that reset;
each episode's Langevin walk noise is then a pure function of an episode key drawn at its reset and
the step count (:mod:`sim.quadrotor.counter_noise`), computed inside the fused step.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import torch

from sim.quadrotor.batched import BatchedParams
from sim.quadrotor.counter_noise import normal_noise
from sim.quadrotor.dynamics import (
    P,
    Q,
    U,
    V,
    W,
    action_to_motor_setpoint,
    param_columns,
    rk4_columns,
    rotation_matrix,
)
from sim.quadrotor.observation import ACTION, LAYOUTS, STUDENT, TEACHER
from sim.quadrotor.params import GRAVITY, QuadrotorParams
from sim.quadrotor.references import (
    KINDS,
    LANGEVIN,
    WALK_SIZE,
    Figure8Settings,
    LangevinSettings,
    advance_walk,
    reference_at,
)

TERMINATION_REASONS = ("none", "position", "velocity", "angular_velocity", "non_finite")
NON_FINITE = TERMINATION_REASONS.index("non_finite")

# Names and units come from the one written-down layout (sim.quadrotor.observation).
STUDENT_OBSERVATION = STUDENT.names
TEACHER_OBSERVATION = TEACHER.names
OBSERVATION_UNITS = [e["unit"] for e in TEACHER.card_entries()]
ACTION_NAMES = tuple(a["name"] for a in ACTION)

# Random numbers one reset consumes per environment.
_UNIFORMS, _NORMALS = 18, 6


@dataclass
class QuadrotorEnvConfig:
    """Episode, reference, initial-state and termination settings (RAPTOR's values as defaults)."""

    dt: float = 0.01
    episode_steps: int = 500
    # student: 22 values; teacher: RAPTOR's privileged 26; teacher_force: those and the external force.
    observation: Literal["student", "teacher", "teacher_force"] = "student"
    # "mixed" draws hold or Langevin per episode, as RAPTOR trains; the others fix the kind.
    reference: Literal["mixed", "hold", "langevin", "figure8"] = "mixed"
    langevin_probability: float = 0.5
    # The walk's settings (RAPTOR's by default); its speed is proportional to sigma (per episode in
    # [sigma, sigma_max] when sigma_max is set).
    langevin: LangevinSettings = field(default_factory=LangevinSettings)
    figure8_period: float = 10.0
    figure8_scale: float = 1.0
    figure8_ramp: float = 2.0
    terminate: bool = True
    max_position_error_arms: float = 20.0
    max_velocity_error: float = 2.0
    max_angular_velocity: float = 35.0
    init_position_arms: float = 10.0
    init_max_tilt: float = 1.0
    init_velocity: float = 1.0
    init_angular_velocity: float = 1.0
    init_motor_max: float = 0.5
    init_at_target_probability: float = 0.1
    disturbance: bool = True
    auto_reset: bool = True

    def __post_init__(self) -> None:
        if self.dt <= 0:
            raise ValueError(f"dt must be > 0 s, got {self.dt}")
        if self.episode_steps <= 0:
            raise ValueError(f"episode_steps must be > 0, got {self.episode_steps}")
        for name in ("langevin_probability", "init_at_target_probability"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if self.figure8_period <= 0:
            raise ValueError(f"figure8_period must be > 0 s, got {self.figure8_period}")
        walk = self.langevin
        if min(walk.gamma, walk.omega, walk.sigma) < 0 or not 0.0 < walk.alpha <= 1.0:
            raise ValueError(f"langevin: gamma, omega and sigma must be >= 0 and alpha in (0, 1], got {walk}")
        if walk.sigma_max is not None and not walk.sigma_max >= walk.sigma:
            raise ValueError(f"langevin.sigma_max must be >= langevin.sigma ({walk.sigma}), "
                             f"got {walk.sigma_max}")
        if self.observation not in LAYOUTS:
            raise ValueError(f"observation must be one of {', '.join(LAYOUTS)}, got {self.observation!r}")

    def figure8(self) -> Figure8Settings:
        return Figure8Settings(period=self.figure8_period, scale=self.figure8_scale, ramp=self.figure8_ramp)


@dataclass
class EnvState:
    """Everything that evolves, component-major: one column per environment (see dynamics.py)."""

    state: torch.Tensor  # [17, N] physical state
    external_force: torch.Tensor  # [3, N] constant per episode, world frame, N
    prev_action: torch.Tensor  # [4, N]
    steps: torch.Tensor  # [N] steps since the episode began
    ref_kind: torch.Tensor  # [N] HOLD, LANGEVIN or FIGURE8
    walk: torch.Tensor  # [12, N] Langevin walk state
    noise_key: torch.Tensor  # [N] int64 in [0, 2**32): the episode's walk noise

    def clone(self) -> EnvState:
        return EnvState(*(t.clone() for t in vars(self).values()))


def observe(state: torch.Tensor, ref_pos: torch.Tensor, ref_vel: torch.Tensor,
            prev_action: torch.Tensor, layout: str = "student",
            force_per_weight: torch.Tensor | None = None) -> torch.Tensor:
    """RAPTOR's observation [N, 22] from row-major inputs (state [N, 17], the others [N, 3] and
    [N, 4]), plus the 4 motor states mapped to [-1, 1] for teachers and the external force per weight
    [N, 3] for force-aware teachers; in the order of ``sim.quadrotor.observation.LAYOUTS[layout]``."""
    rot = rotation_matrix(state[:, Q]).flatten(1)
    parts = [state[:, P] - ref_pos, rot, state[:, V] - ref_vel, state[:, W], prev_action]
    if layout != "student":
        parts.append(state[:, U] * 2 - 1)
    if layout == "teacher_force":
        if force_per_weight is None:
            raise ValueError("the teacher_force observation needs the external force per weight")
        parts.append(force_per_weight)
    return torch.cat(parts, -1)


def force_per_weight(s: EnvState, params: BatchedParams, layout: str) -> torch.Tensor | None:
    """Each episode's constant external force as a fraction of its vehicle's weight [N, 3], for the
    layout that shows it (None for the others, so their steps do not compute it)."""
    if layout != "teacher_force":
        return None
    return s.external_force.t() / (params.mass[:, None] * GRAVITY)


def sample_episodes(params: BatchedParams, cfg: QuadrotorEnvConfig, uniform: torch.Tensor,
                    normal: torch.Tensor) -> EnvState:
    """Fresh episodes for every environment from RAPTOR's initial-state distribution.

    ``uniform`` [N, 18] and ``normal`` [N, 6] are the random numbers to use (U(0,1) and N(0,1)).
    Worked out row by row, returned component-major (as views) like every EnvState.
    """
    n = uniform.shape[0]
    if cfg.reference == "mixed":
        kind = torch.where(uniform[:, 0] < cfg.langevin_probability, LANGEVIN, 0)
    else:
        kind = torch.full((n,), KINDS[cfg.reference], dtype=torch.long, device=uniform.device)
    walk = torch.zeros(WALK_SIZE, n, dtype=uniform.dtype, device=uniform.device)
    start = torch.zeros_like(uniform[:, 0])
    ref_pos, ref_vel = (r.t() for r in reference_at(kind, start, walk, cfg.figure8()))

    arm = params.arm_length[:, None]
    position = ref_pos + (uniform[:, 1:4] * 2 - 1) * cfg.init_position_arms * arm
    axis = normal[:, 0:3] / normal[:, 0:3].norm(dim=-1, keepdim=True).clamp(min=1e-9)
    angle = uniform[:, 4:5] * cfg.init_max_tilt
    quat = torch.cat((torch.cos(angle / 2), torch.sin(angle / 2) * axis), -1)
    velocity = (uniform[:, 5:8] * 2 - 1) * cfg.init_velocity
    omega = (uniform[:, 8:11] * 2 - 1) * cfg.init_angular_velocity
    motors = uniform[:, 11:15] * cfg.init_motor_max
    wild = torch.cat((position, quat, velocity, omega, motors), -1)

    unit_w = torch.zeros_like(quat)
    unit_w[:, 0] = 1.0
    calm = torch.cat((ref_pos, unit_w, ref_vel, torch.zeros_like(omega),
                      params.hover_throttle[:, None].expand(n, 4)), -1)
    state = torch.where((uniform[:, 15] < cfg.init_at_target_probability)[:, None], calm, wild)

    force = normal[:, 3:6] * params.disturbance_sigma[:, None]
    if not cfg.disturbance:
        force = torch.zeros_like(force)
    return EnvState(
        state=state.t(),
        external_force=force.t(),
        # The motors were last told what they are doing now.
        prev_action=(state[:, U] * 2 - 1).t(),
        steps=torch.zeros(n, dtype=torch.long, device=uniform.device),
        ref_kind=kind,
        walk=walk,
        noise_key=((uniform[:, 16] * 65536).long() << 16) | (uniform[:, 17] * 65536).long(),
    )


def step_batch(s: EnvState, action: torch.Tensor, pc: torch.Tensor, params: BatchedParams,
               cfg: QuadrotorEnvConfig, layout: str):
    """One step of every environment; pure, so torch.compile can fuse it.

    ``action`` is component-major [4, N] and ``pc`` the :func:`param_columns` of ``params``.

    Returns (next EnvState, obs, reward, terminated, truncated, termination reason). Environments that
    end are not reset here: :meth:`QuadrotorEnv.step` resets just those rows, so the common step (no
    episode ends) draws no reset random numbers and computes no fresh episodes.
    """
    action = action.clamp(-1.0, 1.0)
    nxt = rk4_columns(s.state, action_to_motor_setpoint(action), pc, s.external_force, cfg.dt)
    steps = s.steps + 1
    walk = advance_walk(s.walk, normal_noise(s.noise_key, steps, 3, nxt.dtype), cfg.dt, cfg.langevin,
                        cfg.langevin.episode_sigma(s.noise_key, nxt.dtype))
    ref_pos, ref_vel = reference_at(s.ref_kind, steps.to(nxt.dtype) * cfg.dt, walk, cfg.figure8())

    pos_err = nxt[P] - ref_pos
    vel_err = nxt[V] - ref_vel
    reason = torch.zeros_like(steps)
    if cfg.terminate:
        reason = torch.where((nxt[W].abs() > cfg.max_angular_velocity).any(0), 3, reason)
        reason = torch.where((vel_err.abs() > cfg.max_velocity_error).any(0), 2, reason)
        too_far = (pos_err.abs() > cfg.max_position_error_arms * params.arm_length).any(0)
        reason = torch.where(too_far, 1, reason)
    finite = torch.isfinite(nxt).all(0) & torch.isfinite(action).all(0)
    reason = torch.where(finite, reason, NON_FINITE)
    terminated = reason > 0
    truncated = (steps >= cfg.episode_steps) & ~terminated

    # RAPTOR's reward: position error, an attitude term, action smoothness and a survival bonus;
    # -100 replaces it on termination.
    qz = nxt[6].abs().clamp(max=1.0)
    reward = 1.5 - pos_err.norm(dim=0) - 0.1 * 2 * torch.acos(1 - qz) - (action - s.prev_action).norm(dim=0)
    reward = torch.where(terminated, torch.full_like(reward, -100.0), reward)
    after = EnvState(nxt, s.external_force, action, steps, s.ref_kind, walk, s.noise_key)
    obs = observe(nxt.t(), ref_pos.t(), ref_vel.t(), action.t(), layout,
                  force_per_weight(after, params, layout))
    # A non-finite observation would poison value targets even where masked (0 * NaN = NaN).
    obs = torch.nan_to_num(obs, nan=0.0, posinf=0.0, neginf=0.0)
    return after, obs, reward, terminated, truncated, reason


def reset_rows(s: EnvState, obs: torch.Tensor, rows: torch.Tensor, uniform: torch.Tensor,
               normal: torch.Tensor, params: BatchedParams, cfg: QuadrotorEnvConfig, layout: str
               ) -> tuple[EnvState, torch.Tensor]:
    """Fresh episodes in ``rows`` (``uniform``/``normal``: their random numbers); pure, compilable."""
    rows_params = params.gather(rows)
    fresh = sample_episodes(rows_params, cfg, uniform, normal)
    # The environment index is the last dimension of every EnvState field.
    after = EnvState(*(a.index_copy(-1, rows, f) for a, f in zip(vars(s).values(), vars(fresh).values(),
                                                                  strict=True)))
    start = torch.zeros_like(uniform[:, 0])
    ref = (r.t() for r in reference_at(fresh.ref_kind, start, fresh.walk, cfg.figure8()))
    fresh_obs = observe(fresh.state.t(), *ref, fresh.prev_action.t(), layout,
                        force_per_weight(fresh, rows_params, layout))
    return after, obs.index_copy(0, rows, fresh_obs)


class QuadrotorEnv:
    """N quadrotor environments stepped as one tensor program."""

    action_size = 4

    def __init__(self, params: BatchedParams | Sequence[QuadrotorParams],
                 config: QuadrotorEnvConfig | None = None, *, device: str | torch.device = "cpu",
                 dtype: torch.dtype = torch.float32, seed: int = 0, compile: bool = False):
        self.config = config or QuadrotorEnvConfig()
        if not isinstance(params, BatchedParams):
            params = BatchedParams.stack([p.validate() for p in params], device=device, dtype=dtype)
        self.params = params.to(device=device, dtype=dtype)
        self._param_columns = param_columns(self.params)
        self.num_envs = len(self.params)
        self.device = torch.device(device)
        self.dtype = dtype
        self.layout = self.config.observation
        self.observation_names = LAYOUTS[self.layout].names
        self.observation_size = len(self.observation_names)
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(seed)
        self._step = torch.compile(step_batch, dynamic=False) if compile else step_batch
        # The number of rows that reset changes every step: one kernel for any count.
        self._reset = torch.compile(reset_rows, dynamic=True) if compile else reset_rows
        self.s = self._fresh(self.params)

    # ----- Gymnasium-style API -------------------------------------------------------------
    def reset(self, seed: int | None = None) -> tuple[torch.Tensor, dict]:
        if seed is not None:
            self.generator.manual_seed(seed)
        self.s = self._fresh(self.params)
        return self.observe(), {}

    def step(self, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor,
                                                 torch.Tensor, dict]:
        if action.shape != (self.num_envs, 4):
            raise ValueError(f"action must have shape ({self.num_envs}, 4), got {tuple(action.shape)}")
        action = action.to(device=self.device, dtype=self.dtype)
        # Component-major, like the state: the compiled step then vectorises over environments.
        self.s, obs, reward, terminated, truncated, reason = self._step(
            self.s, action.t().contiguous(), self._param_columns, self.params, self.config, self.layout)
        info = {"termination_reason": reason, "final_observation": obs}
        if self.config.auto_reset:
            done = (terminated | truncated).nonzero()[:, 0]
            if done.numel():
                # Same-step autoreset of just the rows that ended; index_copy is out of place, so
                # info keeps their last observation.
                kw = {"generator": self.generator, "device": self.device, "dtype": self.dtype}
                k = done.numel()
                self.s, obs = self._reset(self.s, obs, done, torch.rand(k, _UNIFORMS, **kw),
                                          torch.randn(k, _NORMALS, **kw), self.params, self.config,
                                          self.layout)
        return obs, reward, terminated, truncated, info

    def reference(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Current reference position and velocity [N, 3]."""
        t = self.s.steps.to(self.dtype) * self.config.dt
        pos, vel = reference_at(self.s.ref_kind, t, self.s.walk, self.config.figure8())
        return pos.t(), vel.t()

    def observe(self, teacher: bool | None = None) -> torch.Tensor:
        """The current observation [N, 22, 26 or 29]; ``teacher=False`` gives the student's 22 values
        whatever the configured layout, ``teacher=True`` the configured teacher layout (26 when the
        environment is configured for students)."""
        layout = self.layout
        if teacher is not None and teacher != (layout != "student"):
            layout = "teacher" if teacher else "student"
        return observe(self.state, *self.reference(), self.s.prev_action.t(), layout,
                       force_per_weight(self.s, self.params, layout))

    @property
    def state(self) -> torch.Tensor:
        """Physical state [N, 17]: p, q (w, x, y, z), v, omega (body), motor state (a view)."""
        return self.s.state.t()

    def set_state(self, state: torch.Tensor, external_force: torch.Tensor | None = None) -> None:
        """Put every environment in a given physical state [N, 17] (evaluation and tests)."""
        self.s.state = state.to(device=self.device, dtype=self.dtype).t().contiguous()
        self.s.prev_action = (self.s.state[U] * 2 - 1).contiguous()
        if external_force is not None:
            self.s.external_force = external_force.to(device=self.device, dtype=self.dtype).t().contiguous()

    def _fresh(self, params: BatchedParams) -> EnvState:
        """New episodes for ``params``' rows, from this environment's generator (stored contiguous)."""
        kw = {"generator": self.generator, "device": self.device, "dtype": self.dtype}
        n = len(params)
        fresh = sample_episodes(params, self.config, torch.rand(n, _UNIFORMS, **kw),
                                torch.randn(n, _NORMALS, **kw))
        return EnvState(*(t.contiguous() for t in vars(fresh).values()))

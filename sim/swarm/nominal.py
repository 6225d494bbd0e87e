"""The nominal controller: PD to the goal with the speed and acceleration limits, no safety filter.

The position error asks for a velocity ``kp / kd * error`` capped at the speed limit, and the
acceleration tracks that velocity with gain ``kd``, so agents approach their goals at full speed
and brake in time instead of overshooting.

``tilt`` is a right-hand rule: the error is turned clockwise (about +z) by ``tilt`` radians before it
becomes the desired velocity. Two agents meeting head-on then both veer to their own right and pass,
where with ``tilt = 0`` the pair is symmetric and a CBF-QP only slows them down on the line between
them until they stop (Wang, Ames, Egerstedt 2017; Grover et al.). The error dynamics stay stable for
``|tilt| < pi / 2`` (the eigenvalues of the turned gain are ``-(kp / kd) e^(+-i tilt)``): the agent
spirals into its goal. The filter still sees every command, so the guarantee is untouched.
"""

from __future__ import annotations

import math

import torch

MAX_TILT = 1.5  # rad, below pi / 2: the turned PD still converges to the goal


def check_tilt(tilt: float) -> float:
    if not (math.isfinite(tilt) and abs(tilt) <= MAX_TILT):
        raise ValueError(f"tilt must be finite and within +-{MAX_TILT} rad (the nominal's right-hand rule), "
                         f"got {tilt}")
    return tilt


def nominal_accelerations(p: torch.Tensor, v: torch.Tensor, goal: torch.Tensor, *, max_speed: float,
                          max_accel: float, kp: float = 1.0, kd: float = 2.0,
                          tilt: float | torch.Tensor = 0.0) -> torch.Tensor:
    """[E, N, D] accelerations toward ``goal``, within +-``max_accel`` per axis; ``tilt`` (rad; one for
    every agent, or [E, N], each agent its own, as a tuner sets it) turns the x-y part of the goal error
    clockwise."""
    error = goal - p
    per_agent = isinstance(tilt, torch.Tensor)
    if per_agent or tilt:
        if per_agent:
            c, s = torch.cos(tilt), torch.sin(tilt)
        else:
            c, s = math.cos(check_tilt(tilt)), math.sin(tilt)
        x, y = error[..., 0], error[..., 1]
        error = torch.cat([torch.stack([c * x + s * y, c * y - s * x], dim=-1), error[..., 2:]], dim=-1)
    v_des = error * (kp / kd)
    speed = v_des.norm(dim=-1, keepdim=True)
    v_des = v_des * (max_speed / speed.clamp_min(max_speed))
    return (kd * (v_des - v)).clamp(-max_accel, max_accel)

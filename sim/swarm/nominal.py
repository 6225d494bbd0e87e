"""The nominal controller: PD to the goal with the speed and acceleration limits, no safety filter.

The position error asks for a velocity ``kp / kd * error`` capped at the speed limit, and the
acceleration tracks that velocity with gain ``kd``, so agents approach their goals at full speed
and brake in time instead of overshooting.
"""

from __future__ import annotations

import torch


def nominal_accelerations(p: torch.Tensor, v: torch.Tensor, goal: torch.Tensor, *, max_speed: float,
                          max_accel: float, kp: float = 1.0, kd: float = 2.0) -> torch.Tensor:
    """[E, N, D] accelerations toward ``goal``, within +-``max_accel`` per axis."""
    v_des = (goal - p) * (kp / kd)
    speed = v_des.norm(dim=-1, keepdim=True)
    v_des = v_des * (max_speed / speed.clamp_min(max_speed))
    return (kd * (v_des - v)).clamp(-max_accel, max_accel)

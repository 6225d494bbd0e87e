"""Baseline controller: cascaded geometric position/attitude control (Lee et al. 2010), batched in torch.

The comparison for every learned quadrotor policy. It reads the same state the simulator holds and
returns policy-style actions in [-1, 1], so it drops in wherever a policy does. Gains are natural
frequencies and damping ratios; the inner loop is scaled by each vehicle's inertia, so one set of
gains flies vehicles from 30 g to several kilograms.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from sim.quadrotor.batched import BatchedParams
from sim.quadrotor.dynamics import rotation_matrix
from sim.quadrotor.params import GRAVITY


@dataclass(frozen=True)
class GeometricGains:
    position_frequency: float = 2.0  # rad/s
    position_damping: float = 1.0
    attitude_frequency: float = 6.0  # rad/s
    attitude_damping: float = 0.9
    max_tilt_acceleration: float = 8.0  # m/s^2 of horizontal command
    # Speed of the approach to the reference (on top of its own velocity): RAPTOR ends an episode at
    # 2 m/s of velocity error or 20 arm lengths off, and starts up to 10 arm lengths off.
    max_approach_speed: float = 1.0  # m/s
    approach_speed_per_arm: float = 10.0  # 1/s: small vehicles (small allowed box) approach slower


class GeometricController:
    """u = controller(state, ref_pos, ref_vel) -> actions [N, 4] in [-1, 1]."""

    def __init__(self, params: BatchedParams, gains: GeometricGains | None = None):
        self.params = params
        self.gains = gains or GeometricGains()
        r = params.rotor_positions
        ones = torch.ones_like(r[:, :, 0])
        # [T, tau_x, tau_y, tau_z] = mixer @ f: the inverse maps wrench to rotor thrusts.
        mixer = torch.stack((ones, r[:, :, 1], -r[:, :, 0], params.yaw_moment), 1)
        self.unmixer = torch.linalg.inv(mixer)

    def __call__(self, state: torch.Tensor, ref_pos: torch.Tensor, ref_vel: torch.Tensor) -> torch.Tensor:
        g, p = self.gains, self.params
        pos, quat, vel, omega = state[:, 0:3], state[:, 3:7], state[:, 7:10], state[:, 10:13]
        kp, kd = g.position_frequency**2, 2 * g.position_damping * g.position_frequency
        # -kp e_p - kd e_v written as kd (v_des - v), so the approach speed can be limited.
        approach = -(kp / kd) * (pos - ref_pos)
        speed = approach.norm(dim=-1, keepdim=True).clamp(min=1e-9)
        limit = (g.approach_speed_per_arm * p.arm_length[:, None]).clamp(max=g.max_approach_speed)
        approach = approach * (limit / speed).clamp(max=1.0)
        acc = kd * (ref_vel + approach - vel)
        horizontal = acc[:, :2].norm(dim=-1, keepdim=True).clamp(min=1e-9)
        acc = torch.cat((acc[:, :2] * (g.max_tilt_acceleration / horizontal).clamp(max=1.0), acc[:, 2:]), -1)
        acc[:, 2] += GRAVITY
        acc[:, 2] = acc[:, 2].clamp(min=0.2 * GRAVITY)

        rot = rotation_matrix(quat)
        thrust = p.mass * (acc * rot[:, :, 2]).sum(-1)
        b3 = acc / acc.norm(dim=-1, keepdim=True)
        heading = torch.zeros_like(b3)
        heading[:, 0] = 1.0
        b2 = torch.linalg.cross(b3, heading)
        b2 = b2 / b2.norm(dim=-1, keepdim=True)
        b1 = torch.linalg.cross(b2, b3)
        desired = torch.stack((b1, b2, b3), -1)

        err = desired.transpose(1, 2) @ rot - rot.transpose(1, 2) @ desired
        e_rot = 0.5 * torch.stack((err[:, 2, 1], err[:, 0, 2], err[:, 1, 0]), -1)
        kr, kw = g.attitude_frequency**2, 2 * g.attitude_damping * g.attitude_frequency
        inertia = p.inertia
        torque = inertia * (-kr * e_rot - kw * omega) + torch.linalg.cross(omega, inertia * omega)

        wrench = torch.cat((thrust[:, None], torque), -1)
        forces = (self.unmixer @ wrench[:, :, None]).squeeze(-1)
        return thrust_to_action(forces, p)


def thrust_to_action(forces: torch.Tensor, params: BatchedParams) -> torch.Tensor:
    """Invert f = c0 + c1 u + c2 u^2 per rotor, clamp u to [0, 1], map to actions a = 2 u - 1."""
    c0, c1, c2 = (params.thrust_coefficients[:, i:i + 1] for i in range(3))
    c2_safe = torch.where(c2.abs() < 1e-12, torch.full_like(c2, 1e-12), c2)
    disc = (c1 * c1 - 4 * c2_safe * (c0 - forces)).clamp(min=0.0)
    quadratic = (-c1 + disc.sqrt()) / (2 * c2_safe)
    linear = (forces - c0) / c1.clamp(min=1e-12)
    u = torch.where(c2.abs() < 1e-12, linear, quadratic).clamp(0.0, 1.0)
    return u * 2 - 1

"""The "Learning to Fly" quadrotor model as batched, pure torch functions.

State vector per environment (17 values): position p (3, world), quaternion q (w, x, y, z; body to
world), velocity v (3, world), angular velocity omega (3, body), motor state u (4, in [0, 1]).
Every function works on a leading batch dimension, so one call steps N different vehicles, on CPU
or CUDA alike. Written with elementwise arithmetic instead of small matrix products: that is what
torch.compile fuses into one loop.
"""

from __future__ import annotations

import torch

from sim.quadrotor.batched import BatchedParams
from sim.quadrotor.params import GRAVITY

STATE_SIZE = 17
P, Q, V, W, U = slice(0, 3), slice(3, 7), slice(7, 10), slice(10, 13), slice(13, 17)


def rotation_matrix(q: torch.Tensor) -> torch.Tensor:
    """R(q) [..., 3, 3] mapping body to world, for unit quaternions (w, x, y, z)."""
    w, x, y, z = q.unbind(-1)
    rows = (
        1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
        2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
        2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
    )
    return torch.stack(rows, -1).reshape(*q.shape[:-1], 3, 3)


def rotor_thrusts(u: torch.Tensor, params: BatchedParams) -> torch.Tensor:
    """Thrust per rotor [N, 4] in newtons: c0 + c1 u + c2 u^2."""
    c = params.thrust_coefficients
    return c[:, 0:1] + c[:, 1:2] * u + c[:, 2:3] * u * u


def derivative(state: torch.Tensor, motor_setpoint: torch.Tensor, params: BatchedParams,
               external_force: torch.Tensor) -> torch.Tensor:
    """d(state)/dt for motor setpoints in [0, 1] and a constant external force (world, N)."""
    q, v, omega, u = state[:, Q], state[:, V], state[:, W], state[:, U]
    qw, qx, qy, qz = q.unbind(-1)
    wx, wy, wz = omega.unbind(-1)

    f = rotor_thrusts(u, params)
    thrust = f.sum(-1)
    # Only the body z axis carries thrust, so R (0, 0, T) is T times the third column of R.
    acc_over_thrust = thrust / params.mass
    ax = 2 * (qx * qz + qw * qy) * acc_over_thrust
    ay = 2 * (qy * qz - qw * qx) * acc_over_thrust
    az = (1 - 2 * (qx * qx + qy * qy)) * acc_over_thrust - GRAVITY
    acc = torch.stack((ax, ay, az), -1) + external_force / params.mass[:, None]

    # r_i x (0, 0, f_i) = (y_i f_i, -x_i f_i, 0); the yaw moment is c_m * direction * f_i.
    r = params.rotor_positions
    tau_x = (r[:, :, 1] * f).sum(-1)
    tau_y = -(r[:, :, 0] * f).sum(-1)
    tau_z = (params.yaw_moment * f).sum(-1)
    jx, jy, jz = params.inertia.unbind(-1)
    # Euler's equations for a diagonal inertia: J omega' = tau - omega x (J omega).
    dwx = (tau_x - (wy * jz * wz - wz * jy * wy)) / jx
    dwy = (tau_y - (wz * jx * wx - wx * jz * wz)) / jy
    dwz = (tau_z - (wx * jy * wy - wy * jx * wx)) / jz

    # q' = 0.5 q (x) (0, omega)
    dq = 0.5 * torch.stack((
        -qx * wx - qy * wy - qz * wz,
        qw * wx + qy * wz - qz * wy,
        qw * wy + qz * wx - qx * wz,
        qw * wz + qx * wy - qy * wx,
    ), -1)

    # Motors follow the setpoint with a first-order lag that is faster up than down.
    tau_motor = torch.where(motor_setpoint >= u, params.motor_time_constant_rise[:, None],
                            params.motor_time_constant_fall[:, None])
    du = (motor_setpoint - u) / tau_motor
    return torch.cat((v, dq, acc, torch.stack((dwx, dwy, dwz), -1), du), -1)


def rk4_step(state: torch.Tensor, motor_setpoint: torch.Tensor, params: BatchedParams,
             external_force: torch.Tensor, dt: float) -> torch.Tensor:
    """One RK4 step of ``dt``, then renormalise the quaternion and clamp the motor state to [0, 1]."""
    k1 = derivative(state, motor_setpoint, params, external_force)
    k2 = derivative(state + 0.5 * dt * k1, motor_setpoint, params, external_force)
    k3 = derivative(state + 0.5 * dt * k2, motor_setpoint, params, external_force)
    k4 = derivative(state + dt * k3, motor_setpoint, params, external_force)
    nxt = state + (dt / 6.0) * (k1 + 2 * k2 + 2 * k3 + k4)
    q = nxt[:, Q]
    q = q / q.norm(dim=-1, keepdim=True)
    u = nxt[:, U].clamp(0.0, 1.0)
    return torch.cat((nxt[:, P], q, nxt[:, V], nxt[:, W], u), -1)


def action_to_motor_setpoint(action: torch.Tensor) -> torch.Tensor:
    """Policy action in [-1, 1] (clamped here) to motor setpoint u = (a + 1) / 2."""
    return (action.clamp(-1.0, 1.0) + 1.0) * 0.5


def hover_state(params: BatchedParams, position: torch.Tensor | None = None) -> torch.Tensor:
    """At rest, level, motors at the hover throttle."""
    n = len(params)
    state = torch.zeros(n, STATE_SIZE, dtype=params.mass.dtype, device=params.mass.device)
    state[:, 3] = 1.0
    state[:, U] = params.hover_throttle[:, None]
    if position is not None:
        state[:, P] = position
    return state

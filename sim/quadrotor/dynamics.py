"""The "Learning to Fly" quadrotor model as batched, pure torch functions.

State vector per environment (17 values): position p (3, world), quaternion q (w, x, y, z; body to
world), velocity v (3, world), angular velocity omega (3, body), motor state u (4, in [0, 1]).

The simulator keeps batches component-major, one row per state component ([17, N]): torch.compile
then fuses a whole RK4 step into loops over the environments that it vectorises; the row-major
[N, 17] form's small per-row arithmetic cannot be vectorised (`robo bench sim` measures the step).
:func:`rk4_step` is the row-major entry point for everything else.
"""

from __future__ import annotations

from collections.abc import Sequence

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


def param_columns(params: BatchedParams) -> torch.Tensor:
    """The parameters the dynamics read, component-major [21, N]: thrust coefficients c0, c1, c2;
    rotor x (4) and y (4); yaw moment per rotor (4); mass; inertia (3); motor rise and fall times."""
    r = params.rotor_positions
    return torch.cat((params.thrust_coefficients.t(), r[:, :, 0].t(), r[:, :, 1].t(), params.yaw_moment.t(),
                      params.mass[None], params.inertia.t(), params.motor_time_constant_rise[None],
                      params.motor_time_constant_fall[None])).contiguous()


def _sum_rows(x: torch.Tensor) -> torch.Tensor:
    # Row by row rather than .sum(0): a reduction across rows stops the compiled step vectorising.
    total = x[0]
    for row in x[1:]:
        total = total + row
    return total


def derivative(blocks: Sequence[torch.Tensor], setpoint: torch.Tensor, pc: torch.Tensor,
               force: torch.Tensor) -> list[torch.Tensor]:
    """d(state)/dt for the state's blocks (p [3, N], q [4, N], v [3, N], omega [3, N], u [4, N]),
    motor setpoints [4, N] in [0, 1] and a constant external force [3, N] (world, N); ``pc`` is
    :func:`param_columns`. Returns the derivative's blocks in the same order."""
    # Blocks rather than one [17, N] tensor or 17 vectors: eagerly, few and larger operations are fast
    # (17 vectors make the batch-1 step, which robo fly and the evaluations run, markedly slower);
    # compiled, a concatenated derivative would be written to memory at each RK4 stage, while blocks
    # fuse into the step's loops.
    _, q, v, omega, u = blocks
    qw, qx, qy, qz = q.unbind(0)
    wx, wy, wz = omega.unbind(0)
    c0, c1, c2 = pc[0:1], pc[1:2], pc[2:3]
    rx, ry, yaw = pc[3:7], pc[7:11], pc[11:15]
    mass, jx, jy, jz, tau_rise, tau_fall = pc[15:21].unbind(0)

    f = c0 + c1 * u + c2 * u * u  # [4, N] thrust per rotor
    # Only the body z axis carries thrust, so R (0, 0, T) is T times the third column of R.
    acc_over_thrust = _sum_rows(f) / mass
    acc = torch.stack((2 * (qx * qz + qw * qy) * acc_over_thrust,
                       2 * (qy * qz - qw * qx) * acc_over_thrust,
                       (1 - 2 * (qx * qx + qy * qy)) * acc_over_thrust - GRAVITY)) + force / mass

    # r_i x (0, 0, f_i) = (y_i f_i, -x_i f_i, 0); the yaw moment is c_m * direction * f_i.
    tau_x, tau_y, tau_z = _sum_rows(ry * f), -_sum_rows(rx * f), _sum_rows(yaw * f)
    # Euler's equations for a diagonal inertia: J omega' = tau - omega x (J omega).
    domega = torch.stack(((tau_x - (wy * jz * wz - wz * jy * wy)) / jx,
                          (tau_y - (wz * jx * wx - wx * jz * wz)) / jy,
                          (tau_z - (wx * jy * wy - wy * jx * wx)) / jz))

    # q' = 0.5 q (x) (0, omega)
    dq = 0.5 * torch.stack((-qx * wx - qy * wy - qz * wz, qw * wx + qy * wz - qz * wy,
                            qw * wy + qz * wx - qx * wz, qw * wz + qx * wy - qy * wx))

    # Motors follow the setpoint with a first-order lag that is faster up than down.
    du = (setpoint - u) / torch.where(setpoint >= u, tau_rise, tau_fall)
    return [v, dq, acc, domega, du]


def rk4_columns(state: torch.Tensor, motor_setpoint: torch.Tensor, pc: torch.Tensor,
                external_force: torch.Tensor, dt: float) -> torch.Tensor:
    """One RK4 step on component-major batches: state [17, N], setpoint [4, N], parameters [21, N]
    (:func:`param_columns`), force [3, N]. Renormalises the quaternion and clamps the motors to [0, 1]."""
    def shifted(k: list[torch.Tensor], h: float) -> list[torch.Tensor]:
        return [x + h * dx for x, dx in zip(x0, k, strict=True)]

    x0 = [state[P], state[Q], state[V], state[W], state[U]]
    k1 = derivative(x0, motor_setpoint, pc, external_force)
    k2 = derivative(shifted(k1, 0.5 * dt), motor_setpoint, pc, external_force)
    k3 = derivative(shifted(k2, 0.5 * dt), motor_setpoint, pc, external_force)
    k4 = derivative(shifted(k3, dt), motor_setpoint, pc, external_force)
    p, q, v, omega, u = (x + (dt / 6.0) * (a + 2 * b + 2 * c + d)
                         for x, a, b, c, d in zip(x0, k1, k2, k3, k4, strict=True))
    return torch.cat((p, q / torch.sqrt(_sum_rows(q * q)), v, omega, u.clamp(0.0, 1.0)))


def rk4_step(state: torch.Tensor, motor_setpoint: torch.Tensor, params: BatchedParams,
             external_force: torch.Tensor, dt: float) -> torch.Tensor:
    """One RK4 step of ``dt`` on row-major batches: state [N, 17], setpoint [N, 4], force [N, 3]."""
    nxt = rk4_columns(state.t(), motor_setpoint.t(), param_columns(params), external_force.t(), dt)
    return nxt.t().contiguous()


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

"""The same quadrotor as a MuJoCo model, for cross-checking the torch dynamics and for MuJoCo scenes.

The MJCF holds the rigid body (mass, diagonal inertia) and four site actuators at the rotors whose
gear applies thrust along the rotor axis and the yaw moment c_m * direction about it. Each actuator's
activation is the motor state u. MuJoCo has no asymmetric lag and no quadratic gain built in, so two
user callbacks supply them: u' = (u_sp - u) / T (T_rise up, T_fall down) and gain = c1 + c2 u with an
affine bias c0, which together give the thrust c0 + c1 u + c2 u^2.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import mujoco
import numpy as np

from sim.quadrotor.params import GRAVITY, QuadrotorParams


def make_mjcf(params: QuadrotorParams, dt: float = 0.01) -> str:
    """MJCF text of ``params`` (validated first)."""
    p = params.validate()
    jx, jy, jz = p.inertia
    c0, c1, c2 = p.thrust_coefficients
    size = p.arm_length / 4
    sites, actuators = [], []
    for i, ((x, y, z), direction) in enumerate(zip(p.rotor_positions, p.yaw_directions, strict=True)):
        yaw = p.yaw_moment_constant * direction
        sites.append(f'<site name="rotor{i}" pos="{x!r} {y!r} {z!r}" size="{size / 2!r}"/>')
        actuators.append(
            f'<general name="motor{i}" site="rotor{i}" gear="0 0 1 0 0 {yaw!r}" '
            f'dyntype="user" gaintype="user" biastype="affine" '
            f'dynprm="{p.motor_time_constant_rise!r} {p.motor_time_constant_fall!r}" '
            f'gainprm="{c1!r} {c2!r}" biasprm="{c0!r} 0 0" ctrlrange="0 1" ctrllimited="true" '
            f'actlimited="true" actrange="0 1"/>'
        )
    return f"""<mujoco model="quadrotor-{p.name}">
  <option timestep="{dt!r}" integrator="RK4" gravity="0 0 {-GRAVITY!r}"/>
  <worldbody>
    <body name="body">
      <freejoint name="root"/>
      <inertial pos="0 0 0" mass="{p.mass!r}" diaginertia="{jx!r} {jy!r} {jz!r}"/>
      <geom type="box" size="{size!r} {size!r} {size / 4!r}" contype="0" conaffinity="0" mass="0"/>
      {chr(10).join('      ' + s for s in sites).strip()}
    </body>
  </worldbody>
  <actuator>
    {chr(10).join('    ' + a for a in actuators).strip()}
  </actuator>
</mujoco>
"""


def _motor_lag(m: mujoco.MjModel, d: mujoco.MjData, i: int) -> float:
    u, setpoint = d.act[i], d.ctrl[i]
    tau = m.actuator_dynprm[i, 0] if setpoint >= u else m.actuator_dynprm[i, 1]
    return (setpoint - u) / tau


def _thrust_gain(m: mujoco.MjModel, d: mujoco.MjData, i: int) -> float:
    return m.actuator_gainprm[i, 0] + m.actuator_gainprm[i, 1] * d.act[i]


@contextlib.contextmanager
def quadrotor_callbacks() -> Iterator[None]:
    """Install the motor callbacks for the duration of a rollout (MuJoCo's callbacks are global)."""
    mujoco.set_mjcb_act_dyn(_motor_lag)
    mujoco.set_mjcb_act_gain(_thrust_gain)
    try:
        yield
    finally:
        mujoco.set_mjcb_act_dyn(None)
        mujoco.set_mjcb_act_gain(None)


class MujocoQuadrotor:
    """One quadrotor stepped by MuJoCo, state in the torch model's 17-value layout (numpy only)."""

    def __init__(self, params: QuadrotorParams, state: np.ndarray,
                 external_force: np.ndarray | None = None, dt: float = 0.01):
        self.model = mujoco.MjModel.from_xml_string(make_mjcf(params, dt))
        self.data = mujoco.MjData(self.model)
        self.data.qpos[:] = state[0:7]
        self.data.qvel[0:3] = state[7:10]
        self.data.qvel[3:6] = state[10:13]  # free-joint angular velocity is in the body frame, as ours
        self.data.act[:] = state[13:17]
        if external_force is not None:
            self.data.xfrc_applied[self.model.body("body").id, 0:3] = external_force

    @property
    def state(self) -> np.ndarray:
        d = self.data
        return np.concatenate((d.qpos, d.qvel[0:3], d.qvel[3:6], d.act))

    def step(self, motor_setpoint: np.ndarray) -> np.ndarray:
        """One step under motor setpoints u in [0, 1] (FR, BR, BL, FL); returns the new state."""
        self.data.ctrl[:] = motor_setpoint
        with quadrotor_callbacks():
            mujoco.mj_step(self.model, self.data)
        return self.state


def hover_state_np(params: QuadrotorParams, position: np.ndarray) -> np.ndarray:
    """At rest at ``position``, level, motors at the hover throttle (17 values)."""
    state = np.zeros(17)
    state[0:3] = position
    state[3] = 1.0
    state[13:17] = params.hover_throttle()
    return state


def rollout(params: QuadrotorParams, state: np.ndarray, motor_setpoints: np.ndarray,
            external_force: np.ndarray | None = None, dt: float = 0.01) -> np.ndarray:
    """Open-loop MuJoCo rollout from ``state`` (17 values, as in dynamics.py) under setpoints [T, 4].

    Returns the states [T + 1, 17] in the torch model's layout.
    """
    vehicle = MujocoQuadrotor(params, state, external_force, dt)
    out = [np.asarray(state, dtype=np.float64).copy()]
    out += [vehicle.step(setpoint) for setpoint in motor_setpoints]
    return np.stack(out)


def torch_rollout(params: QuadrotorParams, state: np.ndarray, motor_setpoints: np.ndarray,
                  external_force: np.ndarray, dt: float = 0.01) -> np.ndarray:
    """The same open-loop rollout with the batched torch dynamics, in float64: states [T + 1, 17]."""
    import torch

    from sim.quadrotor.batched import BatchedParams
    from sim.quadrotor.dynamics import rk4_step

    bp = BatchedParams.stack([params], dtype=torch.float64)
    s = torch.tensor(state, dtype=torch.float64)[None]
    force = torch.tensor(external_force, dtype=torch.float64)[None]
    out = [np.asarray(state, dtype=np.float64)]
    for sp in motor_setpoints:
        s = rk4_step(s, torch.tensor(sp, dtype=torch.float64)[None], bp, force, dt)
        out.append(s[0].numpy())
    return np.stack(out)


def agreement_scenario(params: QuadrotorParams, seconds: float = 2.0, dt: float = 0.01
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A tilted, moving, spinning start and different sinusoids per motor around hover, so thrust,
    roll, pitch and yaw all vary, rising and falling; a constant side force. (state, setpoints, force)."""
    hover = params.hover_throttle()
    axis = np.array([1.0, 2.0, 0.5]) / np.linalg.norm([1.0, 2.0, 0.5])
    state = np.zeros(17)
    state[3:7] = [np.cos(0.1), *(np.sin(0.1) * axis)]
    state[7:10] = [0.3, -0.2, 0.1]
    state[10:13] = [0.5, -0.3, 0.2]
    state[13:17] = hover
    t = np.arange(round(seconds / dt)) * dt
    wave = np.sin(2 * np.pi * np.outer(t, [1.0, 1.3, 0.7, 1.1]) + np.arange(4))
    setpoints = np.clip(hover + 0.05 * wave, 0, 1)
    force = np.array([0.01, -0.02, 0.0]) * params.mass
    return state, setpoints, force


def agreement(params: QuadrotorParams, seconds: float = 2.0) -> dict[str, float]:
    """Largest torch-vs-MuJoCo differences over :func:`agreement_scenario`, per state block."""
    state, setpoints, force = agreement_scenario(params, seconds)
    ours = torch_rollout(params, state, setpoints, force)
    theirs = rollout(params, state, setpoints, force)
    blocks = {"position_m": slice(0, 3), "quaternion": slice(3, 7), "velocity_m_s": slice(7, 10),
              "angular_velocity_rad_s": slice(10, 13), "motor_state": slice(13, 17)}
    out = {name: float(np.abs(ours[:, s] - theirs[:, s]).max()) for name, s in blocks.items()}
    out["excursion_m"] = float(np.abs(ours[-1, 0:3] - ours[0, 0:3]).max())
    return out

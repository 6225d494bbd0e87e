"""The control loop: setpoint -> CBF safety filter -> policy -> motor command.

The filter (:class:`robo.safety.setpoint.SetpointFilter`) treats the policy as a position/velocity
tracker with equivalent PD gains kp, kv: it filters the acceleration that tracker would command and
shifts the position setpoint so the tracker commands the filtered one. On a filter fault the setpoint
becomes "hold here, zero velocity" (brake); the fault is reported with the output.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from robo.runtime.observation import Setpoint, VehicleState, build_observation
from robo.runtime.policy import OnnxPolicy
from robo.safety.setpoint import SetpointFilter

OFF, PASS, MODIFIED, FAULT = "off", "pass", "modified", "fault"


def action_to_motors(action: np.ndarray) -> np.ndarray:
    """Action in [-1, 1] -> motor setpoint in [0, 1] (the card's mapping u = (a + 1) / 2)."""
    return (np.clip(action, -1.0, 1.0) + 1.0) * 0.5


@dataclass(frozen=True)
class ControlOutput:
    action: np.ndarray        # policy action, clamped, FR BR BL FL
    motors: np.ndarray        # motor setpoints in [0, 1]
    setpoint: Setpoint        # what the policy tracked (after the filter)
    filter_status: str        # off, pass, modified or fault
    filter_reason: str        # why the filter faulted ("" otherwise)
    h_min: float              # smallest barrier value (nan with the filter off)
    advanced: bool            # this call was a control tick of the policy


class Controller:
    """One policy, optionally behind a setpoint safety filter. ``step`` is one control cycle."""

    def __init__(self, policy: OnnxPolicy, setpoint_filter: SetpointFilter | None = None) -> None:
        if policy.obs_size != 22 or policy.act_size != 4:
            raise ValueError(f"policy {policy.path}: takes {policy.obs_size} observations and gives "
                             f"{policy.act_size} actions; the quadrotor controller needs 22 and 4")
        self.policy = policy
        self.filter = setpoint_filter

    def reset(self, prev_action: np.ndarray | None = None) -> None:
        self.policy.reset(prev_action)

    def filter_setpoint(self, state: VehicleState, setpoint: Setpoint) -> tuple[Setpoint, str, str, float]:
        if self.filter is None:
            return setpoint, OFF, "", float("nan")
        res = self.filter(state.position, state.velocity, setpoint.position, setpoint.velocity)
        out = Setpoint(res.setpoint.position, res.setpoint.velocity)
        return out, res.filter.status, res.filter.reason, float(res.filter.h_min)

    def step(self, state: VehicleState, setpoint: Setpoint, t: float | None = None,
             *, use_filter: bool = True) -> ControlOutput:
        """One cycle. Raises ValueError on a non-finite state or setpoint (the caller's watchdog acts)."""
        if not state.finite():
            raise ValueError("non-finite vehicle state")
        if not setpoint.finite():
            raise ValueError("non-finite setpoint")
        if use_filter:
            tracked, status, reason, h_min = self.filter_setpoint(state, setpoint)
        else:
            tracked, status, reason, h_min = setpoint, OFF, "", float("nan")
        obs = build_observation(state, tracked, self.policy.last_action)
        step = self.policy.step(obs, t)
        return ControlOutput(step.action, action_to_motors(step.action), tracked, status, reason, h_min,
                             step.advanced)

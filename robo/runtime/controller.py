"""The control loop: setpoint -> CBF safety filter -> policy -> plant command, for any task with an
adapter (:mod:`robo.runtime.adapter`, chosen by the card's task).

The filter (:class:`robo.safety.setpoint.SetpointFilter`) treats the policy as a position/velocity
tracker with equivalent PD gains kp, kv: it filters the acceleration that tracker would command and
shifts the position setpoint so the tracker commands the filtered one. On a filter fault the setpoint
becomes "hold here, zero velocity" (brake); the fault is reported with the output.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from robo.runtime.adapter import TaskAdapter, adapter_for
from robo.runtime.policy import OnnxPolicy
from robo.safety.setpoint import Setpoint, SetpointFilter

OFF, PASS, MODIFIED, FAULT = "off", "pass", "modified", "fault"


@dataclass(frozen=True)
class ControlOutput:
    action: np.ndarray        # policy action, clamped (the card's action layout)
    command: np.ndarray       # what the plant receives (the adapter's mapping, e.g. motors in [0, 1])
    setpoint: Setpoint | None  # what the policy tracked (after the filter); None without one
    filter_status: str        # off, pass, modified or fault
    filter_reason: str        # why the filter faulted ("" otherwise)
    h_min: float              # smallest barrier value (nan with the filter off)
    advanced: bool            # this call was a control tick of the policy


class Controller:
    """One policy, optionally behind a setpoint safety filter. ``step`` is one control cycle."""

    def __init__(self, policy: OnnxPolicy, setpoint_filter: SetpointFilter | None = None,
                 adapter: TaskAdapter | None = None) -> None:
        self.adapter = adapter or adapter_for(policy.card)  # refuses a task without an adapter
        self.policy = policy
        self.filter = setpoint_filter

    def reset(self, prev_action: np.ndarray | None = None) -> None:
        self.policy.reset(prev_action)

    def filter_setpoint(self, state: Any, setpoint: Setpoint) -> tuple[Setpoint, str, str, float]:
        if self.filter is None:
            return setpoint, OFF, "", float("nan")
        res = self.filter(state.position, state.velocity, setpoint.position, setpoint.velocity)
        return res.setpoint, res.filter.status, res.filter.reason, float(res.filter.h_min)

    def step(self, state: Any, setpoint: Setpoint | None, t: float | None = None,
             *, use_filter: bool = True) -> ControlOutput:
        """One cycle (``setpoint`` None: a task without one, e.g. grasping). Raises ValueError on a
        non-finite state or setpoint (the caller's watchdog acts)."""
        if not self.adapter.state_finite(state):
            raise ValueError("non-finite vehicle state")
        if setpoint is None:
            tracked, status, reason, h_min = None, OFF, "", float("nan")
        elif not (np.all(np.isfinite(setpoint.position)) and np.all(np.isfinite(setpoint.velocity))):
            raise ValueError("non-finite setpoint")
        elif use_filter:
            tracked, status, reason, h_min = self.filter_setpoint(state, setpoint)
        else:
            tracked, status, reason, h_min = setpoint, OFF, "", float("nan")
        obs = self.adapter.observe(state, tracked, self.policy.last_action)
        step = self.policy.step(obs, t)
        return ControlOutput(step.action, self.adapter.command(step.action), tracked, status, reason, h_min,
                             step.advanced)

"""The policy node's hand loop (task ``gpayn``): the hand's joint states, wrist and object poses and touch
flags in, the policy's action (actuator target deltas) out.

One control step's state arrives as one message per role, all stamped alike (``hand_sim`` stamps them
with its step's time): the policy acts when every role's newest message carries the same stamp, and
answers with that stamp (for lockstep). A state fault (stale or non-finite state, a stall of this
node) makes the command zeros: every actuator target held, so a grasped object stays grasped; after
``fault_timeout`` of it the policy stays off (targets held) until the node is restarted, and a shorter
fault ends after ``reentry_messages`` fresh states with the policy's recurrent state reset.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
from builtin_interfaces.msg import Time
from std_msgs.msg import Float32MultiArray, Header

from robo.ros.common import Param, declare
from robo.ros.convert import (
    HAND_COMMAND_LABEL,
    answered_stamp,
    joint_positions,
    pose_position,
    pose_quaternion,
    stamped_array,
)
from robo.runtime import Controller, HandState, Watchdog, WatchdogConfig
from robo.runtime.hand import quaternion_to_ypr, role_field, safe_command
from robo.runtime.watchdog import DESCEND, MOTORS_OFF, OK, Verdict

if TYPE_CHECKING:
    from robo.ros.policy_node import PolicyNode

HAND_PARAMS = [
    Param("fault_timeout", 1.0, "s of a state fault (targets held) after which the policy stays off, "
          "targets held, until the node restarts", 0.01, 3600.0),
]


def _stamp(msg: Any) -> tuple[int, int] | None:
    if isinstance(msg, Float32MultiArray):
        return answered_stamp(msg)
    return msg.header.stamp.sec, msg.header.stamp.nanosec


# Role -> the observation field's values from its message.
PARSE: dict[str, Callable[[Any], np.ndarray]] = {
    "joints": joint_positions,
    "wrist": lambda m: np.concatenate([pose_position(m), quaternion_to_ypr(pose_quaternion(m))]),
    "object": pose_position,
    "touch": lambda m: np.asarray(m.data, dtype=np.float64),
}


class HandLoop:
    def __init__(self, node: PolicyNode, common: dict[str, Any]) -> None:
        self.node = node
        v = declare(node, HAND_PARAMS, self._apply)
        self.controller = Controller(node.policy, adapter=node.adapter)
        self.controller.reset()
        self.watchdog = Watchdog(WatchdogConfig(
            state_timeout=common["state_timeout"], descent_timeout=v["fault_timeout"],
            reentry_messages=common["reentry_messages"]))
        self.roles = [r for r in node.adapter.topics if r != "command"]
        self.parts: dict[str, tuple[np.ndarray, tuple[int, int]]] = {}
        self.state: HandState | None = None
        self.state_stamp = -math.inf
        self.handlers = {role: (lambda msg, role=role: self._on_part(role, msg)) for role in self.roles}

    def describe(self) -> str:
        return f"state from {', '.join(self.roles)}"

    def _apply(self, changes: dict[str, Any]) -> None:
        if "fault_timeout" in changes:
            self.watchdog.cfg.descent_timeout = changes["fault_timeout"]

    def _on_part(self, role: str, msg: Any) -> None:
        stamp = _stamp(msg)
        if stamp is None:
            self.node.get_logger().error(f"{role} message without a stamp ignored", throttle_duration_sec=1.0)
            return
        self.parts[role] = (PARSE[role](msg), stamp)
        if len(self.parts) < len(self.roles) or any(p[1] != stamp for p in self.parts.values()):
            return  # the rest of this step is still on its way
        self.state = HandState({role_field(r): p[0] for r, p in self.parts.items()})
        self.state_stamp = stamp[0] + stamp[1] * 1e-9
        # Freshness on arrival (this node's clock), as for odometry.
        self.watchdog.odometry(self.node.now(), self.state)
        self.node.control(Header(stamp=Time(sec=stamp[0], nanosec=stamp[1])))

    def check(self, now: float) -> Verdict:
        v = self.watchdog.check(now, 0.0)  # no setpoint: never stale
        if v.mode in (DESCEND, MOTORS_OFF):
            # The quadrotor's words for what is, for a hand, holding every target.
            cause = v.reason.split("; ")[0]
            held = "policy off until restart, targets held" if v.mode == MOTORS_OFF else "targets held"
            return dataclasses.replace(v, reason=f"{cause}; {held}")
        return v

    def reset(self) -> None:
        self.controller.reset()

    def has_state(self) -> bool:
        return self.state is not None

    def command(self, v: Verdict) -> np.ndarray:
        if v.mode != OK:
            return safe_command(self.node.policy.act_size)
        return self.controller.step(self.state, None, self.state_stamp).command

    @staticmethod
    def command_msg(command: np.ndarray, stamp: Any) -> Float32MultiArray:
        return stamped_array(command, HAND_COMMAND_LABEL, stamp)

    def diagnostic_values(self, now: float) -> dict[str, Any]:
        return {"state_age_s": f"{now - self.state_stamp:.4f}" if self.state is not None else "inf"}


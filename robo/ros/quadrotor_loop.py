"""The policy node's quadrotor loop: odometry + setpoints in, motor setpoints out, with the safety filter's
status and the quadrotor's failsafe (hold position; a level descent; motors off).

It computes a command on every odometry message (``trigger: odometry``), or on every filtered setpoint
(``trigger: setpoint``: the safety_filter node answers each odometry message with a setpoint stamped
like it, so the chain odometry -> filter -> policy -> motors has no extra wait). With
``use_filter_status`` it watches ``safety/status`` (diagnostic_msgs/DiagnosticStatus): a fault -> hold.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
from diagnostic_msgs.msg import DiagnosticStatus
from geometry_msgs.msg import PoseStamped, TwistStamped
from nav_msgs.msg import Odometry
from std_msgs.msg import Float32MultiArray, Header

from robo.ros.common import CONTROL_QOS, ERROR, Param, declare, one_of
from robo.ros.convert import motor_msg, odometry_to_state, pose_position, stamp_seconds, twist_velocity
from robo.runtime import Controller, Setpoint, Watchdog, WatchdogConfig
from robo.runtime.quadrotor import VehicleState
from robo.runtime.watchdog import DESCEND, HOLD, MOTORS_OFF, Verdict

if TYPE_CHECKING:
    from robo.ros.policy_node import PolicyNode

QUADROTOR_PARAMS = [
    Param("trigger", "odometry", "compute on each 'odometry' message, or on each filtered 'setpoint'",
          read_only=True, check=one_of("odometry", "setpoint")),
    Param("setpoint_timeout", 0.5, "s: an older setpoint -> hold position", 0.001, 60.0),
    Param("descent_timeout", 1.0, "s of descend (open loop) before motors off", 0.01, 60.0),
    Param("hold_timeout", 10.0, "s of hold before motors off", 0.01, 3600.0),
    Param("descent_throttle", 0.5, "motor setpoint in [0, 1] of the open-loop level descent: BELOW the "
          "vehicle's hover throttle, so it sinks (x500: hover 0.555, 0.5 sinks at 1.8 m/s^2)", 0.0, 1.0),
    Param("max_tilt_deg", 60.0, "tilt, dead-reckoned from the last good attitude and its roll/pitch rate, "
          "up to which the descent throttle lifts (else motors at 0)", 1.0, 89.0),
    Param("initial_throttle", 0.555, "motor setpoint in [0, 1] the policy sees as its previous action "
          "before its first command", 0.0, 1.0, read_only=True),
    Param("use_filter_status", False, "watch safety/status from the safety_filter node: a fault -> hold",
          read_only=True),
]


class QuadrotorLoop:
    def __init__(self, node: PolicyNode, common: dict[str, Any]) -> None:
        self.node = node
        v = declare(node, QUADROTOR_PARAMS, self._apply)
        self.controller = Controller(node.policy, adapter=node.adapter)
        self.initial_action = np.full(4, 2 * v["initial_throttle"] - 1)
        self.controller.reset(self.initial_action)
        self.watchdog = Watchdog(WatchdogConfig(
            state_timeout=common["state_timeout"], setpoint_timeout=v["setpoint_timeout"],
            descent_timeout=v["descent_timeout"], hold_timeout=v["hold_timeout"],
            reentry_messages=common["reentry_messages"], max_tilt_deg=v["max_tilt_deg"]))
        self.descent_throttle = v["descent_throttle"]
        self.trigger = v["trigger"]
        self.use_filter_status = v["use_filter_status"]
        self.state: VehicleState | None = None
        self.state_header: Header | None = None
        self.state_stamp = -math.inf
        self.position_sp: np.ndarray | None = None
        self.velocity_sp = np.zeros(3)
        self.setpoint_stamp = -math.inf
        self.twist_stamp = -math.inf
        self.filter_status: DiagnosticStatus | None = None
        self.hold: np.ndarray | None = None
        self.rejected = 0
        self.nonfinite_states = 0  # counted on arrival: tells a NaN the node saw from one superseded in DDS
        self.handlers: dict[str, Callable[[Any], None]] = {
            "state": self._on_odom, "setpoint_pose": self._on_pose, "setpoint_twist": self._on_twist}
        if self.use_filter_status:
            node.create_subscription(DiagnosticStatus, "safety/status", self._on_filter_status, CONTROL_QOS,
                                     event_callbacks=node.qos.sub("safety/status"))

    def describe(self) -> str:
        return f"trigger {self.trigger}"

    def _apply(self, changes: dict[str, Any]) -> None:
        cfg = self.watchdog.cfg
        for name in ("setpoint_timeout", "descent_timeout", "hold_timeout", "max_tilt_deg"):
            if name in changes:
                setattr(cfg, name, changes[name])
        self.descent_throttle = changes.get("descent_throttle", self.descent_throttle)

    # ----- inputs -------------------------------------------------------------------------------
    def _on_odom(self, msg: Odometry) -> None:
        node = self.node
        self.state = odometry_to_state(msg)
        self.state_header = msg.header
        self.state_stamp = stamp_seconds(msg.header.stamp) or -math.inf  # an unset stamp is never fresh
        self.nonfinite_states += not self.state.finite()
        # Freshness is judged on arrival (this node's clock): a stamp from another clock, or none,
        # must not make a live stream look stale or a dead one fresh.
        self.watchdog.odometry(node.now(), self.state)
        # With trigger=setpoint the filter's setpoints drive the loop; while they do not arrive
        # (stale) or the state is bad (the filter answers nothing useful), odometry does; so does odometry
        # whose filtered setpoint (stamped like it) came first.
        setpoints_flowing = node.now() - self.setpoint_stamp <= 3 * node.policy.period
        if (self.trigger == "odometry" or not setpoints_flowing or not self.state.finite()
                or self.setpoint_stamp == self.state_stamp):
            node.control(msg.header)

    def _on_pose(self, msg: PoseStamped) -> None:
        p = pose_position(msg)
        if not np.all(np.isfinite(p)):
            self.rejected += 1
            self.node.get_logger().error("non-finite setpoint ignored", throttle_duration_sec=1.0)
            return
        self.position_sp = p
        self.setpoint_stamp = stamp_seconds(msg.header.stamp) or -math.inf
        if self.trigger == "setpoint" and self.state_header is not None:
            self.node.control(self.state_header)

    def _on_twist(self, msg: TwistStamped) -> None:
        v = twist_velocity(msg)
        if np.all(np.isfinite(v)):
            self.velocity_sp = v
            self.twist_stamp = stamp_seconds(msg.header.stamp)

    def _on_filter_status(self, msg: DiagnosticStatus) -> None:
        self.filter_status = msg

    # ----- control ------------------------------------------------------------------------------
    def check(self, now: float) -> Verdict:
        fault = ""
        if self.use_filter_status and self.filter_status is not None and self.filter_status.level >= ERROR:
            fault = self.filter_status.message
        return self.watchdog.check(now, now - self.setpoint_stamp, fault)

    def reset(self) -> None:
        self.controller.reset(self.initial_action)

    def has_state(self) -> bool:
        return self.state is not None

    def command(self, v: Verdict) -> np.ndarray:
        if v.mode in (DESCEND, MOTORS_OFF):
            return np.full(4, self.descent_throttle if v.descent else 0.0)
        if v.mode == HOLD:
            if self.hold is None:
                self.hold = self.state.position.copy()  # brake and hover where the fault began
            setpoint = Setpoint(self.hold, np.zeros(3))
        else:
            self.hold = None
            fresh_twist = abs(self.twist_stamp - self.setpoint_stamp) < 0.5
            setpoint = Setpoint(self.position_sp, self.velocity_sp if fresh_twist else np.zeros(3))
        return self.controller.step(self.state, setpoint, self.state_stamp).command

    @staticmethod
    def command_msg(motors: np.ndarray, stamp: Any) -> Float32MultiArray:
        return motor_msg(motors, stamp)

    def diagnostic_values(self, now: float) -> dict[str, Any]:
        return {"odometry_age_s": f"{now - self.state_stamp:.4f}",
                "setpoint_age_s": f"{now - self.setpoint_stamp:.4f}",
                "rejected_setpoints": self.rejected, "nonfinite_states": self.nonfinite_states}

"""``policy``: the ONNX policy at the control rate, behind a watchdog.

Subscribes ``odom`` (nav_msgs/Odometry), ``setpoint/pose`` + ``setpoint/twist`` (geometry_msgs
PoseStamped/TwistStamped, world frame) and, with ``use_filter_status``, ``safety/status``
(diagnostic_msgs/DiagnosticStatus from the safety_filter node). Publishes ``motor_command``
(std_msgs/Float32MultiArray: FR, BR, BL, FL motor setpoints in [0, 1], 0 = stopped) and
``/diagnostics``.

It computes a command on every odometry message (``trigger: odometry``), or on every filtered setpoint
(``trigger: setpoint``: the safety_filter node answers each odometry message with a setpoint stamped
like it, so the chain odometry -> filter -> policy -> motors has no extra wait); each such command
carries the stamp of the odometry it answers (:func:`robo.ros.convert.motor_msg`, for lockstep). A
timer at the policy's control rate runs the watchdog (:mod:`robo.runtime.watchdog`) whether or not
anything arrives, and publishes a command in every period that had none: the failsafe command within
one period of a detected fault (stale or non-finite odometry, a stall of this node, a stale setpoint,
a filter fault). The recurrent state still advances at the card's rate, and is reset on re-entry.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from geometry_msgs.msg import PoseStamped, TwistStamped
from nav_msgs.msg import Odometry
from rclpy.node import Node
from std_msgs.msg import Float32MultiArray, Header

from robo.ros.common import (
    CONTROL_QOS,
    DIAGNOSTICS_QOS,
    ERROR,
    OK,
    WARN,
    Param,
    QosWatch,
    declare,
    diagnostic,
    main_for,
    one_of,
)
from robo.ros.convert import motor_msg, odometry_to_state, pose_position, stamp_seconds, twist_velocity
from robo.runtime import DEFAULT_POLICY, Controller, OnnxPolicy, Setpoint, Watchdog, WatchdogConfig
from robo.runtime.quadrotor import VehicleState
from robo.runtime.watchdog import DESCEND, HOLD, MOTORS_OFF, WAITING, Verdict
from robo.runtime.watchdog import OK as FLYING

PARAMS = [
    Param("policy", "", "policy.onnx with its policy.json card beside it; '' = the committed default "
          "(robo/policies/raptor_default)", read_only=True),
    Param("trigger", "odometry", "compute on each 'odometry' message, or on each filtered 'setpoint'",
          read_only=True, check=one_of("odometry", "setpoint")),
    Param("state_timeout", 0.1, "s: older odometry (or a gap of this node's loop) -> descend", 0.001, 10.0),
    Param("setpoint_timeout", 0.5, "s: an older setpoint -> hold position", 0.001, 60.0),
    Param("descent_timeout", 1.0, "s of descend (open loop) before motors off", 0.01, 60.0),
    Param("hold_timeout", 10.0, "s of hold before motors off", 0.01, 3600.0),
    Param("descent_throttle", 0.5, "motor setpoint in [0, 1] of the open-loop level descent: BELOW the "
          "vehicle's hover throttle, so it sinks (x500: hover 0.555, 0.5 sinks at 1.8 m/s^2)", 0.0, 1.0),
    Param("reentry_messages", 5, "fresh consecutive odometry messages before the policy flies again after "
          "a state fault (its recurrent state is reset)", 1, 1000),
    Param("max_tilt_deg", 60.0, "tilt, dead-reckoned from the last good attitude and its roll/pitch rate, "
          "up to which the descent throttle lifts (else motors at 0)", 1.0, 89.0),
    Param("initial_throttle", 0.555, "motor setpoint in [0, 1] the policy sees as its previous action "
          "before its first command", 0.0, 1.0, read_only=True),
    Param("diagnostics_rate_hz", 2.0, "diagnostics messages per second (and on every mode change)",
          0.1, 100.0, read_only=True),
    Param("use_filter_status", False, "watch safety/status from the safety_filter node: a fault -> hold",
          read_only=True),
    Param("echo_odometry_stamp", False, "after each motor command publish motor_command/stamp "
          "(std_msgs/Header: the stamp of the odometry it was computed from), for latency measurements",
          read_only=True),
]
LEVEL = {WAITING: WARN, FLYING: OK, HOLD: WARN, DESCEND: ERROR, MOTORS_OFF: ERROR}


class PolicyNode(Node):
    def __init__(self) -> None:
        super().__init__("policy")
        v = declare(self, PARAMS, self._apply)
        self.policy = OnnxPolicy(v["policy"] or DEFAULT_POLICY)  # refuses a wrong model or card
        self.controller = Controller(self.policy)
        self.initial_action = np.full(4, 2 * v["initial_throttle"] - 1)
        self.controller.reset(self.initial_action)
        self.watchdog = Watchdog(WatchdogConfig(
            state_timeout=v["state_timeout"], setpoint_timeout=v["setpoint_timeout"],
            descent_timeout=v["descent_timeout"], hold_timeout=v["hold_timeout"],
            reentry_messages=v["reentry_messages"], max_tilt_deg=v["max_tilt_deg"]))
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
        self.mode, self.reason = WAITING, "waiting for the first odometry message"
        self.hold: np.ndarray | None = None
        self.last_command = -math.inf  # node-clock time of the last motor command
        self.answered: tuple = (None, WAITING, np.zeros(4))  # odometry stamp, mode, motors of the last answer
        self.commands = 0
        self.rejected = 0
        self.qos = QosWatch(self)

        self.motor_pub = self.create_publisher(Float32MultiArray, "motor_command", CONTROL_QOS,
                                               event_callbacks=self.qos.pub("motor_command"))
        self.diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", DIAGNOSTICS_QOS)
        self.stamp_pub = (self.create_publisher(Header, "motor_command/stamp", CONTROL_QOS)
                          if v["echo_odometry_stamp"] else None)
        for msg_type, topic, cb in ((Odometry, "odom", self._on_odom),
                                    (PoseStamped, "setpoint/pose", self._on_pose),
                                    (TwistStamped, "setpoint/twist", self._on_twist)):
            self.create_subscription(msg_type, topic, cb, CONTROL_QOS, event_callbacks=self.qos.sub(topic))
        if self.use_filter_status:
            self.create_subscription(DiagnosticStatus, "safety/status", self._on_filter_status, CONTROL_QOS,
                                     event_callbacks=self.qos.sub("safety/status"))
        self.create_timer(self.policy.period, self._tick)
        self.create_timer(1.0 / v["diagnostics_rate_hz"], self._publish_diagnostics)
        self.get_logger().info(
            f"policy {self.policy.path} sha256 {self.policy.sha256[:16]}... at {self.policy.rate_hz:g} Hz, "
            f"inference {self.policy.inference_seconds * 1e6:.0f} us, trigger {self.trigger}")

    # ----- parameters ---------------------------------------------------------------------------
    def _apply(self, changes: dict[str, Any]) -> None:
        cfg = self.watchdog.cfg
        for name in ("state_timeout", "setpoint_timeout", "descent_timeout", "hold_timeout", "max_tilt_deg",
                     "reentry_messages"):
            if name in changes:
                setattr(cfg, name, changes[name])
        self.descent_throttle = changes.get("descent_throttle", self.descent_throttle)

    # ----- inputs -------------------------------------------------------------------------------
    def _now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _on_odom(self, msg: Odometry) -> None:
        self.state = odometry_to_state(msg)
        self.state_header = msg.header
        self.state_stamp = stamp_seconds(msg.header.stamp) or -math.inf  # an unset stamp is never fresh
        # Freshness is judged on arrival (this node's clock): a stamp from another clock, or none,
        # must not make a live stream look stale or a dead one fresh.
        self.watchdog.odometry(self._now(), self.state)
        # With trigger=setpoint the filter's setpoints drive the loop; while they do not arrive
        # (stale) or the state is bad (the filter answers nothing useful), odometry does; so does odometry
        # whose filtered setpoint (stamped like it) came first.
        setpoints_flowing = self._now() - self.setpoint_stamp <= 3 * self.policy.period
        if (self.trigger == "odometry" or not setpoints_flowing or not self.state.finite()
                or self.setpoint_stamp == self.state_stamp):
            self._control(msg.header)

    def _on_pose(self, msg: PoseStamped) -> None:
        p = pose_position(msg)
        if not np.all(np.isfinite(p)):
            self.rejected += 1
            self.get_logger().error("non-finite setpoint ignored", throttle_duration_sec=1.0)
            return
        self.position_sp = p
        self.setpoint_stamp = stamp_seconds(msg.header.stamp) or -math.inf
        if self.trigger == "setpoint" and self.state_header is not None:
            self._control(self.state_header)

    def _on_twist(self, msg: TwistStamped) -> None:
        v = twist_velocity(msg)
        if np.all(np.isfinite(v)):
            self.velocity_sp = v
            self.twist_stamp = stamp_seconds(msg.header.stamp)

    def _on_filter_status(self, msg: DiagnosticStatus) -> None:
        self.filter_status = msg

    # ----- control ------------------------------------------------------------------------------
    def _verdict(self, now: float) -> Verdict:
        fault = ""
        if self.use_filter_status and self.filter_status is not None and self.filter_status.level >= ERROR:
            fault = self.filter_status.message
        v = self.watchdog.check(now, now - self.setpoint_stamp, fault)
        if v.reset_policy:
            self.controller.reset(self.initial_action)  # the recurrent state missed the stall
        if v.mode != self.mode:
            text = f"watchdog: {self.mode} -> {v.mode}" + (f" ({v.reason})" if v.reason else "")
            # rclpy wants one severity per call site.
            if v.mode == FLYING:
                self.get_logger().info(text)
            else:
                self.get_logger().warning(text)
            self.mode, self.reason = v.mode, v.reason
            self._publish_diagnostics()
        self.reason = v.reason
        return v

    def _control(self, answers: Header | None) -> None:
        """One command: the policy's, or the failsafe's; ``answers``: the odometry it is computed from."""
        now = self._now()
        v = self._verdict(now)
        if v.mode == WAITING or self.state is None:
            return
        stamp = None if answers is None else (answers.stamp.sec, answers.stamp.nanosec)
        if stamp is not None and (stamp, v.mode) == self.answered[:2]:
            # The same odometry again (a lockstep simulator repeats what it has no answer to): the same
            # answer, as computing again from a policy state that has moved on would give another.
            motors = self.answered[2]
        elif v.mode in (DESCEND, MOTORS_OFF):
            motors = np.full(4, self.descent_throttle if v.descent else 0.0)
        else:
            if v.mode == HOLD:
                if self.hold is None:
                    self.hold = self.state.position.copy()  # brake and hover where the fault began
                setpoint = Setpoint(self.hold, np.zeros(3))
            else:
                self.hold = None
                fresh_twist = abs(self.twist_stamp - self.setpoint_stamp) < 0.5
                setpoint = Setpoint(self.position_sp, self.velocity_sp if fresh_twist else np.zeros(3))
            motors = self.controller.step(self.state, setpoint, self.state_stamp).command
        if stamp is not None:
            self.answered = (stamp, v.mode, motors)
        self.motor_pub.publish(motor_msg(motors, answers.stamp if answers is not None else None))
        self.last_command = now
        self.commands += 1
        if self.stamp_pub is not None and answers is not None:
            self.stamp_pub.publish(answers)

    def _tick(self) -> None:
        # Every control period, whatever arrives: a period without a command (odometry stopped, the
        # simulator died, a fault) gets one here, so the failsafe acts within a period of detection.
        now = self._now()
        if now - self.last_command < 0.9 * self.policy.period:
            self._verdict(now)  # keeps the watchdog's view of this loop's timing current
            return
        self._control(None)

    def _publish_diagnostics(self) -> None:
        now = self._now()
        level, message = LEVEL[self.mode], self.reason or "flying the policy"
        if self.qos.problems:
            level, message = ERROR, "; ".join(self.qos.problems.values())
        self.diag_pub.publish(diagnostic(self, level, message, {
            "mode": self.mode,
            "odometry_age_s": f"{now - self.state_stamp:.4f}",
            "setpoint_age_s": f"{now - self.setpoint_stamp:.4f}",
            "commands": self.commands,
            "rejected_setpoints": self.rejected,
            "policy": self.policy.path,
            "policy_sha256": self.policy.sha256,
            "control_rate_hz": self.policy.rate_hz,
        }))


def main(args: list[str] | None = None) -> int:
    return main_for(PolicyNode, args)


if __name__ == "__main__":
    raise SystemExit(main())

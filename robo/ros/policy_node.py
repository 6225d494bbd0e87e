"""``policy``: any exported policy at its control rate, behind a watchdog. One node for every card.

The card's task chooses the runtime adapter (:func:`robo.runtime.adapter_for`), which names the topics
and message types by role (the card's ``io`` block may rename them): the node subscribes every input
role and publishes the ``command`` role, all with the control-path QoS, plus ``/diagnostics``. What a
task does with its messages and which command is safe is its control loop's business:

* quadrotor (:mod:`robo.ros.quadrotor_loop`): ``odom`` (nav_msgs/Odometry) + ``setpoint/pose`` and
  ``setpoint/twist`` -> ``motor_command`` (std_msgs/Float32MultiArray: FR, BR, BL, FL in [0, 1]);
  safe command: hold position, or a level descent, then motors off.
* hand, task ``gpayn`` (:mod:`robo.ros.hand_loop`): ``hand/joint_states`` (sensor_msgs/JointState),
  ``hand/wrist_pose`` and ``object/pose`` (geometry_msgs/PoseStamped), ``hand/touch``
  (std_msgs/Float32MultiArray) -> ``hand/command`` (std_msgs/Float32MultiArray: the card's action, target
  deltas in [-1, 1]); safe command: zeros, every actuator target held.

Each command answering a state carries that state's stamp (:func:`robo.ros.convert.command_msg`, for a
lockstep simulator). A timer at the policy's control rate runs the watchdog (:mod:`robo.runtime.watchdog`)
whether or not anything arrives, and publishes a command in every period that had none: the safe
command within one period of a detected fault (stale or non-finite state, a stall of this node, and
the task's own faults). The recurrent state still advances at the card's rate, and is reset on re-entry.
"""

from __future__ import annotations

import importlib
import math
from typing import Any

from diagnostic_msgs.msg import DiagnosticArray
from rclpy.node import Node
from std_msgs.msg import Header

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
    set_realtime_priority,
)
from robo.runtime import DEFAULT_POLICY, OnnxPolicy, adapter_for
from robo.runtime.watchdog import DESCEND, HOLD, MOTORS_OFF, WAITING, Verdict
from robo.runtime.watchdog import OK as FLYING

# Parameters of every policy node; each task's loop declares its own (QUADROTOR_PARAMS, HAND_PARAMS).
COMMON_PARAMS = [
    Param("policy", "", "policy.onnx with its policy.json card beside it; '' = the committed default "
          "(robo/policies/raptor_default)", read_only=True),
    Param("state_timeout", 0.1, "s: older state (or a gap of this node's loop) -> the safe command",
          0.001, 10.0),
    Param("reentry_messages", 5, "fresh consecutive states before the policy runs again after a state "
          "fault (its recurrent state is reset)", 1, 1000),
    Param("diagnostics_rate_hz", 2.0, "diagnostics messages per second (and on every mode change)",
          0.1, 100.0, read_only=True),
    Param("realtime_priority", 0, "SCHED_FIFO priority (1-99) for this node's threads, as flight stacks run "
          "their control loop, so busy processes beside it cannot starve it; 0 = the normal scheduler; needs "
          "root or CAP_SYS_NICE", 0, 99, read_only=True),
    Param("echo_odometry_stamp", False, "after each command publish <command topic>/stamp "
          "(std_msgs/Header: the stamp of the state it was computed from), for latency measurements",
          read_only=True),
]
LEVEL = {WAITING: WARN, FLYING: OK, HOLD: WARN, DESCEND: ERROR, MOTORS_OFF: ERROR}


def message_class(type_name: str) -> type:
    """``sensor_msgs/msg/JointState`` -> the rclpy message class."""
    package, kind, name = type_name.split("/")
    return getattr(importlib.import_module(f"{package}.{kind}"), name)


def _loops() -> dict[str, type]:
    from robo.ros.hand_loop import HandLoop
    from robo.ros.quadrotor_loop import QuadrotorLoop

    return {"quadrotor": QuadrotorLoop, "gpayn": HandLoop}


class PolicyNode(Node):
    def __init__(self) -> None:
        super().__init__("policy")
        v = declare(self, COMMON_PARAMS, self._apply)
        if v["realtime_priority"]:
            set_realtime_priority(v["realtime_priority"])
        self.policy = OnnxPolicy(v["policy"] or DEFAULT_POLICY)  # refuses a wrong model or card
        self.adapter = adapter_for(self.policy.card)  # refuses a task without a runtime adapter
        loops = _loops()
        if self.adapter.task not in loops:
            raise ValueError(f"{self.policy.path}: no ROS control loop for task {self.adapter.task!r} "
                             f"(known: {', '.join(loops)})")
        self.mode, self.reason = WAITING, "waiting for the first state"
        self.last_command = -math.inf  # node-clock time of the last command
        self.answered: tuple = (None, WAITING, None)  # state stamp, mode, command of the last answer
        self.commands = 0
        self.qos = QosWatch(self)
        self.loop = loops[self.adapter.task](self, v)

        topic, msg_type = self.adapter.topics["command"]
        self.command_pub = self.create_publisher(message_class(msg_type), topic, CONTROL_QOS,
                                                 event_callbacks=self.qos.pub(topic))
        self.diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", DIAGNOSTICS_QOS)
        self.stamp_pub = (self.create_publisher(Header, f"{topic}/stamp", CONTROL_QOS)
                          if v["echo_odometry_stamp"] else None)
        for role, (topic, msg_type) in self.adapter.topics.items():
            if role != "command":
                self.create_subscription(message_class(msg_type), topic, self.loop.handlers[role],
                                         CONTROL_QOS, event_callbacks=self.qos.sub(topic))
        self.create_timer(self.policy.period, self._tick)
        self.create_timer(1.0 / v["diagnostics_rate_hz"], self._publish_diagnostics)
        self.get_logger().info(
            f"policy {self.policy.path} (task {self.adapter.task}) sha256 {self.policy.sha256[:16]}... at "
            f"{self.policy.rate_hz:g} Hz, inference {self.policy.inference_seconds * 1e6:.0f} us; "
            f"{self.loop.describe()}")

    # ----- parameters ---------------------------------------------------------------------------
    def _apply(self, changes: dict[str, Any]) -> None:
        for name in ("state_timeout", "reentry_messages"):
            if name in changes:
                setattr(self.loop.watchdog.cfg, name, changes[name])

    # ----- control ------------------------------------------------------------------------------
    def now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def verdict(self, now: float) -> Verdict:
        v = self.loop.check(now)
        if v.reset_policy:
            self.loop.reset()  # the recurrent state missed the stall
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

    def control(self, answers: Header | None) -> None:
        """One command: the policy's, or the safe one; ``answers``: the header of the state it is for."""
        now = self.now()
        v = self.verdict(now)
        if v.mode == WAITING or not self.loop.has_state():
            return
        stamp = None if answers is None else (answers.stamp.sec, answers.stamp.nanosec)
        if stamp is not None and (stamp, v.mode) == self.answered[:2]:
            # The same state again (a lockstep simulator repeats what it has no answer to): the same
            # answer, as computing again from a policy state that has moved on would give another.
            command = self.answered[2]
        else:
            command = self.loop.command(v)
        if stamp is not None:
            self.answered = (stamp, v.mode, command)
        self.command_pub.publish(self.loop.command_msg(command, None if answers is None else answers.stamp))
        self.last_command = now
        self.commands += 1
        if self.stamp_pub is not None and answers is not None:
            self.stamp_pub.publish(answers)

    def _tick(self) -> None:
        # Every control period, whatever arrives: a period without a command (the state stopped, the
        # simulator died, a fault) gets one here, so the safe command comes within a period of detection.
        now = self.now()
        if now - self.last_command < 0.9 * self.policy.period:
            self.verdict(now)  # keeps the watchdog's view of this loop's timing current
            return
        self.control(None)

    def _publish_diagnostics(self) -> None:
        level, message = LEVEL[self.mode], self.reason or "running the policy"
        if self.qos.problems:
            level, message = ERROR, "; ".join(self.qos.problems.values())
        self.diag_pub.publish(diagnostic(self, level, message, {
            "mode": self.mode,
            **self.loop.diagnostic_values(self.now()),
            "commands": self.commands,
            "policy": self.policy.path,
            "policy_sha256": self.policy.sha256,
            "task": self.adapter.task,
            "control_rate_hz": self.policy.rate_hz,
        }))


def main(args: list[str] | None = None) -> int:
    return main_for(PolicyNode, args)


if __name__ == "__main__":
    raise SystemExit(main())

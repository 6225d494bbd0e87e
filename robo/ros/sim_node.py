"""``quadrotor_sim``: the simulator as a vehicle. Steps the MuJoCo twin of the quadrotor (the same
model as the torch simulator, RK4; numpy and MuJoCo only, no torch in this process) in real time, publishes
nav_msgs/Odometry on ``odom``, applies the latest ``motor_command`` (std_msgs/Float32MultiArray,
FR BR BL FL in [0, 1]).

With ``publish_clock`` it is the graph's clock: every step publishes the simulated time on ``/clock``
(rosgraph_msgs/Clock, starting at 0) and stamps the odometry with it, for nodes run with
``use_sim_time``. The steps are paced by this process's steady clock (never by ROS time, which would
wait for the /clock it publishes itself), ``real_time_factor`` simulated seconds per wall second.

With ``lockstep`` (needs ``publish_clock``) it steps only when the command answering the odometry it
published last has arrived (matched by the odometry stamp every policy command carries), as SITL
simulators do: a slow machine runs slower, never differently. Until the first answer the vehicle is held
and time stands still (the current odometry is published again on every tick, for nodes that start
later). A missing answer for ``lockstep_timeout`` wall seconds is a fault: reported (log and
``/diagnostics``), after which it steps on every tick (motors as an ESC treats them) until commands
answer its odometry again.

Like an ESC, it stops the motors when commands stop arriving (``motor_timeout``, counted in simulated
steps, so a stall of this process does not cut the motors when it resumes) or are not finite.
Until the first command arrives the vehicle is held at its start (on the launch pad), so the start-up
order of the nodes does not matter.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray
from nav_msgs.msg import Odometry
from rclpy.clock import Clock, ClockType
from rclpy.node import Node
from rclpy.qos import QoSProfile
from rosgraph_msgs.msg import Clock as ClockMsg
from std_msgs.msg import Float32MultiArray

from robo.ros.common import (
    CONTROL_QOS,
    DIAGNOSTICS_QOS,
    ERROR,
    Param,
    QosWatch,
    declare,
    diagnostic,
    main_for,
    vector,
)
from robo.ros.convert import answered_stamp, state_to_odometry
from sim.quadrotor.params import PRESETS, preset


def _preset(value: Any) -> str:
    return "" if value in PRESETS else f"unknown preset {value!r} (choose from {', '.join(PRESETS)})"


PARAMS = [
    Param("preset", "x500", "simulated vehicle (sim.quadrotor presets)", read_only=True, check=_preset),
    Param("rate_hz", 100.0, "physics steps (RK4) and odometry messages per second", 10.0, 2000.0,
          read_only=True),
    Param("initial_position", [0.0, 0.0, 1.0], "start position in world (m), at rest, hovering",
          read_only=True, check=vector(3)),
    Param("motor_timeout", 0.1, "s without a motor command before the motors stop (ESC timeout)",
          0.001, 10.0),
    Param("frame_id", "world", "odometry header.frame_id", read_only=True),
    Param("child_frame_id", "base_link", "odometry child_frame_id", read_only=True),
    Param("publish_clock", False, "publish the simulated time on /clock and stamp odometry with it "
          "(for nodes with use_sim_time)", read_only=True),
    Param("real_time_factor", 1.0, "simulated seconds per wall-clock second (other than 1 only with "
          "publish_clock)", 0.01, 10.0, read_only=True),
    Param("lockstep", False, "step only when the command answering the last odometry has arrived (needs "
          "publish_clock)", read_only=True),
    Param("lockstep_timeout", 1.0, "wall s without the answer before a lockstep fault (then free-running "
          "until answers return)", 0.01, 600.0),
]
REPUBLISH_TICKS = 10  # while waiting for an answer, the odometry goes out again every this many ticks

# Reliable, depth 1: matches rclpy's and rclcpp's best-effort /clock subscriptions and reliable ones
# (ros2 topic echo, rosbag) alike; only the newest time matters.
CLOCK_QOS = QoSProfile(depth=1)


class QuadrotorSim(Node):
    def __init__(self) -> None:
        super().__init__("quadrotor_sim")
        v = declare(self, PARAMS, self._apply)
        self.motor_timeout = v["motor_timeout"]
        self.lockstep_timeout = v["lockstep_timeout"]
        self.frame, self.child = v["frame_id"], v["child_frame_id"]
        self.dt = 1.0 / v["rate_hz"]
        if v["real_time_factor"] != 1.0 and not v["publish_clock"]:
            # Without /clock the odometry carries wall time, which would then disagree with the physics.
            raise ValueError(f"real_time_factor: {v['real_time_factor']:g} needs publish_clock: true "
                             "(and use_sim_time on the other nodes)")
        if v["lockstep"] and not v["publish_clock"]:
            # Lockstep stops time while it waits, which only nodes on the simulated clock follow.
            raise ValueError("lockstep: true needs publish_clock: true (and use_sim_time on the other nodes)")
        params = preset(v["preset"])
        # MuJoCo loads here, inside main_for, where Ctrl-C during start-up ends the node quietly.
        from sim.quadrotor.mujoco_twin import MujocoQuadrotor, hover_state_np

        self.state = hover_state_np(params, np.asarray(v["initial_position"], dtype=np.float64))
        self.vehicle = MujocoQuadrotor(params, self.state, dt=self.dt)
        self.motors = np.zeros(4)
        self.steps_without_command = 0
        self.started = False
        self.lockstep = v["lockstep"]
        self.locked = True          # lockstep: waiting for answers (False after a timeout, until one comes)
        self.answered = False       # lockstep: the current odometry has its command
        self.waiting_ticks = 0
        self.waiting_since = 0.0    # steady-clock s
        self.lockstep_faults = 0
        self.steady = Clock(clock_type=ClockType.STEADY_TIME)
        self.qos = QosWatch(self)
        self.pub = self.create_publisher(Odometry, "odom", CONTROL_QOS, event_callbacks=self.qos.pub("odom"))
        self.create_subscription(Float32MultiArray, "motor_command", self._on_motors, CONTROL_QOS,
                                 event_callbacks=self.qos.sub("motor_command"))
        self.clock_pub = self.create_publisher(ClockMsg, "/clock", CLOCK_QOS) if v["publish_clock"] else None
        self.diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", DIAGNOSTICS_QOS)
        self.steps = 0  # simulated time = steps * dt; it runs while the vehicle is held, too, so the
        # other nodes' sim-time timers (trajectory, watchdog) tick before the first motor command
        # (not in lockstep, which waits for the answer to the first odometry)
        self.create_timer(self.dt / v["real_time_factor"], self._tick, clock=self.steady)
        clock = (f"publishing /clock at {v['real_time_factor']:g}x real time" if v["publish_clock"]
                 else "real time") + (", in lockstep with the motor commands" if self.lockstep else "")
        self.get_logger().info(f"simulating {v['preset']} at {v['rate_hz']:g} Hz ({clock}), held at "
                               f"{list(v['initial_position'])} until the first motor command")

    def _apply(self, changes: dict[str, Any]) -> None:
        self.motor_timeout = changes.get("motor_timeout", self.motor_timeout)
        self.lockstep_timeout = changes.get("lockstep_timeout", self.lockstep_timeout)

    def _on_motors(self, msg: Float32MultiArray) -> None:
        data = np.asarray(msg.data, dtype=np.float64)
        if data.shape != (4,):
            self.get_logger().error(f"motor_command with {data.size} values ignored "
                                    "(expected 4: FR BR BL FL)", throttle_duration_sec=1.0)
            return
        if self.lockstep:
            # Only the answer to the current odometry drives the step; a command for an older one, or a
            # timer's command computed without new odometry, would make the run depend on timing.
            # The first answer only: one to odometry published again may differ (the policy's state moved on).
            if answered_stamp(msg) == self._stamp_pair() and not self.answered:
                self.answered, self.locked = True, True
            elif self.locked:
                return
        # Non-finite means stop (as PX4 reads NaN); everything else is clamped to the motor range.
        self.motors = np.where(np.isfinite(data), np.clip(data, 0.0, 1.0), 0.0)
        self.steps_without_command = 0
        self.started = True

    def _stamp_pair(self) -> tuple[int, int]:
        ns = round(self.steps * self.dt * 1e9)
        return ns // 1_000_000_000, ns % 1_000_000_000

    def _tick(self) -> None:
        if self.steps == 0:
            self._step()  # the first odometry (time dt): lockstep waits for its answer
        elif not self.lockstep or self.answered or not self.locked:
            self.waiting_ticks = 0
            self._step()
        elif self.started and self._wall() - self.waiting_since > self.lockstep_timeout:
            self._lockstep_fault()
            self._step()
        else:
            self.waiting_ticks += 1
            if self.waiting_ticks % REPUBLISH_TICKS == 0 or not self.started:
                self._publish()  # in case it was lost, or its reader started after it was sent

    def _wall(self) -> float:
        return self.steady.now().nanoseconds * 1e-9

    def _lockstep_fault(self) -> None:
        self.locked = False
        self.lockstep_faults += 1
        message = (f"lockstep: no motor command answered the odometry at t = {self.steps * self.dt:.3f} s "
                   f"within {self.lockstep_timeout:g} s; stepping without it until commands answer again")
        self.get_logger().error(message)
        self.diag_pub.publish(diagnostic(self, ERROR, message, {"lockstep_faults": self.lockstep_faults}))

    def _step(self) -> None:
        if self.started:
            fresh = self.steps_without_command * self.dt <= self.motor_timeout
            self.steps_without_command += 1
            self.state = self.vehicle.step(self.motors if fresh else np.zeros(4))
        self.steps += 1
        self.answered = False
        self.waiting_since = self._wall()
        if not all(math.isfinite(float(v)) for v in self.state):
            self.get_logger().error("simulator state is not finite", throttle_duration_sec=1.0)
        self._publish()

    def _publish(self) -> None:
        if self.clock_pub is not None:
            sec, nanosec = self._stamp_pair()
            stamp = Time(sec=sec, nanosec=nanosec)
            # /clock first: a node that gets this odometry has (most likely) already seen its time.
            self.clock_pub.publish(ClockMsg(clock=stamp))
        else:
            stamp = self.get_clock().now().to_msg()
        self.pub.publish(state_to_odometry(self.state, stamp, self.frame, self.child))

def main(args: list[str] | None = None) -> int:
    return main_for(QuadrotorSim, args)


if __name__ == "__main__":
    raise SystemExit(main())

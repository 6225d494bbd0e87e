"""``quadrotor_sim``: the simulator as a vehicle. Steps the MuJoCo twin of the quadrotor (the same
model as the torch simulator, RK4; numpy and MuJoCo only, no torch in this process) in real time, publishes
nav_msgs/Odometry on ``odom``, applies the latest ``motor_command`` (std_msgs/Float32MultiArray,
FR BR BL FL in [0, 1]).

With ``publish_clock`` it is the graph's clock: every step publishes the simulated time on ``/clock``
(rosgraph_msgs/Clock, starting at 0) and stamps the odometry with it, for nodes run with
``use_sim_time``. The steps are paced by this process's steady clock (never by ROS time, which would
wait for the /clock it publishes itself), ``real_time_factor`` simulated seconds per wall second.

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
from nav_msgs.msg import Odometry
from rclpy.clock import Clock, ClockType
from rclpy.node import Node
from rclpy.qos import QoSProfile
from rosgraph_msgs.msg import Clock as ClockMsg
from std_msgs.msg import Float32MultiArray

from robo.ros.common import CONTROL_QOS, Param, QosWatch, declare, main_for, vector
from robo.ros.convert import state_to_odometry
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
]

# Reliable, depth 1: matches rclpy's and rclcpp's best-effort /clock subscriptions and reliable ones
# (ros2 topic echo, rosbag) alike; only the newest time matters.
CLOCK_QOS = QoSProfile(depth=1)


class QuadrotorSim(Node):
    def __init__(self) -> None:
        super().__init__("quadrotor_sim")
        v = declare(self, PARAMS, self._apply)
        self.motor_timeout = v["motor_timeout"]
        self.frame, self.child = v["frame_id"], v["child_frame_id"]
        self.dt = 1.0 / v["rate_hz"]
        if v["real_time_factor"] != 1.0 and not v["publish_clock"]:
            # Without /clock the odometry carries wall time, which would then disagree with the physics.
            raise ValueError(f"real_time_factor: {v['real_time_factor']:g} needs publish_clock: true "
                             "(and use_sim_time on the other nodes)")
        params = preset(v["preset"])
        # MuJoCo loads here, inside main_for, where Ctrl-C during start-up ends the node quietly.
        from sim.quadrotor.mujoco_twin import MujocoQuadrotor, hover_state_np

        self.state = hover_state_np(params, np.asarray(v["initial_position"], dtype=np.float64))
        self.vehicle = MujocoQuadrotor(params, self.state, dt=self.dt)
        self.motors = np.zeros(4)
        self.steps_without_command = 0
        self.started = False
        self.qos = QosWatch(self)
        self.pub = self.create_publisher(Odometry, "odom", CONTROL_QOS, event_callbacks=self.qos.pub("odom"))
        self.create_subscription(Float32MultiArray, "motor_command", self._on_motors, CONTROL_QOS,
                                 event_callbacks=self.qos.sub("motor_command"))
        self.clock_pub = self.create_publisher(ClockMsg, "/clock", CLOCK_QOS) if v["publish_clock"] else None
        self.steps = 0  # simulated time = steps * dt; it runs while the vehicle is held, too, so the
        # other nodes' sim-time timers (trajectory, watchdog) tick before the first motor command
        self.create_timer(self.dt / v["real_time_factor"], self._step,
                          clock=Clock(clock_type=ClockType.STEADY_TIME))
        clock = (f"publishing /clock at {v['real_time_factor']:g}x real time" if v["publish_clock"]
                 else "real time")
        self.get_logger().info(f"simulating {v['preset']} at {v['rate_hz']:g} Hz ({clock}), held at "
                               f"{list(v['initial_position'])} until the first motor command")

    def _apply(self, changes: dict[str, Any]) -> None:
        self.motor_timeout = changes.get("motor_timeout", self.motor_timeout)

    def _on_motors(self, msg: Float32MultiArray) -> None:
        data = np.asarray(msg.data, dtype=np.float64)
        if data.shape != (4,):
            self.get_logger().error(f"motor_command with {data.size} values ignored "
                                    "(expected 4: FR BR BL FL)", throttle_duration_sec=1.0)
            return
        # Non-finite means stop (as PX4 reads NaN); everything else is clamped to the motor range.
        self.motors = np.where(np.isfinite(data), np.clip(data, 0.0, 1.0), 0.0)
        self.steps_without_command = 0
        self.started = True

    def _step(self) -> None:
        if self.started:
            fresh = self.steps_without_command * self.dt <= self.motor_timeout
            self.steps_without_command += 1
            self.state = self.vehicle.step(self.motors if fresh else np.zeros(4))
        self.steps += 1
        x = self.state
        if not all(math.isfinite(float(v)) for v in x):
            self.get_logger().error("simulator state is not finite", throttle_duration_sec=1.0)
        if self.clock_pub is not None:
            ns = round(self.steps * self.dt * 1e9)
            stamp = Time(sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000)
            # /clock first: a node that gets this odometry has (most likely) already seen its time.
            self.clock_pub.publish(ClockMsg(clock=stamp))
        else:
            stamp = self.get_clock().now().to_msg()
        self.pub.publish(state_to_odometry(x, stamp, self.frame, self.child))


def main(args: list[str] | None = None) -> int:
    return main_for(QuadrotorSim, args)


if __name__ == "__main__":
    raise SystemExit(main())

"""``quadrotor_sim``: the simulator as a vehicle. Steps the MuJoCo twin of the quadrotor (the same
model as the torch simulator, RK4; numpy and MuJoCo only, no torch in this process) in real time, publishes
nav_msgs/Odometry on ``odom``, applies the latest ``motor_command`` (std_msgs/Float32MultiArray,
FR BR BL FL in [0, 1]). The simulated clock (``publish_clock``) and ``lockstep``: :mod:`robo.ros.lockstep`.

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
from std_msgs.msg import Float32MultiArray

from robo.ros.common import CONTROL_QOS, Param, QosWatch, declare, main_for, vector
from robo.ros.convert import state_to_odometry
from robo.ros.lockstep import CLOCK_PARAMS, SteppedSim
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
    *CLOCK_PARAMS,
]


class QuadrotorSim(SteppedSim):
    def __init__(self) -> None:
        super().__init__("quadrotor_sim")
        v = declare(self, PARAMS, self._apply)
        self.motor_timeout = v["motor_timeout"]
        self.frame, self.child = v["frame_id"], v["child_frame_id"]
        params = preset(v["preset"])
        # MuJoCo loads here, inside main_for, where Ctrl-C during start-up ends the node quietly.
        from sim.quadrotor.mujoco_twin import MujocoQuadrotor, hover_state_np

        self.state = hover_state_np(params, np.asarray(v["initial_position"], dtype=np.float64))
        self.vehicle = MujocoQuadrotor(params, self.state, dt=1.0 / v["rate_hz"])
        self.motors = np.zeros(4)
        self.steps_without_command = 0
        self.qos = QosWatch(self)
        self.pub = self.create_publisher(Odometry, "odom", CONTROL_QOS, event_callbacks=self.qos.pub("odom"))
        self.create_subscription(Float32MultiArray, "motor_command", self._on_motors, CONTROL_QOS,
                                 event_callbacks=self.qos.sub("motor_command"))
        self.start_clock(v, 1.0 / v["rate_hz"])
        self.get_logger().info(f"simulating {v['preset']} at {v['rate_hz']:g} Hz ({self.clock_text}), held "
                               f"at {list(v['initial_position'])} until the first motor command")

    def _apply(self, changes: dict[str, Any]) -> None:
        self.motor_timeout = changes.get("motor_timeout", self.motor_timeout)
        self._apply_clock(changes)

    def _on_motors(self, msg: Float32MultiArray) -> None:
        data = np.asarray(msg.data, dtype=np.float64)
        if data.shape != (4,):
            self.get_logger().error(f"motor_command with {data.size} values ignored "
                                    "(expected 4: FR BR BL FL)", throttle_duration_sec=1.0)
            return
        if not self.accept_command(msg):
            return
        # Non-finite means stop (as PX4 reads NaN); everything else is clamped to the motor range.
        self.motors = np.where(np.isfinite(data), np.clip(data, 0.0, 1.0), 0.0)
        self.steps_without_command = 0
        self.started = True

    def advance(self) -> None:
        fresh = self.steps_without_command * self.dt <= self.motor_timeout
        self.steps_without_command += 1
        self.state = self.vehicle.step(self.motors if fresh else np.zeros(4))
        if not all(math.isfinite(float(v)) for v in self.state):
            self.get_logger().error("simulator state is not finite", throttle_duration_sec=1.0)

    def publish_state(self, stamp: Time) -> None:
        self.pub.publish(state_to_odometry(self.state, stamp, self.frame, self.child))


def main(args: list[str] | None = None) -> int:
    return main_for(QuadrotorSim, args)


if __name__ == "__main__":
    raise SystemExit(main())

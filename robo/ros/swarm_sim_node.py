"""``swarm_sim``: one swarm agent as a vehicle with a position/velocity tracker, a double integrator.

Why not the quadrotor: four full quadrotor stacks (MuJoCo simulator + RAPTOR policy node at 100 Hz
each, plus each agent's filter) are twelve Python processes and ~1,200 policy calls per second, more
than the two shared cores of the machine the DDS test runs on keep up with in real time. What the
swarm filter needs from a vehicle is what the quadrotor under its policy is, seen from its setpoints:
a double integrator driven by a tracker (:mod:`robo.safety.setpoint`). This node is exactly that, so
it takes the same messages as the quadrotor stack: ``setpoint/pose`` + ``setpoint/twist`` in,
``odom`` (nav_msgs/Odometry, level attitude) out, and a quadrotor can replace it topic for topic.

Each step (``rate_hz``): a = kp (p_sp - p) + kv (v_sp - v), clipped per axis to ``max_accel``; the
velocity is capped at ``max_speed`` and the position integrated with the mean velocity (as
:mod:`sim.swarm.env`). Held at ``initial_position`` until the first setpoint; without a setpoint for
``setpoint_timeout`` s (or a non-finite one) it brakes to a stop (v_sp = 0 at its position).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from builtin_interfaces.msg import Time
from geometry_msgs.msg import PoseStamped, TwistStamped
from nav_msgs.msg import Odometry

from robo.ros.common import CONTROL_QOS, Param, QosWatch, declare, main_for, vector
from robo.ros.convert import pose_position, state_to_odometry, twist_velocity
from robo.ros.lockstep import CLOCK_PARAMS, SteppedSim

PARAMS = [
    Param("rate_hz", 20.0, "physics steps and odometry messages per second", 1.0, 1000.0, read_only=True),
    Param("initial_position", [0.0, 0.0, 1.0], "start position in world (m), at rest", read_only=True,
          check=vector(3)),
    Param("max_speed", 1.0, "m/s, the speed limit", 0.01, 100.0, read_only=True),
    Param("max_accel", 2.0, "m/s^2 per axis, the acceleration limit", 0.01, 100.0, read_only=True),
    Param("kp", 4.0, "tracker position gain (1/s^2); the swarm filter must use the same", 0.01, 1000.0,
          read_only=True),
    Param("kv", 3.0, "tracker velocity gain (1/s)", 0.01, 1000.0, read_only=True),
    Param("setpoint_timeout", 0.5, "s without a setpoint before the vehicle brakes to a stop", 0.001, 60.0),
    Param("frame_id", "world", "odometry header.frame_id", read_only=True),
    *CLOCK_PARAMS,
]
LEVEL = np.array([1.0, 0.0, 0.0, 0.0])  # (w, x, y, z): the tracker keeps the vehicle level


class SwarmAgentSim(SteppedSim):
    def __init__(self) -> None:
        super().__init__("swarm_sim")
        v = declare(self, PARAMS, self._apply)
        self.setpoint_timeout = v["setpoint_timeout"]
        self.max_speed, self.max_accel = v["max_speed"], v["max_accel"]
        self.kp, self.kv = v["kp"], v["kv"]
        self.frame = v["frame_id"]
        self.p = np.asarray(v["initial_position"], dtype=np.float64)
        self.v = np.zeros(3)
        self.position_sp: np.ndarray | None = None
        self.velocity_sp = np.zeros(3)
        self.steps_without_setpoint = 0
        self.qos = QosWatch(self)
        self.pub = self.create_publisher(Odometry, "odom", CONTROL_QOS, event_callbacks=self.qos.pub("odom"))
        self.create_subscription(PoseStamped, "setpoint/pose", self._on_pose, CONTROL_QOS,
                                 event_callbacks=self.qos.sub("setpoint/pose"))
        self.create_subscription(TwistStamped, "setpoint/twist", self._on_twist, CONTROL_QOS,
                                 event_callbacks=self.qos.sub("setpoint/twist"))
        self.start_clock(v, 1.0 / v["rate_hz"])
        self.get_logger().info(f"swarm agent (double integrator, tracker kp {self.kp:g}, kv {self.kv:g}) at "
                               f"{v['rate_hz']:g} Hz ({self.clock_text}), held at {self.p.tolist()}")

    def _apply(self, changes: dict[str, Any]) -> None:
        self.setpoint_timeout = changes.get("setpoint_timeout", self.setpoint_timeout)
        self._apply_clock(changes)

    def _on_pose(self, msg: PoseStamped) -> None:
        p = pose_position(msg)
        if not np.all(np.isfinite(p)):
            self.get_logger().error("non-finite setpoint ignored", throttle_duration_sec=1.0)
            return
        self.position_sp = p
        self.steps_without_setpoint = 0
        self.started = True

    def _on_twist(self, msg: TwistStamped) -> None:
        v = twist_velocity(msg)
        self.velocity_sp = v if np.all(np.isfinite(v)) else np.zeros(3)

    def advance(self) -> None:
        fresh = self.steps_without_setpoint * self.dt <= self.setpoint_timeout
        self.steps_without_setpoint += 1
        if fresh:
            a = self.kp * (self.position_sp - self.p) + self.kv * (self.velocity_sp - self.v)
        else:
            a = -self.kv * self.v
        a = np.clip(a, -self.max_accel, self.max_accel)
        v = self.v + a * self.dt
        v *= self.max_speed / max(float(np.linalg.norm(v)), self.max_speed)
        self.p = self.p + 0.5 * (self.v + v) * self.dt
        self.v = v

    def publish_state(self, stamp: Time) -> None:
        x = np.concatenate([self.p, LEVEL, self.v, np.zeros(3)])
        self.pub.publish(state_to_odometry(x, stamp, self.frame))


def main(args: list[str] | None = None) -> int:
    return main_for(SwarmAgentSim, args)


if __name__ == "__main__":
    raise SystemExit(main())

"""``trajectory``: publishes ``setpoint/pose`` + ``setpoint/twist`` (world) for hover, a figure-eight
or waypoints (:mod:`robo.runtime.trajectory`). Holds the start point for ``start_delay`` seconds.

Setpoints go out on a timer of this node's clock. On simulated time that timer stands still while a
lockstep simulator waits for the answer to its state, and a policy that arms only once setpoints flow
would then never answer if it started after the last one went out; so a state the simulator sends again
(odometry with the same stamp) gets the current setpoint again."""

from __future__ import annotations

from geometry_msgs.msg import PoseStamped, TwistStamped
from nav_msgs.msg import Odometry
from rclpy.node import Node
from rclpy.time import Time

from robo.ros.common import CONTROL_QOS, Param, QosWatch, declare, main_for, one_of, vector
from robo.ros.convert import setpoint_msgs
from robo.runtime.trajectory import KINDS, Trajectory, TrajectoryConfig

PARAMS = [
    Param("kind", "figure8", "hold, figure8 or waypoints", read_only=True, check=one_of(*KINDS)),
    Param("center", [0.0, 0.0, 1.0], "hold point and figure-eight centre, world (m)", read_only=True,
          check=vector(3)),
    Param("period", 10.0, "s per figure-eight", 0.5, 600.0, read_only=True),
    Param("scale", 1.0, "figure-eight half length (m)", 0.0, 100.0, read_only=True),
    Param("ramp", 2.0, "s of phase-rate ramp at the start", 0.0, 60.0, read_only=True),
    Param("waypoints", [], "x,y,z per waypoint, flat (m)", read_only=True, check=vector(3, multiple=True)),
    Param("dwell", 3.0, "s at each waypoint", 0.1, 3600.0, read_only=True),
    Param("rate_hz", 100.0, "setpoints per second", 1.0, 1000.0, read_only=True),
    Param("start_delay", 2.0, "s holding the start point before moving", 0.0, 3600.0, read_only=True),
    Param("start_on_odometry", True, "count start_delay from the first odometry message (the vehicle is "
          "up), not from this node's start", read_only=True),
]


class TrajectoryNode(Node):
    def __init__(self) -> None:
        super().__init__("trajectory")
        v = declare(self, PARAMS, lambda changes: None)
        w = list(v["waypoints"])
        self.trajectory = Trajectory(TrajectoryConfig(
            kind=v["kind"], center=tuple(v["center"]), period=v["period"], scale=v["scale"], ramp=v["ramp"],
            waypoints=[tuple(w[i:i + 3]) for i in range(0, len(w), 3)], dwell=v["dwell"]))
        self.delay = v["start_delay"]
        self.qos = QosWatch(self)
        self.pose_pub = self.create_publisher(PoseStamped, "setpoint/pose", CONTROL_QOS,
                                              event_callbacks=self.qos.pub("setpoint/pose"))
        self.twist_pub = self.create_publisher(TwistStamped, "setpoint/twist", CONTROL_QOS,
                                               event_callbacks=self.qos.pub("setpoint/twist"))
        self.t0: Time | None = None if v["start_on_odometry"] else self.get_clock().now()
        self.odom_stamp: tuple[int, int] | None = None
        self.odom_sub = self.create_subscription(Odometry, "odom", self._on_odom, CONTROL_QOS,
                                                 event_callbacks=self.qos.sub("odom"))
        self.create_timer(1.0 / v["rate_hz"], self._tick)
        self.get_logger().info(f"{v['kind']} setpoints at {v['rate_hz']:g} Hz after {self.delay:g} s")

    def _on_odom(self, msg: Odometry) -> None:
        if self.t0 is None:
            self.t0 = self.get_clock().now()
            self.get_logger().info(f"odometry received: moving in {self.delay:g} s")
        stamp = (msg.header.stamp.sec, msg.header.stamp.nanosec)
        if stamp == self.odom_stamp:  # the simulator is waiting for an answer; its time stands still
            self._tick()
        self.odom_stamp = stamp

    def _tick(self) -> None:
        now = self.get_clock().now()
        t = -1.0 if self.t0 is None else (now - self.t0).nanoseconds * 1e-9 - self.delay
        pose, twist = setpoint_msgs(self.trajectory.setpoint(max(t, 0.0)), now.to_msg())
        self.twist_pub.publish(twist)
        self.pose_pub.publish(pose)


def main(args: list[str] | None = None) -> int:
    return main_for(TrajectoryNode, args)


if __name__ == "__main__":
    raise SystemExit(main())

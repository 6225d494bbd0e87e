"""``safety_filter``: the CBF setpoint filter as a node.

Subscribes ``odom`` and the unfiltered ``reference/pose`` + ``reference/twist``; answers every odometry
message with a filtered ``setpoint/pose`` + ``setpoint/twist`` stamped like that odometry, and a
``safety/status`` (diagnostic_msgs/DiagnosticStatus: OK pass/modified, ERROR fault with the reason).
On a fault the setpoint is the filter's brake setpoint (hold here, zero velocity). Obstacles (spheres)
and the geofence come from parameters and the safety config file (configs/safety.yaml).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from geometry_msgs.msg import PoseStamped, TwistStamped
from nav_msgs.msg import Odometry
from rclpy.node import Node

from robo.config import load_config
from robo.ros.common import (
    CONTROL_QOS,
    DIAGNOSTICS_QOS,
    ERROR,
    OK,
    Param,
    QosWatch,
    declare,
    diagnostic,
    main_for,
    vector,
)
from robo.ros.convert import odometry_to_state, pose_position, setpoint_msgs, stamp_seconds, twist_velocity
from robo.runtime import Setpoint
from robo.safety.config import GeofenceConfig, SafetyConfig, SphereConfig, build_filter
from robo.safety.setpoint import SetpointFilter


def _obstacles(value: Any) -> str:
    if len(value) % 4:
        return f"expected x,y,z,r per sphere (a multiple of 4 numbers), got {len(value)}"
    radii = list(value)[3::4]
    return "" if all(r > 0 for r in radii) else f"every radius must be > 0, got {radii}"


PARAMS = [
    Param("safety_config", "", "safety filter YAML (robo.safety.config keys, e.g. configs/safety.yaml); "
          "'' = built-in defaults (geofence only)", read_only=True),
    Param("obstacles", [], "sphere obstacles x,y,z,r (m), flat, added to the config's", check=_obstacles),
    Param("margin", 0.1, "m added to every obstacle radius (vehicle size)", 0.0, 10.0),
    Param("kp", 4.0, "the policy as a PD tracker: position gain (1/s^2)", 0.01, 1000.0),
    Param("kv", 3.0, "the policy as a PD tracker: velocity gain (1/s)", 0.01, 1000.0),
    Param("geofence_lower", [-5.0, -5.0, 0.3], "geofence x, y, floor (m); overrides the config",
          check=vector(3)),
    Param("geofence_upper", [5.0, 5.0, 3.0], "geofence x, y, ceiling (m); overrides the config",
          check=vector(3)),
    Param("enabled", True, "false: pass the reference through unfiltered (status says so)"),
    Param("reference_timeout", 0.5, "s: an older reference is not passed on (the policy then holds)",
          0.001, 60.0),
]


class SafetyFilterNode(Node):
    def __init__(self) -> None:
        super().__init__("safety_filter")
        v = declare(self, PARAMS, self._apply)
        self.values = dict(v)
        self.base = load_config(SafetyConfig, v["safety_config"] or None)
        self.filter = self._build(self.values)
        self.reference: Setpoint | None = None
        self.reference_stamp = -math.inf
        self.qos = QosWatch(self)
        self.pose_pub = self.create_publisher(PoseStamped, "setpoint/pose", CONTROL_QOS,
                                              event_callbacks=self.qos.pub("setpoint/pose"))
        self.twist_pub = self.create_publisher(TwistStamped, "setpoint/twist", CONTROL_QOS,
                                               event_callbacks=self.qos.pub("setpoint/twist"))
        self.status_pub = self.create_publisher(DiagnosticStatus, "safety/status", CONTROL_QOS,
                                                event_callbacks=self.qos.pub("safety/status"))
        self.diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", DIAGNOSTICS_QOS)
        self.create_subscription(Odometry, "odom", self._on_odom, CONTROL_QOS,
                                 event_callbacks=self.qos.sub("odom"))
        self.create_subscription(PoseStamped, "reference/pose", self._on_pose, CONTROL_QOS,
                                 event_callbacks=self.qos.sub("reference/pose"))
        self.create_subscription(TwistStamped, "reference/twist", self._on_twist, CONTROL_QOS,
                                 event_callbacks=self.qos.sub("reference/twist"))
        self.velocity = np.zeros(3)
        self.last = ("", "")
        self.create_timer(0.5, self._publish_diagnostics)
        self.get_logger().info(f"safety filter with {len(self.filter.safety.barriers.spheres)} spheres, "
                               f"{'on' if v['enabled'] else 'OFF (pass-through)'}")

    def _build(self, v: dict[str, Any]) -> SetpointFilter:
        obs = list(v["obstacles"])
        spheres = list(self.base.spheres) + [SphereConfig(tuple(obs[i:i + 3]), obs[i + 3] + v["margin"])
                                             for i in range(0, len(obs), 4)]
        fence = GeofenceConfig(tuple(v["geofence_lower"]), tuple(v["geofence_upper"]))
        cfg = SafetyConfig(**{**vars(self.base), "spheres": spheres, "geofence": fence})
        return SetpointFilter(build_filter(cfg), v["kp"], v["kv"])

    def _apply(self, changes: dict[str, Any]) -> None:
        # The filter is rebuilt from all values; a combination it refuses keeps the old filter.
        values = {**self.values, **changes}
        try:
            self.filter = self._build(values)
            self.values = values
        except ValueError as exc:
            self.get_logger().error(f"filter not rebuilt: {exc}")

    def _on_pose(self, msg: PoseStamped) -> None:
        self.reference = Setpoint(pose_position(msg), self.velocity)
        self.reference_stamp = stamp_seconds(msg.header.stamp) or -math.inf

    def _on_twist(self, msg: TwistStamped) -> None:
        self.velocity = twist_velocity(msg)

    def _on_odom(self, msg: Odometry) -> None:
        now = self.get_clock().now().nanoseconds * 1e-9
        if self.reference is None or now - self.reference_stamp > self.values["reference_timeout"]:
            return  # nothing to pass on: the policy's watchdog sees its setpoint go stale
        state = odometry_to_state(msg)
        ref = Setpoint(self.reference.position, self.velocity)
        if not self.values["enabled"]:
            out, level, message = ref, OK, "off"
        else:
            res = self.filter(state.position, state.velocity, ref.position, ref.velocity)
            out = Setpoint(res.setpoint.position, res.setpoint.velocity)
            level = ERROR if res.filter.fault else OK
            message = res.filter.reason if res.filter.fault else res.filter.status
        pose, twist = setpoint_msgs(out, msg.header.stamp)
        self.twist_pub.publish(twist)
        self.status_pub.publish(DiagnosticStatus(level=level, name=self.get_fully_qualified_name(),
                                                 message=message))
        self.pose_pub.publish(pose)  # last: with trigger=setpoint it starts the policy's cycle
        if level == ERROR:
            self.get_logger().error(f"filter fault: {message}", throttle_duration_sec=1.0)
        self.last = (level, message)

    def _publish_diagnostics(self) -> None:
        stats = self.filter.safety.stats.as_dict()
        level = ERROR if self.qos.problems or self.last[0] == ERROR else OK
        message = ("; ".join(self.qos.problems.values()) or self.last[1]
                   or "waiting for odometry and reference")
        self.diag_pub.publish(diagnostic(self, level, message, {**stats, "enabled": self.values["enabled"]}))


def main(args: list[str] | None = None) -> int:
    return main_for(SafetyFilterNode, args)


if __name__ == "__main__":
    raise SystemExit(main())

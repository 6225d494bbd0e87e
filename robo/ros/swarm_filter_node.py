"""``swarm_filter``: one swarm agent's safety layer. Its neighbours' odometry in, its safe setpoint out.

On every message of its own ``odom`` the node builds the agent's view (its goal offset and velocity,
the neighbours within ``sensing_radius``), runs the gain tuner (the card's GNN through
:class:`robo.runtime.swarm.SwarmTuner`) for this agent's (k1, k2) (and its turn, when the card's tuner
sets the tilt; a per-neighbour tuner also gives each neighbour in a slot its own pair, and the
diagnostics report the agent's own), filters the PD-to-goal acceleration
through its own HOCBF-QP (:func:`robo.safety.agent_qp.filter_agent`: half of every pair condition;
the k2 the card's tuner was trained behind, ``filter.shared_k2``, replaces its k2 output) in the x-y
plane, and publishes ``setpoint/pose`` + ``setpoint/twist`` stamped like that odometry: the
setpoint at which the vehicle's tracker (kp, kv) produces exactly the filtered acceleration (velocity
setpoint = the current velocity, position setpoint shifted by a / kp), altitude held at the goal's.

Neighbours are discovered from the ROS graph: every ``discovery_period`` s the node lists the topics
of type nav_msgs/Odometry whose name matches ``neighbour_pattern`` (default ``/agent*/odom``), and
subscribes to each new one other than its own. Every neighbour is heard, but one farther than the
sensing radius is left out of both the tuner's view and the QP, as in training.

A neighbour message that is not finite is dropped and counted, and that neighbour is then treated
as stale; a neighbour not heard for ``neighbour_timeout`` s is stale: kept at its last position,
moving at ``max_speed`` straight at this agent (the worst case for the barrier), counted per step.
Gains out of the card's range (a corrupt model) are clamped and counted; so are the card's fallbacks.
A QP fault (infeasible) makes the agent brake. The agent holds its start position (filtered too)
until it has heard ``agents`` - 1 neighbours, then ``start_delay`` s more, then heads to ``goal``.
"""

from __future__ import annotations

import fnmatch
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PoseStamped, TwistStamped
from nav_msgs.msg import Odometry
from rclpy.node import Node

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
    vector,
)
from robo.ros.convert import odometry_to_state, setpoint_msgs
from robo.runtime.quadrotor import Setpoint
from robo.runtime.swarm import SwarmTuner, agent_observation_and_slots, nominal_acceleration
from robo.safety.agent_qp import AgentFilterConfig, filter_agent

ODOMETRY_TYPE = "nav_msgs/msg/Odometry"

PARAMS = [
    Param("policy", "", "the online_cbf gain tuner (policy.onnx with its card); '' = the committed "
          "robo/policies/online_cbf_gnn", read_only=True),
    Param("goal", [0.0, 0.0, 1.0], "where this agent goes (m, world); z is its altitude", check=vector(3)),
    Param("agents", 0, "agents in the swarm: hold until agents - 1 neighbours are heard (0: do not wait)",
          0, 1000, read_only=True),
    Param("start_delay", 1.0, "s of holding after every neighbour was heard", 0.0, 600.0, read_only=True),
    Param("neighbour_pattern", "/agent*/odom", "fnmatch pattern of the neighbours' odometry topics",
          read_only=True),
    Param("discovery_period", 0.5, "s between looks at the graph for new neighbour topics", 0.01, 60.0,
          read_only=True),
    Param("neighbour_timeout", 0.5, "s without a (finite) message before a neighbour is stale", 0.001, 60.0),
    Param("agent_radius", 0.2, "m, every agent's radius", 0.001, 100.0, read_only=True),
    Param("sensing_radius", 3.0, "m: neighbours farther away are ignored", 0.01, 1000.0, read_only=True),
    Param("max_speed", 1.0, "m/s, the nominal controller's speed cap", 0.01, 100.0, read_only=True),
    Param("max_accel", 2.0, "m/s^2 per axis, the QP's input bound", 0.01, 100.0, read_only=True),
    Param("margin", 0.05, "m added to every contact distance", 0.0, 10.0, read_only=True),
    Param("slack_weight", 1e4, "a barrier multiplier above it is a fault", 1e-3, 1e12, read_only=True),
    Param("brake_gain", 10.0, "1/s, the fault command's velocity gain", 0.01, 1000.0, read_only=True),
    Param("nominal_kp", 1.0, "PD to goal: position gain", 0.001, 100.0, read_only=True),
    Param("nominal_kd", 2.0, "PD to goal: velocity gain", 0.001, 100.0, read_only=True),
    Param("nominal_tilt", 0.4, "rad, right-hand rule: the goal error turned clockwise (online_cbf's tilt; "
          "a tuner whose card outputs tilt sets it instead)",
          -1.5, 1.5, read_only=True),
    Param("tracker_kp", 4.0, "the vehicle tracker's position gain (swarm_sim's kp)", 0.01, 1000.0,
          read_only=True),
    Param("diagnostics_rate_hz", 1.0, "diagnostics messages per second", 0.1, 100.0, read_only=True),
]


@dataclass
class Neighbour:
    position: np.ndarray | None = None   # x, y of the last finite message
    velocity: np.ndarray | None = None
    heard: float = -math.inf             # this node's clock (s) at that message; -inf: suspect


DEFAULT_TUNER = Path(__file__).resolve().parents[1] / "policies" / "online_cbf_gnn" / "policy.onnx"


class SwarmFilterNode(Node):
    def __init__(self) -> None:
        super().__init__("swarm_filter")
        v = declare(self, PARAMS, self._apply)
        self.values = v
        self.tuner = SwarmTuner(v["policy"] or DEFAULT_TUNER)
        if self.tuner.dim != 2:
            raise ValueError(f"policy: the tuner works in {self.tuner.dim}-D; this node filters in the plane")
        self.config = AgentFilterConfig(agent_radius=v["agent_radius"], sensing_radius=v["sensing_radius"],
                                        max_accel=v["max_accel"], margin=v["margin"],
                                        slack_weight=v["slack_weight"], brake_gain=v["brake_gain"],
                                        shared_k2=self.tuner.shared_k2)  # the filter it was trained behind
        self.goal = np.asarray(v["goal"], dtype=np.float64)
        self.neighbour_timeout = v["neighbour_timeout"]
        self.own_topic = self.resolve_topic_name("odom")
        self.neighbours: dict[str, Neighbour] = {}
        self.hold: np.ndarray | None = None     # the start position, held until the swarm is up
        self.go_at = math.inf                   # this node's clock (s) at which it heads to its goal
        self.counts = dict(solves=0, modified=0, faults=0, clamped_gains=0, fallbacks=0,
                           stale_neighbour_steps=0, nonfinite_neighbour_messages=0, nonfinite_odometry=0)
        self.last = dict(k1=math.nan, k2=math.nan, tilt=math.nan, in_range=0, min_distance=math.inf)
        self.qos = QosWatch(self)
        self.create_subscription(Odometry, "odom", self._on_odom, CONTROL_QOS,
                                 event_callbacks=self.qos.sub("odom"))
        self.pose_pub = self.create_publisher(PoseStamped, "setpoint/pose", CONTROL_QOS,
                                              event_callbacks=self.qos.pub("setpoint/pose"))
        self.twist_pub = self.create_publisher(TwistStamped, "setpoint/twist", CONTROL_QOS,
                                               event_callbacks=self.qos.pub("setpoint/twist"))
        self.diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", DIAGNOSTICS_QOS)
        self.create_timer(v["discovery_period"], self._discover)
        self.create_timer(1.0 / v["diagnostics_rate_hz"], self._publish_diagnostics)
        self.get_logger().info(f"swarm filter on {self.own_topic}: tuner {self.tuner.policy.path}, goal "
                               f"{self.goal.tolist()}, neighbours {v['neighbour_pattern']}")

    def _apply(self, changes: dict[str, Any]) -> None:
        if "goal" in changes:
            self.goal = np.asarray(changes["goal"], dtype=np.float64)
        self.neighbour_timeout = changes.get("neighbour_timeout", self.neighbour_timeout)

    def now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    # ----- neighbours ---------------------------------------------------------------------------
    def _discover(self) -> None:
        for topic, types in self.get_topic_names_and_types():
            if (ODOMETRY_TYPE in types and topic != self.own_topic and topic not in self.neighbours
                    and fnmatch.fnmatchcase(topic, self.values["neighbour_pattern"])):
                self.neighbours[topic] = Neighbour()
                self.create_subscription(Odometry, topic, lambda msg, t=topic: self._on_neighbour(t, msg),
                                         CONTROL_QOS, event_callbacks=self.qos.sub(topic))
                self.get_logger().info(f"neighbour discovered: {topic}")

    def _on_neighbour(self, topic: str, msg: Odometry) -> None:
        state = odometry_to_state(msg)
        n = self.neighbours[topic]
        if not state.finite():
            self.counts["nonfinite_neighbour_messages"] += 1
            n.heard = -math.inf  # stale from now on: last position, worst-case velocity
            return
        n.position, n.velocity, n.heard = state.position[:2].copy(), state.velocity[:2].copy(), self.now()

    def _neighbour_states(self, p: np.ndarray, now: float) -> tuple[np.ndarray, np.ndarray]:
        positions, velocities = [], []
        for n in self.neighbours.values():
            if n.position is None:
                continue
            velocity = n.velocity
            if now - n.heard > self.neighbour_timeout:
                # Stale: it may be coming straight at us at full speed.
                away = p - n.position
                velocity = self.values["max_speed"] * away / max(float(np.linalg.norm(away)), 1e-9)
                if np.linalg.norm(away) <= self.config.sensing_radius:
                    self.counts["stale_neighbour_steps"] += 1
            positions.append(n.position)
            velocities.append(velocity)
        return np.reshape(positions, (-1, 2)), np.reshape(velocities, (-1, 2))

    # ----- control ------------------------------------------------------------------------------
    def _on_odom(self, msg: Odometry) -> None:
        state = odometry_to_state(msg)
        if not state.finite():
            self.counts["nonfinite_odometry"] += 1  # no setpoint: the vehicle brakes on its timeout
            return
        now = self.now()
        p3, v3 = state.position, state.velocity
        p, v = p3[:2], v3[:2]
        if self.hold is None:
            self.hold = p3.copy()
        heard = sum(n.position is not None for n in self.neighbours.values())
        if self.go_at == math.inf and heard >= self.values["agents"] - 1:
            self.go_at = now + self.values["start_delay"]
        target = self.goal if now >= self.go_at else self.hold
        others_p, others_v = self._neighbour_states(p, now)
        obs, order = agent_observation_and_slots(
            p, v, target[:2], others_p, others_v, agent_radius=self.config.agent_radius,
            sensing_radius=self.config.sensing_radius, slots=self.tuner.slots,
            agents_first=self.tuner.per_neighbour)
        clamped, fallbacks = self.tuner.clamped, self.tuner.fallbacks
        # a tuner that sets the tilt overrides nominal_tilt; a per-neighbour one gives gains per neighbour
        k1, k2, *turn = self.tuner.gains(obs, order, len(others_p))
        self.counts["clamped_gains"] += self.tuner.clamped - clamped
        self.counts["fallbacks"] += self.tuner.fallbacks - fallbacks
        tilt = turn[0] if turn else self.values["nominal_tilt"]
        u_nom = nominal_acceleration(p, v, target[:2], max_speed=self.values["max_speed"],
                                     max_accel=self.config.max_accel, kp=self.values["nominal_kp"],
                                     kd=self.values["nominal_kd"], tilt=tilt)
        out = filter_agent(p, v, u_nom, others_p, others_v, k1, k2, self.config)
        self.counts["solves"] += 1
        self.counts["modified"] += out.modified
        self.counts["faults"] += out.fault
        distances = np.linalg.norm(others_p - p, axis=1)
        own_k1, own_k2 = self.tuner.last_outputs[:2]  # per-neighbour rows may be none at all
        self.last = dict(k1=own_k1, k2=own_k2, tilt=tilt, in_range=out.rows,
                         min_distance=min(self.last["min_distance"], float(distances.min(initial=math.inf))))
        # The tracker's setpoint that yields exactly u: velocity setpoint v, position shifted by u / kp.
        position = np.array([*(p + out.u / self.values["tracker_kp"]), target[2]])
        pose, twist = setpoint_msgs(Setpoint(position, np.array([*v, 0.0])), msg.header.stamp)
        self.twist_pub.publish(twist)
        self.pose_pub.publish(pose)

    def _publish_diagnostics(self) -> None:
        level, message = OK, "filtering" if self.hold is not None else "waiting for odometry"
        if self.counts["faults"] or self.counts["stale_neighbour_steps"] or self.counts["clamped_gains"]:
            level, message = WARN, "faults, stale neighbours or clamped gains (see values)"
        if self.qos.problems:
            level, message = ERROR, "; ".join(self.qos.problems.values())
        self.diag_pub.publish(diagnostic(self, level, message, {
            **self.counts, **self.last, "neighbours": len(self.neighbours),
            "heard_neighbours": sum(n.position is not None for n in self.neighbours.values()),
            "going": self.now() >= self.go_at, "policy_sha256": self.tuner.policy.sha256}))


def main(args: list[str] | None = None) -> int:
    return main_for(SwarmFilterNode, args)


if __name__ == "__main__":
    raise SystemExit(main())

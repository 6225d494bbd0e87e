"""Odometry-in to motor-command-out latency of the ROS 2 control chain, for ``robo bench ros``.

See :mod:`robo.bench.ros` for the method; this module holds the rclpy side (this room is the only one
that imports rclpy).
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np


def measure_chain(chain: str, rate: float, duration: float, policy: str,
                  composed: bool = False) -> dict[str, Any]:
    """``composed``: the chain's nodes in one process (the ``graph`` executable, one executor)."""
    import rclpy
    from geometry_msgs.msg import PoseStamped, TwistStamped
    from nav_msgs.msg import Odometry
    from rclpy.executors import SingleThreadedExecutor
    from std_msgs.msg import Float32MultiArray, Header

    from robo.ros.common import CONTROL_QOS
    from robo.ros.convert import setpoint_msgs, state_to_odometry
    from robo.ros.processes import PARAMS_FILE, start_node, stop_nodes
    from robo.runtime import Setpoint

    domain = 150 + os.getpid() % 50
    os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    tmp = Path(tempfile.mkdtemp(prefix="robo_bench_ros_"))
    filtered = chain == "filter+policy"
    procs = []
    params: dict[str, Any] = {"policy": policy, "state_timeout": 1.0, "setpoint_timeout": 1.0,
                              "echo_odometry_stamp": True}
    nodes = ["safety_filter", "policy"] if filtered else ["policy"]
    if filtered:
        params.update(trigger="setpoint", use_filter_status=True)
    if composed:
        procs.append(start_node("graph", tmp / "graph.log", domain, params_files=[PARAMS_FILE],
                                parameters=params, tmp_dir=tmp, arguments=nodes))
    else:
        for name in nodes:
            procs.append(start_node(name, tmp / f"{name}.log", domain, params_files=[PARAMS_FILE],
                                    parameters=params if name == "policy" else None, tmp_dir=tmp))
    ctx = rclpy.Context()
    rclpy.init(context=ctx, domain_id=domain)
    node = rclpy.create_node("robo_bench_ros", context=ctx)
    executor = SingleThreadedExecutor(context=ctx)
    executor.add_node(node)
    prefix = "reference" if filtered else "setpoint"
    odom_pub = node.create_publisher(Odometry, "odom", CONTROL_QOS)
    pose_pub = node.create_publisher(PoseStamped, f"{prefix}/pose", CONTROL_QOS)
    twist_pub = node.create_publisher(TwistStamped, f"{prefix}/twist", CONTROL_QOS)
    n = round(duration * rate)
    sent = np.full(n, np.nan)
    latency = np.full(n, np.nan)
    index: dict[tuple[int, int], int] = {}
    state = {"echoes": 0, "motor_commands": 0}

    def on_echo(h: Header) -> None:
        t = time.perf_counter()
        state["echoes"] += 1
        k = index.get((h.stamp.sec, h.stamp.nanosec))
        if k is not None and np.isnan(latency[k]):
            latency[k] = t - sent[k]

    def on_motor(_: Float32MultiArray) -> None:
        state["motor_commands"] += 1

    node.create_subscription(Header, "motor_command/stamp", on_echo, CONTROL_QOS)
    node.create_subscription(Float32MultiArray, "motor_command", on_motor, CONTROL_QOS)
    x = np.array([0.0, 0.0, 1.0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0])
    hover = Setpoint(np.array([0.0, 0.0, 1.0]), np.zeros(3))

    def publish(k: int | None) -> None:
        stamp = node.get_clock().now().to_msg()
        pose, twist = setpoint_msgs(hover, stamp)
        twist_pub.publish(twist)
        pose_pub.publish(pose)
        if k is not None:
            index[(stamp.sec, stamp.nanosec)] = k
            sent[k] = time.perf_counter()
            odom_pub.publish(state_to_odometry(x, stamp))

    try:
        # Warm up until commands flow (the nodes start, discovery completes).
        deadline = time.monotonic() + 30
        while state["echoes"] < 20:
            if time.monotonic() > deadline:
                logs = {p.name: p.read_text()[-800:] for p in tmp.glob("*.log")}
                raise RuntimeError(f"bench ros: no motor commands from the {chain} chain: {logs}")
            publish(None)
            odom_pub.publish(state_to_odometry(x, node.get_clock().now().to_msg()))
            executor.spin_once(timeout_sec=0.01)
        state.update(echoes=0, motor_commands=0)
        period = 1.0 / rate
        every = max(1, round(rate / 100.0))  # setpoints at 100 Hz
        start = time.perf_counter() + 0.1
        for k in range(n):
            due = start + k * period
            while (now := time.perf_counter()) < due:
                executor.spin_once(timeout_sec=max(0.0, due - now))
            if k % every == 0:
                publish(None)
            publish(k)
        end = time.perf_counter() + 0.1
        while time.perf_counter() < end:
            executor.spin_once(timeout_sec=0.005)
    finally:
        stop_nodes(procs)
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown(context=ctx)
    ok = latency[~np.isnan(latency)] * 1e3
    return {"chain": chain, "process": "one" if composed else "separate", "rate_hz": rate, "sent": n,
            "answered": int(ok.size),
            "dropped": int(n - ok.size), "motor_commands": state["motor_commands"],
            "p50_ms": float(np.percentile(ok, 50)) if ok.size else None,
            "p99_ms": float(np.percentile(ok, 99)) if ok.size else None,
            "max_ms": float(ok.max()) if ok.size else None}

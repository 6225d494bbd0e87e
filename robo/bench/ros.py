"""ROS 2 latency: odometry in -> motor command out, through the policy node and through safety filter +
policy, at 100 Hz and 500 Hz; the in-process loop of ``robo fly`` is the baseline.

The nodes run as their own processes (started as the launch file starts them) over Fast DDS on this
machine. This process publishes odometry on a fixed schedule (and setpoints at 100 Hz), each message with
its own stamp. The policy node runs with ``echo_odometry_stamp``: right after each motor command it
publishes the stamp of the odometry that command was computed from, so every command is matched to its
odometry message exactly; the latency is taken when that echo arrives (an upper bound of the motor
command's by one small publish). An odometry message never answered counts as dropped: with depth-1
best-effort QoS a node that is still busy keeps only the newest message, which is the intended behaviour
for control, and the count says how often it happens.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

HELP = "ROS 2 odometry->motor latency (policy, filter+policy) at 100/500 Hz vs the in-process robo fly loop"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--duration", type=float, default=60.0, help="seconds per case (default 60)")
    parser.add_argument("--rates", type=float, nargs="+", default=[100.0, 500.0], help="odometry rates, Hz")
    parser.add_argument("--policy", default="", help="policy.onnx (default: the committed RAPTOR student)")


def run(args: argparse.Namespace) -> dict[str, Any]:
    if not args.duration > 0:
        raise ValueError(f"--duration must be > 0 s, got {args.duration}")
    if any(not 1 <= r <= 2000 for r in args.rates):
        raise ValueError(f"--rates must lie in [1, 2000] Hz, got {args.rates}")
    baseline = in_process_baseline(args.policy, min(args.duration, 20.0))
    cases = []
    for chain in ("policy", "filter+policy"):
        for rate in args.rates:
            print(f"{chain} at {rate:g} Hz for {args.duration:g} s ...", flush=True)
            cases.append(measure_chain(chain, rate, args.duration, args.policy))
    print_table(baseline, cases)
    return {"duration_s": args.duration, "baseline_in_process": baseline, "ros": cases,
            "targets": {"policy_p99_ms_at_500_hz": 2.0, "dropped_at_100_hz": 0}}


def in_process_baseline(policy: str, duration: float) -> dict[str, Any]:
    """``robo fly``'s loop (setpoint -> filter -> policy -> motors) timed per step, filter off and on."""
    from robo.tasks.fly import FlyConfig, fly

    out = {}
    for name, filt in (("policy", False), ("filter+policy", True)):
        m = fly(FlyConfig(policy=policy, duration=duration, filter=filt))["metrics"]["loop_latency_us"]
        out[name] = {"p50_ms": m["p50"] / 1e3, "p99_ms": m["p99"] / 1e3, "max_ms": m["max"] / 1e3,
                     "steps": round(duration * 100)}
    return out


def measure_chain(chain: str, rate: float, duration: float, policy: str) -> dict[str, Any]:
    import rclpy
    from geometry_msgs.msg import PoseStamped, TwistStamped
    from nav_msgs.msg import Odometry
    from rclpy.executors import SingleThreadedExecutor
    from std_msgs.msg import Float32MultiArray, Header

    from robo.ros.common import CONTROL_QOS
    from robo.ros.convert import setpoint_msgs, state_to_odometry
    from robo.ros.processes import PARAMS_FILE, start_node
    from robo.runtime import Setpoint

    domain = 150 + os.getpid() % 50
    os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    tmp = Path(tempfile.mkdtemp(prefix="robo_bench_ros_"))
    filtered = chain == "filter+policy"
    procs = []
    params: dict[str, Any] = {"policy": policy, "state_timeout": 1.0, "setpoint_timeout": 1.0,
                              "echo_odometry_stamp": True}
    if filtered:
        params.update(trigger="setpoint", use_filter_status=True)
        procs.append(start_node("safety_filter", tmp / "filter.log", domain, params_files=[PARAMS_FILE],
                                tmp_dir=tmp))
    procs.append(start_node("policy", tmp / "policy.log", domain, params_files=[PARAMS_FILE],
                            parameters=params, tmp_dir=tmp))
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
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=5)
            except Exception:
                p.kill()
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown(context=ctx)
    ok = latency[~np.isnan(latency)] * 1e3
    return {"chain": chain, "rate_hz": rate, "sent": n, "answered": int(ok.size),
            "dropped": int(n - ok.size), "motor_commands": state["motor_commands"],
            "p50_ms": float(np.percentile(ok, 50)) if ok.size else None,
            "p99_ms": float(np.percentile(ok, 99)) if ok.size else None,
            "max_ms": float(ok.max()) if ok.size else None}


def print_table(baseline: dict[str, Any], cases: list[dict[str, Any]]) -> None:
    print(f"\n{'chain':<15}{'where':<14}{'rate Hz':>8}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}{'dropped':>9}")
    for name, b in baseline.items():
        print(f"{name:<15}{'in-process':<14}{100:>8}{b['p50_ms']:>9.3f}{b['p99_ms']:>9.3f}{b['max_ms']:>9.3f}"
              f"{'-':>9}")
    for c in cases:
        p50, p99, mx = (f"{c[k]:.3f}" if c[k] is not None else "-" for k in ("p50_ms", "p99_ms", "max_ms"))
        print(f"{c['chain']:<15}{'ROS (DDS)':<14}{c['rate_hz']:>8g}{p50:>9}{p99:>9}{mx:>9}"
              f"{c['dropped']:>5}/{c['sent']}")
    print("targets: policy node p99 <= 2 ms at 500 Hz; nothing dropped at 100 Hz")

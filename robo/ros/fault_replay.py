"""The ROS graph under injected faults, for ``robo bench faults`` (rclpy side; see robo/bench/faults.py).

The real nodes run as processes: quadrotor_sim (its odometry remapped to ``sim/odom``), trajectory
(hold) and policy. This process relays ``sim/odom`` to ``odom`` and injects the faults there:
odometry stalls (messages dropped for a while, the vehicle keeps flying), one NaN odometry message,
and last the simulator killed. It records every motor command on arrival and the true altitude.
"""

from __future__ import annotations

import math
import os
import signal
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

DESCENT, OFF = 0.5, 0.0  # configs/ros_quadrotor.yaml: descent_throttle; motors off


def replay(stalls: list[float], trials: int, settle: float = 2.5) -> list[dict[str, Any]]:
    import rclpy
    from nav_msgs.msg import Odometry
    from rclpy.executors import SingleThreadedExecutor
    from std_msgs.msg import Float32MultiArray

    from robo.ros.common import CONTROL_QOS
    from robo.ros.processes import PARAMS_FILE, start_node

    domain = 100 + os.getpid() % 50
    os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    tmp = Path(tempfile.mkdtemp(prefix="robo_bench_faults_"))
    ctx = rclpy.Context()
    rclpy.init(context=ctx, domain_id=domain)
    node = rclpy.create_node("robo_bench_faults", context=ctx)
    executor = SingleThreadedExecutor(context=ctx)
    executor.add_node(node)
    odom_pub = node.create_publisher(Odometry, "odom", CONTROL_QOS)
    rec: dict[str, Any] = {"z": [], "commands": [], "relayed": [], "drop_until": 0.0, "nan": False}

    def on_sim_odom(m: Odometry) -> None:
        now = time.monotonic()
        p = m.pose.pose.position
        rec["z"].append((now, p.x, p.y, p.z))
        if now < rec["drop_until"]:
            return
        if rec["nan"]:
            m.pose.pose.position.x = math.nan
            rec["nan"] = False
        odom_pub.publish(m)
        rec["relayed"].append(time.monotonic())

    node.create_subscription(Odometry, "sim/odom", on_sim_odom, CONTROL_QOS)
    node.create_subscription(Float32MultiArray, "motor_command",
                             lambda m: rec["commands"].append((time.monotonic(), list(m.data))), CONTROL_QOS)
    procs = {
        "quadrotor_sim": start_node("quadrotor_sim", tmp / "sim.log", domain, params_files=[PARAMS_FILE],
                                    remappings=[("odom", "sim/odom")], tmp_dir=tmp),
        "trajectory": start_node("trajectory", tmp / "trajectory.log", domain, params_files=[PARAMS_FILE],
                                 parameters={"kind": "hold"}, tmp_dir=tmp),
        "policy": start_node("policy", tmp / "policy.log", domain, params_files=[PARAMS_FILE], tmp_dir=tmp),
    }

    def spin(seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            executor.spin_once(timeout_sec=0.005)

    results = []
    try:
        deadline = time.monotonic() + 60
        while len(rec["commands"]) < 100:
            if time.monotonic() > deadline:
                raise RuntimeError(f"bench faults: the graph did not fly; logs in {tmp}")
            spin(0.1)
        spin(2.0)
        faults = [(f"odometry stall {d:g} s", d) for d in stalls for _ in range(trials)]
        faults += [("NaN odometry", None)] * trials
        for name, duration in faults:
            t0 = time.monotonic()
            if duration is not None:
                rec["drop_until"] = t0 + duration
            else:
                rec["nan"] = True
            spin(settle)
            results.append(_measure(name, rec, t0, duration))
        t0 = time.monotonic()
        procs["quadrotor_sim"].send_signal(signal.SIGKILL)
        spin(1.0)
        results.append(_measure("simulator killed", rec, t0, math.inf))
    finally:
        for p in procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGINT)
        for p in procs.values():
            try:
                p.wait(timeout=5)
            except Exception:
                p.kill()
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown(context=ctx)
    return results


def _measure(name: str, rec: dict[str, Any], t0: float, duration: float | None,
             state_timeout: float = 0.1, period: float = 0.01) -> dict[str, Any]:
    """Detection: the policy sees no odometry for state_timeout (a stall, the kill), or the NaN's arrival."""
    relayed_before = [t for t in rec["relayed"] if t <= t0]
    last = relayed_before[-1] if relayed_before else t0
    if duration is None:  # NaN: detected on arrival of the first message relayed after t0
        detected = next((t for t in rec["relayed"] if t > t0), math.nan)
    else:
        detected = last + state_timeout
        if duration is not math.inf and t0 + duration < detected:
            detected = math.nan  # shorter than the state timeout: nothing to detect
    safe = next((t for t, m in rec["commands"] if t >= detected - 1e-4 and _is_safe(m)), math.nan)
    measured = math.isfinite(detected) and math.isfinite(safe)
    periods = math.ceil((safe - detected) / period) if measured else None
    window = np.array([r for r in rec["z"] if r[0] >= t0 - 0.05]) if rec["z"] else np.zeros((0, 4))
    before = [r for r in rec["z"] if r[0] < t0]
    z0 = before[-1][3] if before else math.nan
    loss = float(z0 - window[:, 3].min()) if len(window) else None
    lost = bool(len(window) and (np.linalg.norm(window[-1, 1:4] - [0.0, 0.0, 1.0]) > 1.0
                                 or not np.all(np.isfinite(window[:, 1:4]))))
    return {"fault": name, "detected": math.isfinite(detected), "periods_to_safe_command": periods,
            "max_altitude_loss_m": loss, "lost": lost if duration is not math.inf else None}


def _is_safe(motors: list[float]) -> bool:
    return all(abs(v - DESCENT) < 1e-6 for v in motors) or all(v == OFF for v in motors)

"""The ROS graph under injected faults, for ``robo bench faults`` (rclpy side; see robo/bench/faults.py).

The real nodes run as processes: quadrotor_sim (its odometry remapped to ``sim/odom``), trajectory
(hold) and policy. This process relays ``sim/odom`` to ``odom`` and injects the faults there:
odometry stalls (messages dropped for a while, the vehicle keeps flying), one NaN odometry message,
and last the simulator killed. It records every motor command (when the policy node published it,
from DDS, and when it arrived here), the true altitude, and the policy node's own diagnostics, which it
publishes on every mode change: the fault is dated when the policy says it detected it, on its clock.
A second vehicle (the same three nodes under the namespace ``uav2``) flies alongside without faults;
it must not notice any of them.
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
from tqdm import tqdm

DESCENT, OFF = 0.5, 0.0  # configs/ros_quadrotor.yaml: descent_throttle; motors off
FAILSAFE = ("descend", "motors_off")
SECOND = "uav2"


def replay(stalls: list[float], trials: int, settle: float = 2.5,
           realtime_priority: int = 0) -> list[dict[str, Any]]:
    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray
    from nav_msgs.msg import Odometry
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from std_msgs.msg import Float32MultiArray

    from robo.ros.common import CONTROL_QOS, set_realtime_priority
    from robo.ros.processes import PARAMS_FILE, start_node, stop_nodes

    if realtime_priority:
        # This process relays the vehicle's odometry: at the policy's priority, so that the relay is not
        # what stalls first on a busy machine. The nodes it starts keep the normal scheduler (the
        # policy node sets its own).
        set_realtime_priority(realtime_priority, children=False)
    domain = 100 + os.getpid() % 50
    os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    tmp = Path(tempfile.mkdtemp(prefix="robo_bench_faults_"))
    ctx = rclpy.Context()
    rclpy.init(context=ctx, domain_id=domain)
    node = rclpy.create_node("robo_bench_faults", context=ctx)
    executor = SingleThreadedExecutor(context=ctx)
    executor.add_node(node)
    odom_pub = node.create_publisher(Odometry, "odom", CONTROL_QOS)
    rec: dict[str, Any] = {"z": [], "commands": [], "relayed": [], "drop_until": 0.0, "nan": False,
                           "modes": [], "nonfinite": [],
                           "second_z": [], "second_modes": []}
    wall_minus_monotonic = time.time() - time.monotonic()  # diagnostics carry the nodes' (system) time

    def on_diagnostics(m: DiagnosticArray) -> None:
        t = m.header.stamp.sec + m.header.stamp.nanosec * 1e-9 - wall_minus_monotonic
        for s in m.status:
            values = {v.key: v.value for v in s.values}
            mode = values.get("mode", "")
            if s.name == "/policy":
                rec["modes"].append((t, mode, s.message))
                rec["nonfinite"].append((t, int(values.get("nonfinite_states", 0))))
            elif s.name == f"/{SECOND}/policy":
                rec["second_modes"].append((t, mode, s.message))

    def on_sim_odom(m: Odometry) -> None:
        now = time.monotonic()
        p = m.pose.pose.position
        w = m.twist.twist.angular
        rec["z"].append((now, p.x, p.y, p.z, math.sqrt(w.x * w.x + w.y * w.y)))
        if now < rec["drop_until"]:
            return
        if rec["nan"]:
            m.pose.pose.position.x = math.nan
            rec["nan"] = False
        odom_pub.publish(m)
        rec["relayed"].append(time.monotonic())

    node.create_subscription(Odometry, "sim/odom", on_sim_odom, CONTROL_QOS)
    def on_command(m: Float32MultiArray, info: dict[str, int]) -> None:
        # Publication time (the policy node's clock, from DDS) and arrival here: on a loaded machine this
        # process may take the message late, which says nothing about when the node answered the fault.
        published = info["source_timestamp"] * 1e-9 - wall_minus_monotonic
        rec["commands"].append((time.monotonic(), published, list(m.data)))

    # A deep history: a late spin of this process must not let a newer command replace an older one
    # unseen (with the control profile's depth 1 the first safe command could go missing).
    node.create_subscription(Float32MultiArray, "motor_command", on_command,
                             QoSProfile(depth=1000, reliability=ReliabilityPolicy.BEST_EFFORT))
    node.create_subscription(DiagnosticArray, "/diagnostics", on_diagnostics, QoSProfile(depth=100))

    def on_second_odom(m: Odometry) -> None:
        p = m.pose.pose.position
        rec["second_z"].append((time.monotonic(), p.x, p.y, p.z))

    node.create_subscription(Odometry, f"/{SECOND}/odom", on_second_odom, CONTROL_QOS)

    def start_vehicle(tag: str = "", namespace: str = "") -> dict[str, Any]:
        """sim, trajectory (hold) and policy; the faulted vehicle's odometry goes through this relay."""
        prefix = f"{namespace}_" if namespace else ""
        remap = [] if namespace else [("odom", "sim/odom")]
        parameters = {"quadrotor_sim": {}, "trajectory": {"kind": "hold"},
                      "policy": {"realtime_priority": realtime_priority}}
        return {name: start_node(name, tmp / f"{prefix}{name}{tag}.log", domain, namespace=namespace,
                                 params_files=[PARAMS_FILE], parameters=params,
                                 remappings=remap if name == "quadrotor_sim" else [], tmp_dir=tmp)
                for name, params in parameters.items()}

    procs = start_vehicle()
    second = start_vehicle(namespace=SECOND)

    def spin(seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            executor.spin_once(timeout_sec=0.005)

    def wait_flying(since: int) -> None:
        deadline = time.monotonic() + 60
        while len(rec["commands"]) < since + 100 or len(rec["second_z"]) < 100:
            if time.monotonic() > deadline:
                raise RuntimeError(f"bench faults: the graph did not fly; logs in {tmp}")
            spin(0.1)
        spin(2.0)

    results = []
    restarts = 0
    try:
        wait_flying(0)
        start = time.monotonic()
        faults = [(f"odometry stall {d:g} s", d) for d in stalls for _ in range(trials)]
        faults += [("NaN odometry", None)] * trials
        for name, duration in tqdm(faults, desc="faults", unit="trial", leave=False):
            if not settled(rec, spin):
                # The last trial lost the vehicle (counted there): a fresh vehicle for this one, so that
                # one loss is one lost trial, not every trial after it.
                stop_nodes(list(procs.values()))
                restarts += 1
                procs = start_vehicle(f"_{restarts}")
                wait_flying(len(rec["commands"]))
                settled(rec, spin)
            t0 = time.monotonic()
            if duration is not None:
                rec["drop_until"] = t0 + duration
            else:
                rec["nan"] = True
            spin(settle)
            results.append({**_measure(name, rec, t0, duration), "fresh_vehicle": restarts})
        t0 = time.monotonic()
        procs["quadrotor_sim"].send_signal(signal.SIGKILL)
        spin(1.0)
        results.append(_measure("simulator killed", rec, t0, math.inf))
        results.append(_second_vehicle(rec, start))
    finally:
        stop_nodes([*procs.values(), *second.values()])
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown(context=ctx)
    return results


def settled(rec: dict[str, Any], spin: Any, timeout: float = 10.0) -> bool:
    """Wait until the vehicle has hovered within 0.1 m of the hold point for 0.5 s: each trial starts from
    a steady hover, not from the recovery after the last one (faults piling up measure something else)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        now = time.monotonic()
        recent = np.array([r[1:4] for r in rec["z"] if r[0] >= now - 0.5])
        if len(recent) > 20 and np.abs(recent - [0.0, 0.0, 1.0]).max() < 0.1:
            return True
        spin(0.1)
    return False


def _measure(name: str, rec: dict[str, Any], t0: float, duration: float | None,
             state_timeout: float = 0.1, period: float = 0.01) -> dict[str, Any]:
    """Detection: when the policy node reported a failsafe mode (its clock); its delay after the fault
    became detectable (no odometry for state_timeout, or the NaN's arrival; this relay's clock)."""
    relayed_before = [t for t in rec["relayed"] if t <= t0]
    last = relayed_before[-1] if relayed_before else t0
    if duration is None:  # NaN: detectable on arrival of the first message relayed after t0
        detectable = next((t for t in rec["relayed"] if t > t0), math.nan)
    else:
        detectable = last + state_timeout
    end = t0 + (duration if duration is not None and math.isfinite(duration) else 0.0) + 1.0
    detected = next((t for t, mode, _ in rec["modes"] if t0 <= t <= end and mode in FAILSAFE), math.nan)
    # A fault that arrives while the node is already in a failsafe (a stall of its own on a loaded
    # machine) changes no mode, so it reports nothing new: it is met by the failsafe already running.
    # That includes a stall of this relay's own on a loaded machine, which can begin the fault before t0.
    earlier = [(t, mode) for t, mode, _ in rec["modes"] if t <= max(t0, min(detectable, detected))]
    if earlier and earlier[-1][1] in FAILSAFE and math.isfinite(detectable):
        began = len(earlier) - 1  # the first report of the failsafe still running
        while began > 0 and earlier[began - 1][1] in FAILSAFE:
            began -= 1
        detected = max(detectable, earlier[began][0])
    arrived, published = next(((a, p) for a, p, m in rec["commands"]
                               if p >= detected - 1e-4 and _is_safe(m)), (math.nan, math.nan))
    measured = math.isfinite(detected) and math.isfinite(published)
    periods = math.ceil((published - detected) / period) if measured else None
    arrival_periods = math.ceil((arrived - detected) / period) if measured else None
    window = np.array([r for r in rec["z"] if r[0] >= t0 - 0.05]) if rec["z"] else np.zeros((0, 5))
    before = [r for r in rec["z"] if r[0] < t0]
    z0 = before[-1][3] if before else math.nan
    loss = float(z0 - window[:, 3].min()) if len(window) else None
    lost = bool(len(window) and (np.linalg.norm(window[-1, 1:4] - [0.0, 0.0, 1.0]) > 1.0
                                 or not np.all(np.isfinite(window[:, 1:4]))))
    delay = (detected - detectable) * 1e3 if math.isfinite(detected) and math.isfinite(detectable) else None
    received = None
    if duration is None:  # did the NaN reach the node, or did a good message replace it in its depth-1 queue?
        before = [n for t, n in rec["nonfinite"] if t < t0]
        received = bool(rec["nonfinite"]) and rec["nonfinite"][-1][1] > (before[-1] if before else 0)
    # What the policy node reported around the fault, for the trials that went otherwise than expected.
    reports = [(round(t - t0, 3), mode, reason) for t, mode, reason in rec["modes"] if t0 - 0.5 <= t <= end]
    return {"fault": name, "received": received, "detected": math.isfinite(detected), "reports": reports,
            "periods_to_safe_command": periods, "periods_to_arrival": arrival_periods,
            "detection_delay_ms": delay, "max_altitude_loss_m": loss,
            # The roll/pitch rate the vehicle reached (true state): how a lost trial was lost.
            "max_roll_pitch_rate_rad_s": float(window[:, 4].max()) if len(window) else None,
            "lost": lost if duration is not math.inf else None}


def _second_vehicle(rec: dict[str, Any], t0: float) -> dict[str, Any]:
    """The vehicle in namespace uav2 over all the faults above: never in a failsafe mode, never lost."""
    z = np.array([r for r in rec["second_z"] if r[0] >= t0])
    failsafe = [m for t, m, _ in rec["second_modes"] if t >= t0 and m in FAILSAFE]
    loss = float(1.0 - z[:, 3].min()) if len(z) else None
    lost = bool(not len(z) or np.abs(z[:, 1:4] - [0.0, 0.0, 1.0]).max() > 1.0)
    return {"fault": f"second vehicle (/{SECOND})", "detected": bool(failsafe),
            "periods_to_safe_command": None, "periods_to_arrival": None, "detection_delay_ms": None,
            "max_altitude_loss_m": loss,
            "lost": lost, "unaffected": not failsafe and not lost}


def _is_safe(motors: list[float]) -> bool:
    return all(abs(v - DESCENT) < 1e-6 for v in motors) or all(v == OFF for v in motors)

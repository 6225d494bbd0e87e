"""ROS 2 integration: real rclpy over Fast DDS, every node its own process, started with the command
line launch_ros builds from launch/quadrotor.launch.py (robo.ros.processes.node_command)."""

from __future__ import annotations

import json
import signal
import time

import numpy as np
import pytest
import rclpy
from diagnostic_msgs.msg import DiagnosticStatus
from geometry_msgs.msg import PoseStamped, TwistStamped
from nav_msgs.msg import Odometry
from policy_standins import copy_default
from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue
from rcl_interfaces.srv import SetParameters
from rclpy.event_handler import SubscriptionEventCallbacks
from rclpy.parameter import Parameter as NodeParameter
from rclpy.qos import QoSProfile, ReliabilityPolicy
from ros_harness import Graph
from rosgraph_msgs.msg import Clock
from std_msgs.msg import Float32MultiArray

from robo.ros.common import CONTROL_QOS
from robo.ros.convert import answered_stamp, setpoint_msgs, stamp_seconds, state_to_odometry
from robo.runtime import Setpoint

pytestmark = pytest.mark.ros

OBSTACLE = np.array([1.0, 0.0, 1.0])  # on the figure-eight (it passes x = 1, y = 0)
RADIUS = 0.15                          # configs/ros_quadrotor.yaml: obstacles [1.0, 0.0, 1.0, 0.15]
FILTERED = [("setpoint/pose", "reference/pose"), ("setpoint/twist", "reference/twist")]


@pytest.fixture(scope="module")
def flight(tmp_path_factory):
    """The launch file's default graph (simulator, trajectory, safety filter, default policy)."""
    g = Graph(tmp_path_factory.mktemp("flight"))
    rows: list[tuple] = []
    motors: list[list[float]] = []
    reference: list[np.ndarray] = [np.full(3, np.nan)]

    def on_odom(m: Odometry) -> None:
        p = m.pose.pose.position
        rows.append((g.node.get_clock().now().nanoseconds * 1e-9, p.x, p.y, p.z, *reference[-1]))

    def on_ref(m: PoseStamped) -> None:
        p = m.pose.position
        reference.append(np.array([p.x, p.y, p.z]))

    g.node.create_subscription(Odometry, "odom", on_odom, CONTROL_QOS)
    g.node.create_subscription(PoseStamped, "reference/pose", on_ref, CONTROL_QOS)
    g.node.create_subscription(Float32MultiArray, "motor_command", lambda m: motors.append(list(m.data)),
                               CONTROL_QOS)
    # Started in the order that keeps the policy's loop from being starved once it flies: on a 2-core
    # machine the other processes' start-up (imports, MuJoCo, cvxpy) can stall it past its state timeout,
    # and the watchdog's (correct) level descent then costs the altitude this test judges the flight by.
    # The simulator holds the vehicle until the first motor command, and the policy sends none until
    # setpoints flow (its watchdog arms then); the trajectory starts last, so its 2 s at the start point
    # and the figure-eight all fall in the flight.
    g.start("quadrotor_sim")
    g.start("safety_filter")
    g.spin_until(lambda: g.statuses("/safety_filter"), 60, "the safety filter's first diagnostics")
    # state_timeout 0.25 s instead of 0.1: on a shared 2-core test machine a node process can be
    # descheduled for 100 ms; the watchdog would (correctly) engage, and this test is about flying.
    g.start("policy", parameters={"trigger": "setpoint", "use_filter_status": True, "state_timeout": 0.25})
    g.spin_until(lambda: any("setpoints to flow" in s.message for s in g.statuses("/policy")), 60,
                 "the policy waiting for setpoints")
    assert not motors, "the policy commanded the motors before any setpoint"
    g.start("trajectory", remappings=FILTERED)
    g.spin_until(lambda: len(motors) > 0, 60, "the first motor command")
    g.spin_until(lambda: len(reference) > 1, 60, "the trajectory's first reference")
    g.rows, g.motors, g.reference = rows, motors, reference
    yield g
    g.close()


def test_default_policy_flies_a_figure_eight_around_an_obstacle_over_dds(flight, record_property):
    g = flight
    start = len(g.rows)
    # 2 s at the start point (start_delay), then the 10 s figure-eight.
    g.spin_for(12.5)
    a = np.array(g.rows[start:])
    # Enough samples to judge the flight; how many arrive in 12.5 s of wall time depends on the machine's
    # load (best-effort, depth 1), which belongs to `robo bench ros`, not to this test.
    assert len(a) > 200, f"only {len(a)} odometry messages in 12.5 s"
    t = a[:, 0] - a[0, 0]
    pos, ref = a[:, 1:4], a[:, 4:7]
    moving = (t > 2.5) & np.all(np.isfinite(ref), axis=1)
    err = np.linalg.norm(pos - ref, axis=1)[moving]
    rmse = float(np.sqrt(np.mean(err**2)))
    clearance = float(np.min(np.linalg.norm(pos - OBSTACLE, axis=1)) - RADIUS)
    report = {"tracking_rmse_m": rmse, "max_tracking_error_m": float(err.max()),
              "min_obstacle_clearance_m": clearance, "odometry_messages": len(a),
              "motor_commands": len(g.motors)}
    record_property("flight", json.dumps(report))
    print(f"\nfigure-eight over DDS, filter on: {report}")
    assert np.ptp(pos[:, 0]) > 1.2, "the vehicle did not fly the figure-eight"
    assert clearance > 0, f"collision: {clearance:.3f} m inside the obstacle"
    modes = [(s.values[0].value, s.message) for s in g.statuses("/policy")]
    assert pos[:, 2].min() > 0.5, f"lost altitude ({pos[:, 2].min():.2f} m); the policy's modes: {modes}"
    assert rmse < 0.5, report
    motors = np.array(g.motors)
    assert np.all((motors >= 0) & (motors <= 1)) and motors.shape[1] == 4
    # The watchdog may step in briefly when a node process is descheduled on a busy machine (stale
    # odometry, then recovery); it must never have switched the motors off.
    assert not [m for m in modes if m[0] == "motors_off"], modes
    transient = [m for m in modes if m[0] not in ("waiting", "ok")]
    if transient:
        print(f"watchdog stepped in and recovered: {transient}")
    filt = g.statuses("/safety_filter")
    assert filt and int(next(v.value for v in filt[-1].values if v.key == "interventions")) > 0


def _last_mode(g, node: str) -> str | None:
    """The node's latest watchdog mode, None before its first diagnostics."""
    statuses = g.statuses(node)
    return statuses[-1].values[0].value if statuses else None


def test_watchdog_engages_when_the_simulator_is_killed(flight):
    g = flight
    g.spin_until(lambda: len(g.motors) > 0, 30, "the first motor command")
    g.procs["quadrotor_sim"].send_signal(signal.SIGKILL)
    before = len(g.motors)
    g.spin_until(lambda: any(s.values[0].value == "motors_off" for s in g.statuses("/policy")), 5,
                 "motors_off in the policy's diagnostics")
    g.spin_for(0.3)  # the diagnostics announce the change before the next command arrives
    after = np.array(g.motors[before:])
    assert np.allclose(after[-1], 0.0), "the last command is not motors off"
    reasons = [s.message for s in g.statuses("/policy") if s.values[0].value in ("descend", "motors_off")]
    # On a starved machine the node's own loop may stall past the kill: that is the fault it sees
    # first, and a stall longer than descent_timeout goes straight to motors off.
    starved = [r for r in reasons if "control loop stalled" in r]
    assert starved or any("stale odometry" in r for r in reasons), reasons
    if not starved:
        safe = [m for m in after if np.allclose(m, 0.5, atol=1e-6)]
        assert safe, "no level-descent command between the kill and motors off"


def test_qos_mismatch_is_detected_and_reported(tmp_path):
    g = Graph(tmp_path)
    try:
        events = []
        reliable = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE)
        g.node.create_subscription(Float32MultiArray, "motor_command", lambda m: None, reliable,
                                   event_callbacks=SubscriptionEventCallbacks(
                                       incompatible_qos=lambda e: events.append(e)))
        g.start("policy")
        g.spin_until(lambda: bool(events), 20, "an incompatible-QoS event on our reliable subscription")
        g.spin_until(lambda: any("QoS mismatch on motor_command" in s.message for s in g.statuses("/policy")),
                     5, "the policy node reporting the mismatch in its diagnostics")
        status = next(s for s in g.statuses("/policy") if "QoS mismatch" in s.message)
        assert status.level == DiagnosticStatus.ERROR and "RELIABILITY" in status.message
        assert "QoS mismatch on motor_command (publisher)" in g.log("policy")
        # Nothing arrives for a missing topic: the node says what it waits for.
        assert any(s.values[0].value == "waiting" for s in g.statuses("/policy"))
    finally:
        g.close()


def _set(g: Graph, name: str, value: float | str) -> tuple[bool, str]:
    client = g.node.create_client(SetParameters, "/policy/set_parameters")
    g.spin_until(lambda: client.service_is_ready(), 20, "the policy's parameter service")
    pv = (ParameterValue(type=ParameterType.PARAMETER_DOUBLE, double_value=value) if isinstance(value, float)
          else ParameterValue(type=ParameterType.PARAMETER_STRING, string_value=value))
    future = client.call_async(SetParameters.Request(parameters=[Parameter(name=name, value=pv)]))
    g.spin_until(future.done, 10, f"the answer to setting {name}")
    result = future.result().results[0]
    return result.successful, result.reason


def test_bad_parameter_values_are_rejected(tmp_path):
    g = Graph(tmp_path)
    try:
        g.start("policy")
        ok, reason = _set(g, "state_timeout", -1.0)
        assert not ok and "state_timeout" in reason
        ok, reason = _set(g, "descent_throttle", float("nan"))
        assert not ok and "descent_throttle" in reason
        ok, reason = _set(g, "descent_throttle", 1.5)
        assert not ok
        ok, reason = _set(g, "state_timeout", 0.2)
        assert ok, reason
        ok, reason = _set(g, "trigger", "timer")
        assert not ok  # read-only, and not one of its choices either
        # A bad value at start-up (params file or launch) stops the node with one line naming it.
        bad = g.start("policy", name="bad_policy", parameters={"setpoint_timeout": -2.0})
        assert bad.wait(timeout=30) == 1
        assert "setpoint_timeout" in g.log("bad_policy")
        # A misspelt name, which rclpy ignores without a word, is named with the one it resembles.
        g.start("policy", name="typo_policy", parameters={"state_timout": 0.2})
        warning = "parameter 'state_timout' is set but no node here has it, so it is ignored; did you mean " \
                  "'state_timeout'?"
        g.spin_until(lambda: warning in g.log("typo_policy"), 30, "the warning about the misspelt name")
        assert "is set but no node here has it" not in g.log("policy")  # the params file's names all exist
    finally:
        g.close()


def test_a_wrong_model_or_card_stops_the_policy_node(tmp_path):
    g = Graph(tmp_path)
    try:
        tampered = copy_default(tmp_path / "model")
        tampered.write_bytes(tampered.read_bytes() + b"\0")
        proc = g.start("policy", name="tampered", parameters={"policy": str(tampered)})
        assert proc.wait(timeout=30) == 1
        assert "sha256" in g.log("tampered") and "does not match its card" in g.log("tampered")
        proc = g.start("policy", name="missing", parameters={"policy": str(tmp_path / "none.onnx")})
        assert proc.wait(timeout=30) == 1 and "no such file" in g.log("missing")
    finally:
        g.close()


def test_realtime_priority_puts_every_policy_thread_on_sched_fifo(tmp_path, monkeypatch):
    import os

    from robo.ros.common import set_realtime_priority

    g = Graph(tmp_path)
    try:
        proc = g.start("policy", name="rt", parameters={"realtime_priority": 20})
        deadline = time.monotonic() + 30
        while "policy" not in g.log("rt") and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert proc.poll() is None, g.log("rt")
        tids = [int(t) for t in os.listdir(f"/proc/{proc.pid}/task")]
        assert len(tids) > 1 and all(os.sched_getscheduler(t) == os.SCHED_FIFO for t in tids)
        assert {os.sched_getparam(t).sched_priority for t in tids} == {20}
    finally:
        g.close()

    # children=False: this process on SCHED_FIFO, the processes it starts on the normal scheduler.
    script = ("import os, subprocess, sys\n"
              "from robo.ros.common import set_realtime_priority\n"
              "set_realtime_priority(5, children=False)\n"
              "child = subprocess.run([sys.executable, '-c', 'import os; print(os.sched_getscheduler(0))'],"
              " capture_output=True, text=True).stdout.strip()\n"
              "print(os.sched_getscheduler(0) & ~os.SCHED_RESET_ON_FORK == os.SCHED_FIFO, child)\n")
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert out.stdout.split() == ["True", str(os.SCHED_OTHER)], out.stderr

    def refused(*args):
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "sched_setscheduler", refused)
    with pytest.raises(ValueError, match="realtime_priority 5: not permitted here"):
        set_realtime_priority(5)


def test_one_nan_odometry_through_the_filter_gets_a_safe_command_then_a_reentry(tmp_path):
    """The filter faults on a NaN odometry message; the policy node must react to it too: the next
    command is the failsafe's (answering that message), the reason is in its diagnostics, and the
    policy flies again only after fresh odometry. NaN for good ends in motors off."""
    g = Graph(tmp_path)
    try:
        commands: list[tuple[list[float], tuple[int, int] | None]] = []
        g.node.create_subscription(Float32MultiArray, "motor_command",
                                   lambda m: commands.append((list(m.data), answered_stamp(m))), CONTROL_QOS)
        odom = g.node.create_publisher(Odometry, "odom", CONTROL_QOS)
        pose_pub = g.node.create_publisher(PoseStamped, "reference/pose", CONTROL_QOS)
        twist_pub = g.node.create_publisher(TwistStamped, "reference/twist", CONTROL_QOS)
        g.start("safety_filter")
        # state_timeout 1 s: this test is about NaN, not about a loaded machine's scheduling gaps.
        g.start("policy", parameters={"trigger": "setpoint", "use_filter_status": True, "state_timeout": 1.0,
                                      "descent_timeout": 0.5})
        x = np.array([0, 0, 1.0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0])
        bad = x.copy()
        bad[0] = float("nan")
        sent = {"state": x}

        def send() -> None:
            stamp = g.node.get_clock().now().to_msg()
            pose, twist = setpoint_msgs(Setpoint(np.array([0, 0, 1.0]), np.zeros(3)), stamp)
            pose_pub.publish(pose)
            twist_pub.publish(twist)
            odom.publish(state_to_odometry(sent["state"], stamp))
            sent["stamp"] = (stamp.sec, stamp.nanosec)

        timer = g.node.create_timer(0.01, send)
        g.spin_until(lambda: len(commands) > 50 and g.statuses("/policy")
                     and _last_mode(g, "/policy") == "ok", 30, "the policy flying")
        timer.cancel()
        g.spin_for(0.05)
        sent["state"] = bad
        send()
        nan_stamp = sent["stamp"]
        sent["state"] = x
        g.spin_until(lambda: any(c[1] == nan_stamp for c in commands), 5, "the answer to the NaN odometry")
        answer = next(c[0] for c in commands if c[1] == nan_stamp)
        assert np.allclose(answer, 0.5), f"the NaN odometry got {answer}, not the level descent"
        g.spin_until(lambda: any("non-finite odometry" in s.message for s in g.statuses("/policy")), 5,
                     "the reason in the policy's diagnostics")
        # The node counts the non-finite states it received (robo bench faults tells a NaN the node saw
        # from one a good message replaced in its depth-1 queue by this count).
        counts = [int({v.key: v.value for v in s.values}["nonfinite_states"]) for s in g.statuses("/policy")]
        assert counts[0] == 0 and counts[-1] == 1, counts
        timer.reset()
        g.spin_until(lambda: _last_mode(g, "/policy") == "ok", 10, "re-entry")
        timer.cancel()
        sent["state"] = bad
        timer.reset()
        g.spin_until(lambda: any(s.values[0].value == "motors_off" for s in g.statuses("/policy")), 10,
                     "motors off after NaN for good")
        g.spin_for(0.2)
        assert np.allclose(commands[-1][0], 0.0)
    finally:
        g.close()


SIM_TIME = {"use_sim_time": True}
LOCKSTEP_SIM = {"publish_clock": True, "lockstep": True, "real_time_factor": 2.0, **SIM_TIME}


def test_clock_drives_the_nodes_with_use_sim_time_in_lockstep(tmp_path):
    """publish_clock + lockstep: /clock advances with the simulation, the odometry carries that time,
    and nodes with use_sim_time run on it: the trajectory stamps with it, the policy's timers and
    staleness checks use it and it hovers the vehicle, a node of this test reads it. In lockstep the
    simulator waits for each command, so a loaded machine only makes it slower: no timeouts to relax."""
    g = Graph(tmp_path)
    try:
        clock: list[float] = []                # simulated s
        odom: list[tuple[float, float]] = []   # (stamp, z)
        setpoint_stamps: list[float] = []
        motors: list[list[float]] = []
        best_effort = QoSProfile(depth=1, reliability=ReliabilityPolicy.BEST_EFFORT)  # as rclpy's TimeSource
        g.node.create_subscription(Clock, "/clock", lambda m: clock.append(stamp_seconds(m.clock)),
                                   best_effort)
        g.node.create_subscription(
            Odometry, "odom", lambda m: odom.append((stamp_seconds(m.header.stamp), m.pose.pose.position.z)),
            CONTROL_QOS)
        g.node.create_subscription(
            PoseStamped, "setpoint/pose", lambda m: setpoint_stamps.append(stamp_seconds(m.header.stamp)),
            CONTROL_QOS)
        g.node.create_subscription(Float32MultiArray, "motor_command", lambda m: motors.append(list(m.data)),
                                   CONTROL_QOS)
        follower = rclpy.create_node("sim_time_follower", context=g.context,
                                     parameter_overrides=[NodeParameter("use_sim_time", value=True)])
        g.executor.add_node(follower)
        g.start("quadrotor_sim", parameters=LOCKSTEP_SIM)
        g.start("trajectory", parameters={"kind": "hold", **SIM_TIME})
        g.start("policy", parameters=SIM_TIME)
        g.spin_until(lambda: len(clock) > 0 and clock[-1] >= 2.0 and setpoint_stamps and odom
                     and follower.get_clock().now().nanoseconds > 0, 120, "2 s of simulated time")
        sim1 = clock[-1]
        print(f"\nt_sim {sim1:.2f} s, z {odom[-1][1]:.3f} m")
        sims = np.array(clock)
        assert np.all(np.diff(sims) >= 0) and sims[0] < 60, "/clock must start near 0 and advance"
        # The follower runs on simulated time (not wall time, ~1.7e9 s); how closely it follows the latest
        # /clock message depends on the machine's load, which is no business of this test.
        assert 0 < follower.get_clock().now().nanoseconds * 1e-9 < sim1 + 1.0
        # Stamps in simulated time, not wall time (~1.7e9 s).
        assert 0 < odom[-1][0] <= sim1 + 1e-9 and 0 < setpoint_stamps[-1] <= sim1 + 1e-9
        assert abs(odom[-1][1] - 1.0) < 0.3, f"did not hover on simulated time: z = {odom[-1][1]:.2f} m"
        assert not [s for s in g.statuses("/policy") if s.values[0].value == "motors_off"]
        assert "lockstep: no command" not in g.log("quadrotor_sim")
        # A factor other than 1, or lockstep, make no sense on wall-clock stamps: refused, one line.
        bad = g.start("quadrotor_sim", name="bad_sim", parameters={"real_time_factor": 2.0})
        assert bad.wait(timeout=30) == 1 and "needs publish_clock" in g.log("bad_sim")
        bad = g.start("quadrotor_sim", name="bad_lockstep", parameters={"lockstep": True})
        assert bad.wait(timeout=30) == 1 and "lockstep: true needs publish_clock" in g.log("bad_lockstep")
    finally:
        g.close()


def test_a_policy_that_starts_last_still_gets_setpoints_from_a_waiting_lockstep_simulator(tmp_path):
    """In lockstep, simulated time stands still until the policy answers the first state, so the
    trajectory's timer (on that time) publishes once at most; a policy that starts after that one
    setpoint still arms, because the trajectory answers each repeated state with the setpoint again."""
    g = Graph(tmp_path)
    try:
        clock: list[float] = []
        setpoints: list[float] = []
        g.node.create_subscription(Clock, "/clock", lambda m: clock.append(stamp_seconds(m.clock)),
                                   QoSProfile(depth=1, reliability=ReliabilityPolicy.BEST_EFFORT))
        g.node.create_subscription(PoseStamped, "setpoint/pose",
                                   lambda m: setpoints.append(stamp_seconds(m.header.stamp)), CONTROL_QOS)
        g.start("quadrotor_sim", parameters=LOCKSTEP_SIM)
        g.start("trajectory", parameters={"kind": "hold", **SIM_TIME})
        g.spin_until(lambda: "odometry received" in g.log("trajectory") and setpoints, 60,
                     "the trajectory's first setpoint")
        deadline = time.monotonic() + 1.0  # any setpoint the timer sends has gone out by now
        g.spin_until(lambda: time.monotonic() > deadline, 10, "a second of standing time")
        assert max(clock, default=0.0) < 0.02, "time must stand still before the first answer"
        g.start("policy", parameters=SIM_TIME)
        g.spin_until(lambda: clock and clock[-1] >= 1.0, 60, "1 s of simulated time with the late policy")
        assert "lockstep: no command" not in g.log("quadrotor_sim")
    finally:
        g.close()


def test_two_lockstep_runs_fly_bit_identical_trajectories(tmp_path):
    """Two copies of the graph (simulator in lockstep, trajectory, policy) run at the same time in two
    DDS domains, competing for the CPU: their odometry, step by step, is the same to the last bit."""
    steps = 300
    graphs, runs = [], []
    try:
        for k in range(2):
            (tmp_path / f"run{k}").mkdir()
            g = Graph(tmp_path / f"run{k}")
            graphs.append(g)
            run: dict[int, tuple[float, ...]] = {}
            runs.append(run)

            def on_odom(m: Odometry, run: dict = run) -> None:
                p, v = m.pose.pose.position, m.twist.twist.linear
                stamp = m.header.stamp.sec * 10**9 + m.header.stamp.nanosec
                run.setdefault(stamp, (p.x, p.y, p.z, v.x, v.y, v.z))

            # Depth 100: this reader must not lose steps while the other graph has the CPU.
            g.node.create_subscription(Odometry, "odom", on_odom,
                                       QoSProfile(depth=100, reliability=ReliabilityPolicy.BEST_EFFORT))
            # The trajectory node is not in lockstep: a setpoint that reached the policy one step earlier
            # in one run than in the other would change the flight. So the constant hold setpoint flows
            # (on the wall clock) before the simulator starts, and the policy has it from the first step.
            setpoints = []
            g.node.create_subscription(PoseStamped, "setpoint/pose", setpoints.append, CONTROL_QOS)
            g.start("trajectory", parameters={"kind": "hold"})
            g.start("policy", parameters={"setpoint_timeout": 30.0, **SIM_TIME})
            g.spin_until(lambda setpoints=setpoints: len(setpoints) > 20, 60, "the hold setpoint flowing")
            g.spin_for(1.0)  # the policy's subscription has matched by now as well as the test's
        for g in graphs:
            g.start("quadrotor_sim", parameters=LOCKSTEP_SIM)
        # A best-effort reader can miss a step of one run; compare the steps both readers saw.
        end = time.monotonic() + 150
        while len(set(runs[0]) & set(runs[1])) < steps:
            assert time.monotonic() < end, f"lockstep runs too slow: {[len(r) for r in runs]} steps"
            for g in graphs:
                g.executor.spin_once(timeout_sec=0.005)
        common = sorted(set(runs[0]) & set(runs[1]))[:steps]
        a = np.array([runs[0][t] for t in common])
        b = np.array([runs[1][t] for t in common])
        assert np.ptp(a[:, :3], axis=0).max() > 1e-6, "the vehicle did not move at all: nothing compared"
        assert np.array_equal(a, b), f"runs differ from step {int(np.argmax(np.any(a != b, axis=1)))}"
        for g in graphs:
            assert "lockstep: no command" not in g.log("quadrotor_sim")
    finally:
        for g in graphs:
            g.close()


def test_bench_ros_measures_latency_and_drops(tmp_path):
    import argparse

    from robo.bench import ros as bench

    result = bench.run(argparse.Namespace(duration=1.0, rates=[100.0], policy=""))
    assert set(result["baseline_in_process"]) == {"policy", "filter+policy"}
    assert [(c["chain"], c["process"]) for c in result["ros"]] == [
        ("policy", "separate"), ("filter+policy", "separate"), ("filter+policy", "one")]
    [row] = result["composed_vs_separate"]
    assert row["rate_hz"] == 100.0 and 0 <= row["dropped_one_process"] < 0.5
    for case in result["ros"]:
        assert case["sent"] == 100 and case["answered"] + case["dropped"] == 100
        assert case["answered"] > 50 and 0 < case["p50_ms"] <= case["p99_ms"] <= case["max_ms"]
    with pytest.raises(ValueError, match="--rates"):
        bench.run(argparse.Namespace(duration=1.0, rates=[0.0], policy=""))


def test_filter_and_policy_in_one_process_answer_odometry_over_dds(tmp_path):
    """The graph executable (composed:=true) with the safety filter and the policy in one process: each
    node keeps its name, parameters and topics, and the chain answers odometry with a motor command
    stamped like it, as the two processes do. An unknown node name stops it with one line."""
    g = Graph(tmp_path)
    try:
        commands: list[tuple[int, int] | None] = []
        g.node.create_subscription(Float32MultiArray, "motor_command",
                                   lambda m: commands.append(answered_stamp(m)), CONTROL_QOS)
        odom = g.node.create_publisher(Odometry, "odom", CONTROL_QOS)
        pose_pub = g.node.create_publisher(PoseStamped, "reference/pose", CONTROL_QOS)
        twist_pub = g.node.create_publisher(TwistStamped, "reference/twist", CONTROL_QOS)
        g.start("graph", arguments=["safety_filter", "policy"],
                parameters={"trigger": "setpoint", "use_filter_status": True, "state_timeout": 1.0})
        x = np.array([0, 0, 1.0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0])
        sent: list[tuple[int, int]] = []

        def send() -> None:
            stamp = g.node.get_clock().now().to_msg()
            pose, twist = setpoint_msgs(Setpoint(np.array([0, 0, 1.0]), np.zeros(3)), stamp)
            pose_pub.publish(pose)
            twist_pub.publish(twist)
            odom.publish(state_to_odometry(x, stamp))
            sent.append((stamp.sec, stamp.nanosec))

        g.node.create_timer(0.01, send)
        g.spin_until(lambda: len(set(commands) & set(sent)) >= 20, 60, "20 answered odometry messages")
        g.spin_until(lambda: g.statuses("/safety_filter") and g.statuses("/policy"), 10,
                     "diagnostics of both nodes")
        assert _last_mode(g, "/policy") == "ok"
        assert g.procs["graph"].poll() is None
        bad = g.start("graph", name="bad_graph", arguments=["policy", "autopilot"])
        assert bad.wait(timeout=30) == 1 and "graph: error:" in g.log("bad_graph") \
            and "autopilot" in g.log("bad_graph")
    finally:
        g.close()


def test_ros_nodes_run_without_torch():
    import subprocess
    import sys

    modules = ", ".join(f"robo.ros.{m}" for m in ("sim_node", "policy_node", "filter_node", "trajectory_node",
                                                  "latency"))
    heavy = ("torch", "sim.quadrotor.env")
    code = f"import sys, {modules}; print(sorted(m for m in {heavy!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"

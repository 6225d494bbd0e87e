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
from typing import Any

HELP = "ROS 2 odometry->motor latency (policy, filter+policy) at 100/500 Hz vs the in-process robo fly loop"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--duration", type=float, default=60.0, help="seconds per case (default 60)")
    parser.add_argument("--rates", type=float, nargs="+", default=[100.0, 500.0], help="odometry rates, Hz")
    parser.add_argument("--policy", default="", help="policy.onnx (default: the committed RAPTOR student)")


def run(args: argparse.Namespace) -> dict[str, Any]:
    from robo.ros.latency import measure_chain  # the only room that may import rclpy

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

"""ROS 2 latency: odometry in -> motor command out, through the policy node and through safety filter +
policy, at 100 Hz and 500 Hz; the in-process loop of ``robo fly`` is the baseline. The two nodes in series
run twice: as two processes (as the launch file starts them by default) and as one process (the
``graph`` executable, ``composed:=true``); the ratio of their drop rates and latencies is printed.

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

HELP = ("ROS 2 odometry->motor latency (policy, filter+policy as two processes and as one) at 100/500 Hz "
        "vs the in-process robo fly loop")


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
    for chain, composed in (("policy", False), ("filter+policy", False), ("filter+policy", True)):
        for rate in args.rates:
            where = "one process" if composed else "separate processes"
            print(f"{chain} ({where}) at {rate:g} Hz for {args.duration:g} s ...", flush=True)
            cases.append(measure_chain(chain, rate, args.duration, args.policy, composed=composed))
    composed = composed_vs_separate(cases)
    print_table(baseline, cases, composed)
    return {"duration_s": args.duration, "baseline_in_process": baseline, "ros": cases,
            "composed_vs_separate": composed,
            "targets": {"policy_p99_ms_at_500_hz": 2.0, "dropped_at_100_hz": 0}}


def composed_vs_separate(cases: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per rate, filter+policy in one process against two: drop rates, p50 and p99, and their ratios."""
    out = []
    for one in (c for c in cases if c["chain"] == "filter+policy" and c["process"] == "one"):
        two = next(c for c in cases if c["chain"] == "filter+policy" and c["process"] == "separate"
                   and c["rate_hz"] == one["rate_hz"])
        row = {"rate_hz": one["rate_hz"], "dropped_separate": two["dropped"] / two["sent"],
               "dropped_one_process": one["dropped"] / one["sent"]}
        for key in ("p50_ms", "p99_ms"):
            row[f"{key}_separate"], row[f"{key}_one_process"] = two[key], one[key]
            row[f"{key}_ratio"] = two[key] / one[key] if two[key] and one[key] else None
        d1 = row["dropped_one_process"]
        row["dropped_ratio"] = row["dropped_separate"] / d1 if d1 else None
        out.append(row)
    return out


def in_process_baseline(policy: str, duration: float) -> dict[str, Any]:
    """``robo fly``'s loop (setpoint -> filter -> policy -> motors) timed per step, filter off and on."""
    from robo.tasks.fly import FlyConfig, fly

    out = {}
    for name, filt in (("policy", False), ("filter+policy", True)):
        m = fly(FlyConfig(policy=policy, duration=duration, filter=filt))["metrics"]["loop_latency_us"]
        out[name] = {"p50_ms": m["p50"] / 1e3, "p99_ms": m["p99"] / 1e3, "max_ms": m["max"] / 1e3,
                     "steps": round(duration * 100)}
    return out


def print_table(baseline: dict[str, Any], cases: list[dict[str, Any]],
                composed: list[dict[str, Any]]) -> None:
    print(f"\n{'chain':<15}{'where':<22}{'rate Hz':>8}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}{'dropped':>12}")
    for name, b in baseline.items():
        print(f"{name:<15}{'in-process loop':<22}{100:>8}{b['p50_ms']:>9.3f}{b['p99_ms']:>9.3f}"
              f"{b['max_ms']:>9.3f}{'-':>12}")
    for c in cases:
        p50, p99, mx = (f"{c[k]:.3f}" if c[k] is not None else "-" for k in ("p50_ms", "p99_ms", "max_ms"))
        where = "DDS, one process" if c["process"] == "one" else "DDS, processes"
        print(f"{c['chain']:<15}{where:<22}{c['rate_hz']:>8g}{p50:>9}{p99:>9}{mx:>9}"
              f"{c['dropped']:>7}/{c['sent']}")
    for r in composed:
        ratio = "-" if r["dropped_ratio"] is None else f"{r['dropped_ratio']:.1f}x"
        p50 = "-" if r["p50_ms_ratio"] is None else f"{r['p50_ms_ratio']:.2f}x"
        print(f"filter+policy at {r['rate_hz']:g} Hz, two processes / one: dropped "
              f"{100 * r['dropped_separate']:.1f} % / {100 * r['dropped_one_process']:.1f} % ({ratio}), "
              f"p50 {p50}")
    print("targets: policy node p99 <= 2 ms at 500 Hz; nothing dropped at 100 Hz")

"""The ROS graph under faults: odometry stalls, NaN odometry, the simulator killed, and a second
vehicle in another namespace flying through all of them; per fault the control periods from the policy
node's detection (its diagnostics, its clock) to its first safe command (published, and arrived at the
bench), how late that detection came after the fault became detectable, the largest altitude loss and
whether the vehicle was lost.
The real nodes run as processes over Fast DDS (robo/ros/fault_replay.py injects the faults).
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

HELP = "ROS graph under injected faults: periods to a safe command, altitude loss, vehicle lost"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--trials", type=int, default=5, help="trials per fault (default 5)")
    parser.add_argument("--stalls", type=float, nargs="+", default=[0.1, 0.2, 0.3, 0.5],
                        help="odometry stall durations, s (default 0.1 0.2 0.3 0.5); the policy node sees a "
                        "stall as a fault once it outlasts state_timeout (0.1 s): 0.1 s is on the threshold")
    parser.add_argument("--load", type=int, default=0,
                        help="busy processes spinning beside the graph for the whole replay (default 0); "
                        "--load 2 keeps both cores of a 2-core machine busy")
    parser.add_argument("--realtime-priority", type=int, default=0, metavar="P",
                        help="run the policy nodes at SCHED_FIFO priority P (1-99; needs root), as flight "
                        "stacks run their control loop (default 0: the normal scheduler)")


def run(args: argparse.Namespace) -> dict[str, Any]:
    from robo.ros.fault_replay import replay  # the only room that may import rclpy

    if args.trials < 1:
        raise ValueError(f"--trials must be >= 1, got {args.trials}")
    if any(not 0 < s <= 5 for s in args.stalls):
        raise ValueError(f"--stalls must lie in (0, 5] s, got {args.stalls}")
    if not 0 <= args.load <= 64:
        raise ValueError(f"--load must lie in [0, 64] busy processes, got {args.load}")
    if not 0 <= args.realtime_priority <= 99:
        raise ValueError(f"--realtime-priority must lie in [0, 99], got {args.realtime_priority}")
    with busy_processes(args.load):
        trials = replay(args.stalls, args.trials, realtime_priority=args.realtime_priority)
        load_average = os.getloadavg()  # how busy the machine was, whatever else ran beside the bench
    summary = summarize(trials)
    print_table(summary)
    fresh = max((t.get("fresh_vehicle", 0) for t in trials), default=0)
    print(f"vehicles replaced after a lost one (each trial starts from a steady hover): {fresh}")
    print(f"load average at the end (1, 5, 15 min): {load_average[0]:.1f} {load_average[1]:.1f} "
          f"{load_average[2]:.1f}")
    return {"trials": trials, "summary": summary, "load_processes": args.load, "vehicles_replaced": fresh,
            "realtime_priority": args.realtime_priority,
            "load_average_1_5_15_min": list(load_average),
            "targets": {"periods_to_safe_command": 3, "lost_under_stalls_up_to_s": 0.5}}


def _spin_forever() -> None:
    while True:
        pass


@contextmanager
def busy_processes(n: int) -> Iterator[None]:
    """``n`` processes that keep a core busy each, stopped on the way out whatever happens."""
    procs = [multiprocessing.Process(target=_spin_forever, daemon=True) for _ in range(n)]
    for p in procs:
        p.start()
    try:
        yield
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.join()


def summarize(trials: list[dict[str, Any]]) -> list[dict[str, Any]]:
    by_fault: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for t in trials:
        by_fault[t["fault"]].append(t)
    out = []
    for fault, ts in by_fault.items():
        losses = [t["max_altitude_loss_m"] for t in ts if t["max_altitude_loss_m"] is not None]
        # A lone NaN that a good message replaced in the node's depth-1 queue never reached it: no fault
        # to detect, counted apart (the node's own count of non-finite states says which it was).
        reached = [t for t in ts if t.get("received") is not False]
        periods = [t["periods_to_safe_command"] for t in reached if t["detected"]]
        arrivals = [t.get("periods_to_arrival") for t in reached if t["detected"]]
        delays = [t["detection_delay_ms"] for t in reached if t["detection_delay_ms"] is not None]
        out.append({"fault": fault, "trials": len(ts), "reached_node": len(reached),
                    "detected": sum(t["detected"] for t in reached),
                    "within_3_periods": sum(p is not None and p <= 3 for p in periods),
                    "max_periods": max((p for p in periods if p is not None), default=None),
                    "max_periods_to_arrival": max((p for p in arrivals if p is not None), default=None),
                    "max_detection_delay_ms": max(delays, default=None),
                    "max_altitude_loss_m": max(losses, default=None),
                    "lost": sum(bool(t["lost"]) for t in ts)})
    return out


def print_table(summary: list[dict[str, Any]]) -> None:
    print(f"\n{'fault':<26}{'trials':>7}{'reached':>8}{'detected':>9}{'<=3 per':>8}{'max per':>8}"
          f"{'arrival':>8}{'det. delay ms':>14}{'alt loss m':>11}{'lost':>5}")
    for s in summary:
        loss = "-" if s["max_altitude_loss_m"] is None else f"{s['max_altitude_loss_m']:.3f}"
        mx = "-" if s["max_periods"] is None else str(s["max_periods"])
        arrival = "-" if s.get("max_periods_to_arrival") is None else str(s["max_periods_to_arrival"])
        delay = "-" if s["max_detection_delay_ms"] is None else f"{s['max_detection_delay_ms']:.0f}"
        print(f"{s['fault']:<26}{s['trials']:>7}{s['reached_node']:>8}{s['detected']:>9}"
              f"{s['within_3_periods']:>8}{mx:>8}{arrival:>8}{delay:>14}{loss:>11}{s['lost']:>5}")
    print("periods: from the node's detection to its first safe command as published ('max per') and as it\n"
          "arrived at this bench ('arrival': adds this process's own lateness on a loaded machine)")
    print("targets: every fault that reached the node detected, with a safe command within 3 periods; never "
          "lost under\nstalls up to 0.5 s; the second vehicle never detects a fault (detected 0) and is "
          "never lost")

"""Quadrotor simulator: throughput (eager baseline vs compiled), MuJoCo-twin agreement, baseline hover.

1. Environment steps per second at several batch sizes, eager torch (the baseline) vs the same step
   compiled, measured in the same run.
2. The torch dynamics against the MuJoCo twin, 2 s open loop per preset (sim.quadrotor.mujoco_twin).
3. The geometric baseline controller on each preset: position error 5 s after starting 0.5 m off.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from tqdm import tqdm

from robo.bench.common import require, time_repeated
from robo.files import save_figure
from sim.quadrotor import QuadrotorEnv, QuadrotorEnvConfig, sample_fleet

HELP = "quadrotor sim: steps/s at batch 1..65536 (eager vs compiled), MuJoCo agreement, baseline hover"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 64, 4096, 65536])
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--seconds", type=float, default=2.0, help="measuring time per case")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (default: torch's choice; use 1 on a busy machine)")
    parser.add_argument("--plot", default="bench_results/sim.png",
                        help="figure of the MuJoCo agreement and the baseline per preset")


def run(args: argparse.Namespace) -> dict:
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError("--device cuda asked for, but torch sees no CUDA device")
    require(args, "threads", "batches")
    require(args, "seconds", least=0, above=True)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    sync = torch.cuda.synchronize if args.device.startswith("cuda") else None
    rows = []
    cases = [(b, c) for b in args.batches for c in (False, True)]
    for batch, compiled in tqdm(cases, desc="bench sim", unit="case"):
        env = QuadrotorEnv(sample_fleet(batch, seed=0), QuadrotorEnvConfig(), device=args.device,
                           compile=compiled)
        env.reset()
        # Actions near hover: episodes run long, as they do once a policy flies.
        hover = (env.params.hover_throttle * 2 - 1)[:, None].expand(batch, 4).contiguous()
        for _ in range(200):  # compile (the step, and the reset for one and for many rows) outside the timing
            env.step(hover)
        per_call, calls = time_repeated(lambda env=env, hover=hover: env.step(hover),
                                        min_seconds=args.seconds, sync=sync)
        rows.append({"batch": batch, "compiled": compiled, "steps_per_second": batch / per_call,
                     "seconds_per_step": per_call, "calls": calls})
    print(f"\n{'batch':>7} {'eager steps/s':>15} {'compiled steps/s':>17} {'ratio':>6}")
    for batch in args.batches:
        eager, comp = (next(r["steps_per_second"] for r in rows if r["batch"] == batch and r["compiled"] == c)
                       for c in (False, True))
        print(f"{batch:>7} {eager:>15,.0f} {comp:>17,.0f} {comp / eager:>6.2f}")
    twin, hover = accuracy()
    plot(twin, hover, Path(args.plot))
    print(f"figure: {args.plot}")
    return {"device": args.device, "threads": torch.get_num_threads(),
            "baseline": "eager torch, same code", "results": rows,
            "target_cpu_batch_4096_steps_per_second": 3_000_000,
            "mujoco_agreement_2s": twin, "baseline_hover_5s": hover}


def accuracy() -> tuple[dict[str, dict[str, float]], dict[str, float]]:
    """MuJoCo-twin agreement and the baseline's final error, per preset, printed as a table."""
    from robo.tasks.baseline_flight import BaselineFlightConfig, fly
    from sim.quadrotor import PRESETS
    from sim.quadrotor.mujoco_twin import agreement

    twin = {name: agreement(params, seconds=2.0) for name, params in PRESETS.items()}
    hover = {}
    for name in PRESETS:
        cfg = BaselineFlightConfig(preset=name, duration=5.0, start_offset=(0.5, 0.0, 0.0),
                                   env=QuadrotorEnvConfig(reference="hold", terminate=False,
                                                          auto_reset=False, disturbance=False))
        hover[name] = fly(cfg)["metrics"]["final_position_error_m"]
    print(f"\n{'preset':<12}{'twin pos m':>12}{'twin quat':>11}{'twin omega':>12}{'excursion m':>13}"
          f"{'baseline err 5 s':>18}")
    for name in PRESETS:
        t = twin[name]
        print(f"{name:<12}{t['position_m']:>12.1e}{t['quaternion']:>11.1e}{t['angular_velocity_rad_s']:>12.1e}"
              f"{t['excursion_m']:>13.1f}{hover[name]:>16.2e} m")
    return twin, hover


def plot(twin: dict[str, dict[str, float]], hover: dict[str, float], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(twin)
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
    width = 0.25
    for i, (key, label) in enumerate((("position_m", "position [m]"), ("quaternion", "quaternion"),
                                      ("angular_velocity_rad_s", "body rate [rad/s]"))):
        a.bar([j + (i - 1) * width for j in range(len(names))],
              [max(twin[n][key], 1e-17) for n in names], width, label=label)
    a.set_yscale("log")
    a.set_xticks(range(len(names)), names)
    a.set_title("torch vs MuJoCo twin: max difference over 2 s open loop")
    a.legend(fontsize=8)
    b.bar(names, [hover[n] for n in names], color="tab:green")
    b.set_yscale("log")
    b.set_title("baseline: position error 5 s after a 0.5 m offset")
    b.set_ylabel("m")
    fig.tight_layout()
    save_figure(fig, path, dpi=100)

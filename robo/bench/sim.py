"""Quadrotor environment throughput: steps per second at several batch sizes, eager vs compiled."""

from __future__ import annotations

import argparse

import torch
from tqdm import tqdm

from robo.bench.common import time_repeated
from sim.quadrotor import QuadrotorEnv, QuadrotorEnvConfig, sample_fleet

HELP = "quadrotor environment steps per second at batch 1, 64, 4096, 65536 (eager baseline vs compiled)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 64, 4096, 65536])
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--seconds", type=float, default=2.0, help="measuring time per case")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (default: torch's choice; use 1 on a busy machine)")


def run(args: argparse.Namespace) -> dict:
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError("--device cuda asked for, but torch sees no CUDA device")
    if args.threads is not None:
        if args.threads < 1:
            raise ValueError(f"--threads must be >= 1, got {args.threads}")
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
        env.step(hover)  # compile and warm up outside the timing
        per_call, calls = time_repeated(lambda env=env, hover=hover: env.step(hover),
                                        min_seconds=args.seconds, sync=sync)
        rows.append({"batch": batch, "compiled": compiled, "steps_per_second": batch / per_call,
                     "seconds_per_step": per_call, "calls": calls})
    print(f"\n{'batch':>7} {'eager steps/s':>15} {'compiled steps/s':>17} {'ratio':>6}")
    for batch in args.batches:
        eager, comp = (next(r["steps_per_second"] for r in rows if r["batch"] == batch and r["compiled"] == c)
                       for c in (False, True))
        print(f"{batch:>7} {eager:>15,.0f} {comp:>17,.0f} {comp / eager:>6.2f}")
    return {"device": args.device, "threads": torch.get_num_threads(),
            "baseline": "eager torch, same code", "results": rows,
            "target_cpu_batch_4096_steps_per_second": 3_000_000}

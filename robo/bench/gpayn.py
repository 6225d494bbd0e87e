"""G-PAYN grasping: environment steps/s batched vs one environment, demonstration transitions/s, and the
table over objects: scripted demonstrator, SAC, OERLD and G-PAYN at equal environment steps (success
rate and median time to lift of each trained policy on the same evaluation episodes as the script).

Each (object, algorithm) pair is one ``robo train gpayn`` run from ``--config`` with ``--steps`` env
steps (the budget); the runs stay under ``--runs`` (``robo eval gpayn --runs ...`` plots their curves).
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path
from typing import Any

import torch

from robo.config import load_config
from robo.registry import Context
from robo.tasks.gpayn.config import ALGOS, GPAYNTrainConfig
from robo.tasks.gpayn.demos import generate
from robo.tasks.gpayn.episodes import grasp_episodes
from robo.tasks.gpayn.evaluate import load_policy_act
from robo.tasks.gpayn.train import train
from sim.hand.baseline import steps_per_second

HELP = "G-PAYN: env steps/s, demonstration transitions/s, scripted/SAC/OERLD/G-PAYN success per object"
OBJECTS = ("box_tall", "cylinder_thin", "cylinder_wide", "bottle", "box_wide")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", default="configs/gpayn_quick.yaml", help="training config of every run")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a key of --config (repeatable)")
    parser.add_argument("--objects", nargs="+", default=list(OBJECTS))
    parser.add_argument("--algos", nargs="+", default=list(ALGOS), choices=ALGOS)
    parser.add_argument("--steps", type=int, default=None,
                        help="env steps per run, the equal budget (default: --config's runner.steps)")
    parser.add_argument("--episodes", type=int, default=20, help="evaluation episodes per policy")
    parser.add_argument("--envs", type=int, default=16, help="batched environments for steps/s")
    parser.add_argument("--runs", default="bench_results/gpayn_runs", help="folder of the training runs")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")


def run(args: argparse.Namespace) -> dict[str, Any]:
    base = load_config(GPAYNTrainConfig, args.config, list(args.set))
    if args.steps is None:
        args.steps = base.runner.steps
    for name in ("steps", "episodes", "envs", "threads"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name} must be >= 1, got {getattr(args, name)}")
    for name in args.objects:
        dataclasses.replace(base.env, object=name)  # an unknown object fails before anything runs
    runs = Path(args.runs)
    if runs.exists() and any(runs.iterdir()):
        raise OSError(f"--runs {runs} is not empty; choose another folder")
    torch.set_num_threads(args.threads)

    result: dict[str, Any] = {"config": args.config, "set": list(args.set), "steps_per_run": args.steps,
                              "episodes": args.episodes}
    result["env_steps_per_s"] = {"one_env": steps_per_second(args.objects[0], 1),
                                 f"{args.envs}_envs": steps_per_second(args.objects[0], args.envs)}
    started = time.perf_counter()
    generate(dataclasses.replace(base.env, object=args.objects[0]), 4_000, base.demo_envs, seed=0)
    result["demo_transitions_per_s"] = 4_000 / (time.perf_counter() - started)

    table = []
    for name in args.objects:
        env = dataclasses.replace(base.env, object=name)
        row: dict[str, Any] = {"object": name, "scripted": grasp_episodes(env, args.episodes, 1000).summary()}
        for algo in args.algos:
            config = dataclasses.replace(base, algo=algo, env=env, threads=args.threads,
                                         runner=dataclasses.replace(base.runner, steps=args.steps))
            folder = runs / f"{name}_{algo}"
            started = time.perf_counter()
            train(config, argparse.Namespace(), Context(out=folder, log=lambda _: None))
            act, _ = load_policy_act(folder / "policy.onnx")
            row[algo] = {**grasp_episodes(env, args.episodes, 1000, act).summary(),
                         "train_seconds": time.perf_counter() - started}
            print(f"{name} {algo}: success {row[algo]['success']:.2f}", flush=True)
        table.append(row)
    result["table"] = table
    if "gpayn" in args.algos:
        others = [a for a in args.algos if a != "gpayn"]
        result["gpayn_above_others_on"] = [r["object"] for r in table
                                           if all(r["gpayn"]["success"] > r[a]["success"] for a in others)]
        result["gpayn_at_least_80_percent_on"] = [r["object"] for r in table if r["gpayn"]["success"] >= 0.8]
    return result

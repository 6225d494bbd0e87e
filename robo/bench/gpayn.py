"""G-PAYN grasping: environment steps/s batched vs one environment, demonstration transitions/s, and the
table over objects: scripted demonstrator, SAC, OERLD and G-PAYN at equal environment steps (success
rate and median time to lift of each trained policy on the same held-out episodes as the script: seed
1000, as ``robo eval gpayn``; each policy is its run's best judged snapshot). The episodes are paired (the
same object poses for every controller), so G-PAYN against each other controller is judged by the exact
McNemar test on the episodes only one of the two wins: "above" or "below" where p < 0.05, else "not
distinguishable".

Each (object, algorithm) pair is one ``robo train gpayn`` run from ``--config`` with ``--steps`` env
steps (the budget) in ``--runs/<object>_<algo>`` (``robo eval gpayn --runs ...`` plots their curves).
The bench is resumable and keeps budgets equal: a finished run there is evaluated, not retrained; an
unfinished one resumes from its checkpoint; a run whose stored config differs from the one the bench
would train is refused, naming the key, before anything trains (finished runs may be copied in), and so
is one whose demonstrations start where this code's grasp planner no longer puts them (sim/hand changed).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from robo.bench.common import require
from robo.config import load_config
from robo.registry import Context
from robo.run_dir import RunDir
from robo.stats import paired
from robo.tasks.gpayn.config import ALGOS, GPAYNTrainConfig
from robo.tasks.gpayn.demos import generate, starts_as_planned
from robo.tasks.gpayn.episodes import Act, grasp_episodes
from robo.tasks.gpayn.evaluate import GPAYNEvalConfig, load_policy_act
from robo.tasks.gpayn.train import DEMONSTRATIONS, TASK, train
from sim.hand.baseline import steps_per_second
from sim.hand.env import HandEnvConfig

HELP = "G-PAYN: env steps/s, demonstration transitions/s, scripted/SAC/OERLD/G-PAYN success per object"
OBJECTS = ("box_tall", "cylinder_thin", "box_wide", "cylinder_wide", "can")
EVAL_SEED = GPAYNEvalConfig().seed  # robo eval gpayn's held-out poses
SIGNIFICANCE = 0.05  # two-sided


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", default="configs/gpayn_quick.yaml", help="training config of every run")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a key of --config (repeatable)")
    parser.add_argument("--objects", nargs="+", default=list(OBJECTS))
    parser.add_argument("--algos", nargs="+", default=list(ALGOS), choices=ALGOS)
    parser.add_argument("--steps", type=int, default=None,
                        help="env steps per run, the equal budget (default: --config's runner.steps)")
    parser.add_argument("--episodes", type=int, default=100,
                        help="held-out evaluation episodes per policy (about 18 core-s each at 100)")
    parser.add_argument("--envs", type=int, default=16, help="batched environments for steps/s")
    parser.add_argument("--demo-transitions", type=int, default=4000,
                        help="demonstration transitions generated to measure their rate")
    parser.add_argument("--runs", default="bench_results/gpayn_runs",
                        help="folder of the training runs: finished ones are reused, unfinished ones resumed")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")


def run(args: argparse.Namespace) -> dict[str, Any]:
    base = load_config(GPAYNTrainConfig, args.config, list(args.set))
    if args.steps is None:
        args.steps = base.runner.steps
    require(args, "steps", "episodes", "envs", "demo_transitions", "threads")
    runs = Path(args.runs)
    if runs.exists() and not runs.is_dir():
        raise OSError(f"--runs {runs} is a file, not a folder")
    configs = {(name, algo): dataclasses.replace(
        base, algo=algo, threads=args.threads, env=dataclasses.replace(base.env, object=name),
        runner=dataclasses.replace(base.runner, steps=args.steps))  # an unknown object fails here
        for name in args.objects for algo in args.algos}
    for (name, algo), config in configs.items():  # refuse another config before anything trains
        folder = runs / f"{name}_{algo}"
        if folder.is_dir() and any(folder.iterdir()):
            try:
                RunDir.check_resumable(folder, config, kind=TASK, may_change=["threads"])
            except (OSError, ValueError) as e:
                raise type(e)(f"--runs: {folder} is not this bench's {name} {algo} run: {e}") from None
            demos = folder / DEMONSTRATIONS
            if demos.is_file() and not starts_as_planned(demos, config):
                raise ValueError(f"--runs: {folder}'s demonstrations start where the grasp planner no longer "
                                 f"puts them (sim/hand changed since it trained): move it away to retrain it")
    torch.set_num_threads(args.threads)
    wall, cpu = time.perf_counter(), time.process_time()

    result: dict[str, Any] = {"config": args.config, "set": list(args.set), "steps_per_run": args.steps,
                              "episodes": args.episodes, "eval_seed": EVAL_SEED, "runs": str(runs)}
    result["env_steps_per_s"] = {"one_env": steps_per_second(args.objects[0], 1),
                                 f"{args.envs}_envs": steps_per_second(args.objects[0], args.envs)}
    started = time.perf_counter()
    generate(dataclasses.replace(base.env, object=args.objects[0]), args.demo_transitions, base.demo_envs,
             seed=0)
    result["demo_transitions_per_s"] = args.demo_transitions / (time.perf_counter() - started)

    table = []
    for name in args.objects:
        env = configs[name, args.algos[0]].env
        scripted, won = evaluated(env, args.episodes)
        row: dict[str, Any] = {"object": name, "scripted": scripted}
        wins = {"scripted": won}
        for algo in args.algos:
            folder = runs / f"{name}_{algo}"
            source = trained_run(configs[name, algo], folder)
            act, _ = load_policy_act(folder / "policy.onnx")
            metrics = json.loads((folder / "metrics.json").read_text())
            row[algo], wins[algo] = evaluated(env, args.episodes, act)
            row[algo] |= {"run": source,
                          "best_step": metrics["members"][str(metrics["best_member"])].get("best_step"),
                          "last_session_train_seconds": metrics["session_wall_seconds"]}
            print(f"{name} {algo} ({source}): success {row[algo]['success']:.2f}", flush=True)
        if "gpayn" in wins:
            row["gpayn_vs"] = {other: paired_verdict(wins["gpayn"], w) for other, w in wins.items()
                               if other != "gpayn"}
        table.append(row)
    result["table"] = table
    result["bench_wall_seconds"] = time.perf_counter() - wall
    result["bench_cpu_seconds"] = time.process_time() - cpu  # every thread of this process
    if "gpayn" in args.algos:
        others = [a for a in args.algos if a != "gpayn"]
        result["gpayn_above_others_on"] = [r["object"] for r in table
                                           if all(r["gpayn_vs"][a]["verdict"] == "above" for a in others)]
        result["gpayn_not_below_others_on"] = [r["object"] for r in table
                                               if all(r["gpayn_vs"][a]["verdict"] != "below" for a in others)]
        result["gpayn_at_least_80_percent_on"] = [r["object"] for r in table if r["gpayn"]["success"] >= 0.8]
    print(success_table(table, ["scripted", *args.algos], args.episodes))
    return result


def evaluated(env: HandEnvConfig, episodes: int, act: Act | None = None) -> tuple[dict[str, Any], np.ndarray]:
    """The held-out episodes under ``act`` (None: the script): their summary with the core-seconds and
    wall seconds they took, and which episodes it won (also in the summary, as ``"1"``/``"0"`` per
    episode, so two bench results on the same seed can be paired)."""
    wall, cpu = time.perf_counter(), time.process_time()
    outcomes = grasp_episodes(env, episodes, EVAL_SEED, act)
    return ({**outcomes.summary(), "eval_cpu_seconds": time.process_time() - cpu,
             "eval_wall_seconds": time.perf_counter() - wall,
             "won": "".join("1" if s else "0" for s in outcomes.success)}, outcomes.success)


def paired_verdict(won: np.ndarray, other: np.ndarray) -> dict[str, Any]:
    """G-PAYN (``won``) against another controller on the same episodes: the episodes only one of them
    wins, the exact McNemar p of that split and the verdict at ``SIGNIFICANCE``."""
    only, only_other, p = paired(won, other)
    verdict = ("not distinguishable" if p >= SIGNIFICANCE else "above" if only > only_other else "below")
    return {"only_gpayn_succeeds": only, "only_other_succeeds": only_other, "mcnemar_exact_p": p,
            "verdict": verdict}


def success_table(table: list[dict[str, Any]], controllers: list[str], episodes: int) -> str:
    """Success per object and controller, then G-PAYN's verdict against each other controller and p."""
    versus = [c for c in controllers if c != "gpayn"] if "gpayn" in controllers else []
    lines = [f"success over {episodes} held-out episodes (seed {EVAL_SEED}); G-PAYN vs each: exact McNemar p",
             f"{'object':<15}" + "".join(f"{c:>10}" for c in controllers)
             + "".join(f"  vs {c:<28}" for c in versus)]
    for row in table:
        verdicts = [row["gpayn_vs"][c] for c in versus]
        lines.append(f"{row['object']:<15}" + "".join(f"{row[c]['success']:>10.0%}" for c in controllers)
                     + "".join(f"  {v['verdict']:<19} p {v['mcnemar_exact_p']:<7.2g}" for v in verdicts))
    return "\n".join(lines)


def trained_run(config: GPAYNTrainConfig, folder: Path) -> str:
    """``folder`` holding ``config``'s finished run: ``"reused"`` (finished already, not retrained),
    ``"resumed"`` (continued from its checkpoint) or ``"trained"`` (new)."""
    metrics = folder / "metrics.json"  # written before the export: a run killed between resumes
    if ((folder / "policy.onnx").is_file() and metrics.is_file()
            and json.loads(metrics.read_text())["env_steps"] >= config.runner.steps):
        return "reused"
    resume = folder.is_dir() and any(folder.iterdir())
    train(config, argparse.Namespace(), Context(out=folder, resume=resume, log=lambda _: None))
    return "resumed" if resume else "trained"

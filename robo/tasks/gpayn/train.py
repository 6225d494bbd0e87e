"""``robo train gpayn``: G-PAYN, SAC from scratch or OERLD on one object (Ceola et al., IROS 2023).

* **gpayn**: SAC whose single FIFO buffer starts full of the scripted demonstrator's transitions (failed
  demonstrations kept); the agent's transitions push them out; no behaviour-cloning loss;
  ``pretrain_updates`` SAC updates on that buffer before the first environment step (0: the paper's).
* **sac**: SAC from scratch (uniform random actions for ``sac.learning_starts`` steps first).
* **oerld**: SAC with a separate demonstration buffer that FIFO never overwrites (``sac.batch_size``
  agent rows + ``oerld_demo_rows`` demonstration rows per batch) and a Q-filtered behaviour-cloning term.

The demonstration algorithms learn from step 0 (their buffers hold demonstrations). Every
``runner.select_interval`` steps each member flies ``eval_episodes`` deterministic episodes; its best
snapshot by success rate (then by shorter episodes) is the policy handed on. The run folder
(:class:`~robo.run_dir.RunDir`) holds the config, ``demonstrations.pt``, ``checkpoint.pt`` (the whole
state: ``--resume`` continues), TensorBoard scalars, ``learning_curve.csv/.png``, ``metrics.json``,
``policy_<member>.pt`` and the best member as ``policy.pt`` + ``policy.onnx`` + card.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from robo.registry import Context
from robo.rl.off_policy_runner import Episodes, Fly, OffPolicyRunner
from robo.rl.replay import FIELDS
from robo.rl.sac import SACConfig, save_actor
from robo.run_dir import RunDir
from robo.tasks.gpayn.config import GPAYNTrainConfig
from robo.tasks.gpayn.demos import DEMO_SEED_OFFSET, load_or_generate
from robo.tasks.gpayn.episodes import CONTROL_DT, GraspOutcomes, outcomes_from_final, start_height
from sim.hand.env import FINGER_STEP, FINGERS, LAYOUT, WRIST_STEP, HandEnv

TASK = "gpayn"
CHECKPOINT = "checkpoint.pt"
DEMONSTRATIONS = "demonstrations.pt"
ACTION = ([{"name": f"wrist.d{c}", "unit": "1"} for c in ("x", "y", "z", "yaw", "pitch", "roll")]
          + [{"name": f"finger.d{i}", "unit": "1"} for i in range(FINGERS)])
ACTION_MAPPING = (f"target += a * step: wrist xyz {WRIST_STEP[0]} m, yaw/pitch/roll {WRIST_STEP[3]} rad, "
                  f"fingers {FINGER_STEP} rad (sim.hand.env)")


def algorithm_settings(config: GPAYNTrainConfig) -> tuple[SACConfig, Any]:
    """SAC's and the runner's settings for ``config.algo``."""
    sac, runner = config.sac, config.runner
    if config.algo == "sac":
        return sac, runner
    sac = dataclasses.replace(sac, learning_starts=0)
    if config.algo == "gpayn":
        runner = dataclasses.replace(runner, demo_fraction=config.gpayn_demo_fraction)
        sac = dataclasses.replace(sac, bc_weight=config.gpayn_bc_weight)
    if config.algo == "oerld":
        batch = sac.batch_size + config.oerld_demo_rows
        # OERLD's behaviour cloning is a Q-filtered squared error by definition; sac.bc_q_filter and
        # sac.bc_log_likelihood are G-PAYN's choices.
        sac = dataclasses.replace(sac, batch_size=batch, bc_weight=config.oerld_bc_weight, bc_q_filter=True,
                                  bc_log_likelihood=False)
        runner = dataclasses.replace(runner, demo_fraction=config.oerld_demo_rows / batch)
    return sac, runner


def apply_flags(config: GPAYNTrainConfig, args: argparse.Namespace) -> GPAYNTrainConfig:
    """``--object`` and ``--algo`` over the config's keys (validated again)."""
    if getattr(args, "object", None):
        config = dataclasses.replace(config, env=dataclasses.replace(config.env, object=args.object))
    if getattr(args, "algo", None):
        config = dataclasses.replace(config, algo=args.algo)
    return config


def train(config: GPAYNTrainConfig, args: argparse.Namespace, ctx: Context) -> str:
    config = apply_flags(config, args)
    run = RunDir.open(ctx.out, config, kind=TASK, resume=ctx.resume, may_change=["threads"])
    torch.set_num_threads(config.threads)
    sac, runner_config = algorithm_settings(config)
    demos = None
    if config.algo != "sac":
        demos = load_or_generate(run / DEMONSTRATIONS, config.env, config.demo_transitions, config.demo_envs,
                                 config.seed + DEMO_SEED_OFFSET, ctx.bar, config.demo_action_noise)

    envs = runner_config.envs_per_member
    start_z = start_height(config.env)

    def make_env(ids: list[int]) -> HandEnv:
        return HandEnv(len(ids) * envs, config.env, seed=config.seed)

    def make_eval_env(ids: list[int]) -> HandEnv:
        return HandEnv(len(ids) * config.eval_episodes, config.env, seed=config.seed)

    def judge(active: torch.Tensor, fly: Fly) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        return judge_grasps(active, fly(active, make_eval_env), start_z)

    def on_finish(member: int, record: dict[str, Any], actor: nn.Sequential) -> None:
        save_actor(run / f"policy_{member}.pt", actor, HandEnv.action_size, policy_meta(run, config))

    runner = OffPolicyRunner(list(range(config.members)), make_env, sac, runner_config, seed=config.seed,
                             checkpoint=run / CHECKPOINT, on_finish=on_finish, judge=judge)
    if ctx.resume and (run / CHECKPOINT).is_file():  # a run killed before its first checkpoint restarts
        runner.load(run / CHECKPOINT)
    elif demos is not None:
        add_demonstrations(runner, demos, partition=runner_config.demo_fraction > 0)
    if config.algo == "gpayn" and runner.step == 0:  # OERLD's batches need agent rows, there are none yet
        with ctx.bar("updates on demonstrations", config.pretrain_updates) as bar:
            for _ in range(config.pretrain_updates):
                runner.update()
                bar.update(1)

    first, started = runner.step, time.perf_counter()
    with run.scalars("train") as scalars, ctx.bar(f"{config.algo} {config.env.object}", runner_config.steps,
                                                  initial=first) as bar:
        def on_log(r: OffPolicyRunner) -> None:
            diagnostics = {name: v.tolist() for name, v in critic_diagnostics(r).items()}
            for k, member in enumerate(r.ids):
                r.curves[member][-1].update({name: v[k] for name, v in diagnostics.items()})
            for member, points in r.curves.items():
                scalars.add_all(points[-1], r.step, prefix=f"member_{member}/")
            success = [p[-1].get("select_success") for p in r.curves.values()]
            seen = [s for s in success if s is not None]
            bar.set_postfix_str(f"success {max(seen):.2f}" if seen else "")

        runner.on_log = on_log
        runner.run(progress=bar.update)
    seconds = time.perf_counter() - started

    best = max(runner.finished.values(), key=lambda r: (r.get("best_success", -1.0), -r["id"]))
    write_learning_curve(run, runner.curves, f"{config.algo} on {config.env.object}")
    metrics = {"algo": config.algo, "object": config.env.object, "env_steps": runner.step,
               "updates": runner.group.updates, "members": runner.finished, "best_member": best["id"],
               "session_started_at_step": first, "session_wall_seconds": seconds, "threads": config.threads}
    if demos is not None:
        metrics["demonstrations"] = {"transitions": int(demos["reward"].shape[0]),
                                     "episodes": int(demos["episodes"]), "successes": int(demos["successes"])}
    run.write_json("metrics.json", metrics)
    card = export_policy(run, run / f"policy_{best['id']}.pt")
    error = card["export"]["equivalence"]["max_abs_error"]
    return (f"gpayn ({config.algo}, {config.env.object}): {runner.step:,} env steps, "
            f"{runner.group.updates:,} updates ({runner.step - first:,} steps in {seconds:.0f} s this "
            f"session); best member "
            f"{best['id']}: success {best.get('best_success', math.nan):.2f} over {config.eval_episodes} "
            f"episodes at step {best.get('best_step', runner.step)}\n"
            f"policy {run / 'policy.onnx'} (ONNX Runtime max abs difference {error:.1g}); "
            f"robo eval gpayn --policy {run / 'policy.onnx'}")


def add_demonstrations(runner: OffPolicyRunner, demos: dict[str, torch.Tensor], partition: bool) -> None:
    """The FIFO starts full of demonstrations (the newest ``capacity`` rows; G-PAYN's), or with
    ``partition`` they form the partition FIFO never overwrites (OERLD's, G-PAYN's with a
    ``gpayn_demo_fraction``). Every member gets the same demonstrations."""
    k = runner.group.members
    if not partition:
        rows = {name: demos[name][-runner.replay.capacity:] for name in FIELDS}
        runner.replay.add(*(rows[name].expand(k, *rows[name].shape) for name in FIELDS))
    else:
        runner.replay.add_demonstrations(*(demos[name].expand(k, *demos[name].shape) for name in FIELDS))


@torch.no_grad()
def critic_diagnostics(runner: OffPolicyRunner, rows: int = 1024) -> dict[str, torch.Tensor]:
    """Per member ([K]), on ``rows`` replay rows: the critic's Q of the stored actions (``q_data``) and
    of the actor's sampled actions (``q_policy``), and the actor's entropy estimate: a ``q_policy`` far
    above ``q_data`` and above any return a grasp earns is over-estimation. A private generator, so
    the training streams (and a resumed run) are untouched."""
    generator = torch.Generator(device=runner.device).manual_seed(runner.step)
    group = runner.group
    batch = runner.replay.sample(rows, generator)
    noise = torch.randn(*batch["action"].shape, generator=generator, device=runner.device)
    action, log_prob = group.actor.sample(batch["obs"], noise)
    return {"q_data": group.critic(batch["obs"], batch["action"]).min(0).values.mean(-1),
            "q_policy": group.critic(batch["obs"], action).min(0).values.mean(-1),
            "entropy": -log_prob.mean(-1)}


def judge_grasps(active: torch.Tensor, episodes: Episodes,
                 start_z: float) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Each active member's success rate, median time to lift and drop rate over its deterministic
    episodes; the score ranks by success, then by shorter episodes."""
    k = active.numel()
    values = {name: torch.full((k,), math.nan) for name in ("success", "time_to_lift_s", "drop_rate")}
    score = torch.full((k, 2), -math.inf)
    outcomes = outcomes_from_final(episodes.terminated.cpu().numpy(), episodes.final_obs.cpu().numpy(),
                                   episodes.lengths.cpu().numpy(), start_z)
    for row, member in enumerate(active.nonzero()[:, 0].tolist()):
        summary = GraspOutcomes(outcomes.success[row], outcomes.dropped[row], outcomes.length[row]).summary()
        for name in values:
            values[name][member] = summary[name]
        score[member] = torch.tensor([summary["success"], -float(np.mean(outcomes.length[row]))])
    return score, values


def policy_meta(run: RunDir, config: GPAYNTrainConfig) -> dict[str, Any]:
    from robo.config import to_dict

    return {"task": TASK, "observation": LAYOUT.card_entries(),
            "action": ACTION, "action_clip": [-1.0, 1.0], "action_mapping": ACTION_MAPPING,
            "control_rate_hz": 1.0 / CONTROL_DT, "run": str(Path(run.path)), "config": to_dict(config)}


def export_policy(run: RunDir, source: Path) -> dict[str, Any]:
    """The chosen member's policy as ``policy.pt``, then ``policy.onnx`` + card checked against torch."""
    from robo.export.onnx_export import export_checkpoint
    from robo.files import write_bytes

    write_bytes(run / "policy.pt", source.read_bytes())
    return export_checkpoint(run / "policy.pt", run / "policy.onnx")


def write_learning_curve(run: RunDir, curves: dict[int, list[dict[str, float]]], title: str) -> None:
    """``learning_curve.csv`` (one row per member and curve point) and a PNG of success and return."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [{"member": member, **point} for member, points in curves.items() for point in points]
    keys = list(dict.fromkeys(key for row in rows for key in row))
    run.write_csv("learning_curve.csv", rows, keys)
    fig, (ax_success, ax_return) = plt.subplots(1, 2, figsize=(9, 3.5))
    for member, points in curves.items():
        judged = [p for p in points if "select_success" in p]
        ax_success.plot([p["step"] for p in judged], [p["select_success"] for p in judged], marker="o",
                        label=f"member {member}")
        ax_return.plot([p["step"] for p in points], [p["return"] for p in points])
    ax_success.set(xlabel="environment steps", ylabel="success rate (deterministic)", ylim=(-0.05, 1.05))
    ax_return.set(xlabel="environment steps", ylabel="mean training episode return")
    for ax in (ax_success, ax_return):
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    run.save_figure(fig, "learning_curve.png")

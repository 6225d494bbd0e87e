"""``robo train online-cbf``: PPO with parameter sharing trains the GNN that sets every agent's gains.

Every agent of every episode is one PPO sample (:class:`~robo.tasks.online_cbf.gain_env.SwarmGainEnv`);
the actor and critic are :class:`~robo.nets.gnn.GainGNN` networks on the agent's own view, the actor's
Gaussian lives in the pre-squash space. The run folder (:class:`~robo.run_dir.RunDir`) holds the
resolved config, ``checkpoint.pt`` (``--resume`` continues it exactly), TensorBoard scalars, the
learning curve (CSV + PNG), ``metrics.json``, the squashed actor as ``policy.pt`` and its ONNX export
with card (``policy.onnx`` + ``policy.json``: the gains k1, k2 themselves).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import torch

from robo.config import to_dict
from robo.nets.gnn import GNNActorCritic
from robo.registry import Context
from robo.rl.on_policy_runner import RESUMABLE_CHANGES, OnPolicyRunner
from robo.run_dir import RunDir
from robo.tasks.online_cbf.config import OnlineCbfConfig
from robo.tasks.online_cbf.gain_env import SwarmGainEnv
from sim.swarm import edge_layout, flat_layout

TASK = "online_cbf"
CHECKPOINT = "checkpoint.pt"
IMITATION = "imitation.json"  # train.imitate: the warm start's losses and the rule's own episodes


def policy_meta(config: OnlineCbfConfig, run: Path) -> dict[str, Any]:
    t = config.train
    action = [{"name": "k1", "unit": "1/s"}, {"name": "k2", "unit": "1/s"}]
    clip: list[float] | list[list[float]] = [t.k_min, t.k_max]
    fallback = [t.k_min, t.k_min]
    mapping = (f"HOCBF gains of this agent: psi = h' + k1 h, psi' + k2 psi >= 0 "
               f"(robo.safety.batched_multi_agent), k in [{t.k_min}, {t.k_max}]")
    if t.tilt_range is not None:
        lo, hi = t.tilt_range
        action.append({"name": "tilt", "unit": "rad"})
        clip = [[t.k_min, t.k_max], [t.k_min, t.k_max], [lo, hi]]
        fallback.append(min(max(config.tilt, lo), hi))
        mapping += (f"; tilt in [{lo}, {hi}]: the nominal's goal error turned clockwise by it "
                    f"(sim.swarm.nominal, the right-hand rule)")
    if t.per_neighbour:
        for m in range(t.neighbours):
            action += [{"name": f"edge{m}.k1", "unit": "1/s"}, {"name": f"edge{m}.k2", "unit": "1/s"}]
        if t.tilt_range is not None:  # per-output clips (else one clip for every output, all gains)
            clip = [*clip, *[[t.k_min, t.k_max]] * (2 * t.neighbours)]
        fallback += [t.k_min] * (2 * t.neighbours)
        mapping += ("; edgeM.k1, edgeM.k2: the gains of the barrier row of the neighbour in edge slot M "
                    "(k1, k2 serve the rows of neighbours without a slot)")
    return {"task": TASK, "observation": flat_layout(config.swarm.dim, t.neighbours).card_entries(),
            "action": action, "action_clip": clip,
            "action_mapping": f"{mapping}; max neighbours {t.neighbours}, nearest first, empty slots masked",
            "fallback_action": fallback,
            "control_rate_hz": 1.0 / config.swarm.dt, "run": str(run), "config": to_dict(config)}


def train(config: OnlineCbfConfig, args: argparse.Namespace, ctx: Context) -> str:
    may_change = ["threads", *(f"train.runner.{k}" for k in RESUMABLE_CHANGES)]
    run = RunDir.open(ctx.out, config, kind=TASK, resume=ctx.resume, may_change=may_change)
    torch.set_num_threads(config.threads)
    t = config.train
    env = SwarmGainEnv(config)
    D = config.swarm.dim
    model = lambda: GNNActorCritic(2 * D, edge_layout(D).size, t.neighbours, act_dim=env.action_size,  # noqa: E731
                                   hidden=t.hidden, init_std=t.runner.init_std, k_min=t.k_min, k_max=t.k_max,
                                   tilt_range=t.tilt_range, init_out=t.init_gains,
                                   per_neighbour=t.per_neighbour)
    runner = OnPolicyRunner(env, t.ppo, t.runner, seed=config.seed, checkpoint=run / CHECKPOINT, model=model)
    if ctx.resume and (run / CHECKPOINT).is_file():
        runner.load(run / CHECKPOINT)
    elif t.imitate is not None:  # a fresh run: demonstrations first (a resumed one has them in its weights)
        from robo.tasks.online_cbf.warm_start import imitate

        rows = t.imitate_steps * env.num_envs * (1 + t.imitate_epochs)  # collected, then fitted per epoch
        with ctx.bar("online-cbf imitating the yield rule", rows) as bar:
            run.write_json(IMITATION, imitate(runner.model, config, runner.generator, progress=bar.update))
    per_iteration = t.runner.num_steps * env.num_envs
    first, started = runner.iteration, time.perf_counter()
    scalars = run.scalars("train")

    def log(stats: dict[str, float]) -> None:
        ended = env.take_finished()
        if ended:
            for key in ("success", "deadlock", "collisions"):
                stats[f"episode_{key}"] = sum(e[key] for e in ended) / len(ended)
        scalars.add_all(stats, int(stats["env_steps"]))
        bar.set_postfix_str(f"return {stats['mean_return']:.1f} success "
                            f"{stats.get('episode_success', float('nan')):.0%}")

    with scalars, ctx.bar("online-cbf PPO", t.runner.iterations * per_iteration,
                          initial=first * per_iteration) as bar:
        runner.on_log = log
        history = runner.run(progress=bar.update)
    seconds = time.perf_counter() - started
    write_learning_curve(run, history)
    last = history[-1]
    summary = {key: last.get(key) for key in ("mean_return", "episode_success", "episode_deadlock")}
    if (run / IMITATION).is_file():
        summary["imitation"] = json.loads((run / IMITATION).read_text())
    summary.update(iterations=runner.iteration, agent_steps=last["env_steps"], threads=config.threads,
                   session_started_at_iteration=first, session_wall_seconds=seconds)
    run.write_json("metrics.json", summary)
    card = export_policy(runner, run, config)
    onnx_error = card["export"]["equivalence"]["max_abs_error"]
    lines = [f"online-cbf: {runner.iteration} iterations, {last['env_steps']:,} agent steps, "
             f"{runner.iteration - first} of them in {seconds:.0f} s this session",
             f"mean return {last['mean_return']:.1f}; policy {run / 'policy.onnx'} "
             f"(ONNX Runtime max abs difference {onnx_error:.1g})",
             f"next: robo eval online-cbf --policy {run / 'policy.onnx'}"]
    return "\n".join(lines)


def write_learning_curve(run: RunDir, history: list[dict[str, float]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = sorted({k for h in history for k in h})
    run.write_csv("learning_curve.csv", [{k: h.get(k, float("nan")) for k in keys} for h in history], keys)
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(10, 3.5))
    steps = [h["env_steps"] for h in history]
    ax.plot(steps, [h["mean_return"] for h in history])
    ax.set(xlabel="agent steps", ylabel="mean episode return (per agent)", title="PPO, GNN gain tuner")
    for key in ("episode_success", "episode_deadlock"):
        bx.plot(steps, [h.get(key, float("nan")) for h in history], label=key.removeprefix("episode_"))
    bx.set(xlabel="agent steps", ylabel="fraction of ended training episodes")
    bx.legend()
    for a in (ax, bx):
        a.grid(alpha=0.3)
    fig.tight_layout()
    run.save_figure(fig, "learning_curve.png")


def export_policy(runner: OnPolicyRunner, run: RunDir, config: OnlineCbfConfig) -> dict[str, Any]:
    """The squashed actor (the gains) as ``policy.pt``, then ``policy.onnx`` + card checked against torch."""
    from robo.export.onnx_export import export_checkpoint
    from robo.nets.policy import save_policy

    actor = runner.model.deterministic_actor().cpu()
    save_policy(run / "policy.pt", actor, policy_meta(config, Path(run.path)))
    return export_checkpoint(run / "policy.pt", run / "policy.onnx")

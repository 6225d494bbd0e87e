"""``robo train pendulum``: PPO (robo.rl.on_policy_runner) on N batched pendulums, then the exported policy.

The run folder (:class:`~robo.run_dir.RunDir`) holds the resolved config, ``checkpoint.pt``
(the runner's whole state, so ``--resume`` continues exactly as the uninterrupted run would), the
learning curve, ``metrics.json``, the deterministic actor in the one policy format (``policy.pt``) and
its ONNX export with card (``policy.onnx`` + ``policy.json``).
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from robo.registry import Context
from robo.rl.on_policy_runner import RESUMABLE_CHANGES, OnPolicyConfig, OnPolicyRunner
from robo.rl.ppo import PPOConfig
from robo.run_dir import RunDir
from sim.pendulum import OBSERVATION, PendulumConfig, PendulumEnv

TASK = "pendulum"
ACTION = [{"name": "torque", "unit": "1"}]
CHECKPOINT = "checkpoint.pt"


def _ppo() -> PPOConfig:
    # The settings tests/test_ppo.py measured: raw-unit rewards want a short horizon (gamma 0.9) and
    # no value clipping; a one-dimensional action needs no entropy bonus; a smaller KL target keeps
    # the adaptive learning rate off its ceiling.
    return PPOConfig(gamma=0.9, clip_value=False, entropy_coef=0.0, desired_kl=0.005)


def _runner() -> OnPolicyConfig:
    return OnPolicyConfig(iterations=120, num_steps=64, normalize_observations=True, checkpoint_interval=10)


@dataclass
class PendulumTrainConfig:
    seed: int = 0
    envs: int = 64  # pendulums stepped together (mass 1 kg, length 1 m)
    threads: int = 1  # torch CPU threads; may change on --resume
    pendulum: PendulumConfig = field(default_factory=PendulumConfig)
    ppo: PPOConfig = field(default_factory=_ppo)
    runner: OnPolicyConfig = field(default_factory=_runner)

    def __post_init__(self) -> None:
        for name in ("envs", "threads"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")


def pendulums(n: int, config: PendulumConfig, seed: int) -> PendulumEnv:
    return PendulumEnv([1.0] * n, [1.0] * n, config, seed=seed)


def train(config: PendulumTrainConfig, args: argparse.Namespace, ctx: Context) -> str:
    may_change = ["threads", *(f"runner.{k}" for k in RESUMABLE_CHANGES)]
    run = RunDir.open(ctx.out, config, kind=TASK, resume=ctx.resume, may_change=may_change)
    torch.set_num_threads(config.threads)
    runner = OnPolicyRunner(pendulums(config.envs, config.pendulum, config.seed), config.ppo, config.runner,
                            seed=config.seed, checkpoint=run / CHECKPOINT)
    if ctx.resume and (run / CHECKPOINT).is_file():  # a run killed before its first checkpoint restarts
        runner.load(run / CHECKPOINT)
    per_iteration = config.runner.num_steps * config.envs
    first, started = runner.iteration, time.perf_counter()
    with ctx.bar("pendulum PPO", config.runner.iterations * per_iteration,
                 initial=first * per_iteration) as bar:
        runner.on_log = lambda stats: bar.set_postfix_str(f"return {stats['mean_return']:.0f}")
        history = runner.run(progress=bar.update)
    seconds = time.perf_counter() - started

    write_learning_curve(run, history)
    last = history[-1]
    run.write_json("metrics.json", {"iterations": runner.iteration, "env_steps": last["env_steps"],
                                    "mean_return": last["mean_return"], "mean_length": last["mean_length"],
                                    "session_started_at_iteration": first, "session_wall_seconds": seconds,
                                    "threads": config.threads})
    card = export_policy(runner, run, config)
    error = card["export"]["equivalence"]["max_abs_error"]
    return (f"pendulum: {runner.iteration} iterations, {last['env_steps']:,} transitions "
            f"({runner.iteration - first} in {seconds:.0f} s this session); training mean return "
            f"{last['mean_return']:.0f} (random policy about -1200)\n"
            f"policy {run / 'policy.onnx'} (ONNX Runtime max abs difference {error:.1g}); "
            f"robo eval pendulum --policy {run / 'policy.onnx'}")


def write_learning_curve(run: RunDir, history: list[dict[str, float]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    run.write_csv("learning_curve.csv", history, list(history[0]))
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot([h["env_steps"] for h in history], [h["mean_return"] for h in history])
    ax.set(xlabel="environment steps", ylabel="mean episode return", title="PPO on the pendulum")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    run.save_figure(fig, "learning_curve.png")


def export_policy(runner: OnPolicyRunner, run: RunDir, config: PendulumTrainConfig) -> dict[str, Any]:
    """The deterministic actor as ``policy.pt``, then ``policy.onnx`` + card checked against torch."""
    from robo.config import to_dict
    from robo.export.onnx_export import export_checkpoint
    from robo.nets.policy import save_policy

    meta = {"task": TASK, "observation": OBSERVATION.card_entries(), "action": ACTION,
            "action_clip": [-1.0, 1.0],
            "action_mapping": f"torque = a * {config.pendulum.max_torque} N m",
            "control_rate_hz": 1.0 / config.pendulum.dt, "run": str(Path(run.path)),
            "config": to_dict(config)}
    save_policy(run / "policy.pt", runner.model.deterministic_actor().cpu(), meta)
    return export_checkpoint(run / "policy.pt", run / "policy.onnx")

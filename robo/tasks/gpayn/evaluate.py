"""``robo eval gpayn``: a grasping policy's success rate, median time to lift and drop rate, beside the
scripted demonstrator on the same episodes (the same objects in the same poses), a PNG strip of the
policy's first episode, and one learning-curve plot over several training runs.

The episodes run in the environment the policy was trained in (the card's, or the checkpoint's, config),
on evaluation seeds that are not training's. ``policy.onnx`` runs through the one ONNX Runtime wrapper
(:class:`robo.runtime.OnnxPolicy`, what deployment runs), ``policy.pt`` through torch. The strip needs
an OpenGL context: with no display the ``robo`` command selects EGL (``MUJOCO_GL``, unless already set).
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from robo.config import from_dict
from robo.files import write_json
from robo.registry import Context
from robo.tasks.gpayn.config import GPAYNTrainConfig
from robo.tasks.gpayn.episodes import Act, grasp_episodes

TASK = "gpayn"


@dataclass
class GPAYNEvalConfig:
    episodes: int = 20  # one per environment, all stepped together
    seed: int = 1000  # object poses; not the training seeds
    strip_frames: int = 6  # frames in the PNG strip of the first episode

    def __post_init__(self) -> None:
        for name in ("episodes", "strip_frames"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")


def load_policy_act(path: str | Path) -> tuple[Act, dict[str, Any]]:
    """``policy.onnx`` (through OnnxPolicy) or ``policy.pt`` (through torch) as a batched ``Act``, and the
    training config it records; refuses a policy of another task."""
    path = Path(path)
    if path.suffix == ".onnx":
        from robo.runtime import OnnxPolicy

        policy = OnnxPolicy(path)
        task, config = policy.task, policy.card["training"].get("config")

        def act(obs: torch.Tensor) -> torch.Tensor:
            return torch.from_numpy(np.stack([policy.step(o).action for o in obs.numpy()]))
    elif path.suffix == ".pt":
        from robo.nets.policy import load_policy

        net, meta = load_policy(path)
        task, config = meta.get("task"), meta.get("config")

        def act(obs: torch.Tensor) -> torch.Tensor:
            with torch.no_grad():
                return net(obs).clamp(-1.0, 1.0)
    else:
        raise ValueError(f"--policy {path}: expected a .onnx (with its card) or a .pt policy checkpoint")
    if task != TASK:
        raise ValueError(f"--policy {path}: a policy for task {task!r}, not {TASK!r}")
    if not isinstance(config, dict):
        raise ValueError(f"--policy {path}: records no training config (its environment is unknown)")
    return act, config


def evaluate(config: GPAYNEvalConfig, args: argparse.Namespace, ctx: Context) -> str:
    path = Path(args.policy)
    act, trained = load_policy_act(path)  # a bad policy fails before anything runs or is written
    env = from_dict(GPAYNTrainConfig, trained).env
    if args.object:
        env = dataclasses.replace(env, object=args.object)
    runs = training_runs([Path(r) for r in args.runs])  # before anything runs or is written
    policy = grasp_episodes(env, config.episodes, config.seed, act).summary()
    scripted = grasp_episodes(env, config.episodes, config.seed).summary()
    out = Path(ctx.out or path.parent / f"eval_{path.stem}_{path.suffix[1:]}")
    written = [write_json(out / "metrics.json", {
        "policy": str(path), "object": env.object, "episodes": config.episodes, "seed": config.seed,
        "policy_metrics": policy, "scripted_metrics": scripted})]
    if runs:
        written.append(plot_learning_curves(runs, out / "learning_curves.png"))
    note = ""
    if not args.no_strip:
        try:
            written.append(episode_strip(env, act, config, out / "episode_strip.png"))
        except RuntimeError as err:  # no OpenGL: the numbers stand without the picture
            note = f"\n(no strip: {err})"
    rows = [(path.name, policy), ("scripted", scripted)]
    lines = [f"{'':<14}{'success':>9}{'time to lift':>14}{'drop rate':>11}   {env.object}, "
             f"{config.episodes} episodes, seed {config.seed}"]
    lines += [f"{name:<14}{m['success']:>9.2f}{m['time_to_lift_s']:>12.2f} s{m['drop_rate']:>11.2f}"
              for name, m in rows]
    return "\n".join(lines) + "\nwrote " + ", ".join(str(w) for w in written) + note


def episode_strip(env_config: Any, act: Act, config: GPAYNEvalConfig, path: Path) -> Path:
    """``strip_frames`` frames, evenly spaced, of the first evaluation episode under ``act``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from robo.files import save_figure
    from sim.hand.env import HandEnv
    from sim.hand.render import render_frame

    env = HandEnv(1, env_config, seed=config.seed)
    obs = env.reset(seed=config.seed)[0]
    frames = [render_frame(env)]
    for _ in range(env_config.episode_steps):
        obs, _, terminated, truncated, _ = env.step(act(obs))
        if bool(terminated[0] or truncated[0]):
            break
        frames.append(render_frame(env))
    chosen = np.linspace(0, len(frames) - 1, min(config.strip_frames, len(frames))).round().astype(int)
    fig, axes = plt.subplots(1, len(chosen), figsize=(2.4 * len(chosen), 2.0), squeeze=False)
    for ax, index in zip(axes[0], chosen, strict=True):
        ax.imshow(frames[index])
        ax.set_title(f"t = {index / 40:.2f} s", fontsize=8)
        ax.axis("off")
    fig.tight_layout()
    return save_figure(fig, path)


def training_runs(runs: list[Path]) -> list[tuple[Path, GPAYNTrainConfig]]:
    """Each finished gpayn run with its config; another kind of run is refused, naming it."""
    from robo.config import ConfigError, load_config

    found = []
    for run in runs:
        if not (run / "learning_curve.csv").is_file():
            raise OSError(f"--runs {run}: no learning_curve.csv (not a finished gpayn run)")
        try:
            found.append((run, load_config(GPAYNTrainConfig, run / "config.yaml")))
        except ConfigError as exc:
            raise ValueError(f"--runs {run}: not a gpayn run ({exc})") from None
    return found


def plot_learning_curves(runs: list[tuple[Path, GPAYNTrainConfig]], path: Path) -> Path:
    """Deterministic success rate against environment steps, one line per run (its algo and object)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from robo.files import save_figure

    fig, ax = plt.subplots(figsize=(6, 3.5))
    for run, trained in runs:
        with open(run / "learning_curve.csv") as f:
            points = [row for row in csv.DictReader(f) if row.get("select_success")]
        ax.plot([int(p["step"]) for p in points], [float(p["select_success"]) for p in points], marker="o",
                label=f"{trained.algo} ({trained.env.object}, {run.name})")
    ax.set(xlabel="environment steps", ylabel="success rate (deterministic)", ylim=(-0.05, 1.05))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return save_figure(fig, path)

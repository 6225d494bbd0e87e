"""``robo eval dp``: a base's success rate on seeded episodes, batched, with an episode strip.

Every environment row plays ``episodes / envs`` whole episodes (:func:`robo.tasks.resip.episodes.play`);
metrics.json counts how they ended (:mod:`sim.assembly.failures`: success or why it failed).
Seeds: the environments' holes and starts
from ``seed``, the sampler's noise from ``seed + 1``, so a repeated evaluation gives the same number.
"""

from __future__ import annotations

import argparse
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from robo.files import save_figure, write_json
from robo.nets.diffusion import DiffusionPolicy
from robo.registry import Context
from robo.rl.diffusion_bc import check_noise_scale
from robo.tasks.resip.base import BASE_KINDS, load_base
from robo.tasks.resip.episodes import play_outcomes
from sim.assembly.config import check_randomness
from sim.assembly.env import AssemblyEnv
from sim.assembly.failures import failures_line, tally

STRIP_EVERY = 5  # control steps between the frames the strip is chosen from (rendering is slow on a CPU)


@dataclass
class DPEvalConfig:
    episodes: int = 200
    envs: int = 50  # rows stepped together; each plays episodes / envs episodes
    ddim_steps: int = 16
    noise_scale: float = 1.0  # of DDIM's start noise: 1 as trained, 0 deterministic chunks
    action_horizon: int = 8
    randomness: str = ""  # empty: the level the base was trained on
    episode_steps: int = 0  # time limit; 0: the task's (a longer one tells slow from failing)
    seed: int = 1000  # not the demonstrations' seeds
    threads: int = 2
    strip_frames: int = 8  # frames of row 0's first episode in episode_strip.png; 0: none

    def __post_init__(self) -> None:
        if self.episode_steps < 0:
            raise ValueError(f"episode_steps: must be >= 0, got {self.episode_steps}")
        for key in ("episodes", "envs", "ddim_steps", "action_horizon", "threads"):
            if getattr(self, key) < 1:
                raise ValueError(f"{key}: must be >= 1, got {getattr(self, key)}")
        if self.randomness:
            check_randomness(self.randomness)
        check_noise_scale(self.noise_scale)  # before the base loads


def evaluate(config: DPEvalConfig, args: argparse.Namespace, ctx: Context) -> str:
    base = load_base(args.base, BASE_KINDS)  # a bad base fails before anything runs or is written
    torch.set_num_threads(config.threads)
    overrides = {"randomness": config.randomness} if config.randomness else {}
    if config.episode_steps:
        overrides["episode_steps"] = config.episode_steps
    env_config = base.env_config(**overrides)
    envs = min(config.envs, config.episodes)
    per_row = math.ceil(config.episodes / envs)
    env = AssemblyEnv(envs, env_config, seed=config.seed)
    act = base.actor(envs, config.ddim_steps, config.action_horizon, seed=config.seed + 1,
                     noise_scale=config.noise_scale)
    frames = []
    camera = None
    if config.strip_frames:
        from sim.assembly.render import FrameCamera

        camera = FrameCamera(env)
    started = time.perf_counter()

    def film(played: np.ndarray) -> None:
        if played[0] == 0 and env.steps[0] % STRIP_EVERY == 0:
            frames.append((int(env.steps[0]), camera(0)))

    with ctx.bar(f"eval dp {base.task}", envs * per_row) as bar:
        ended = play_outcomes(env, act, per_row, bar, film if camera is not None else None)
    seconds = time.perf_counter() - started
    ended = ended[: config.episodes]
    results = [o.success for o in ended]
    rate = float(np.mean(results))
    diffusion = isinstance(base.policy, DiffusionPolicy)
    # an MLP-BC base ignores ddim_steps and noise_scale
    scaled = diffusion and config.noise_scale != 1
    sampling = (f"DDIM {config.ddim_steps}" + (f", start noise x{config.noise_scale:g}" if scaled else "")
                if diffusion else "MLP")
    # another time limit or start noise is another evaluation: its own folder, so the task's stays
    name = (f"eval_dp_ddim{config.ddim_steps}" if diffusion else "eval_dp") + (
        f"_noise{config.noise_scale:g}" if scaled else "") + (
        f"_{config.episode_steps}steps" if config.episode_steps else "")
    out = Path(ctx.out or base.run / name)
    summary = {"base": str(base.run), "task": base.task, "randomness": env_config.randomness,
               "episodes": len(results), "success_rate": rate, "successes": int(np.sum(results)),
               "episode_steps": env_config.episode_steps, "outcomes": tally(ended),
               "ddim_steps": config.ddim_steps if diffusion else None,
               "noise_scale": config.noise_scale if diffusion else None,
               "action_horizon": config.action_horizon, "seed": config.seed, "envs": envs,
               "unstable_resets": env.unstable_resets, "chunks_sampled": act.chunks,
               "wall_seconds": seconds, "threads": config.threads}
    written = write_json(out / "metrics.json", summary)
    if frames:
        write_strip(out / "episode_strip.png", frames, config.strip_frames, f"{base.task}: row 0, episode 1")
    failed = failures_line(summary["outcomes"])
    return (f"dp {base.task} ({env_config.randomness}): success {rate:.1%} over {len(results)} episodes "
            f"({sampling}, chunks of {config.action_horizon}), {seconds:.0f} s; failures: {failed}\n"
            f"wrote {written}")


def write_strip(path: Path, frames: list[tuple[int, np.ndarray]], count: int, title: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    picks = np.linspace(0, len(frames) - 1, min(count, len(frames))).round().astype(int)
    fig, axes = plt.subplots(1, len(picks), figsize=(2 * len(picks), 1.8), squeeze=False)
    for ax, k in zip(axes[0], picks, strict=True):
        step, image = frames[k]
        ax.imshow(image)
        ax.set_title(f"step {step}", fontsize=8)
        ax.axis("off")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return save_figure(fig, path)

"""``robo eval pendulum``: a policy's mean return on seeded episodes, beside a random policy's.

Every policy acts on the same episodes (the same start states, the same pendulums): an exported
``policy.onnx`` runs through the one ONNX Runtime wrapper (:class:`robo.runtime.OnnxPolicy`, what
deployment runs), a ``policy.pt`` through torch, so the two can be compared number for number.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from robo.files import write_json
from robo.registry import Context
from robo.tasks.pendulum.train import TASK, pendulums
from sim.pendulum import PendulumConfig

Act = Callable[[torch.Tensor], torch.Tensor]  # observations [N, 3] -> actions [N, 1]


@dataclass
class PendulumEvalConfig:
    episodes: int = 100  # one pendulum per episode, all stepped together
    seed: int = 1000  # start states; not the training seeds
    pendulum: PendulumConfig = field(default_factory=PendulumConfig)

    def __post_init__(self) -> None:
        if self.episodes <= 0:
            raise ValueError(f"episodes must be > 0, got {self.episodes}")


@torch.no_grad()
def episode_returns(act: Act, config: PendulumEvalConfig) -> np.ndarray:
    """The return of each of ``config.episodes`` full episodes under ``act``."""
    env = pendulums(config.episodes, config.pendulum, config.seed)
    obs = env.reset(seed=config.seed)[0]
    total = torch.zeros(env.num_envs, dtype=torch.float64)
    for _ in range(config.pendulum.episode_steps):
        obs, reward, *_ = env.step(act(obs))
        total += reward
    return total.numpy()


def random_policy(seed: int) -> Act:
    generator = torch.Generator().manual_seed(seed)
    return lambda obs: torch.rand(obs.shape[0], 1, generator=generator) * 2 - 1


def load_act(path: str | Path) -> Act:
    """``policy.onnx`` (through OnnxPolicy) or ``policy.pt`` (through torch) as a batched ``Act``;
    refuses a policy of another task or a recurrent one."""
    path = Path(path)
    if path.suffix == ".onnx":
        from robo.runtime import OnnxPolicy

        policy = OnnxPolicy(path)
        _check(path, policy.task, bool(policy.card["recurrent_state"]))
        return lambda obs: torch.from_numpy(np.stack([policy.step(o).action for o in obs.numpy()]))
    if path.suffix == ".pt":
        from robo.nets.policy import load_policy

        net, meta = load_policy(path)
        _check(path, meta.get("task"), getattr(net, "recurrent", False))
        lo, hi = meta.get("action_clip", [-1.0, 1.0])
        return lambda obs: net(obs).clamp(lo, hi)
    raise ValueError(f"--policy {path}: expected a .onnx (with its card) or a .pt policy checkpoint")


def _check(path: Path, task: Any, recurrent: bool) -> None:
    if task != TASK:
        raise ValueError(f"--policy {path}: a policy for task {task!r}, not {TASK!r}")
    if recurrent:
        raise ValueError(f"--policy {path}: a recurrent policy; the pendulum evaluation runs feed-forward "
                         "ones")


def evaluate(config: PendulumEvalConfig, args: argparse.Namespace, ctx: Context) -> str:
    path = Path(args.policy)
    act = load_act(path)  # a bad policy fails before anything runs or is written
    policy = episode_returns(act, config)
    random = episode_returns(random_policy(config.seed), config)
    out = Path(ctx.out or path.parent / f"eval_{path.stem}_{path.suffix[1:]}")
    summary = {"policy": str(path), "episodes": config.episodes, "seed": config.seed,
               "mean_return": float(policy.mean()), "std_return": float(policy.std()),
               "random_mean_return": float(random.mean()), "random_std_return": float(random.std())}
    written = write_json(out / "metrics.json", summary)
    return (f"{'policy':<12}{'mean return':>14}{'std':>8}   {config.episodes} episodes, seed {config.seed}\n"
            f"{path.name:<12}{policy.mean():>14.1f}{policy.std():>8.1f}\n"
            f"{'random':<12}{random.mean():>14.1f}{random.std():>8.1f}\nwrote {written}")

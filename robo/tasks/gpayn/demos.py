"""G-PAYN's demonstrations: the scripted demonstrator's transitions (failed demonstrations kept),
generated at the start of a run and cached in its folder, so a resumed run reuses them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from robo.files import save_torch
from robo.registry import Bar, BarFactory
from robo.rl.checkpoint import load_checkpoint
from robo.rl.replay import FIELDS
from robo.rl.vec_env import final_observation
from sim.hand.demonstrator import Demonstrator
from sim.hand.env import HandEnv, HandEnvConfig

FORMAT = "robo-gpayn-demonstrations/1"
DEMO_SEED_OFFSET = 1_000_000  # a run's demonstrations are seeded seed + this: never its own episodes


def generate(env_config: HandEnvConfig, transitions: int, envs: int, seed: int,
             bar: Bar | None = None, noise: float = 0.0) -> dict[str, torch.Tensor]:
    """``transitions`` rows ``{obs, action, reward, next_obs, terminated}`` ([N, ...]) from ``envs``
    environments run by the demonstrator, with ``episodes`` and ``successes`` (counts of the episodes
    that ended inside them). ``noise``: the standard deviation of Gaussian noise added to every entry
    of the demonstrator's actions (action units, clipped to [-1, 1]); the noisy action is the one
    executed and stored, and the script corrects the drift it causes on the next steps."""
    env = HandEnv(envs, env_config, seed=seed)
    demonstrator = Demonstrator(env)
    generator = torch.Generator().manual_seed(seed)
    obs = env.reset(seed=seed)[0]
    rows: dict[str, list[torch.Tensor]] = {name: [] for name in FIELDS}
    episodes = successes = collected = 0
    while collected < transitions:
        action = demonstrator.act()
        if noise > 0:
            action = (action + noise * torch.randn(action.shape, generator=generator)).clamp(-1.0, 1.0)
        next_obs, reward, terminated, truncated, info = env.step(action)
        done = terminated | truncated
        step = {"obs": obs, "action": action, "reward": reward,
                "next_obs": final_observation(next_obs, done, info), "terminated": terminated.float()}
        for name in FIELDS:
            rows[name].append(step[name])
        episodes += int(done.sum())
        successes += int(info["success"].sum())
        obs = next_obs
        collected += envs
        if bar is not None:
            bar.update(envs)
    out = {name: torch.cat(values)[:transitions] for name, values in rows.items()}
    return {**out, "episodes": torch.tensor(episodes), "successes": torch.tensor(successes)}


def starts_as_planned(path: Path, config: Any) -> bool:
    """Whether the demonstrations a run cached at ``path`` begin from the observations this code's
    environment resets to (its grasp planner's pre-grasps): False after ``sim.hand`` changed the plans,
    when the run learnt from demonstrations the bench would no longer generate."""
    first = load_checkpoint(path, format=FORMAT)["demonstrations"]["obs"][:config.demo_envs]
    seed = config.seed + DEMO_SEED_OFFSET
    return torch.equal(first, HandEnv(config.demo_envs, config.env, seed=seed).reset(seed=seed)[0])


def load_or_generate(path: Path, env_config: HandEnvConfig, transitions: int, envs: int, seed: int,
                     bar: BarFactory, noise: float = 0.0) -> dict[str, torch.Tensor]:
    """The cached demonstrations at ``path`` or, when absent, new ones written there."""
    if path.is_file():
        state = load_checkpoint(path, format=FORMAT)
        return state["demonstrations"]
    with bar("demonstrations", transitions) as progress:
        demos = generate(env_config, transitions, envs, seed, progress, noise)
    save_torch({"format": FORMAT, "demonstrations": demos}, path)
    return demos

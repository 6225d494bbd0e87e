"""Demonstrations from the scripted expert, saved as one ``.npz`` (episodes concatenated) plus a JSON
manifest beside it, both written to a temporary file and renamed into place.

``obs [T, obs]``, ``action [T, act]``, ``episode_start [E]`` (row of each episode's first step),
``episode_length [E]``, ``success [E]``. The manifest records the task config, the observation and
action names (a consumer refuses a file whose names differ from its own), the expert's aim noise and
the success rate.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from sim.assembly.env import ACTION_NAMES, AssemblyEnv
from sim.assembly.expert import ScriptedExpert

FORMAT = "robo-assembly-demos/1"


def record(env: AssemblyEnv, expert: ScriptedExpert, episodes: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Run the batch until ``episodes`` episodes have ended; keep them whole, in the order they ended."""
    obs, _ = env.reset(seed=seed)
    expert.reset(np.arange(env.num_envs))
    running_obs: list[list[np.ndarray]] = [[] for _ in range(env.num_envs)]
    running_act: list[list[np.ndarray]] = [[] for _ in range(env.num_envs)]
    done_eps: list[tuple[np.ndarray, np.ndarray, bool]] = []
    while len(done_eps) < episodes:
        action = expert.act(obs)
        for i in range(env.num_envs):
            running_obs[i].append(obs[i].numpy())
            running_act[i].append(action[i].numpy())
        obs, _, terminated, truncated, _ = env.step(action)
        ended = np.flatnonzero((terminated | truncated).numpy())
        for i in ended:
            done_eps.append((np.array(running_obs[i]), np.array(running_act[i]), bool(terminated[i])))
            running_obs[i], running_act[i] = [], []
        expert.reset(ended)
    done_eps = done_eps[:episodes]
    lengths = np.array([len(o) for o, _, _ in done_eps])
    return {"obs": np.concatenate([o for o, _, _ in done_eps]).astype(np.float32),
            "action": np.concatenate([a for _, a, _ in done_eps]).astype(np.float32),
            "episode_start": np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64),
            "episode_length": lengths.astype(np.int64),
            "success": np.array([s for _, _, s in done_eps])}


def _write_atomic(path: Path, write: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        write(f)
    os.replace(tmp, path)


def save(path: str | Path, data: dict[str, np.ndarray], env: AssemblyEnv, aim_noise: float) -> None:
    """``path`` (.npz) and ``path`` with ``.json`` (the manifest)."""
    path = Path(path)
    manifest = {"format": FORMAT, "task": env.config.task, "config": dataclasses.asdict(env.config),
                "observation": env.layout.names, "action": list(ACTION_NAMES), "aim_noise": aim_noise,
                "episodes": len(data["episode_length"]), "steps": len(data["obs"]),
                "success_rate": float(np.mean(data["success"]))}
    _write_atomic(path, lambda f: np.savez(f, **data))
    _write_atomic(path.with_suffix(".json"), lambda f: f.write(json.dumps(manifest, indent=2).encode()))


def load(path: str | Path) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    path = Path(path)
    manifest = json.loads(path.with_suffix(".json").read_text())
    if manifest.get("format") != FORMAT:
        raise ValueError(f"{path}: format {manifest.get('format')!r}, expected {FORMAT!r}")
    with np.load(path) as f:
        return {k: f[k] for k in f.files}, manifest

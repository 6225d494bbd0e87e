"""Demonstrations from the scripted expert in a robomimic-style HDF5 file (h5py).

Why robomimic's layout: one self-describing file per task and level, one group per episode, readable by
h5py and robomimic's tools without a conversion, with attributes for the layout; LeRobotDataset would
need parquet files plus its own package for no gain on low-dimensional states.

    data                  attrs: format, task, env_config (JSON), observation (JSON list of names),
                                 action (JSON list of names), expert (JSON), total (steps), success_rate
    data/demo_<k>/obs/<field>   [T, n] float32, one dataset per observation field, in layout order
    data/demo_<k>/actions       [T, 10] float32 (sim.assembly.env.ACTION_NAMES)
    data/demo_<k>/rewards, dones [T]
                          attrs: num_samples, success

:func:`load` refuses a file of another task or another observation/action layout, naming the field.
The file is written to a temporary name and renamed into place.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from sim.assembly.env import ACTION_NAMES, LAYOUTS, AssemblyEnv
from sim.assembly.expert import PickInsertExpert, ScriptedExpert

FORMAT = "robo-assembly-demos/2 (robomimic-style hdf5)"


@dataclasses.dataclass
class Episode:
    obs: np.ndarray  # [T, obs]
    action: np.ndarray  # [T, act]
    success: bool


def record(env: AssemblyEnv, expert: ScriptedExpert | PickInsertExpert, episodes: int, seed: int = 0
           ) -> list[Episode]:
    """Run the batch until ``episodes`` episodes have ended; keep them whole, in the order they ended."""
    obs, _ = env.reset(seed=seed)
    expert.reset(np.arange(env.num_envs))
    running_obs: list[list[np.ndarray]] = [[] for _ in range(env.num_envs)]
    running_act: list[list[np.ndarray]] = [[] for _ in range(env.num_envs)]
    done: list[Episode] = []
    while len(done) < episodes:
        action = expert.act(obs)
        for i in range(env.num_envs):
            running_obs[i].append(obs[i].numpy())
            running_act[i].append(action[i].numpy())
        obs, _, terminated, truncated, _ = env.step(action)
        ended = np.flatnonzero((terminated | truncated).numpy())
        for i in ended:
            done.append(Episode(np.array(running_obs[i], dtype=np.float32),
                                np.array(running_act[i], dtype=np.float32), bool(terminated[i])))
            running_obs[i], running_act[i] = [], []
        expert.reset(ended)
    return done[:episodes]


def save(path: str | Path, episodes: list[Episode], env: AssemblyEnv, task: str,
         expert: dict[str, Any]) -> Path:
    import h5py

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with h5py.File(tmp, "w") as f:
        data = f.create_group("data")
        data.attrs.update({"format": FORMAT, "task": task,
                           "env_config": json.dumps(dataclasses.asdict(env.config)),
                           "observation": json.dumps(env.layout.names),
                           "action": json.dumps(ACTION_NAMES), "expert": json.dumps(expert),
                           "total": sum(len(e.obs) for e in episodes),
                           "success_rate": float(np.mean([e.success for e in episodes]))})
        for k, ep in enumerate(episodes):
            demo = data.create_group(f"demo_{k}")
            for field in env.layout.fields:
                demo.create_dataset(f"obs/{field.name}", data=ep.obs[:, env.layout.slice(field.name)])
            demo.create_dataset("actions", data=ep.action)
            rewards = np.zeros(len(ep.obs), dtype=np.float32)
            rewards[-1] = float(ep.success)
            demo.create_dataset("rewards", data=rewards)
            demo.create_dataset("dones", data=np.arange(len(ep.obs)) == len(ep.obs) - 1)
            demo.attrs.update({"num_samples": len(ep.obs), "success": ep.success})
    os.replace(tmp, path)
    return path


def load(path: str | Path, task: str | None = None) -> tuple[list[Episode], dict[str, Any]]:
    """The episodes and the file's attributes; refuses another format, task, observation or action
    layout with a one-line error that names the field."""
    import h5py

    path = Path(path)
    if not path.is_file():
        raise OSError(f"demonstrations {path}: no such file")
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise ValueError(f"demonstrations {path}: not a readable HDF5 file ({exc})") from None
    with f:
        if "data" not in f:
            raise ValueError(f"demonstrations {path}: no 'data' group (not a robomimic-style file)")
        data = f["data"]
        attrs = {k: data.attrs[k] for k in data.attrs}
        if attrs.get("format") != FORMAT:
            raise ValueError(f"demonstrations {path}: format {attrs.get('format')!r}, expected {FORMAT!r}")
        if task is not None and attrs["task"] != task:
            raise ValueError(f"demonstrations {path}: task {attrs['task']!r}, expected {task!r}")
        for key in ("env_config", "expert"):
            attrs[key] = json.loads(attrs[key])
        layout = LAYOUTS.get(attrs["env_config"].get("task"))
        if layout is None:
            raise ValueError(f"demonstrations {path}: env_config names no known task")
        for key, expected in (("observation", layout.names), ("action", list(ACTION_NAMES))):
            found = json.loads(attrs[key])
            if found != expected:
                diff = next((f"{a!r} where {b!r} is expected" for a, b in zip(found, expected, strict=False)
                             if a != b), f"{len(found)} values, expected {len(expected)}")
                raise ValueError(f"demonstrations {path}: {key} layout differs: {diff}")
        episodes = []
        for k in range(len(data)):
            demo = data[f"demo_{k}"]
            obs = np.concatenate([demo[f"obs/{fld.name}"][()] for fld in layout.fields], axis=1)
            episodes.append(Episode(obs, demo["actions"][()], bool(demo.attrs["success"])))
    return episodes, attrs


def record_task(path: str | Path, task: str, randomness: str, episodes: int = 50, num_envs: int = 8,
                seed: int = 0) -> tuple[Path, float]:
    """Record ``episodes`` human-like demonstrations of a named task (:data:`sim.assembly.config.PRESETS`)
    at a randomness level into ``path``; returns the path and the expert's success rate. Failed episodes
    are kept (flagged ``success``) so the rate is honest; training reads the successful ones."""
    from sim.assembly.config import preset
    from sim.assembly.expert import human_like

    config = preset(task, randomness=randomness)
    env = AssemblyEnv(num_envs, config, seed=seed)
    expert = human_like(num_envs, config, seed=seed + 1)
    eps = record(env, expert, episodes, seed=seed)
    settings = {"aim_noise": expert.aim_noise, "tremor": expert.tremor, "pauses": expert.pauses,
                "seed": seed, "corrections": expert.corrections}
    return save(path, eps, env, task, settings), float(np.mean([e.success for e in eps]))


if __name__ == "__main__":  # python -m sim.assembly.demos TASK LEVEL OUT.hdf5 [EPISODES]
    import sys

    written, rate = record_task(sys.argv[3], sys.argv[1], sys.argv[2],
                                int(sys.argv[4]) if len(sys.argv) > 4 else 50)
    print(f"{written}: expert success {rate:.0%}")

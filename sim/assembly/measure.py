"""Expert success per task and randomness level, and environment steps/s batched against one
environment: ``python -m sim.assembly.measure [episodes]`` prints JSON."""

from __future__ import annotations

import json
import sys
import time

import numpy as np

from sim.assembly.config import PRESETS, RANDOMNESS, AssemblyConfig, preset
from sim.assembly.demos import record
from sim.assembly.env import AssemblyEnv
from sim.assembly.expert import human_like


def expert_success(task: str, randomness: str, episodes: int, num_envs: int = 8) -> dict[str, float]:
    cfg = preset(task, randomness=randomness)
    env = AssemblyEnv(num_envs, cfg, seed=101)
    expert = human_like(num_envs, cfg, seed=102)
    eps = record(env, expert, episodes)
    return {"success": float(np.mean([e.success for e in eps])),
            "mean_steps": float(np.mean([len(e.obs) for e in eps])),
            "corrections_per_episode": expert.corrections / episodes, "unstable_resets": env.unstable_resets}


def steps_per_second(num_envs: int, steps: int = 100) -> float:
    env = AssemblyEnv(num_envs, AssemblyConfig(), seed=0)
    env.reset()
    action = env.hold_action()
    start = time.perf_counter()
    for _ in range(steps):
        env.step(action)
    return num_envs * steps / (time.perf_counter() - start)


def main() -> None:
    episodes = int(sys.argv[1]) if len(sys.argv) > 1 else 100
    success = {task: {level: expert_success(task, level, episodes) for level in RANDOMNESS}
               for task in PRESETS}
    rates = {f"envs_{n}": round(steps_per_second(n)) for n in (1, 16)}
    print(json.dumps({"episodes_per_cell": episodes, "expert": success, "env_steps_per_s": rates,
                      "control_hz": 1 / AssemblyConfig().control_dt}, indent=1))


if __name__ == "__main__":
    main()

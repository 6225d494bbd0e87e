"""Expert success against clearance and aim noise, and environment steps/s batched against one
environment: ``python -m sim.assembly.measure [episodes]`` prints JSON."""

from __future__ import annotations

import json
import sys
import time

import numpy as np
import torch

from sim.assembly.config import AssemblyConfig
from sim.assembly.demos import record
from sim.assembly.env import AssemblyEnv
from sim.assembly.expert import ScriptedExpert


def expert_success(clearance: float, aim_noise: float, episodes: int, num_envs: int = 8) -> float:
    cfg = AssemblyConfig(clearance=clearance)
    env = AssemblyEnv(num_envs, cfg, seed=1)
    data = record(env, ScriptedExpert(num_envs, cfg, aim_noise=aim_noise, seed=2), episodes)
    return float(np.mean(data["success"]))


def steps_per_second(num_envs: int, steps: int = 100) -> float:
    env = AssemblyEnv(num_envs, AssemblyConfig(), seed=0)
    env.reset()
    action = torch.zeros(num_envs, env.action_size)
    start = time.perf_counter()
    for _ in range(steps):
        env.step(action)
    return num_envs * steps / (time.perf_counter() - start)


def main() -> None:
    episodes = int(sys.argv[1]) if len(sys.argv) > 1 else 32
    success = {f"{c * 1e3:g}mm": {f"noise_{n * 1e3:g}mm": expert_success(c, n, episodes)
                                  for n in (0.0, 0.00025, 0.0005, 0.001)}
               for c in (0.002, 0.001, 0.0005)}
    rates = {f"envs_{n}": round(steps_per_second(n)) for n in (1, 16)}
    print(json.dumps({"episodes_per_cell": episodes, "expert_success": success, "env_steps_per_s": rates,
                      "control_hz": 1 / AssemblyConfig().control_dt}, indent=1))


if __name__ == "__main__":
    main()

"""The planner-plus-script baseline: the scripted demonstrator's success rate per object, demonstration
transitions/s, and environment steps/s batched vs one environment.

``python -m sim.hand.baseline [--envs N] [--objects a,b]`` prints one JSON line per object.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from sim.hand.demonstrator import Demonstrator
from sim.hand.env import HandEnv, HandEnvConfig
from sim.hand.scene import OBJECTS


def scripted_episodes(object_name: str, num_envs: int, seed: int = 0, max_steps: int = 600,
                      kind: str = "auto") -> dict[str, float]:
    """One episode per environment with the demonstrator; success rate and transitions/s."""
    env = HandEnv(num_envs, HandEnvConfig(object=object_name, episode_steps=max_steps), seed=seed)
    demo = Demonstrator(env, kind)
    env.reset(seed=seed)
    done, success = np.zeros(num_envs, bool), np.zeros(num_envs, bool)
    steps, start = 0, time.perf_counter()
    while not done.all():
        _, _, terminated, truncated, info = env.step(demo.act())
        steps += 1
        success |= info["success"].numpy() & ~done
        done |= (terminated | truncated).numpy()
    seconds = time.perf_counter() - start
    return {"object": object_name, "success": float(success.mean()), "episodes": num_envs,
            "transitions_per_s": steps * num_envs / seconds, "unstable_resets": env.unstable_resets}


def steps_per_second(object_name: str, num_envs: int, steps: int = 200, seed: int = 0) -> float:
    """Environment steps/s under random actions (all N environments counted)."""
    env = HandEnv(num_envs, HandEnvConfig(object=object_name), seed=seed)
    env.reset(seed=seed)
    gen = torch.Generator().manual_seed(seed)
    actions = torch.rand((steps, num_envs, env.action_size), generator=gen) * 2 - 1
    start = time.perf_counter()
    for a in actions:
        env.step(a)
    return steps * num_envs / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--envs", type=int, default=16)
    parser.add_argument("--objects", default=",".join(OBJECTS))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    names = args.objects.split(",")
    print(json.dumps({"steps_per_s_one_env": steps_per_second(names[0], 1),
                      f"steps_per_s_{args.envs}_envs": steps_per_second(names[0], args.envs)}), flush=True)
    for name in names:
        print(json.dumps(scripted_episodes(name, args.envs, args.seed)), flush=True)


if __name__ == "__main__":
    main()

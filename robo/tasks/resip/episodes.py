"""Success over seeded episodes of a batched policy, shared by ``robo eval dp`` and the ResiP stages.

Every environment row plays ``per_row`` whole episodes (rows that finish early keep stepping but are
not counted), so the count is not biased towards short (successful) episodes.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from robo.rl.residual import BaseActor
from sim.assembly.env import AssemblyEnv


def play(env: AssemblyEnv, act: BaseActor, per_row: int, bar=None,
         before_step: Callable[[np.ndarray], None] | None = None) -> list[bool]:
    """Success of each episode, row-major (row 0's episodes first); ``before_step(played)`` runs
    before every step (the episode strip's camera)."""
    obs, _ = env.reset()
    act.reset()
    played = np.zeros(env.num_envs, dtype=np.int64)
    outcomes: list[list[bool]] = [[] for _ in range(env.num_envs)]
    while (played < per_row).any():
        if before_step is not None:
            before_step(played)
        obs, _, terminated, truncated, _ = env.step(act(obs))
        done = (terminated | truncated).numpy()
        for i in np.flatnonzero(done):
            if played[i] < per_row:
                outcomes[i].append(bool(terminated[i]))
                played[i] += 1
                if bar is not None:
                    bar.update()
        act.reset(np.flatnonzero(done))
    return [o for row in outcomes for o in row]


def compare(ctx, episodes: int, seed: int, policies: dict[str, Callable]) -> tuple[dict[str, float], str]:
    """Each ``policies[name](bar)`` success rate on the same ``episodes`` seeded episodes, behind one
    progress bar: the metrics (``<name>_success_rate``, episodes, seed) and a line that reports them."""
    with ctx.bar(f"eval {' + '.join(policies)}", len(policies) * episodes) as bar:
        rates = {name: rate(bar) for name, rate in policies.items()}
    metrics = {"eval_episodes": episodes, "eval_seed": seed,
               **{f"{name.lower().replace('-', '_')}_success_rate": r for name, r in rates.items()}}
    line = f"success over {episodes} episodes: " + ", ".join(f"{n} {r:.1%}" for n, r in rates.items())
    return metrics, line


def write_summary(ctx, run, stage: str, base, iterations: int, first: int, seconds: float, env_steps: int,
                  config, policies: dict[str, Callable], outputs: str) -> str:
    """metrics.json of a PPO stage on a base (``policies`` compared on ``config.eval_episodes`` seeded
    episodes when there are any) and the stage's closing report; ``outputs`` names what it wrote."""
    summary = {"task": base.task, "base": str(base.run), "iterations": iterations, "env_steps": env_steps,
               "session_started_at_iteration": first, "session_wall_seconds": seconds,
               "threads": config.threads}
    rates = ""
    if config.eval_episodes:
        metrics, line = compare(ctx, config.eval_episodes, config.eval_seed, policies)
        summary |= metrics
        rates = f"; {line}"
    run.write_json("metrics.json", summary)
    return (f"{stage} {base.task}: {iterations} iterations, {env_steps:,} environment steps "
            f"({iterations - first} in {seconds:.0f} s this session){rates}\n"
            f"{outputs}; metrics {run / 'metrics.json'}")

"""Success over seeded episodes of a batched policy, shared by ``robo eval dp`` and the ResiP stages.

Every environment row plays ``per_row`` whole episodes (rows that finish early keep stepping but are
not counted), so the count is not biased towards short (successful) episodes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np

from robo.rl.residual import BaseActor
from robo.stats import paired
from sim.assembly.env import AssemblyEnv
from sim.assembly.failures import Outcome, classify, failures_line, tally


def play_outcomes(env: AssemblyEnv, act: BaseActor, per_row: int, bar=None,
                  before_step: Callable[[np.ndarray], None] | None = None) -> list[Outcome]:
    """How each of ``per_row`` episodes per environment row ended (:func:`sim.assembly.failures.classify`:
    success or why it failed), row-major (row 0's episodes first); ``before_step(played)`` runs before
    every step (the episode strip's camera)."""
    obs, _ = env.reset()
    act.reset()
    played = np.zeros(env.num_envs, dtype=np.int64)
    length = np.zeros(env.num_envs, dtype=np.int64)  # of each row's current episode
    outcomes: list[list[Outcome]] = [[] for _ in range(env.num_envs)]
    while (played < per_row).any():
        if before_step is not None:
            before_step(played)
        obs, _, terminated, truncated, info = env.step(act(obs))
        length += 1
        done = (terminated | truncated).numpy()
        counted = np.flatnonzero(done & (played < per_row))
        if len(counted):
            ended = classify(info["final_observation"][counted].numpy(), terminated[counted].numpy(),
                             env.config, info["unstable"][counted].numpy(),
                             info["final_arrival"][counted].numpy(), length[counted])
            for i, outcome in zip(counted, ended, strict=True):
                outcomes[i].append(outcome)
                played[i] += 1
                if bar is not None:
                    bar.update()
        act.reset(np.flatnonzero(done))
        length[done] = 0
    return [o for row in outcomes for o in row]


def compare(ctx, episodes: int, seed: int, policies: dict[str, Callable]
            ) -> tuple[dict[str, float], str, dict[str, list[Outcome]]]:
    """Each ``policies[name](bar)`` (the :class:`Outcome` of every episode, in order) on the same
    ``episodes`` seeded episodes, behind one progress bar: the metrics (``<name>_success_rate``, how its
    episodes ended (``<name>_outcomes``, :func:`sim.assembly.failures.tally`), episodes, seed; for two
    policies the episodes only one of them wins and the exact McNemar p of that split), a line that
    reports them and every policy's outcomes."""
    with ctx.bar(f"eval {' + '.join(policies)}", len(policies) * episodes) as bar:
        ended = {name: episodes_of(bar) for name, episodes_of in policies.items()}
    outcomes = {name: np.array([o.success for o in e], dtype=bool) for name, e in ended.items()}
    slug = {name: name.lower().replace("-", "_") for name in policies}
    metrics = {"eval_episodes": episodes, "eval_seed": seed,
               **{f"{slug[name]}_success_rate": float(o.mean()) for name, o in outcomes.items()},
               **{f"{slug[name]}_outcomes": tally(e) for name, e in ended.items()}}
    line = f"success over {episodes} episodes: " + ", ".join(f"{n} {o.mean():.1%}"
                                                             for n, o in outcomes.items())
    if len(outcomes) == 2:  # paired: the same seeded episodes, so only the discordant ones tell them apart
        (a, won_a), (b, won_b) = outcomes.items()
        only_a, only_b, p = paired(won_a, won_b)
        metrics |= {f"only_{slug[a]}_succeeds": only_a, f"only_{slug[b]}_succeeds": only_b,
                    "mcnemar_exact_p": p}
        line += f" (only {a} wins {only_a}, only {b} wins {only_b}: exact McNemar p {p:.3g})"
    line += "; failures: " + "; ".join(f"{n} {failures_line(tally(e))}" for n, e in ended.items())
    return metrics, line, ended


def write_summary(ctx, run, stage: str, base, iterations: int, first: int, seconds: float, env_steps: int,
                  config, policies: dict[str, Callable], outputs: str, extra: dict | None = None) -> str:
    """metrics.json of a PPO stage on a base (``policies`` compared on ``config.eval_episodes`` seeded
    episodes when there are any, each episode's outcome in eval_episodes.json, so that two runs' policies
    can be paired on the same episodes) and the stage's closing report; ``outputs`` names what it
    wrote, ``extra`` more metrics (the validation's chosen iteration)."""
    summary = {"task": base.task, "base": str(base.run), "iterations": iterations, "env_steps": env_steps,
               "session_started_at_iteration": first, "session_wall_seconds": seconds,
               "threads": config.threads, **(extra or {})}
    rates = ""
    if config.eval_episodes:
        metrics, line, ended = compare(ctx, config.eval_episodes, config.eval_seed, policies)
        summary |= metrics
        rates = f"; {line}"
        run.write_json("eval_episodes.json", {"eval_seed": config.eval_seed, **{
            name: [dataclasses.asdict(o) for o in outcomes] for name, outcomes in ended.items()}})
    run.write_json("metrics.json", summary)
    return (f"{stage} {base.task}: {iterations} iterations, {env_steps:,} environment steps "
            f"({iterations - first} in {seconds:.0f} s this session){rates}\n"
            f"{outputs}; metrics {run / 'metrics.json'}")

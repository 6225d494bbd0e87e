"""Two RL runs' policies on the same seeded evaluation episodes: ``python -m robo.tasks.resip.pair RUN_A
RUN_B [--policy NAME]`` reads each run's ``eval_episodes.json`` and prints both success rates, the
discordant episodes and the exact McNemar p (is one setting better than the other, not only than its
base?). The runs must have been evaluated on the same seed and number of episodes."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from robo.stats import paired

EPISODES = "eval_episodes.json"


def _outcomes(run: Path, policy: str | None) -> tuple[int, str, list[bool]]:
    path = run / EPISODES
    if not path.is_file():
        raise OSError(f"{run}: no {EPISODES} (evaluate it with `robo train resip|mlp-ppo ... --resume`)")
    data = json.loads(path.read_text())
    names = [k for k in data if k != "eval_seed"]
    name = policy or names[-1]  # the trained policy is written after its base
    if name not in names:
        raise ValueError(f"{path}: no policy {name!r} (it holds {', '.join(names)})")
    return data["eval_seed"], name, [e["kind"] == "success" for e in data[name]]


def pair(run_a: str | Path, run_b: str | Path, policy: str | None = None) -> dict[str, Any]:
    """Success of each run's ``policy`` (default: its trained one) on the same episodes, paired."""
    (seed_a, name_a, a), (seed_b, name_b, b) = (_outcomes(Path(r), policy) for r in (run_a, run_b))
    if (seed_a, len(a)) != (seed_b, len(b)):
        raise ValueError(f"the runs were evaluated on different episodes: seed {seed_a}, {len(a)} episodes "
                         f"against seed {seed_b}, {len(b)}")
    only_a, only_b, p = paired(a, b)
    return {"episodes": len(a), "eval_seed": seed_a,
            "a": {"run": str(run_a), "policy": name_a, "success_rate": sum(a) / len(a)},
            "b": {"run": str(run_b), "policy": name_b, "success_rate": sum(b) / len(b)},
            "only_a_succeeds": only_a, "only_b_succeeds": only_b, "mcnemar_exact_p": p}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("run_a")
    p.add_argument("run_b")
    p.add_argument("--policy", default=None,
                   help="the policy to compare in both, e.g. base (default: each run's trained one)")
    args = p.parse_args(argv)
    try:
        r = pair(args.run_a, args.run_b, args.policy)
    except (OSError, ValueError) as e:
        p.exit(1, f"pair: error: {e}\n")
    print(f"{r['episodes']} episodes (seed {r['eval_seed']}): {r['a']['run']} {r['a']['success_rate']:.1%}, "
          f"{r['b']['run']} {r['b']['success_rate']:.1%}; only A wins {r['only_a_succeeds']}, only B wins "
          f"{r['only_b_succeeds']}: exact McNemar p {r['mcnemar_exact_p']:.3g}")


if __name__ == "__main__":
    main()

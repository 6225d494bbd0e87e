"""Two policies compared on the same seeded episodes (every method's evaluation and bench uses it).

Both policies meet the same starts, so only the discordant episodes (won by exactly one of them) tell
them apart; the exact McNemar test asks whether that split could be a fair coin's.
"""

from __future__ import annotations

import math

import numpy as np


def mcnemar_exact_p(only_a: int, only_b: int) -> float:
    """Two-sided exact McNemar test of two policies on the same episodes: under "equally good", each of
    the ``only_a + only_b`` episodes that exactly one of them wins is a fair coin flip."""
    n = only_a + only_b
    tail = sum(math.comb(n, k) for k in range(min(only_a, only_b) + 1)) / 2.0**n
    return min(1.0, 2.0 * tail)


def paired(won_a: np.ndarray | list[bool], won_b: np.ndarray | list[bool]) -> tuple[int, int, float]:
    """Two policies' successes on the same seeded episodes: the episodes only A wins, only B wins, and
    the exact McNemar p of that split."""
    a, b = np.asarray(won_a, dtype=bool), np.asarray(won_b, dtype=bool)
    if a.shape != b.shape:
        raise ValueError(f"paired outcomes differ in length: {a.size} against {b.size} episodes")
    only_a, only_b = int((a & ~b).sum()), int((b & ~a).sum())
    return only_a, only_b, mcnemar_exact_p(only_a, only_b)


def unpaired_bound_p(won_a: int, won_b: int, episodes: int) -> float:
    """The largest exact McNemar p that two policies' success counts on the same ``episodes`` seeded
    episodes allow, over every way their successes could overlap: a conservative test for runs whose
    per-episode outcomes were not kept (an evaluation that wrote only tallies)."""
    if not (0 <= won_a <= episodes and 0 <= won_b <= episodes):
        raise ValueError(f"success counts {won_a} and {won_b} must lie in [0, {episodes}]")
    overlaps = range(max(0, won_a + won_b - episodes), min(won_a, won_b) + 1)
    return max(mcnemar_exact_p(won_a - both, won_b - both) for both in overlaps)


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m robo.stats",
        description="the largest exact McNemar p two success counts on the same seeded episodes allow")
    parser.add_argument("won_a", type=int)
    parser.add_argument("won_b", type=int)
    parser.add_argument("episodes", type=int)
    args = parser.parse_args()
    try:
        print(f"{args.won_a} against {args.won_b} of {args.episodes}: "
              f"p at most {unpaired_bound_p(args.won_a, args.won_b, args.episodes):.2g}")
    except ValueError as e:
        parser.exit(2, f"python -m robo.stats: error: {e}\n")

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


def main(argv: list[str] | None = None) -> None:
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m robo.stats",
        description="Exact McNemar p of two policies on the same seeded episodes: from the episodes only "
                    "each one won (--discordant, e.g. summed over two evaluation seeds' paired runs), or the "
                    "largest p that their success counts allow when the episode lists were not kept.",
        epilog="examples: python -m robo.stats 191 159 200   |   python -m robo.stats --discordant 9 3")
    parser.add_argument("counts", type=int, nargs="+", metavar="N",
                        help="WON_A WON_B EPISODES, or ONLY_A ONLY_B with --discordant")
    parser.add_argument("--discordant", action="store_true",
                        help="the counts are the episodes only A won and only B won (the paired test)")
    args = parser.parse_args(argv)
    wanted = 2 if args.discordant else 3
    if len(args.counts) != wanted:
        parser.error(f"expected {'ONLY_A ONLY_B' if args.discordant else 'WON_A WON_B EPISODES'}, "
                     f"got {len(args.counts)} numbers")
    if args.discordant:
        only_a, only_b = args.counts
        if min(only_a, only_b) < 0:
            parser.error(f"discordant counts must be >= 0, got {only_a} and {only_b}")
        print(f"only A {only_a}, only B {only_b}: exact McNemar p {mcnemar_exact_p(only_a, only_b):.2g}")
        return
    won_a, won_b, episodes = args.counts
    try:
        bound = unpaired_bound_p(won_a, won_b, episodes)
    except ValueError as e:
        parser.exit(2, f"python -m robo.stats: error: {e}\n")
    print(f"{won_a} against {won_b} of {episodes}: p at most {bound:.2g}")


if __name__ == "__main__":
    main()

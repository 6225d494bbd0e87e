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

"""Random filter QPs with a known answer class, shared by the property tests and the benchmark."""

from __future__ import annotations

import numpy as np


def random_qp(rng: np.random.Generator, rows: int = 8, *, feasible: bool = True
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(A, b, lower, upper, u_nom) with unit rows, like the barrier rows.

    Feasible problems are built around a point strictly inside every row and the bounds, with u_nom
    scattered at different distances so that zero to three rows end up active. Infeasible ones
    get one row that no input within the bounds can meet (it asks for more than the box allows).
    """
    A = rng.normal(size=(rows, 3))
    A /= np.linalg.norm(A, axis=1, keepdims=True)
    lower = -rng.uniform(1.0, 10.0, 3)
    upper = rng.uniform(1.0, 10.0, 3)
    inner = rng.uniform(0.8 * lower, 0.8 * upper)
    b = A @ inner - rng.exponential(rng.uniform(0.1, 3.0), size=rows) - 1e-3
    u_nom = inner + rng.normal(size=3) * rng.uniform(0.3, 15.0)
    if not feasible:
        i = rng.integers(rows)
        reach = np.where(A[i] > 0, A[i] * upper, A[i] * lower).sum()
        b[i] = reach + rng.uniform(0.01, 2.0)
    return A, b, lower, upper, u_nom

"""A run's history as ``NAME.csv`` and a one-line plot ``NAME.png`` (the BC loss, ResiP's learning curve)."""

from __future__ import annotations

from robo.run_dir import RunDir


def write_curve(run: RunDir, name: str, history: list[dict[str, float]], x: str, y: str,
                labels: dict[str, str], log_y: bool = False) -> None:
    """``labels``: matplotlib axis settings (xlabel, ylabel, title)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    run.write_csv(f"{name}.csv", history, list(history[0]))
    fig, ax = plt.subplots(figsize=(6, 3.5))
    (ax.semilogy if log_y else ax.plot)([h[x] for h in history], [h[y] for h in history])
    ax.set(**labels)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    run.save_figure(fig, f"{name}.png")

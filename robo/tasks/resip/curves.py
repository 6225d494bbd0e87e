"""A run's history as ``NAME.csv`` and a one-line plot ``NAME.png`` (the BC loss, ResiP's learning curve),
and the RL stages' per-iteration log."""

from __future__ import annotations

from collections.abc import Callable

from robo.run_dir import RunDir, Scalars


def rollout_logger(env, scalars: Scalars, bar, steps_per_iteration: int, prefix: str,
                   extra: Callable[[], dict[str, float]] | None = None) -> Callable[[dict[str, float]], None]:
    """The on-policy runner's ``on_log`` for an RL stage on ``env`` (a VecEnv that counts its
    ``episodes`` and ``successes``): each iteration's stats gain the environment steps (not decisions
    or chunks) and the success of the episodes its exploring rollouts ended, plus ``extra()``; they go
    to TensorBoard under ``prefix`` and the success to the progress bar."""
    counted = {"episodes": env.episodes, "successes": env.successes}

    def on_log(stats: dict[str, float]) -> None:
        ended, won = env.episodes - counted["episodes"], env.successes - counted["successes"]
        counted.update(episodes=env.episodes, successes=env.successes)
        stats["env_steps"] = stats["iteration"] * steps_per_iteration
        stats["rollout_success"] = won / ended if ended else float("nan")
        if extra is not None:
            stats |= extra()
        scalars.add_all({k: v for k, v in stats.items() if k != "iteration"}, int(stats["env_steps"]), prefix)
        bar.set_postfix_str(f"rollout success {stats['rollout_success']:.2f}")

    return on_log


def write_curve(run: RunDir, name: str, history: list[dict[str, float]], x: str, y: str,
                labels: dict[str, str], log_y: bool = False,
                validation: tuple[list[dict[str, float]], int] | None = None) -> None:
    """``labels``: matplotlib axis settings (xlabel, ylabel, title); ``validation``: (the validation
    curve's entries, the chosen iteration), drawn on the same axes with the chosen one marked (the
    history's line is then labelled by ``ylabel`` in the legend, and the axis says "success")."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    run.write_csv(f"{name}.csv", history, list(history[0]))
    fig, ax = plt.subplots(figsize=(6, 3.5))
    (ax.semilogy if log_y else ax.plot)([h[x] for h in history], [h[y] for h in history],
                                        label=labels.get("ylabel"))
    if validation and validation[0]:
        curve, chosen = validation
        ax.plot([v["env_steps"] for v in curve], [v["val_success"] for v in curve], "o--",
                label="validation success (deterministic)")
        best = next(v for v in curve if v["iteration"] == chosen)
        ax.plot([best["env_steps"]], [best["val_success"]], "*", markersize=14,
                label=f"chosen: iteration {chosen}")
        ax.legend(fontsize=8)
        labels = {**labels, "ylabel": "success"}
    ax.set(**labels)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    run.save_figure(fig, f"{name}.png")

"""Several quadrotor controllers on the same RAPTOR episodes, one table (``robo eval raptor --compare``).

Each controller is evaluated with the same config, so every one flies the same held-out quadrotors
from the same initial states, the same preset episodes and the same figure-eights.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from robo.tasks.raptor.evaluation import Baseline, load_controller, metres, number

RELEASED_DEFAULT = Path("runs/policies/raptor_released/policy.onnx")


def resolve_controller(spec: str) -> tuple[str, Any]:
    """``released``, ``baseline`` or a policy path -> (label, controller)."""
    if spec == "baseline":
        return "baseline", Baseline()
    if spec == "released":
        if not RELEASED_DEFAULT.is_file():
            raise OSError(f"--compare released: {RELEASED_DEFAULT} not found; run `robo import "
                          f"raptor-released` first (or pass the imported policy's path)")
        return "released", load_controller(RELEASED_DEFAULT)
    return Path(spec).parent.name or spec, load_controller(spec)


def resolve_controllers(specs: list[str], taken: tuple[str, ...] = ()) -> dict[str, Any]:
    """Each spec's controller under its own column label: its folder's name, else its path (two
    policies of one folder, or a label in ``taken``), else numbered (the same spec twice)."""
    resolved: dict[str, Any] = {}
    for spec in specs:
        label, controller = resolve_controller(spec)
        if label in resolved or label in taken:
            label = spec
        base, n = label, 2
        while label in resolved or label in taken:
            label, n = f"{base} ({n})", n + 1
        resolved[label] = controller
    return resolved


def comparison_table(results: dict[str, dict[str, Any]], periods: tuple[float, ...]) -> str:
    """Rows: vehicles; per controller: success and figure-eight RMSE at each period."""
    labels = list(results)
    columns = ["success", *[f"fig8 {p:g}s" for p in periods]]
    width = 10
    head = f"{'':<12}" + "".join(f"{label[: width * len(columns) - 1]:<{width * len(columns)}}"
                                  for label in labels)
    sub = f"{'vehicle':<12}" + "".join(f"{c:>{width}}" for _ in labels for c in columns)
    lines = [head, sub]
    first = results[labels[0]]
    for name in first["presets"]:
        line = f"{name:<12}"
        for label in labels:
            row = results[label]["presets"][name]
            line += f"{number(row.get('success_rate'), '.1%'):>{width}}"
            line += "".join(f"{metres(row[f'figure8_{p:g}s_rmse_m']):>{width}}" for p in periods)
        lines.append(line)
    if "held_out" in first:
        line = f"{'held-out':<12}"
        for label in labels:
            success = number(results[label]["held_out"]["success_rate"], ".1%")
            line += f"{success:>{width}}" + " " * width * len(periods)
        lines.append(line.rstrip())
    return "\n".join(lines)

"""Per-task adapters: what turns a plant's state and a setpoint into a card's observation, and an
action into the plant's command. The card's ``task`` chooses one (:func:`adapter_for`); a task module
(``robo/runtime/quadrotor.py``, ...) registers its adapter with :func:`register_adapter`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class TaskAdapter:
    task: str
    observe: Callable[[Any, Any, np.ndarray], np.ndarray]  # (state, setpoint, previous action) -> obs
    command: Callable[[np.ndarray], np.ndarray]            # clamped action -> the plant's command
    state_finite: Callable[[Any], bool]                    # a state the observation can be built from
    # ROS wiring as plain data (no rclpy here): role -> (topic, message type).
    topics: dict[str, tuple[str, str]] = field(default_factory=dict)


ADAPTERS: dict[str, Callable[[dict[str, Any]], TaskAdapter]] = {}


def register_adapter(task: str) -> Callable:
    """Decorator for ``make(card) -> TaskAdapter``; ``make`` refuses a card its task cannot serve."""

    def add(make: Callable[[dict[str, Any]], TaskAdapter]) -> Callable[[dict[str, Any]], TaskAdapter]:
        ADAPTERS[task] = make
        return make

    return add


def adapter_for(card: dict[str, Any]) -> TaskAdapter:
    """The adapter for the card's task, checked against the card's layout."""
    task = card.get("task")
    if task not in ADAPTERS:
        where = card.get("onnx_path", "policy card")
        raise ValueError(f"{where}: no runtime adapter for task {task!r} (known tasks: "
                         f"{', '.join(sorted(ADAPTERS))})")
    return ADAPTERS[task](card)

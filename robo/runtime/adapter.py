"""Per-task adapters: what turns a plant's state and a setpoint into a card's observation, and an
action into the plant's command. The card's ``task`` chooses one (:func:`adapter_for`); a task module
(``robo/runtime/quadrotor.py``, ``hand.py``, ...) registers its adapter with :func:`register_adapter`.

An adapter also names the ROS topics and message types of its task by role (``command`` is what the
policy node publishes, every other role a subscription); the card's ``io`` block may rename them
(:func:`robo.export.card.card_io`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from robo.export.card import card_io


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
    """The adapter for the card's task, checked against the card's layout, with the card's topics."""
    task = card.get("task")
    if task not in ADAPTERS:
        where = card.get("onnx_path", "policy card")
        raise ValueError(f"{where}: no runtime adapter for task {task!r} (known tasks: "
                         f"{', '.join(sorted(ADAPTERS))})")
    adapter = ADAPTERS[task](card)
    return dataclasses.replace(adapter, topics=card_io(card, adapter.topics))


def card_fields(card: dict[str, Any], sizes: dict[str, int], plant: str) -> list[str]:
    """The card's observation fields in order (``p_err.x`` -> ``p_err``), each one the ``plant``'s
    runtime can build (``sizes``: field -> number of values), of that size and contiguous."""
    names = [e["name"] for e in card["observation"]["layout"]]
    fields = list(dict.fromkeys(n.split(".")[0] for n in names))
    for f in fields:
        if f not in sizes:
            raise ValueError(f"card: the {plant} runtime cannot build observation field {f!r} "
                             f"(it builds {', '.join(sizes)})")
        count = sum(n.split(".")[0] == f for n in names)
        if count != sizes[f]:
            raise ValueError(f"card: observation field {f!r} has {count} values, the {plant} {sizes[f]}")
    if [n.split(".")[0] for n in names] != [f for f in fields for _ in range(sizes[f])]:
        raise ValueError("card: the values of an observation field are not contiguous")
    return fields

"""Observation layouts, written down once per environment: names, units, clipping and slices.

An environment computes the values; everything that needs to know what they are derives it from its
layout: the policy card (``card_entries``), the runtime's observation builder (through the card's
names), and slicing one observation out of another (``part``). Plain Python, no torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Field:
    """One named group of values, e.g. ``p_err`` with components x, y, z -> ``p_err.x`` ..."""

    name: str
    unit: str
    components: tuple[str, ...] = ()  # none: one value, named ``name``
    clip: tuple[float, float] | None = None

    @property
    def names(self) -> list[str]:
        return [f"{self.name}.{c}" for c in self.components] if self.components else [self.name]


@dataclass(frozen=True)
class ObservationLayout:
    fields: tuple[Field, ...]

    @property
    def names(self) -> list[str]:
        return [n for f in self.fields for n in f.names]

    @property
    def size(self) -> int:
        return sum(len(f.names) for f in self.fields)

    def slice(self, field: str) -> slice:
        """Where ``field``'s values sit in an observation vector."""
        start = 0
        for f in self.fields:
            if f.name == field:
                return slice(start, start + len(f.names))
            start += len(f.names)
        known = ", ".join(f.name for f in self.fields)
        raise ValueError(f"observation has no field {field!r} (fields: {known})")

    def part(self, layout: ObservationLayout) -> slice:
        """Where ``layout`` (a leading part of this one, e.g. the student's) sits: ``obs[:, part]``."""
        if self.fields[: len(layout.fields)] != layout.fields:
            raise ValueError("the layout is not a leading part of this one")
        return slice(0, layout.size)

    def card_entries(self) -> list[dict[str, Any]]:
        """``[{"name", "unit", "clip"}]`` per value, the policy card's ``observation.layout``."""
        return [{"name": n, "unit": f.unit, "clip": list(f.clip) if f.clip else None}
                for f in self.fields for n in f.names]

"""Settings of the insertion benchmark: task, clearance, randomisation, control.

Lengths in metres, angles in radians. ``clearance`` is the hole's side minus the peg's side (the whole
gap; an aim error up to half of it still slides in). ``randomness`` picks the spread of the initial
poses as in FurnitureBench: ``low`` or ``med`` (:data:`RANDOMNESS`).

Tasks: ``peg_insertion`` (the peg is held from the start) and ``pick_insert``, the two-stage analogue
of FurnitureBench's one_leg: the peg stands free on the table at :data:`PART_AT` (spread like the
hole, by the level), the gripper starts open; grasp it, lift it, insert it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

TASKS = ("peg_insertion", "pick_insert")
PART_AT = (0.0, -0.15)  # nominal xy of the free peg's foot in pick_insert, metres

# level -> (hole centre +-xy, hole yaw +-, end effector's first xy +-, its first yaw +-)
RANDOMNESS = {"low": (0.025, math.pi / 12, 0.015, 0.05),
              "med": (0.05, math.pi / 6, 0.03, 0.1)}

# Named benchmark settings (``robo train dp --task NAME``): the paper's easiest and hardest peg-in-hole.
PRESETS = {"peg_2mm": {"task": "peg_insertion", "clearance": 0.002},
           "peg_0.2mm": {"task": "peg_insertion", "clearance": 0.0002},
           "pick_peg_2mm": {"task": "pick_insert", "clearance": 0.002, "episode_steps": 400}}


@dataclass(frozen=True)
class AssemblyConfig:
    task: str = "peg_insertion"
    clearance: float = 0.002
    randomness: str = "med"
    peg_side: float = 0.02
    peg_length: float = 0.06
    hole_depth: float = 0.04
    success_depth: float = 0.03  # peg tip this far below the hole's top counts as inserted
    start_height: float = 0.15  # of the peg tip above the table
    part_mass: float = 0.05  # kg, of the free peg (pick_insert)
    control_substeps: int = 10  # physics steps per action (dt 0.002 -> 50 Hz control)
    timestep: float = 0.002
    max_lead: float = 0.02  # the IK target is held within this of the measured tip (bounds pressing)
    episode_steps: int = 200

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ValueError(f"task: unknown task {self.task!r} (known: {', '.join(TASKS)})")
        check_randomness(self.randomness)
        positive = ("clearance", "peg_side", "peg_length", "hole_depth", "success_depth", "timestep",
                    "start_height", "max_lead", "part_mass")
        for key in positive:
            if not getattr(self, key) > 0:
                raise ValueError(f"{key}: must be > 0, got {getattr(self, key)}")
        for key in ("control_substeps", "episode_steps"):
            if getattr(self, key) < 1:
                raise ValueError(f"{key}: must be >= 1, got {getattr(self, key)}")
        if self.success_depth > self.hole_depth:
            raise ValueError(f"success_depth: {self.success_depth} is deeper than the hole "
                             f"({self.hole_depth})")

    @property
    def control_dt(self) -> float:
        return self.timestep * self.control_substeps

    @property
    def ranges(self) -> tuple[float, float, float, float]:
        """(hole xy, hole yaw, start xy, start yaw) half-widths of the uniform initial poses."""
        return RANDOMNESS[self.randomness]


def check_randomness(level: str) -> None:
    if level not in RANDOMNESS:
        raise ValueError(f"randomness: unknown level {level!r} (known: {', '.join(RANDOMNESS)})")


def preset(name: str, **overrides: object) -> AssemblyConfig:
    """The config of a named benchmark setting, e.g. ``preset("peg_0.2mm", randomness="low")``."""
    if name not in PRESETS:
        raise ValueError(f"task: unknown task {name!r} (known: {', '.join(PRESETS)})")
    return AssemblyConfig(**{**PRESETS[name], **overrides})

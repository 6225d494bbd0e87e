"""Settings of the insertion benchmark: task, clearance, randomisation, action scaling.

Lengths in metres, angles in radians. ``clearance`` is the hole's side minus the peg's side (the whole
gap; an aim error up to half of it still slides in).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

TASKS = ("peg_insertion",)


@dataclass(frozen=True)
class AssemblyConfig:
    task: str = "peg_insertion"
    clearance: float = 0.002
    peg_side: float = 0.02
    peg_length: float = 0.06
    hole_depth: float = 0.04
    success_depth: float = 0.03  # peg tip this far below the hole's top counts as inserted
    hole_xy_range: float = 0.05  # hole centre uniform in +-range around its nominal place
    hole_yaw_range: float = math.pi / 6
    start_xy_range: float = 0.03  # end effector's first pose: above the nominal hole, jittered
    start_height: float = 0.15  # of the peg tip above the table
    control_substeps: int = 10  # physics steps per action (dt 0.002 -> 50 Hz control)
    timestep: float = 0.002
    pos_step: float = 0.01  # metres per step at action 1
    yaw_step: float = 0.1  # radians per step at action 1
    episode_steps: int = 150

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ValueError(f"task: unknown task {self.task!r} (known: {', '.join(TASKS)})")
        positive = ("clearance", "peg_side", "peg_length", "hole_depth", "success_depth", "timestep",
                    "pos_step", "yaw_step", "start_height")
        for key in positive:
            if not getattr(self, key) > 0:
                raise ValueError(f"{key}: must be > 0, got {getattr(self, key)}")
        for key in ("hole_xy_range", "hole_yaw_range", "start_xy_range"):
            if not getattr(self, key) >= 0:
                raise ValueError(f"{key}: must be >= 0, got {getattr(self, key)}")
        for key in ("control_substeps", "episode_steps"):
            if getattr(self, key) < 1:
                raise ValueError(f"{key}: must be >= 1, got {getattr(self, key)}")
        if self.success_depth > self.hole_depth:
            raise ValueError(f"success_depth: {self.success_depth} is deeper than the hole "
                             f"({self.hole_depth})")
        if self.hole_yaw_range > math.pi / 4:
            raise ValueError(f"hole_yaw_range: at most pi/4 (the square repeats), got {self.hole_yaw_range}")

    @property
    def control_dt(self) -> float:
        return self.timestep * self.control_substeps

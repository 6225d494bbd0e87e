"""Why an insertion episode failed, read from its final observation (``info["final_observation"]``).

The geometry is in the hole's frame (the observation's ``tip_in_hole`` and ``yaw_error``; in
``pick_insert`` the free peg's foot, ``peg_in_hole``, and its own yaw). A square peg of half-side ``s``
turned by ``yaw`` relative to the hole reaches ``s (cos|yaw| + sin|yaw|)`` from its centre along the
hole's axes, so its *overhang*, how far its furthest corner sticks out past the hole's inner wall, is
``max(|x|, |y|) + s (cos|yaw| + sin|yaw|) - (s + clearance / 2)``; it fits when that is <= 0.

Kinds, the first that applies (:data:`KINDS`):

- ``success``; ``unstable`` (the physics diverged and the environment reset the episode);
- ``not_held`` (``pick_insert`` only): the peg's foot is more than :data:`HELD_DISTANCE` from the
  hand's controlled point: never grasped, or dropped;
- ``jammed``: the tip is more than :data:`BELOW` below the opening, its centre over the hole, but short
  of the success depth (stuck on the walls, or tilted into the mouth with a corner on the rim);
  ``beside_hole``: that low but its centre outside the hole (pushed down beside it);
- at the opening (tip at most :data:`AT_OPENING` above it): ``lateral_miss`` (the centre alone is
  off by more than half the clearance: the peg rests on the rim), ``yaw_miss`` (centred, but the
  turned corners overhang), ``lined_up`` (it fits but is not in: time ran out at the opening);
- above the opening: ``lined_up_above`` (it fits; time ran out on the way down), ``never_reached``
  (still above the hole and off it).

``lateral_mm`` is the centre's ``max(|x|, |y|)`` at the end; a peg pressed on the rim slides outwards
(a 3 mm miss pressed for a second ends 5 mm off). ``arrival_mm`` is the same measure where the part
first came down to the opening (``info["final_arrival"]`` of :class:`sim.assembly.env.AssemblyEnv`;
NaN if it never did), with ``arrival_yaw_deg``: the aim error of a slow, centred descent. It is not one
for every policy: a sudden vertical command swings the tip sideways by millimetres, and a policy may
come down beside the hole and slide in (the diffusion bases' successes, too, arrive millimetres off).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np

from sim.assembly.config import AssemblyConfig
from sim.assembly.env import ARRIVAL_HEIGHT, LAYOUTS, wrap_quarter

KINDS = ("success", "unstable", "not_held", "jammed", "beside_hole", "lateral_miss", "yaw_miss", "lined_up",
         "lined_up_above", "never_reached")
BELOW = 0.001  # m below the opening: the tip has gone in (contact penetration stays far under this)
AT_OPENING = ARRIVAL_HEIGHT  # m above the opening: resting on the rim or about to go in
HELD_DISTANCE = 0.015  # m between the free peg's foot and the hand's controlled point (pick_insert)


@dataclass(frozen=True)
class Outcome:
    """One episode's end: its kind (:data:`KINDS`) and the geometry it was judged on (mm, degrees)."""

    kind: str
    lateral_mm: float  # max(|x|, |y|) of the tip (or foot) in the hole's frame
    overhang_mm: float  # of the furthest corner past the inner wall (<= 0: it fits)
    height_mm: float  # above the hole's opening (negative: inside)
    yaw_deg: float  # of the peg relative to the hole, modulo 90 degrees
    arrival_mm: float = float("nan")  # lateral_mm where it first came down to the opening
    arrival_yaw_deg: float = float("nan")
    steps: int = 0  # the episode's length in control steps (0: not given)

    @property
    def success(self) -> bool:
        return self.kind == "success"


def classify(final_obs: np.ndarray, succeeded: np.ndarray, config: AssemblyConfig,
             unstable: np.ndarray | None = None, arrival: np.ndarray | None = None,
             steps: np.ndarray | None = None) -> list[Outcome]:
    """The :class:`Outcome` of each episode from its final observation ``[N, obs]`` (the environment's
    layout for ``config.task``), whether it succeeded and whether its physics diverged (``[N]``),
    where it first came down to the opening (``[N, 3]``: x, y, yaw; ``info["final_arrival"]``) and its
    length (``[N]`` steps)."""
    obs = np.asarray(final_obs, dtype=np.float64).reshape(len(succeeded), -1)
    layout = LAYOUTS[config.task]
    if obs.shape[1] != layout.size:
        raise ValueError(f"final_obs: {obs.shape[1]} values per row, the {config.task} observation has "
                         f"{layout.size}")
    succeeded = np.asarray(succeeded, dtype=bool)
    unstable = np.zeros_like(succeeded) if unstable is None else np.asarray(unstable, dtype=bool)
    held = np.ones_like(succeeded)
    if config.task == "pick_insert":
        rel = obs[:, layout.slice("peg_in_hole")]
        hole4, peg4 = obs[:, layout.slice("hole_yaw")], obs[:, layout.slice("peg_yaw")]
        yaw = wrap_quarter((np.arctan2(peg4[:, 1], peg4[:, 0]) - np.arctan2(hole4[:, 1], hole4[:, 0])) / 4)
        held = np.linalg.norm(obs[:, layout.slice("peg_from_tip")], axis=1) <= HELD_DISTANCE
    else:
        rel = obs[:, layout.slice("tip_in_hole")]
        yaw = obs[:, layout.slice("yaw_error")][:, 0]
    half = config.peg_side / 2
    lateral = np.abs(rel[:, :2]).max(axis=1)
    overhang = lateral + half * (np.cos(np.abs(yaw)) + np.sin(np.abs(yaw))) - (half + config.clearance / 2)
    height = rel[:, 2]
    fits = overhang <= 0
    arrival = np.full((len(obs), 3), np.nan) if arrival is None else np.asarray(arrival, dtype=np.float64)
    arrival_mm = 1e3 * np.abs(arrival[:, :2]).max(axis=1)
    steps = np.zeros(len(obs), dtype=np.int64) if steps is None else np.asarray(steps, dtype=np.int64)
    outcomes = []
    for i in range(len(obs)):
        if succeeded[i]:
            kind = "success"
        elif unstable[i]:
            kind = "unstable"
        elif not held[i]:
            kind = "not_held"
        elif height[i] < -BELOW:
            kind = "jammed" if lateral[i] < half + config.clearance / 2 else "beside_hole"
        elif height[i] <= AT_OPENING:
            kind = "lined_up" if fits[i] else (
                "lateral_miss" if lateral[i] > config.clearance / 2 else "yaw_miss")
        else:
            kind = "lined_up_above" if fits[i] else "never_reached"
        outcomes.append(Outcome(kind, 1e3 * lateral[i], 1e3 * overhang[i], 1e3 * height[i],
                                float(np.degrees(yaw[i])), float(arrival_mm[i]),
                                float(np.degrees(arrival[i, 2])), int(steps[i])))
    return outcomes


def tally(outcomes: list[Outcome]) -> dict[str, object]:
    """Counts per kind (every kind, zeros included); over the failed episodes that came down to the
    opening and over the lateral misses, the aim error at arrival (mm: quartiles and max); the
    successful episodes' lengths (steps: quartiles and max), for a metrics file."""
    counts = Counter(o.kind for o in outcomes)
    summary: dict[str, object] = {kind: counts.get(kind, 0) for kind in KINDS}
    for name, kinds in (("failed_arrival_mm", KINDS[1:]), ("lateral_miss_arrival_mm", ("lateral_miss",))):
        sizes = np.array([o.arrival_mm for o in outcomes if o.kind in kinds and np.isfinite(o.arrival_mm)])
        if len(sizes):
            q1, median, q3 = np.percentile(sizes, [25, 50, 75])
            summary[name] = {"episodes": len(sizes), "q1": float(q1), "median": float(median),
                             "q3": float(q3), "max": float(sizes.max())}
    lengths = np.array([o.steps for o in outcomes if o.success and o.steps])
    if len(lengths):
        q1, median, q3 = np.percentile(lengths, [25, 50, 75])
        summary["success_steps"] = {"episodes": len(lengths), "q1": float(q1), "median": float(median),
                                    "q3": float(q3), "max": int(lengths.max())}
    return summary


def failures_line(counts: dict[str, object]) -> str:
    """``"jammed 3, lateral_miss 2"``: the failure kinds of a :func:`tally` that occurred."""
    return ", ".join(f"{k} {counts[k]}" for k in KINDS[1:] if counts.get(k)) or "none"

"""The quadrotor's observation layout, written down once: names, units, clipping and slices.

The environment computes the values (:func:`sim.quadrotor.env.observe`); everything that needs to know
what they are derives it from here: the policy card (:func:`quadrotor_student_meta`), the runtime's
observation builder (through the card's names), and the student slicing of the teacher observation.

The student sees 22 values; a teacher sees the same 22 followed by 4 privileged motor states (RAPTOR's
26), and a force-aware teacher also the episode's constant external force as a fraction of the
vehicle's weight (29): a memoryless teacher cannot infer the force, so without it the teacher holds off
target by force / stiffness, and the student inherits that offset. Plain Python (no torch), so a card
can be written without the simulator running.
"""

from __future__ import annotations

from typing import Any

from sim.layout import Field, ObservationLayout

MOTORS = ("FR", "BR", "BL", "FL")  # reference/quadrotor.md motor order
_XYZ = ("x", "y", "z")
STUDENT = ObservationLayout((
    Field("p_err", "m", _XYZ),                     # p - p_ref, world
    Field("R", "1", tuple(f"{r}{c}" for r in range(3) for c in range(3)), (-1.0, 1.0)),  # body to world
    Field("v_err", "m/s", _XYZ),                   # v - v_ref, world
    Field("omega", "rad/s", _XYZ),                 # body rates
    Field("prev_action", "1", MOTORS, (-1.0, 1.0)),
))
TEACHER = ObservationLayout((*STUDENT.fields, Field("motor_state", "1", MOTORS, (-1.0, 1.0))))
TEACHER_FORCE = ObservationLayout((*TEACHER.fields, Field("force", "1", _XYZ)))  # world, per weight
LAYOUTS = {"student": STUDENT, "teacher": TEACHER, "teacher_force": TEACHER_FORCE}


def layout_named(names: list[str]) -> str:
    """Which of :data:`LAYOUTS` has exactly these observation names (a card's or a checkpoint's)."""
    for key, layout in LAYOUTS.items():
        if list(names) == layout.names:
            return key
    raise ValueError(f"a {len(names)}-value observation that is none of the quadrotor layouts "
                     f"({', '.join(f'{k}: {v.size}' for k, v in LAYOUTS.items())})")


ACTION = [{"name": f"motor.{m}", "unit": "1"} for m in MOTORS]
ACTION_MAPPING = "motor setpoint u = (a + 1) / 2 in [0, 1], motors FR, BR, BL, FL"


def policy_meta(layout: ObservationLayout, **extra: Any) -> dict[str, Any]:
    """What a quadrotor policy checkpoint carries for its card (``robo.nets.policy.META_KEYS``)."""
    meta: dict[str, Any] = {
        "task": "quadrotor",
        "observation": layout.card_entries(),
        "action": [dict(a) for a in ACTION],
        "action_clip": [-1.0, 1.0],
        "action_mapping": ACTION_MAPPING,
        "control_rate_hz": 100.0,
    }
    meta.update(extra)
    return meta


def quadrotor_student_meta(**extra: Any) -> dict[str, Any]:
    """The 22-value student observation and 4 motor actions, for the card."""
    return policy_meta(STUDENT, **extra)

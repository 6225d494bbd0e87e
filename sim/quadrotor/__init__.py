"""The RAPTOR quadrotor: batched torch dynamics, parameter sampler, references, environment, MuJoCo twin.

Names are loaded on first use, so ``sim.quadrotor.params`` and ``sim.quadrotor.mujoco_twin`` (numpy and
MuJoCo only) can be imported without torch, as the ROS simulator node does.
"""

from __future__ import annotations

import importlib
from typing import Any

_WHERE = {
    "ACTION_NAMES": "env",
    "OBSERVATION_UNITS": "env",
    "STUDENT_OBSERVATION": "env",
    "TEACHER_OBSERVATION": "env",
    "TERMINATION_REASONS": "env",
    "QuadrotorEnv": "env",
    "QuadrotorEnvConfig": "env",
    "BatchedParams": "batched",
    "PRESETS": "params",
    "InvalidParameters": "params",
    "QuadrotorParams": "params",
    "load_fleet": "params",
    "preset": "params",
    "save_fleet": "params",
    "sample_fleet": "sampler",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'sim.quadrotor' has no attribute {name!r}")
    return getattr(importlib.import_module(f"sim.quadrotor.{_WHERE[name]}"), name)

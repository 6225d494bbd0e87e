"""The RAPTOR quadrotor: batched torch dynamics, parameter sampler, references, environment, MuJoCo twin."""

from sim.quadrotor.env import (
    ACTION_NAMES,
    OBSERVATION_UNITS,
    STUDENT_OBSERVATION,
    TEACHER_OBSERVATION,
    TERMINATION_REASONS,
    QuadrotorEnv,
    QuadrotorEnvConfig,
)
from sim.quadrotor.params import (
    PRESETS,
    BatchedParams,
    InvalidParameters,
    QuadrotorParams,
    load_fleet,
    preset,
    save_fleet,
)
from sim.quadrotor.sampler import sample_fleet

__all__ = [
    "ACTION_NAMES",
    "OBSERVATION_UNITS",
    "PRESETS",
    "STUDENT_OBSERVATION",
    "TEACHER_OBSERVATION",
    "TERMINATION_REASONS",
    "BatchedParams",
    "InvalidParameters",
    "QuadrotorEnv",
    "QuadrotorEnvConfig",
    "QuadrotorParams",
    "load_fleet",
    "preset",
    "sample_fleet",
    "save_fleet",
]

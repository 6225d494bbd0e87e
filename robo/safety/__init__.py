"""CBF safety filter: barriers, dynamics models and one QP solved by cvxpy (reference) or fast paths.

Imports numpy and cvxpy only (cvxpy lazily, when the reference backend is built). The batched torch
path lives in :mod:`robo.safety.batched` and is deliberately not imported here, so that
``robo.runtime`` can use the filter without torch. The C emitter is :mod:`robo.safety.c_emitter`,
its firmware app :mod:`robo.safety.mcu`. For a vehicle's setpoint: :class:`SetpointFilter`
(``SetpointFilter.from_config("configs/safety.yaml", kp, kv)``).
"""

from robo.safety.barriers import BarrierSet, Cylinder, Geofence, Separation, Sphere
from robo.safety.filter import FilterResult, FilterStats, SafetyFilter
from robo.safety.models import DoubleIntegrator, SingleIntegrator
from robo.safety.qp import CvxpyQP, EnumerationQP, FastQP, QPSolution
from robo.safety.setpoint import Setpoint, SetpointFilter, SetpointResult

__all__ = [
    "BarrierSet", "CvxpyQP", "Cylinder", "DoubleIntegrator", "EnumerationQP", "FastQP", "FilterResult",
    "FilterStats", "Geofence", "QPSolution", "SafetyFilter", "Separation", "Setpoint", "SetpointFilter",
    "SetpointResult", "SingleIntegrator", "Sphere",
]

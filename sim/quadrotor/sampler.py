"""RAPTOR's distribution over quadrotors: start from the Crazyflie and rescale (reference/quadrotor.md)."""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from sim.quadrotor.params import CRAZYFLIE, QuadrotorParams, x_rotors

# The ranges of the paper, in the order the steps draw them.
THRUST_TO_WEIGHT = (1.5, 5.0)
MASS = (0.02, 5.0)
TORQUE_TO_INERTIA = (40.0, 1200.0)
SIZE_FACTOR = (0.9, 1.1)
YAW_MOMENT_CONSTANT = (0.005, 0.05)
MOTOR_RISE = (0.03, 0.10)
MOTOR_FALL = (0.03, 0.30)
DISTURBANCE_FRACTION = 0.3  # k ~ U(0, 0.3 (r - 1))
# "crazyflie": every curve is the Crazyflie's, rescaled (the paper). "varied": each curve is then blended
# with a linear one of the same maximum thrust by a share ~ U(0, 1). Rescaled Crazyflie curves hover at
# u >= 0.37 (T/W <= 5); linear ones reach down to u = 0.2, where vehicles such as the arpl (0.28) and
# flightmare (0.25) presets hover.
THRUST_CURVES = ("crazyflie", "varied")


def sample_quadrotor(rng: np.random.Generator, name: str,
                     thrust_curves: str = "crazyflie") -> QuadrotorParams:
    """One quadrotor from the RAPTOR distribution (``thrust_curves``: see :data:`THRUST_CURVES`)."""
    if thrust_curves not in THRUST_CURVES:
        raise ValueError(f"thrust_curves must be one of {', '.join(THRUST_CURVES)}, got {thrust_curves!r}")
    cf = CRAZYFLIE
    r_cf = cf.thrust_to_weight()
    r = rng.uniform(*THRUST_TO_WEIGHT)
    # Mass is uniform in its cube root, so small and large vehicles are both well represented.
    s = rng.uniform(MASS[0] ** (1 / 3), MASS[1] ** (1 / 3))
    mass = s**3
    scale = (r / r_cf) * (mass / cf.mass)
    thrust = tuple(c * scale for c in cf.thrust_coefficients)
    arm = cf.arm_length * (mass / cf.mass) ** (1 / 3) * rng.uniform(*SIZE_FACTOR)
    max_thrust = sum(thrust)
    torque_to_inertia = rng.uniform(*TORQUE_TO_INERTIA)
    inertia_scale = (max_thrust * arm / torque_to_inertia) / cf.inertia[0]
    k = rng.uniform(0.0, DISTURBANCE_FRACTION * (r - 1.0))
    params = QuadrotorParams(
        name=name,
        mass=float(mass),
        inertia=tuple(float(j * inertia_scale) for j in cf.inertia),
        rotor_positions=x_rotors(arm / math.sqrt(2)),
        thrust_coefficients=tuple(float(c) for c in thrust),
        yaw_moment_constant=float(rng.uniform(*YAW_MOMENT_CONSTANT)),
        motor_time_constant_rise=float(rng.uniform(*MOTOR_RISE)),
        motor_time_constant_fall=float(rng.uniform(*MOTOR_FALL)),
        # The reference writes sigma = k r m / 3 (newtons for the per-episode constant force).
        disturbance_sigma=float(k * r * mass / 3.0),
    )
    if thrust_curves == "varied":  # drawn after the paper's draws, so those stay as they were
        linear = rng.uniform(0.0, 1.0)
        blended = tuple(float((1 - linear) * c) for c in thrust)
        blended = (blended[0], blended[1] + float(linear * max_thrust), blended[2])
        params = dataclasses.replace(params, thrust_coefficients=blended)
    return params.validate()


def sample_fleet(count: int, seed: int, prefix: str = "q", thrust_curves: str = "crazyflie"
                 ) -> list[QuadrotorParams]:
    """``count`` quadrotors, reproducible from ``seed``; names are prefix + zero-padded index."""
    if count <= 0:
        raise ValueError(f"fleet size must be > 0, got {count}")
    rng = np.random.default_rng(seed)
    width = len(str(count - 1))
    return [sample_quadrotor(rng, f"{prefix}{i:0{width}d}", thrust_curves) for i in range(count)]



def coverage_order(fleet: list[QuadrotorParams]) -> list[QuadrotorParams]:
    """The fleet reordered so that every prefix spreads over (log mass, thrust-to-weight, hover throttle).

    Greedy farthest-point order in the unit cube of the ranges, starting from the lowest
    thrust-to-weight (the hardest vehicles, and the Crazyflie's corner). A pipeline that trains the
    first N vehicles as teachers then covers the distribution with N = 16 instead of leaving corners
    to chance. The hover throttle is set by the thrust-to-weight for rescaled Crazyflie curves: only
    its part that the curve's shape adds counts, so a paper fleet keeps the order of the first two.
    """
    if not fleet:
        return []
    features = np.array([[math.log(p.mass), p.thrust_to_weight(), _quadratic_share(p)] for p in fleet])
    span = features.max(0) - features.min(0)
    unit = (features - features.min(0)) / np.where(span > 0, span, 1.0)
    order = [int(np.argmin(features[:, 1]))]
    distance = np.linalg.norm(unit - unit[order[0]], axis=1)
    for _ in range(len(fleet) - 1):
        nxt = int(np.argmax(distance))
        order.append(nxt)
        distance = np.minimum(distance, np.linalg.norm(unit - unit[nxt], axis=1))
    return [fleet[i] for i in order]


def _quadratic_share(p: QuadrotorParams) -> float:
    """The u^2 term's share of the maximum rotor thrust: the thrust curve's shape (one value for every
    rescaled Crazyflie curve)."""
    return round(p.thrust_coefficients[2] / p.max_rotor_thrust(), 9)

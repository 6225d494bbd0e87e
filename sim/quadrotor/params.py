"""Quadrotor parameters: one vehicle as a dataclass, a batch of vehicles as tensors.

Conventions follow RAPTOR (reference/quadrotor.md): body frame FLU, motors ordered
front-right, back-right, back-left, front-left, yaw torque directions -1, +1, -1, +1,
thrust per rotor f = c0 + c1 u + c2 u^2 in newtons for a motor state u in [0, 1].
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

GRAVITY = 9.81
YAW_DIRECTIONS = (-1.0, 1.0, -1.0, 1.0)


class InvalidParameters(ValueError):
    """Parameters that cannot describe a flying quadrotor; the message names the field."""


def x_rotors(dx: float, dy: float | None = None) -> tuple[tuple[float, float, float], ...]:
    """Rotor positions of an X frame in FLU, in FR, BR, BL, FL order."""
    dy = dx if dy is None else dy
    return ((dx, -dy, 0.0), (-dx, -dy, 0.0), (-dx, dy, 0.0), (dx, dy, 0.0))


@dataclass(frozen=True)
class QuadrotorParams:
    """One quadrotor. All SI units."""

    name: str
    mass: float
    inertia: tuple[float, float, float]  # diagonal of J in the body frame, kg m^2
    rotor_positions: tuple[tuple[float, float, float], ...]  # 4 x (x, y, z) in the body frame
    thrust_coefficients: tuple[float, float, float]  # c0, c1, c2 per rotor
    yaw_moment_constant: float  # c_m: yaw torque per newton of thrust, m
    motor_time_constant_rise: float
    motor_time_constant_fall: float
    yaw_directions: tuple[float, float, float, float] = YAW_DIRECTIONS
    disturbance_sigma: float = 0.0  # per-axis std of the constant external force per episode, N

    @property
    def arm_length(self) -> float:
        return max(math.hypot(x, y) for x, y, _ in self.rotor_positions)

    def max_rotor_thrust(self) -> float:
        c0, c1, c2 = self.thrust_coefficients
        return c0 + c1 + c2

    def thrust_to_weight(self) -> float:
        return 4 * self.max_rotor_thrust() / (self.mass * GRAVITY)

    def hover_throttle(self) -> float:
        """Motor state u at which the four rotors carry the weight (solves c2 u^2 + c1 u + c0 = m g / 4)."""
        c0, c1, c2 = self.thrust_coefficients
        target = self.mass * GRAVITY / 4
        if abs(c2) < 1e-12:
            return (target - c0) / c1
        disc = c1 * c1 - 4 * c2 * (c0 - target)
        roots = [(-c1 + s * math.sqrt(max(disc, 0.0))) / (2 * c2) for s in (1.0, -1.0)]
        inside = [r for r in roots if -1e-9 <= r <= 1 + 1e-9]
        return min(inside) if inside else roots[0]

    def validate(self) -> QuadrotorParams:
        """Raise InvalidParameters naming the first non-physical field."""
        where = f"quadrotor {self.name!r}"

        def finite(value: float, name: str) -> None:
            if not isinstance(value, (int, float)) or not math.isfinite(value):
                raise InvalidParameters(f"{where}: {name} must be a finite number, got {value!r}")

        finite(self.mass, "mass")
        if self.mass <= 0:
            raise InvalidParameters(f"{where}: mass must be > 0 kg, got {self.mass}")
        if len(self.inertia) != 3:
            raise InvalidParameters(f"{where}: inertia needs 3 diagonal values, got {len(self.inertia)}")
        for i, j in enumerate(self.inertia):
            finite(j, f"inertia[{i}]")
            if j <= 0:
                raise InvalidParameters(f"{where}: inertia[{i}] must be > 0 kg m^2, got {j}")
        if len(self.rotor_positions) != 4 or any(len(r) != 3 for r in self.rotor_positions):
            raise InvalidParameters(f"{where}: rotor_positions must be 4 x (x, y, z)")
        for i, r in enumerate(self.rotor_positions):
            for k, c in enumerate(r):
                finite(c, f"rotor_positions[{i}][{k}]")
        if self.arm_length <= 0:
            raise InvalidParameters(f"{where}: rotor_positions put every rotor at the centre")
        if len(self.thrust_coefficients) != 3:
            raise InvalidParameters(f"{where}: thrust_coefficients needs (c0, c1, c2)")
        for i, c in enumerate(self.thrust_coefficients):
            finite(c, f"thrust_coefficients[{i}]")
        for name in ("yaw_moment_constant", "motor_time_constant_rise", "motor_time_constant_fall",
                     "disturbance_sigma"):
            finite(getattr(self, name), name)
        for name in ("motor_time_constant_rise", "motor_time_constant_fall"):
            if getattr(self, name) <= 0:
                raise InvalidParameters(f"{where}: {name} must be > 0 s, got {getattr(self, name)}")
        if self.yaw_moment_constant < 0:
            raise InvalidParameters(
                f"{where}: yaw_moment_constant must be >= 0, got {self.yaw_moment_constant}")
        if self.disturbance_sigma < 0:
            raise InvalidParameters(f"{where}: disturbance_sigma must be >= 0, got {self.disturbance_sigma}")
        if len(self.yaw_directions) != 4 or any(d not in (-1.0, 1.0) for d in self.yaw_directions):
            raise InvalidParameters(f"{where}: yaw_directions must be four values of -1 or +1")
        # The curve must be able to lift the vehicle: full throttle beats the weight.
        if self.thrust_to_weight() <= 1.0:
            raise InvalidParameters(
                f"{where}: thrust_coefficients cannot lift the vehicle (thrust-to-weight "
                f"{self.thrust_to_weight():.3f} <= 1 at full throttle)"
            )
        return self

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict, where: str = "parameters") -> QuadrotorParams:
        if not isinstance(data, dict):
            raise InvalidParameters(f"{where}: expected an object, got {type(data).__name__}")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise InvalidParameters(f"{where}: unknown field {unknown[0]!r}")
        required = {f.name for f in dataclasses.fields(cls)
                    if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING}
        missing = sorted(required - set(data))
        if missing:
            raise InvalidParameters(f"{where}: missing field {missing[0]!r}")
        try:
            values = dict(data)
            values["inertia"] = tuple(float(x) for x in data["inertia"])
            values["rotor_positions"] = tuple(tuple(float(c) for c in r) for r in data["rotor_positions"])
            values["thrust_coefficients"] = tuple(float(x) for x in data["thrust_coefficients"])
            if "yaw_directions" in data:
                values["yaw_directions"] = tuple(float(x) for x in data["yaw_directions"])
            for key in ("mass", "yaw_moment_constant", "motor_time_constant_rise",
                        "motor_time_constant_fall", "disturbance_sigma"):
                if key in values:
                    values[key] = float(values[key])
        except (TypeError, ValueError) as exc:
            raise InvalidParameters(f"{where}: malformed value ({exc})") from None
        try:
            return cls(**values).validate()
        except InvalidParameters as exc:
            raise InvalidParameters(f"{where}: {exc}") from None


CRAZYFLIE = QuadrotorParams(
    name="crazyflie",
    mass=0.0306,
    inertia=(9.4166e-6, 9.6441e-6, 1.7460e-5),
    rotor_positions=x_rotors(0.028),
    thrust_coefficients=(0.00352526, 0.01437313, 0.09223048),
    yaw_moment_constant=4.665e-3,
    motor_time_constant_rise=0.0555,
    motor_time_constant_fall=0.2494,
)

PRESETS: dict[str, QuadrotorParams] = {
    p.name: p.validate()
    for p in (
        CRAZYFLIE,
        QuadrotorParams(
            name="x500", mass=2.0, inertia=(0.021705, 0.021304, 0.039396),
            rotor_positions=x_rotors(0.25 / math.sqrt(2)), thrust_coefficients=(0.0, 0.0, 15.926),
            yaw_moment_constant=0.10847, motor_time_constant_rise=0.054, motor_time_constant_fall=0.054,
        ),
        QuadrotorParams(
            name="arpl", mass=0.782, inertia=(1.7665e-3, 1.3766e-3, 3.0e-3),
            rotor_positions=x_rotors(0.0775, 0.0981), thrust_coefficients=(-0.530, 8.971, -0.891),
            yaw_moment_constant=5.965e-3, motor_time_constant_rise=0.033, motor_time_constant_fall=0.033,
        ),
        QuadrotorParams(
            name="fs-base", mass=3.35, inertia=(0.0756, 0.07296, 0.1371),
            rotor_positions=x_rotors(0.209, 0.2407), thrust_coefficients=(0.785, 9.155, 18.006),
            yaw_moment_constant=0.01492, motor_time_constant_rise=0.0653, motor_time_constant_fall=0.0653,
        ),
        QuadrotorParams(
            name="flightmare", mass=0.73, inertia=(0.00791, 0.00791, 0.0123),
            rotor_positions=x_rotors(0.17 / math.sqrt(2)), thrust_coefficients=(-1.769, 11.508, 11.968),
            yaw_moment_constant=0.016, motor_time_constant_rise=0.02, motor_time_constant_fall=0.02,
        ),
    )
}


def preset(name: str) -> QuadrotorParams:
    try:
        return PRESETS[name]
    except KeyError:
        raise InvalidParameters(f"unknown preset {name!r} (choose from {', '.join(PRESETS)})") from None


def save_fleet(params: Sequence[QuadrotorParams], path: str | Path, meta: dict | None = None) -> Path:
    """Write a fleet as JSON atomically: {"format": ..., "meta": {...}, "quadrotors": [...]}."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = {"format": FLEET_FORMAT, "meta": meta or {}, "quadrotors": [p.to_dict() for p in params]}
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(doc, indent=1))
    tmp.replace(path)
    return path


FLEET_FORMAT = "robo.quadrotor-fleet/1"


def load_fleet(path: str | Path) -> tuple[list[QuadrotorParams], dict]:
    """Read a fleet JSON; malformed content raises InvalidParameters naming the entry and field."""
    path = Path(path)
    if not path.is_file():
        raise InvalidParameters(f"fleet file not found: {path}")
    try:
        doc = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise InvalidParameters(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(doc, dict) or doc.get("format") != FLEET_FORMAT:
        raise InvalidParameters(f"{path}: not a robo fleet file (expected \"format\": \"{FLEET_FORMAT}\")")
    entries = doc.get("quadrotors")
    if not isinstance(entries, list) or not entries:
        raise InvalidParameters(f"{path}: \"quadrotors\" must be a non-empty list")
    fleet = [QuadrotorParams.from_dict(e, where=f"{path}: quadrotors[{i}]") for i, e in enumerate(entries)]
    return fleet, doc.get("meta", {})

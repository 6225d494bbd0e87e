"""A batch of quadrotors as per-environment tensors (torch), for the batched dynamics and environment.

Kept apart from :mod:`sim.quadrotor.params` so the parameter sets, presets and fleet files can be used
without torch (the MuJoCo twin, the ROS simulator node).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from sim.quadrotor.params import InvalidParameters, QuadrotorParams


@dataclass
class BatchedParams:
    """N quadrotors as tensors, one row each, on one device and dtype.

    Shapes: mass [N], inertia [N, 3], rotor_positions [N, 4, 3], thrust_coefficients [N, 3],
    yaw_moment [N, 4] (c_m * direction per rotor), motor time constants [N], disturbance_sigma [N].
    """

    mass: torch.Tensor
    inertia: torch.Tensor
    rotor_positions: torch.Tensor
    thrust_coefficients: torch.Tensor
    yaw_moment: torch.Tensor
    motor_time_constant_rise: torch.Tensor
    motor_time_constant_fall: torch.Tensor
    disturbance_sigma: torch.Tensor
    arm_length: torch.Tensor
    hover_throttle: torch.Tensor
    names: list[str] = field(default_factory=list)

    @classmethod
    def stack(cls, params: Sequence[QuadrotorParams], device: str | torch.device = "cpu",
              dtype: torch.dtype = torch.float32) -> BatchedParams:
        if len(params) == 0:
            raise InvalidParameters("need at least one quadrotor")

        def t(values) -> torch.Tensor:
            return torch.tensor(values, device=device, dtype=dtype)

        return cls(
            mass=t([p.mass for p in params]),
            inertia=t([p.inertia for p in params]),
            rotor_positions=t([p.rotor_positions for p in params]),
            thrust_coefficients=t([p.thrust_coefficients for p in params]),
            yaw_moment=t([[p.yaw_moment_constant * d for d in p.yaw_directions] for p in params]),
            motor_time_constant_rise=t([p.motor_time_constant_rise for p in params]),
            motor_time_constant_fall=t([p.motor_time_constant_fall for p in params]),
            disturbance_sigma=t([p.disturbance_sigma for p in params]),
            arm_length=t([p.arm_length for p in params]),
            hover_throttle=t([p.hover_throttle() for p in params]),
            names=[p.name for p in params],
        )

    def __len__(self) -> int:
        return self.mass.shape[0]

    def repeat(self, times: int) -> BatchedParams:
        """Each vehicle ``times`` times in a row (vehicle-major), e.g. several environments per teacher."""
        return self._map(lambda x: x.repeat_interleave(times, dim=0),
                         [n for n in self.names for _ in range(times)])

    def select(self, index: torch.Tensor) -> BatchedParams:
        index = torch.as_tensor(index, device=self.mass.device)
        return self._map(lambda x: x[index], [self.names[i] for i in index.tolist()])

    def gather(self, index: torch.Tensor) -> BatchedParams:
        """Rows ``index`` with tensor ops only (names left empty), so compiled code can use it."""
        return self._map(lambda x: x.index_select(0, index), [])

    def to(self, device: str | torch.device | None = None, dtype: torch.dtype | None = None) -> BatchedParams:
        return self._map(lambda x: x.to(device=device, dtype=dtype), list(self.names))

    def _map(self, fn, names: list[str]) -> BatchedParams:
        values = {f.name: fn(getattr(self, f.name)) for f in dataclasses.fields(self) if f.name != "names"}
        return BatchedParams(**values, names=names)

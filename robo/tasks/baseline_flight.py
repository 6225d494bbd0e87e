"""Fly one quadrotor preset with the geometric baseline controller and record the flight."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from robo import files
from robo.control.geometric import GeometricController, GeometricGains
from sim.quadrotor import QuadrotorEnv, QuadrotorEnvConfig, preset
from sim.quadrotor.dynamics import hover_state


@dataclass
class BaselineFlightConfig:
    preset: str = "crazyflie"
    duration: float = 10.0  # s
    start_offset: tuple[float, float, float] = (0.5, 0.0, 0.0)  # m from the reference start
    env: QuadrotorEnvConfig = field(default_factory=lambda: QuadrotorEnvConfig(
        reference="figure8", terminate=False, auto_reset=False, disturbance=False))
    gains: GeometricGains = field(default_factory=GeometricGains)

    def __post_init__(self) -> None:
        if self.duration <= 0:
            raise ValueError(f"duration must be > 0 s, got {self.duration}")


COLUMNS = ["t", "x", "y", "z", "qw", "qx", "qy", "qz", "vx", "vy", "vz", "wx", "wy", "wz",
           "u_fr", "u_br", "u_bl", "u_fl", "x_ref", "y_ref", "z_ref", "a_fr", "a_br", "a_bl", "a_fl"]


def fly(cfg: BaselineFlightConfig, progress: Callable[[int], None] | None = None) -> dict:
    """Fly ``cfg.preset``; return the trajectory rows and summary metrics."""
    params = preset(cfg.preset)
    env = QuadrotorEnv([params], cfg.env, dtype=torch.float64)
    ref_pos, _ = env.reference()
    start = hover_state(env.params, ref_pos + torch.tensor(cfg.start_offset, dtype=torch.float64))
    env.set_state(start)
    controller = GeometricController(env.params, cfg.gains)
    rows, errors = [], []
    steps = round(cfg.duration / cfg.env.dt)
    for k in range(steps):
        ref_pos, ref_vel = env.reference()
        action = controller(env.state, ref_pos, ref_vel)
        rows.append([k * cfg.env.dt, *env.state[0].tolist(), *ref_pos[0].tolist(), *action[0].tolist()])
        errors.append((env.state[0, 0:3] - ref_pos[0]).norm().item())
        _, _, terminated, _, info = env.step(action)
        if progress:
            progress(1)
        if terminated[0]:
            raise RuntimeError(f"the flight ended at t={k * cfg.env.dt:.2f} s: "
                               f"{info['termination_reason'][0].item()}")
    settle = round(min(5.0, cfg.duration / 2) / cfg.env.dt)
    tail = errors[settle:]
    return {
        "rows": rows,
        "metrics": {
            "preset": cfg.preset,
            "reference": cfg.env.reference,
            "final_position_error_m": errors[-1],
            "rmse_after_settling_m": math.sqrt(sum(e * e for e in tail) / len(tail)),
            "max_error_after_settling_m": max(tail),
        },
    }


def write_csv(rows: list[list[float]], path: Path) -> None:
    files.write_csv(path, [dict(zip(COLUMNS, row, strict=True)) for row in rows], COLUMNS)


def plot(rows: list[list[float]], title: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = list(zip(*rows, strict=True))
    c = {name: cols[i] for i, name in enumerate(COLUMNS)}
    fig, (ax_xy, ax_t) = plt.subplots(1, 2, figsize=(11, 4.5))
    ax_xy.plot(c["x_ref"], c["y_ref"], "k--", lw=1, label="reference")
    ax_xy.plot(c["x"], c["y"], lw=1.5, label="flown")
    ax_xy.set(xlabel="x [m]", ylabel="y [m]", title="top view", aspect="equal")
    ax_xy.legend()
    for axis in "xyz":
        line, = ax_t.plot(c["t"], c[axis], label=axis)
        ax_t.plot(c["t"], c[f"{axis}_ref"], "--", color=line.get_color(), lw=1)
    ax_t.set(xlabel="time [s]", ylabel="position [m]", title="position (dashed: reference)")
    ax_t.legend()
    fig.suptitle(title)
    fig.tight_layout()
    files.save_figure(fig, path, dpi=110)

"""``robo fly``: the deployment runtime (ONNX policy + safety filter) flying the simulator in-process.

The runtime (:mod:`robo.runtime`, numpy + onnxruntime) does not know the simulator; this module wires
the two: at every step the vehicle state goes to :class:`robo.runtime.Controller` and its motor
command back into :class:`sim.quadrotor.QuadrotorEnv`. No ROS. Call it from Python:

    from robo.tasks.fly import FlyConfig, fly, write_flight
    result = fly(FlyConfig(preset="x500", obstacles=[(1.0, 0.0, 1.0, 0.15)]))
    write_flight(result, "runs/fly/x500")
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from robo.files import atomic_write, save_figure, write_json
from robo.runtime import DEFAULT_POLICY, Controller, OnnxPolicy, Trajectory, TrajectoryConfig, VehicleState
from robo.safety.config import SafetyConfig, SphereConfig, build_filter
from robo.safety.setpoint import SetpointFilter
from sim.quadrotor import QuadrotorEnv, QuadrotorEnvConfig, preset
from sim.quadrotor.dynamics import hover_state


@dataclass
class TrackerGains:
    """The policy seen as a PD position tracker (what the setpoint filter assumes), 1/s^2 and 1/s."""

    kp: float = 4.0
    kv: float = 3.0


MAX_DURATION_S = 3600.0  # an hour of flight: beyond it a typo (1e12) would run for ever


@dataclass
class FlyConfig:
    policy: str = ""                     # policy.onnx (its card beside it); "" = the committed default
    preset: str = "x500"                 # simulated vehicle (sim.quadrotor presets)
    duration: float = 10.0               # s
    start_offset: tuple[float, float, float] = (0.0, 0.0, 0.0)  # m from the trajectory's start
    trajectory: TrajectoryConfig = field(default_factory=TrajectoryConfig)
    filter: bool = True                  # CBF safety filter between the setpoint and the policy
    obstacles: list[tuple[float, float, float, float]] = field(default_factory=list)  # x, y, z, r (m)
    margin: float = 0.1                  # m added to each obstacle radius inside the filter
    safety: SafetyConfig = field(default_factory=SafetyConfig)  # filter settings (configs/safety.yaml)
    tracker: TrackerGains = field(default_factory=TrackerGains)

    def __post_init__(self) -> None:
        if not (math.isfinite(self.duration) and 0 < self.duration <= MAX_DURATION_S):
            raise ValueError(f"duration must be in (0, {MAX_DURATION_S:g}] s, got {self.duration:g}")
        if not math.isfinite(self.margin) or self.margin < 0:
            raise ValueError(f"margin must be >= 0 m, got {self.margin}")
        for ob in self.obstacles:
            if len(ob) != 4 or not all(math.isfinite(v) for v in ob) or ob[3] <= 0:
                raise ValueError(f"obstacle {ob}: expected x,y,z,r with r > 0 (metres)")
        start = self.start()
        for ob in self.obstacles:
            if np.linalg.norm(start - np.asarray(ob[:3])) <= ob[3]:
                at = [round(float(v), 3) for v in start]
                raise ValueError(f"obstacle {tuple(ob)}: the flight starts inside it, at {at} m (the "
                                 "trajectory's start + start_offset)")

    def start(self) -> np.ndarray:
        """Where the vehicle starts, hovering: the trajectory's first setpoint + ``start_offset``."""
        return Trajectory(self.trajectory).setpoint(0.0).position + np.asarray(self.start_offset)


def parse_obstacle(text: str) -> tuple[float, float, float, float]:
    """``"x,y,z,r"`` -> a sphere obstacle (the ``--obstacle`` syntax)."""
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        raise ValueError(f"--obstacle {text!r}: expected four numbers x,y,z,r") from None
    if len(values) != 4 or not all(math.isfinite(v) for v in values) or values[3] <= 0:
        raise ValueError(f"--obstacle {text!r}: expected four finite numbers x,y,z,r with r > 0")
    return values  # type: ignore[return-value]


def build_controller(cfg: FlyConfig) -> Controller:
    """Policy (card checked) + setpoint filter with the config's obstacles; the ROS nodes use the same."""
    policy = OnnxPolicy(cfg.policy or DEFAULT_POLICY)
    setpoint_filter = None
    if cfg.filter:
        spheres = list(cfg.safety.spheres) + [SphereConfig((x, y, z), r + cfg.margin)
                                              for x, y, z, r in cfg.obstacles]
        safety = SafetyConfig(**{**vars(cfg.safety), "spheres": spheres})
        setpoint_filter = SetpointFilter(build_filter(safety), cfg.tracker.kp, cfg.tracker.kv)
    controller = Controller(policy, setpoint_filter)
    if controller.adapter.task != "quadrotor":
        raise ValueError(f"{policy.path}: a {controller.adapter.task!r} policy; robo fly flies quadrotor "
                         "policies (its card's task must be 'quadrotor')")
    return controller


COLUMNS = ["t", "x", "y", "z", "vx", "vy", "vz", "x_ref", "y_ref", "z_ref", "x_sp", "y_sp", "z_sp",
           "u_fr", "u_br", "u_bl", "u_fl", "filter", "h_min", "clearance", "loop_us"]
FILTER_CODES = {"off": 0, "pass": 1, "modified": 2, "fault": 3}


def fly(cfg: FlyConfig, progress: Callable[[int], None] | None = None,
        controller: Controller | None = None) -> dict[str, Any]:
    """Fly ``cfg`` and return {"metrics": ..., "rows": [[...COLUMNS]], "config": cfg}; ``controller``:
    one already built by :func:`build_controller` (a caller that checks the policy first)."""
    params = preset(cfg.preset)
    controller = controller or build_controller(cfg)
    dt = controller.policy.period  # the simulator steps at the policy's trained rate
    env = QuadrotorEnv([params], QuadrotorEnvConfig(dt=dt, reference="hold", terminate=False,
                                                    auto_reset=False, disturbance=False),
                       dtype=torch.float64)
    trajectory = Trajectory(cfg.trajectory)
    env.set_state(hover_state(env.params, torch.tensor(cfg.start())[None]))
    controller.reset(np.full(4, params.hover_throttle() * 2 - 1))
    obstacles = np.array([o[:3] for o in cfg.obstacles]).reshape(-1, 3)
    radii = np.array([o[3] for o in cfg.obstacles])
    rows: list[list[float]] = []
    steps = round(cfg.duration / dt)
    crashed = ""
    for k in range(steps):
        t = k * dt
        x = env.state[0].numpy()
        state = VehicleState.from_vector(x)
        ref = trajectory.setpoint(t)
        tic = time.perf_counter()
        out = controller.step(state, ref, t)
        loop = time.perf_counter() - tic
        gaps = np.linalg.norm(obstacles - x[:3], axis=1) - radii
        clearance = float(np.min(gaps)) if len(radii) else math.inf
        rows.append([t, *x[0:3], *x[7:10], *ref.position, *out.setpoint.position, *out.command,
                     FILTER_CODES[out.filter_status], out.h_min, clearance, loop * 1e6])
        env.step(torch.from_numpy(out.action)[None])
        if progress:
            progress(1)
        if not np.all(np.isfinite(env.state[0].numpy())) or np.any(np.abs(env.state[0, 7:10].numpy()) > 50):
            crashed = f"diverged at t={t:.2f} s"
            break
    return {"metrics": metrics(rows, cfg, controller, crashed), "rows": rows, "config": cfg}


def metrics(rows: list[list[float]], cfg: FlyConfig, controller: Controller, crashed: str) -> dict[str, Any]:
    a = np.array(rows)
    c = {name: a[:, i] for i, name in enumerate(COLUMNS)}
    err = np.linalg.norm(np.stack([c["x"] - c["x_ref"], c["y"] - c["y_ref"], c["z"] - c["z_ref"]], 1), axis=1)
    settle = c["t"] >= min(2.0, cfg.duration / 2)
    loop = c["loop_us"]
    clearance = float(np.min(c["clearance"]))
    f = controller.filter
    return {
        "policy": str(controller.policy.path),
        "policy_sha256": controller.policy.sha256,
        "preset": cfg.preset,
        "trajectory": cfg.trajectory.kind,
        "duration_s": float(c["t"][-1] + controller.policy.period),
        "completed": not crashed,
        "crash": crashed,
        "filter": cfg.filter,
        "obstacles": [list(o) for o in cfg.obstacles],
        "tracking_rmse_m": float(np.sqrt(np.mean(err**2))),
        "tracking_rmse_after_2s_m": float(np.sqrt(np.mean(err[settle] ** 2))) if settle.any() else math.nan,
        "max_tracking_error_m": float(np.max(err)),
        "final_position_error_m": float(err[-1]),
        "min_obstacle_clearance_m": clearance if math.isfinite(clearance) else None,
        "collision": bool(math.isfinite(clearance) and clearance < 0),
        "filter_stats": f.safety.stats.as_dict() if f is not None else None,
        "loop_latency_us": {"p50": float(np.percentile(loop, 50)), "p99": float(np.percentile(loop, 99)),
                            "max": float(np.max(loop))},
    }


def write_flight(result: dict[str, Any], out: str | Path) -> Path:
    """metrics.json, trajectory.csv and flight.png into ``out`` (each written atomically)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "metrics.json", result["metrics"])  # strict JSON: a missing number is null
    atomic_write(out / "trajectory.csv", lambda f: np.savetxt(
        f, np.array(result["rows"]), delimiter=",", header=",".join(COLUMNS), comments="", fmt="%.6g"))
    plot(result, out / "flight.png")
    return out


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    a = np.array(result["rows"])
    c = {name: a[:, i] for i, name in enumerate(COLUMNS)}
    m, cfg = result["metrics"], result["config"]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.5))
    ax = axes[0]
    ax.plot(c["x_ref"], c["y_ref"], "k--", lw=1, label="reference")
    if cfg.filter:
        ax.plot(c["x_sp"], c["y_sp"], ":", color="tab:orange", lw=1, label="filtered setpoint")
    ax.plot(c["x"], c["y"], lw=1.5, color="tab:blue", label="flown")
    for x, y, _, r in cfg.obstacles:
        ax.add_patch(plt.Circle((x, y), r, color="tab:red", alpha=0.3))
    ax.set(xlabel="x [m]", ylabel="y [m]", title="top view (red: obstacles)", aspect="equal")
    ax.legend(fontsize=8)
    ax = axes[1]
    for axis in "xyz":
        line, = ax.plot(c["t"], c[axis], label=axis)
        ax.plot(c["t"], c[f"{axis}_ref"], "--", color=line.get_color(), lw=1)
    ax.set(xlabel="time [s]", ylabel="position [m]", title="position (dashed: reference)")
    ax.legend(fontsize=8)
    ax = axes[2]
    for i, name in enumerate(("FR", "BR", "BL", "FL")):
        ax.plot(c["t"], a[:, COLUMNS.index("u_fr") + i], lw=0.8, label=name)
    if m["min_obstacle_clearance_m"] is not None:
        ax2 = ax.twinx()
        ax2.plot(c["t"], c["clearance"], "r", lw=1.2)
        ax2.axhline(0, color="r", lw=0.5, ls=":")
        ax2.set_ylabel("obstacle clearance [m]", color="r")
    ax.set(xlabel="time [s]", ylabel="motor setpoint [0, 1]", title="motor commands")
    ax.legend(fontsize=8, loc="upper left")
    status = "ok" if m["completed"] else m["crash"]
    fig.suptitle(f"{cfg.preset}, {Path(m['policy']).name}, {cfg.trajectory.kind}, filter "
                 f"{'on' if cfg.filter else 'off'}: tracking RMSE {m['tracking_rmse_m']:.3f} m, {status}")
    fig.tight_layout()
    save_figure(fig, path, dpi=100)

"""Evaluating a quadrotor controller the RAPTOR way: recovery, figure-eight tracking, in-context sysid.

A controller is anything with ``reset(n)`` and ``act(env) -> action [n, 4]``; it reads what it needs
from the environment (the 22-value observation, the 26-value one, or the true state), so the RAPTOR
student (torch or ONNX), a teacher and the geometric baseline are measured by the same code.

* Recovery: RAPTOR's initial-state distribution (up to 10 arm lengths off, 1 rad tilt, 1 m/s,
  1 rad/s), a position-hold reference, the episode's constant disturbance force, 500 steps. Success
  is a full episode without termination and a final position error below ``success_radius``.
* Figure-eight: from hover at the start of the reference, no disturbance, one ramp and two periods;
  RMSE of the position error after the ramp. A flight that terminates has no RMSE (reported as a crash).
* Linear probe: ridge regression from the recurrent state to thrust-to-weight, fitted on some
  vehicles and scored (R^2) on the others.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from robo.control.geometric import GeometricController
from sim.quadrotor import QuadrotorEnv, QuadrotorEnvConfig, QuadrotorParams, preset
from sim.quadrotor.dynamics import hover_state
from sim.quadrotor.observation import STUDENT
from sim.quadrotor.params import GRAVITY

PRESET_NAMES = ("crazyflie", "x500", "arpl", "fs-base", "flightmare")


@dataclass
class EvalConfig:
    vehicles: int = 1000  # held-out sampled quadrotors
    vehicles_seed: int = 20_260_000  # a fleet seed no training run uses by default
    presets: tuple[str, ...] = PRESET_NAMES
    preset_episodes: int = 100  # recovery episodes per preset
    success_radius: float = 0.1  # m, final position error of a successful episode
    figure8_periods: tuple[float, ...] = (10.0, 5.5)
    figure8_scale: float = 1.0
    figure8_ramp: float = 2.0
    probe_train_fraction: float = 0.7
    seed: int = 0
    env: QuadrotorEnvConfig = field(default_factory=lambda: QuadrotorEnvConfig(
        observation="teacher", reference="hold", auto_reset=False))

    def __post_init__(self) -> None:
        if self.vehicles < 0 or self.preset_episodes < 0:
            raise ValueError("vehicles and preset_episodes must be >= 0")
        unknown = [p for p in self.presets if p not in PRESET_NAMES]
        if unknown:
            raise ValueError(f"presets: unknown preset {unknown[0]!r} (known: {', '.join(PRESET_NAMES)})")
        if not 0.0 < self.probe_train_fraction < 1.0:
            raise ValueError(f"probe_train_fraction must be in (0, 1), got {self.probe_train_fraction}")
        if any(p <= 0 for p in self.figure8_periods):
            raise ValueError("figure8_periods must be > 0 s")


class Controller(Protocol):
    def reset(self, n: int) -> None: ...

    def act(self, env: QuadrotorEnv) -> torch.Tensor: ...


class TorchStudent:
    """A recurrent (or feed-forward) policy checkpoint acting on the 22-value observation."""

    def __init__(self, net: torch.nn.Module):
        self.net = net.eval()
        self.recurrent = getattr(net, "recurrent", False)
        self.state: tuple[torch.Tensor, ...] = ()

    def reset(self, n: int) -> None:
        self.state = self.net.initial_state(n) if self.recurrent else ()

    @torch.no_grad()
    def act(self, env: QuadrotorEnv) -> torch.Tensor:
        obs = env.observe(teacher=False).to(torch.float32)
        if not self.recurrent:
            return self.net(obs)
        action, self.state = self.net(obs, self.state)
        return action

    def hidden(self) -> np.ndarray | None:
        return self.state[0].numpy().copy() if self.recurrent else None


class OnnxStudent:
    """An exported policy (ONNX + card) run by the runtime's ONNX Runtime wrapper, one environment per
    call, exactly as the ROS node and ``robo fly`` run it (observation clips, action clamp, fallback).

    One session serves every environment; each environment's recurrent state is swapped in per call.
    """

    def __init__(self, onnx_path: str | Path):
        from robo.runtime import OnnxPolicy

        self.policy = OnnxPolicy(onnx_path)
        if self.policy.task != "quadrotor" or self.policy.obs_size != STUDENT.size:
            raise ValueError(f"{onnx_path}: a RAPTOR policy takes the {STUDENT.size}-value quadrotor "
                             f"observation, this card's task is {self.policy.task!r} with "
                             f"{self.policy.obs_size} values")
        self.states: list[list[np.ndarray]] = []

    def reset(self, n: int) -> None:
        self.policy.reset()
        self.states = [list(self.policy.state) for _ in range(n)]

    def act(self, env: QuadrotorEnv) -> torch.Tensor:
        obs = env.observe(teacher=False).to(torch.float32).numpy()
        actions = []
        for i, o in enumerate(obs):
            self.policy.state = self.states[i]
            actions.append(self.policy.step(o).action)
            self.states[i] = self.policy.state
        return torch.from_numpy(np.stack(actions).astype(np.float32))

    def hidden(self) -> np.ndarray | None:
        if not self.states or not self.states[0]:
            return None
        return np.stack([s[0].ravel() for s in self.states])


class Baseline:
    """The geometric controller of robo.control, with the true state and parameters."""

    def reset(self, n: int) -> None:
        self.controller: GeometricController | None = None

    def act(self, env: QuadrotorEnv) -> torch.Tensor:
        if self.controller is None:
            self.controller = GeometricController(env.params)
        return self.controller(env.state, *env.reference())

    def hidden(self) -> None:
        return None


class Teacher:
    """A SAC teacher (deterministic actor) on the environment's teacher observation (26 or 29 values)."""

    def __init__(self, policy: torch.nn.Module):
        self.policy = policy

    def reset(self, n: int) -> None:
        pass

    @torch.no_grad()
    def act(self, env: QuadrotorEnv) -> torch.Tensor:
        obs = env.observe(teacher=True)
        return self.policy(obs.to(torch.float32))

    def hidden(self) -> None:
        return None


def load_controller(path: str | Path) -> TorchStudent | OnnxStudent:
    """A torch policy checkpoint (``.pt``) or an exported ``.onnx`` (its card beside it)."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{path} is a folder; pass a policy file (.pt or .onnx)")
    if not path.is_file():
        raise OSError(f"no such file: {path}")
    if path.suffix == ".onnx":
        return OnnxStudent(path)
    from robo.nets.policy import load_policy

    net, _ = load_policy(path)
    obs = getattr(net, "arch", {}).get("obs_dim")
    if obs != STUDENT.size:
        raise ValueError(f"{path}: a RAPTOR policy takes the {STUDENT.size}-value observation, "
                         f"this one takes {obs}")
    return TorchStudent(net)


# ---------------------------------------------------------------------------------------------
# Recovery
# ---------------------------------------------------------------------------------------------


def recovery(controller: Controller, vehicles: list[QuadrotorParams], config: EvalConfig, *,
             episodes: int = 1, seed: int = 0, probe_steps: tuple[int, int] | None = None
             ) -> dict[str, Any]:
    """One batched recovery run: ``episodes`` per vehicle. Per-row arrays (vehicle-major)."""
    env_cfg = config.env
    env = QuadrotorEnv([v for v in vehicles for _ in range(episodes)], env_cfg, seed=seed)
    n = env.num_envs
    controller.reset(n)
    alive = torch.ones(n, dtype=torch.bool)
    length = torch.zeros(n, dtype=torch.long)
    hidden_sum, hidden_count = None, 0
    for t in range(env_cfg.episode_steps):
        action = controller.act(env).clamp(-1.0, 1.0)
        _, _, terminated, _, _ = env.step(action)
        alive &= ~terminated
        length += alive.long()
        if probe_steps is not None and probe_steps[0] <= t < probe_steps[1]:
            h = controller.hidden() if hasattr(controller, "hidden") else None
            if h is not None:
                hidden_sum = h if hidden_sum is None else hidden_sum + h
                hidden_count += 1
    ref_pos, _ = env.reference()
    final_error = (env.state[:, 0:3] - ref_pos).norm(dim=-1)
    final_error = torch.where(alive, final_error, torch.full_like(final_error, math.inf))
    success = alive & (final_error < config.success_radius)
    out: dict[str, Any] = {
        "success": success.numpy(),
        "length": length.numpy(),
        "final_error": final_error.numpy(),
    }
    if hidden_sum is not None:
        out["hidden"] = hidden_sum / hidden_count
    return out


def summarise_recovery(result: dict[str, Any]) -> dict[str, float]:
    alive = np.isfinite(result["final_error"])
    return {
        "success_rate": float(result["success"].mean()) if len(result["success"]) else math.nan,
        "mean_episode_length": float(result["length"].mean()) if len(result["length"]) else math.nan,
        "median_final_error_m": float(np.median(result["final_error"][alive])) if alive.any() else math.nan,
        "episodes": len(result["success"]),
    }


def evaluate_teachers(run_dir: str | Path, config: EvalConfig, episodes: int = 100,
                      others: dict[str, Controller] | None = None) -> list[dict[str, Any]]:
    """Every teacher of a teacher run, deterministic, on its own quadrotor: the precision its labels
    carry. Acceptance looks at stochastic training episodes; this is what the student imitates.

    The same episodes are flown again without the constant external force (``no_force_*``): a teacher
    that does not see the force holds off target by force / stiffness, and that offset is the floor of
    its final error under the force. Each teacher also flies the figure-eights on its vehicle, and so
    does every controller in ``others`` (``figure8_<period>s_rmse_m``, and ``others`` per label): a
    student can hardly track better than the teachers it imitates."""
    from robo.tasks.raptor.teachers import load_teachers, run_metrics
    from sim.quadrotor import load_fleet

    run_dir = Path(run_dir)
    names, actors = load_teachers(run_dir, accepted_only=False)
    accepted = set(run_metrics(run_dir)["accepted_names"])
    fleet = {p.name: p for p in load_fleet(run_dir / "fleet.json")[0]}
    vehicles = [fleet[n] for n in names]
    k = len(names)
    # Env rows are teacher-major, as the stacked actor wants them: [K * episodes] -> [K, episodes].
    stacked = Teacher(lambda obs: actors.deterministic(obs.view(k, episodes, -1)).reshape(k * episodes, -1))
    config = replace(config, env=replace(config.env, observation=actors.layout))
    result = recovery(stacked, vehicles, config, episodes=episodes, seed=config.seed)
    calm = replace(config, env=replace(config.env, disturbance=False))
    no_force = recovery(stacked, vehicles, calm, episodes=episodes, seed=config.seed)
    rows = []
    keys = ("success", "length", "final_error")
    for i, (name, vehicle) in enumerate(zip(names, vehicles, strict=True)):
        rows_i = slice(i * episodes, (i + 1) * episodes)
        mine = {key: result[key][rows_i] for key in keys}
        calm_i = summarise_recovery({key: no_force[key][rows_i] for key in keys})
        member = actors.net.member(i).requires_grad_(False)
        teacher = Teacher(lambda obs, net=member: torch.tanh(net(obs)))
        rows.append({"name": name, "accepted": name in accepted, "mass_kg": vehicle.mass,
                     "thrust_to_weight": vehicle.thrust_to_weight(),
                     "hover_throttle": vehicle.hover_throttle(),
                     "disturbance_sigma_n": vehicle.disturbance_sigma, **summarise_recovery(mine),
                     "no_force_success_rate": calm_i["success_rate"],
                     "no_force_median_final_error_m": calm_i["median_final_error_m"],
                     **figure8_rmse(teacher, vehicle, config, actors.layout),
                     "others": {label: figure8_rmse(other, vehicle, config)
                                for label, other in (others or {}).items()}})
    return rows


def figure8_rmse(controller: Controller, vehicle: QuadrotorParams, config: EvalConfig,
                 observation: str = "teacher") -> dict[str, float]:
    """``figure8_<period>s_rmse_m`` for each of the config's periods (NaN: a crash)."""
    return {f"figure8_{p:g}s_rmse_m": figure8_flight(controller, vehicle, p, config, observation)["rmse_m"]
            for p in config.figure8_periods}


def number(v: float | None, spec: str) -> str:
    """A table cell; a missing value (NaN, or None: a NaN that went through JSON) is '-'."""
    return format(v, spec) if v is not None and math.isfinite(v) else "-"


def metres(v: float | None) -> str:
    """An error or RMSE cell in metres; NaN (or None) is a crash."""
    return f"{v:.3f}" if v is not None and math.isfinite(v) else "crash"


def teachers_table(rows: list[dict[str, Any]]) -> str:
    """The table ``robo eval raptor --teachers`` prints."""
    lines = [f"{'teacher':<9}{'mass kg':>9}{'T/W':>6}{'hover u':>8}{'force/weight':>13}{'accepted':>10}"
             f"{'success':>9}{'length':>8}{'final err':>11}{'| no force: success':>20}{'final err':>11}"]
    for r in rows:
        weight = r["mass_kg"] * GRAVITY
        # hover_throttle: absent from a teachers_eval.json written before it was recorded
        lines.append(f"{r['name']:<9}{r['mass_kg']:>9.3f}{r['thrust_to_weight']:>6.2f}"
                     f"{number(r.get('hover_throttle'), '.2f'):>8}"
                     f"{r['disturbance_sigma_n'] / weight:>13.3f}"
                     f"{'yes' if r['accepted'] else 'no':>10}{r['success_rate']:>9.0%}"
                     f"{r['mean_episode_length']:>8.0f}{r['median_final_error_m']:>11.3f}"
                     f"{r['no_force_success_rate']:>20.0%}{r['no_force_median_final_error_m']:>11.3f}")
    if rows:
        errors = {key: np.array([r[key] for r in rows]) for key in
                  ("median_final_error_m", "no_force_median_final_error_m")}
        lines.append(f"over the {len(rows)} teachers: median final error "
                     f"{np.median(errors['median_final_error_m']):.3f} m with the force, "
                     f"{np.median(errors['no_force_median_final_error_m']):.3f} m without; within 0.1 m: "
                     f"{(errors['median_final_error_m'] < 0.1).sum()} with, "
                     f"{(errors['no_force_median_final_error_m'] < 0.1).sum()} without")
    lines.append("force/weight: the per-axis std of the episode's constant external force over the weight; "
                 "'no force': the same episodes without it")
    lines += _teachers_figure8_table(rows)
    return "\n".join(lines)


def _teachers_figure8_table(rows: list[dict[str, Any]]) -> list[str]:
    """Figure-eight RMSE on each teacher's vehicle: the teacher, then each compared controller."""
    keys = [k for k in (rows[0] if rows else {}) if k.startswith("figure8_")]
    if not keys:  # a teachers_eval.json written before the figure-eights were flown
        return []
    labels = ["teacher", *rows[0].get("others", {})]
    columns = [(label, key) for key in keys for label in labels]
    width = 16

    def rmse(row: dict[str, Any], label: str, key: str) -> float:
        value = row[key] if label == "teacher" else row["others"][label][key]
        return math.nan if value is None else value  # None: a NaN that went through JSON

    def period(key: str) -> str:
        return key.split("_")[1]

    lines = ["", "figure-eight RMSE (m) on each teacher's own vehicle, no external force:",
             f"{'teacher':<9}" + "".join(f"{label[:width - 6] + ' ' + period(key):>{width}}"
                                         for label, key in columns)]
    for r in rows:
        cells = (rmse(r, label, key) for label, key in columns)
        lines.append(f"{r['name']:<9}" + "".join(f"{metres(v):>{width}}" for v in cells))
    medians = []
    for label, key in columns:
        values = np.array([rmse(r, label, key) for r in rows], dtype=float)
        flown = values[np.isfinite(values)]
        medians.append(f"{label} {period(key)} {metres(np.median(flown) if flown.size else math.nan)} "
                       f"({len(values) - flown.size} crashed)")
    lines.append(f"median over the teachers' vehicles: {'; '.join(medians)}")
    return lines


# ---------------------------------------------------------------------------------------------
# Figure-eight
# ---------------------------------------------------------------------------------------------


def figure8_flight(controller: Controller, vehicle: QuadrotorParams, period: float, config: EvalConfig,
                   observation: str = "teacher") -> dict[str, Any]:
    """Fly one figure-eight from hover at its start; RMSE after the ramp, tracks for the plot.

    ``observation`` is the environment's layout: a student reads its 22 values from any teacher
    layout, a teacher needs its own."""
    env_cfg = QuadrotorEnvConfig(
        observation=observation, reference="figure8", figure8_period=period,
        figure8_scale=config.figure8_scale, figure8_ramp=config.figure8_ramp, disturbance=False,
        auto_reset=False, episode_steps=10**9, terminate=True)
    env = QuadrotorEnv([vehicle], env_cfg, seed=config.seed)
    ref_pos, _ = env.reference()
    env.set_state(hover_state(env.params, ref_pos))
    controller.reset(1)
    steps = round((config.figure8_ramp + 2 * period) / env_cfg.dt)
    start = round(config.figure8_ramp / env_cfg.dt)
    track, reference, errors = [], [], []
    crashed = False
    for k in range(steps):
        ref_pos, _ = env.reference()
        track.append(env.state[0, 0:3].tolist())
        reference.append(ref_pos[0].tolist())
        if k >= start:
            errors.append(float((env.state[0, 0:3] - ref_pos[0]).pow(2).sum()))
        _, _, terminated, _, _ = env.step(controller.act(env).clamp(-1.0, 1.0))
        if bool(terminated[0]):
            crashed = True
            break
    rmse = math.sqrt(sum(errors) / len(errors)) if errors and not crashed else math.nan
    return {"rmse_m": rmse, "crashed": crashed, "track": np.array(track), "reference": np.array(reference)}


# ---------------------------------------------------------------------------------------------
# Linear probe
# ---------------------------------------------------------------------------------------------


def linear_probe_r2(hidden: np.ndarray, target: np.ndarray, train_fraction: float, seed: int = 0,
                    ridge: float = 1e-3) -> float:
    """R^2 on held-out rows of a ridge regression ``target ~ hidden`` fitted on the other rows."""
    n = len(target)
    if n < 4:
        return math.nan
    order = np.random.default_rng(seed).permutation(n)
    cut = max(2, min(n - 2, round(train_fraction * n)))
    train, test = order[:cut], order[cut:]
    x = np.hstack([hidden, np.ones((n, 1))])
    a = x[train].T @ x[train] + ridge * np.eye(x.shape[1])
    w = np.linalg.solve(a, x[train].T @ target[train])
    residual = target[test] - x[test] @ w
    spread = target[test] - target[test].mean()
    return float(1.0 - (residual @ residual) / max(float(spread @ spread), 1e-12))


# ---------------------------------------------------------------------------------------------
# The whole evaluation
# ---------------------------------------------------------------------------------------------


def evaluate(controller: Controller, config: EvalConfig, progress=None) -> dict[str, Any]:
    """Every measurement of the module docstring; arrays are kept for the plots under ``"raw"``."""
    from sim.quadrotor import sample_fleet

    metrics: dict[str, Any] = {"success_radius_m": config.success_radius}
    raw: dict[str, Any] = {}
    if config.vehicles:
        fleet = sample_fleet(config.vehicles, config.vehicles_seed)
        result = recovery(controller, fleet, config, seed=config.seed, probe_steps=(250, 500))
        metrics["held_out"] = summarise_recovery(result)
        raw["held_out"] = result
        raw["fleet"] = fleet
        if "hidden" in result:
            twr = np.array([p.thrust_to_weight() for p in fleet])
            ok = np.isfinite(result["final_error"])
            metrics["probe_r2_thrust_to_weight"] = linear_probe_r2(
                result["hidden"][ok], twr[ok], config.probe_train_fraction, config.seed)
        if progress:
            progress("held-out vehicles")
    metrics["presets"] = {}
    raw["figure8"] = {}
    for name in config.presets:
        vehicle = preset(name)
        row: dict[str, Any] = {"hover_throttle": vehicle.hover_throttle()}
        if config.preset_episodes:
            row.update(summarise_recovery(recovery(controller, [vehicle], config,
                                                   episodes=config.preset_episodes, seed=config.seed + 1)))
        for period in config.figure8_periods:
            flight = figure8_flight(controller, vehicle, period, config)
            row[f"figure8_{period:g}s_rmse_m"] = flight["rmse_m"]
            raw["figure8"][(name, period)] = flight
        metrics["presets"][name] = row
        if progress:
            progress(name)
    for period in config.figure8_periods:
        values = [metrics["presets"][p][f"figure8_{period:g}s_rmse_m"] for p in config.presets]
        finite = [v for v in values if math.isfinite(v)]
        metrics[f"figure8_{period:g}s_mean_rmse_m"] = float(np.mean(finite)) if finite else math.nan
        metrics[f"figure8_{period:g}s_crashes"] = len(values) - len(finite)
    return {"metrics": metrics, "raw": raw}


def table(metrics: dict[str, Any], periods: tuple[float, ...]) -> str:
    """The per-preset table that ``robo eval raptor`` prints."""
    head = f"{'vehicle':<12}{'hover u':>8}{'success':>9}{'length':>8}{'final err':>11}"
    head += "".join(f"{f'fig8 {p:g}s':>11}" for p in periods)
    lines = [head]

    for name, row in metrics["presets"].items():
        line = f"{name:<12}{number(row.get('hover_throttle'), '.2f'):>8}"
        line += f"{number(row.get('success_rate'), '.0%'):>9}"
        line += f"{number(row.get('mean_episode_length'), '.0f'):>8}"
        line += f"{metres(row.get('median_final_error_m')):>11}"
        line += "".join(f"{metres(row[f'figure8_{p:g}s_rmse_m']):>11}" for p in periods)
        lines.append(line)
    if "held_out" in metrics:
        h = metrics["held_out"]
        lines.append(f"{'held-out':<12}{'':>8}{number(h['success_rate'], '.1%'):>9}"
                     f"{number(h['mean_episode_length'], '.0f'):>8}"
                     f"{metres(h['median_final_error_m']):>11}  ({h['episodes']} sampled quadrotors)")
    if "probe_r2_thrust_to_weight" in metrics:
        lines.append(f"linear probe hidden state -> thrust-to-weight: R^2 = "
                     f"{number(metrics['probe_r2_thrust_to_weight'], '.3f')}")
    return "\n".join(lines)


def plot(result: dict[str, Any], out_dir: Path, periods: tuple[float, ...]) -> list[Path]:
    """success over (mass, thrust-to-weight) and the figure-eight XY tracks against the reference."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    raw = result["raw"]
    if "held_out" in raw:
        fleet, res = raw["fleet"], raw["held_out"]
        mass = np.array([p.mass for p in fleet])
        twr = np.array([p.thrust_to_weight() for p in fleet])
        fig, ax = plt.subplots(figsize=(6, 4.5))
        ok = res["success"]
        ax.scatter(mass[ok], twr[ok], s=8, c="tab:green", label=f"success ({ok.mean():.0%})")
        ax.scatter(mass[~ok], twr[~ok], s=14, c="tab:red", marker="x", label="failure")
        ax.set_xscale("log")
        ax.set_xlabel("mass [kg]")
        ax.set_ylabel("thrust-to-weight")
        ax.set_title("recovery on held-out sampled quadrotors")
        ax.legend()
        written.append(_save(fig, out_dir / "success_mass_twr.png"))
    flights = raw.get("figure8", {})
    names = sorted({name for name, _ in flights}, key=PRESET_NAMES.index)
    if names:
        fig, axes = plt.subplots(len(periods), len(names), figsize=(3.2 * len(names), 3.0 * len(periods)),
                                 squeeze=False)
        for i, period in enumerate(periods):
            for j, name in enumerate(names):
                ax = axes[i][j]
                f = flights[(name, period)]
                ax.plot(f["reference"][:, 0], f["reference"][:, 1], "k--", lw=0.8, label="reference")
                ax.plot(f["track"][:, 0], f["track"][:, 1], lw=1.0, label="flown")
                title = "crash" if f["crashed"] else f"RMSE {f['rmse_m']:.3f} m"
                ax.set_title(f"{name}, {period:g} s: {title}", fontsize=9)
                ax.set_aspect("equal", "datalim")
        axes[0][0].legend(fontsize=7)
        written.append(_save(fig, out_dir / "figure8_tracks.png"))
    return written


def _save(fig, path: Path) -> Path:
    from robo.files import save_figure

    fig.tight_layout()
    return save_figure(fig, path, dpi=110)

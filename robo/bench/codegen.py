"""``robo bench codegen``: the generated C against ONNX Runtime, on this computer and on the emulated
Cortex-M4F, for the RAPTOR student and a 3x64 MLP; then the nn4mc table (Newton-Raphson on a learned
mass-spring-damper model vs PID). Instruction counts come from SysTick under QEMU -icount."""

from __future__ import annotations

import argparse
import ctypes
import itertools
import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from robo.codegen.c_emitter import generate_from_file
from robo.codegen.firmware import build, firmware_dir, run_qemu, sequence
from robo.codegen.host import HostPolicy, build_host_library
from robo.config import load_config
from robo.export.onnx_export import export_onnx
from robo.nets.policy import MLPPolicy, generic_meta, raptor_student
from robo.runtime import OnnxPolicy
from sim import mass_spring_damper as msd
from sim.quadrotor.observation import quadrotor_student_meta

HELP = (
    "generated C vs ONNX Runtime on host and emulated Cortex-M4F (error, instructions, flash, RAM, heap) "
    "and the nn4mc mass-spring-damper table (Newton-Raphson on a learned model vs PID)"
)

TARGETS = {"max_abs_error": 1e-5, "student_instructions": 8000, "flash_bytes": 12 * 1024, "ram_bytes": 1024}


@dataclass
class MSDSection:
    mass: float = 1.0
    damping: float = 0.8
    stiffness: float = 20.0
    cubic: float = 400.0
    force_limit: float = 15.0
    dt: float = 0.01
    substeps: int = 4


@dataclass
class ModelSection:
    horizon_steps: int = 5
    hidden: list[int] = field(default_factory=lambda: [16, 16])
    samples: int = 20000
    iterations: int = 3000
    lr: float = 3e-3
    seed: int = 0


@dataclass
class NRSection:
    du: float = 0.25
    tol: float = 1e-5
    max_iter: int = 4


@dataclass
class PIDSection:
    kp: list[float] = field(default_factory=lambda: [100.0, 200.0, 400.0, 800.0])
    ki: list[float] = field(default_factory=lambda: [0.0, 200.0, 800.0, 2000.0])
    kd: list[float] = field(default_factory=lambda: [5.0, 10.0, 20.0, 40.0])


@dataclass
class NN4MCConfig:
    duration_s: float = 10.0
    settle_s: float = 1.0
    mcu_hz: float = 168e6
    msd: MSDSection = field(default_factory=MSDSection)
    model: ModelSection = field(default_factory=ModelSection)
    nr: NRSection = field(default_factory=NRSection)
    pid: PIDSection = field(default_factory=PIDSection)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--workdir", default="out/bench_codegen", help="where exported models and builds go")
    p.add_argument("--steps", type=int, default=500, help="steps compared with ONNX Runtime")
    p.add_argument("--config", default=None, help="nn4mc config (default configs/nn4mc.yaml if present)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config key")
    p.add_argument("--skip-nn4mc", action="store_true", help="only the policy part")


def run(args: argparse.Namespace) -> dict[str, Any]:
    torch.set_num_threads(1)
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    nets = {"raptor_student": raptor_student, "mlp_3x64": lambda: MLPPolicy(22, 4, hidden=(64, 64, 64))}
    policies = {}
    for name, make in tqdm(nets.items(), desc="policies", leave=False):
        torch.manual_seed(0)
        policies[name] = bench_policy(make(), work / name, args.steps)
    _print_policy_table(policies)
    result: dict[str, Any] = {"targets": TARGETS, "policies": policies}
    if not args.skip_nn4mc:
        cfg_path = args.config or ("configs/nn4mc.yaml" if Path("configs/nn4mc.yaml").is_file() else None)
        cfg = load_config(NN4MCConfig, cfg_path, args.set)
        result["nn4mc"] = bench_nn4mc(cfg, work / "nn4mc")
        _print_nn4mc_table(result["nn4mc"])
    return result


# --- policies ----------------------------------------------------------------------------------


def bench_policy(net: torch.nn.Module, folder: Path, steps: int) -> dict[str, Any]:
    folder.mkdir(parents=True, exist_ok=True)
    card = export_onnx(net, quadrotor_student_meta(), folder / "policy.onnx", steps=steps)
    generate_from_file(folder / "policy.onnx", folder / "c")
    obs = sequence(22, steps, seed=0)
    ref, ref_status = OnnxPolicy(folder / "policy.onnx").rollout(obs)
    host = HostPolicy(folder / "c")
    got, status = zip(*(host.step(o) for o in obs), strict=True)
    host_err = float(np.abs(np.array(got) - ref).max())
    info = build(folder / "c", "qemu-mps2-an386", steps=steps, seed=0)
    from robo.codegen.verify import check_policy_run

    qemu = check_policy_run(folder / "c", run_qemu(folder / "c"), tol=TARGETS["max_abs_error"])
    fp = info["footprint"]
    return {
        "parameters": sum(p.numel() for p in net.parameters()),
        "export_max_abs_error_torch_vs_ort": card["export"]["equivalence"]["max_abs_error"],
        "host_max_abs_error": host_err,
        "host_status_matches": bool(np.array_equal(status, ref_status)),
        "qemu_max_abs_error": qemu["max_abs_error_vs_onnxruntime"],
        "qemu_selftest_rc": qemu["selftest_rc"],
        "instructions_per_step": round(qemu["instructions_per_step"], 1),
        "flash_bytes": fp["flash_bytes"],
        "ram_bytes": fp["ram_bytes"],
        "code_bytes": fp["sections"]["text"],
        "const_bytes": fp["sections"]["rodata"],
        "max_stack_frame_bytes": fp["max_stack_frame_bytes"],
        "uses_heap": fp["uses_heap"],
        "undefined_symbols": fp["undefined_symbols"],
        "steps": steps,
        "board": "qemu-mps2-an386 (Cortex-M4F)",
    }


def _print_policy_table(policies: dict[str, dict]) -> None:
    t = TARGETS
    print(
        f"\n{'policy':<16}{'params':>8}{'host err':>11}{'QEMU err':>11}{'instr/step':>12}"
        f"{'flash B':>9}{'RAM B':>7}{'heap':>6}"
    )
    for name, r in policies.items():
        print(
            f"{name:<16}{r['parameters']:>8}{r['host_max_abs_error']:>11.2e}{r['qemu_max_abs_error']:>11.2e}"
            f"{r['instructions_per_step']:>12.0f}{r['flash_bytes']:>9}{r['ram_bytes']:>7}"
            f"{'yes' if r['uses_heap'] else 'no':>6}"
        )
    s = policies["raptor_student"]
    print(
        f"student vs targets: error {s['qemu_max_abs_error'] / t['max_abs_error']:.3f}x of 1e-5, "
        f"instructions {s['instructions_per_step'] / t['student_instructions']:.3f}x of 8000, "
        f"flash {s['flash_bytes'] / t['flash_bytes']:.3f}x of 12 KB, "
        f"RAM {s['ram_bytes'] / t['ram_bytes']:.3f}x "
        "of 1 KB (instructions, not cycles: QEMU counts executed instructions)"
    )


# --- nn4mc: mass-spring-damper -----------------------------------------------------------------


def _params(cfg: NN4MCConfig) -> msd.MSDParams:
    return msd.MSDParams(**vars(cfg.msd))


def train_forward_model(cfg: NN4MCConfig) -> tuple[MLPPolicy, float]:
    """Learn (x, v, u) -> x after the horizon minus x; input/output scaling is folded into the weights
    so the exported model takes and gives SI units. Returns the model and its validation RMS (m)."""
    p, m = _params(cfg), cfg.model
    rng = np.random.default_rng(m.seed)
    torch.manual_seed(m.seed)
    states, forces = msd.sample_states(m.samples + 2000, rng, p=p)
    target = msd.rollout_hold(states, forces, m.horizon_steps, p)[:, 0] - states[:, 0]
    x = np.column_stack([states, forces])
    in_scale = np.array([0.25, 1.5, p.force_limit])
    out_scale = float(np.abs(target).max())
    xn = torch.tensor(x / in_scale, dtype=torch.float32)
    yn = torch.tensor(target / out_scale, dtype=torch.float32)[:, None]
    train, val = slice(0, m.samples), slice(m.samples, None)
    net = MLPPolicy(3, 1, hidden=tuple(m.hidden), activation="tanh")
    opt = torch.optim.Adam(net.parameters(), lr=m.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, m.iterations)
    for _ in tqdm(range(m.iterations), desc="MSD model", leave=False):
        idx = torch.randint(0, m.samples, (1024,))
        loss = torch.mean((net(xn[train][idx]) - yn[train][idx]) ** 2)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    with torch.no_grad():
        first, last = net.net[0], net.net[-1]
        first.weight /= torch.tensor(in_scale, dtype=torch.float32)
        last.weight *= out_scale
        last.bias *= out_scale
        pred = net(torch.tensor(x[val], dtype=torch.float32))[:, 0].numpy()
    return net, float(np.sqrt(np.mean((pred - target[val]) ** 2)))


class _Controllers:
    """The C controllers (model + nn4mc_control.c) compiled for this computer, via ctypes."""

    def __init__(self, app: Path):
        lib = ctypes.CDLL(str(build_host_library(app)))
        f = ctypes.c_float
        lib.nr_control.argtypes = [f, f, f, f, f, f, ctypes.c_int, f]
        lib.nr_control.restype = f
        lib.pid_control.argtypes = [ctypes.POINTER(f), ctypes.POINTER(f), f, f, f, f, f, f]
        lib.pid_control.restype = f
        self.lib = lib


def _pid_grid_search(cfg: NN4MCConfig, ref: np.ndarray) -> tuple[float, float, float]:
    """All gain combinations at once (float64 numpy, the same law as pid_control)."""
    p = _params(cfg)
    gains = np.array(list(itertools.product(cfg.pid.kp, cfg.pid.ki, cfg.pid.kd)))
    kp, ki, kd = gains.T
    s = np.zeros((len(gains), 2))
    integ, prev = np.zeros(len(gains)), np.zeros(len(gains))
    sq = np.zeros(len(gains))
    settle = int(cfg.settle_s / p.dt)
    for k in range(len(ref) - 1):
        err = ref[k] - s[:, 0]
        trial = integ + err * p.dt
        u = kp * err + ki * trial + kd * (err - prev) / p.dt
        prev = err
        sat = np.abs(u) > p.force_limit
        integ = np.where(sat, integ, trial)
        s = msd.step(s, np.clip(u, -p.force_limit, p.force_limit), p)
        if k + 1 >= settle:
            sq += (s[:, 0] - ref[k + 1]) ** 2
    sq = np.where(np.isfinite(sq), sq, np.inf)
    return tuple(float(g) for g in gains[int(np.argmin(sq))])


def _path_errors(x: np.ndarray, ref: np.ndarray, settle: int) -> dict[str, float]:
    e = np.abs(x[settle:] - ref[settle:])
    return {"rms_mm": float(np.sqrt(np.mean(e**2)) * 1e3), "max_mm": float(e.max() * 1e3)}


def bench_nn4mc(cfg: NN4MCConfig, work: Path) -> dict[str, Any]:
    p = _params(cfg)
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    net, val_rms = train_forward_model(cfg)
    train_s = time.perf_counter() - t0
    layout = [
        {"name": "x", "unit": "m", "clip": None},
        {"name": "v", "unit": "m/s", "clip": None},
        {"name": "u", "unit": "N", "clip": None},
    ]
    meta = generic_meta(
        3,
        1,
        task="mass-spring-damper forward model",
        observation=layout,
        action=[{"name": "dx_horizon", "unit": "m"}],
        action_clip=None,
        control_rate_hz=1.0 / p.dt,
        config=json.loads(json.dumps(vars(cfg.model))),
    )
    export_onnx(net, meta, work / "msd_model.onnx")
    generate_from_file(work / "msd_model.onnx", work / "model", name="msd_model")
    app = _assemble_app(work)
    ctl = _Controllers(app / "host")

    n = round(cfg.duration_s / p.dt)
    t = np.arange(n + cfg.model.horizon_steps + 1) * p.dt
    ref = msd.reference_path(t)
    settle = int(cfg.settle_s / p.dt)
    h = cfg.model.horizon_steps

    # Newton-Raphson closed loop (the C controller, on this computer).
    s, u_prev = np.zeros(2), 0.0
    xs, rec = [0.0], []
    for k in range(n):
        x, v, target = np.float32(s[0]), np.float32(s[1]), np.float32(ref[k + h])
        rec.append((x, v, target, np.float32(u_prev)))
        u_prev = ctl.lib.nr_control(
            x, v, target, u_prev, cfg.nr.du, cfg.nr.tol, cfg.nr.max_iter, p.force_limit
        )
        s = msd.step(s, u_prev, p)
        xs.append(s[0])
    nr_x, nr_u = np.array(xs), np.array([r[3] for r in rec[1:]] + [u_prev], np.float32)

    kp, ki, kd = _pid_grid_search(cfg, ref[: n + 1])
    integ, prev = ctypes.c_float(0.0), ctypes.c_float(0.0)
    s, xs, errs, pid_u = np.zeros(2), [0.0], [], []
    for k in range(n):
        err = np.float32(ref[k] - s[0])
        errs.append(err)
        u = ctl.lib.pid_control(ctypes.byref(integ), ctypes.byref(prev), err, kp, ki, kd, p.dt, p.force_limit)
        pid_u.append(u)
        s = msd.step(s, u, p)
        xs.append(s[0])
    pid_x = np.array(xs)

    # The same controllers on the emulated Cortex-M4F, replaying the recorded inputs.
    _write_data_header(app / "nn4mc_data.h", rec, errs, cfg, (kp, ki, kd))
    info = build(app, "qemu-mps2-an386")
    q = run_qemu(app, timeout=300)
    if q["exit_code"] != 0:
        raise RuntimeError(f"nn4mc firmware exited with {q['exit_code']}")
    mcu_nr, mcu_pid = _parse_forces(q["output"])
    v = q["values"]
    tpi = q["ticks_per_instruction"]
    empty = int(v["timing.empty_ticks"])
    nr_instr = (int(v["timing.nr_ticks"]) - empty) / n / tpi
    pid_instr = (int(v["timing.pid_ticks"]) - empty) / n / tpi
    model_instr = _model_instructions(work / "model")
    fp = info["footprint"]
    return {
        "model": {
            "hidden": cfg.model.hidden,
            "horizon_s": h * p.dt,
            "validation_rms_mm": val_rms * 1e3,
            "train_seconds": round(train_s, 1),
            "instructions_per_inference": round(model_instr, 1),
        },
        "pid_gains": {"kp": kp, "ki": ki, "kd": kd},
        "newton_raphson": {
            **_path_errors(nr_x, ref[: n + 1], settle),
            "instructions_per_step": round(nr_instr, 1),
            "rate_hz_at_mcu_clock": cfg.mcu_hz / nr_instr,
            "mcu_vs_host_max_force_diff_N": float(np.abs(mcu_nr - nr_u).max()),
        },
        "pid": {
            **_path_errors(pid_x, ref[: n + 1], settle),
            "instructions_per_step": round(pid_instr, 1),
            "rate_hz_at_mcu_clock": cfg.mcu_hz / pid_instr,
            "mcu_vs_host_max_force_diff_N": float(np.abs(mcu_pid - np.array(pid_u, np.float32)).max()),
        },
        "controller_flash_bytes": fp["flash_bytes"],
        "controller_ram_bytes": fp["ram_bytes"],
        "uses_heap": fp["uses_heap"],
        "mcu_hz": cfg.mcu_hz,
        "note": "rates assume one instruction per cycle (an upper bound; FPU divides and loads take longer)",
    }


def _assemble_app(work: Path) -> Path:
    """A firmware module of kind "app": generated model + the nn4mc controllers + the QEMU driver."""
    app = work / "app"
    if app.exists():
        shutil.rmtree(app)
    app.mkdir()
    for f in ("msd_model.c", "msd_model.h"):
        shutil.copyfile(work / "model" / f, app / f)
    src = firmware_dir() / "apps" / "nn4mc"
    for f in ("nn4mc_control.c", "nn4mc_control.h", "nn4mc_main.c"):
        shutil.copyfile(src / f, app / f)
    (app / "nn4mc_model.h").write_text(
        '#include "msd_model.h"\n#define MODEL_STATE msd_model_state\n#define MODEL_STEP msd_model_step\n'
    )
    (app / "module.json").write_text(
        json.dumps(
            {
                "format": "robo-c-module/1",
                "name": "nn4mc",
                "kind": "app",
                "sources": ["msd_model.c", "nn4mc_control.c", "nn4mc_main.c"],
                "footprint_sources": ["msd_model.c", "nn4mc_control.c"],
            },
            indent=2,
        )
    )
    # The same controller sources for this computer, without the firmware's main().
    host = app / "host"
    host.mkdir()
    for f in ("msd_model.c", "msd_model.h", "nn4mc_control.c", "nn4mc_control.h", "nn4mc_model.h"):
        shutil.copyfile(app / f, host / f)
    (host / "module.json").write_text(
        json.dumps({"name": "nn4mc_host", "kind": "app", "sources": ["msd_model.c", "nn4mc_control.c"]})
    )
    return app


def _write_data_header(path: Path, rec, errs, cfg: NN4MCConfig, gains) -> None:
    def arr(name, vals):
        body = ", ".join(f"{float(np.float32(v))!r}f" for v in vals)
        return f"static const float {name}[] = {{ {body} }};"

    cols = list(zip(*rec, strict=True))
    nr, lim, dt = cfg.nr, cfg.msd.force_limit, cfg.msd.dt
    path.write_text(
        "\n".join(
            [
                "/* Generated by robo bench codegen: recorded closed-loop inputs for the QEMU replay. */",
                f"#define N_STEPS {len(rec)}",
                arr("NR_X", cols[0]),
                arr("NR_V", cols[1]),
                arr("NR_TARGET", cols[2]),
                arr("NR_GUESS", cols[3]),
                arr("PID_ERR", errs),
                f"#define NR_DU {nr.du!r}f",
                f"#define NR_TOL {nr.tol!r}f",
                f"#define NR_ITERS {nr.max_iter}",
                f"#define U_MAX {float(lim)!r}f",
                f"#define DT {float(dt)!r}f",
                *(f"#define {k} {float(g)!r}f" for k, g in zip(("KP", "KI", "KD"), gains, strict=True)),
                "",
            ]
        )
    )


def _parse_forces(output: str) -> tuple[np.ndarray, np.ndarray]:
    nr, pid = [], []
    for line in output.splitlines():
        w = line.split()
        if len(w) == 4 and w[0] == "ROBO" and w[1] in ("nr", "pid"):
            (nr if w[1] == "nr" else pid).append(np.frombuffer(bytes.fromhex(w[3]), ">f4")[0])
    return np.array(nr, np.float32), np.array(pid, np.float32)


def _model_instructions(model_dir: Path) -> float:
    build(model_dir, "qemu-mps2-an386", steps=200)
    return float(run_qemu(model_dir)["instructions_per_step"])


def _print_nn4mc_table(r: dict[str, Any]) -> None:
    nr, pid = r["newton_raphson"], r["pid"]
    print(
        f"\nnn4mc mass-spring-damper (learned model {r['model']['hidden']} tanh, "
        f"validation RMS {r['model']['validation_rms_mm']:.3f} mm; PID gains {r['pid_gains']})"
    )
    print(f"{'controller':<16}{'RMS mm':>9}{'max mm':>9}{'instr/step':>12}{'rate @168MHz':>15}")
    for name, row in (("Newton-Raphson", nr), ("PID", pid)):
        print(
            f"{name:<16}{row['rms_mm']:>9.3f}{row['max_mm']:>9.3f}{row['instructions_per_step']:>12.0f}"
            f"{row['rate_hz_at_mcu_clock'] / 1e3:>13.1f}kHz"
        )
    print(
        f"NR/PID: path error {nr['rms_mm'] / pid['rms_mm']:.2f}x, "
        f"cost {nr['instructions_per_step'] / pid['instructions_per_step']:.0f}x; "
        f"controller flash {r['controller_flash_bytes']} B, RAM {r['controller_ram_bytes']} B ({r['note']})"
    )

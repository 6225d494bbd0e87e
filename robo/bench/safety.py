"""``robo bench safety``: the CBF filter's cost per solve on every path, their agreement with the
cvxpy reference, and a randomised closed-loop safety run."""

from __future__ import annotations

import argparse
import ctypes
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from robo.bench.common import require
from robo.safety import BarrierSet, SafetyFilter, Separation
from robo.safety.c_emitter import emit_c, write_c
from robo.safety.closed_loop import (
    ACCEL_LOWER,
    ACCEL_UPPER,
    random_barriers,
    random_safe_state,
    run_closed_loop,
)
from robo.safety.problems import random_qp
from robo.safety.qp import CvxpyQP, EnumerationQP, FastQP

HELP = ("CBF safety filter: time per solve for cvxpy, the fast path, the batched torch path and the "
        "emitted C (host, and instructions on the emulated Cortex-M4F), agreement with cvxpy on random "
        "QPs, and a closed-loop safety run. Example: robo bench safety   (quick look: --quick)")
ROWS = 8
NEIGHBOURS = 3          # separation slots in the "with neighbours" variants
MCU_INSTRUCTIONS = 10_000  # target per solve on the Cortex-M4F, 3 inputs and up to 8 barrier rows
GAINS = {"alpha1": 2.0, "alpha2": 2.0}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--problems", type=int, default=10_000,
                        help="random QPs (3 inputs, 8 barrier rows) compared against cvxpy (default 10000)")
    parser.add_argument("--steps", type=int, default=10_000, help="closed-loop steps (default 10000)")
    parser.add_argument("--envs", type=int, default=4096, help="environments for the batched path")
    parser.add_argument("--device", default="cpu", help="torch device of the batched path (cpu, cuda)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads for the batched path (default 1: on a shared machine more "
                             "threads contend and run slower)")
    parser.add_argument("--mcu-cases", type=int, default=500,
                        help="filter calls replayed on the emulated Cortex-M4F (default 500)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="1000 problems, 2000 steps: a smoke run")


def _timed(fn, items) -> np.ndarray:
    times = np.empty(len(items))
    for i, item in enumerate(items):
        t = time.perf_counter()
        fn(*item)
        times[i] = time.perf_counter() - t
    return times


def _agreement(problems: list, progress: bool) -> dict[str, Any]:
    ref, fast, enum = CvxpyQP(ROWS), FastQP(ROWS), EnumerationQP(ROWS)
    ref.solve(*problems[0])  # the first solve canonicalises; not part of the per-solve time
    out: dict[str, Any] = {}
    results = {}
    for name, solver in (("cvxpy", ref), ("fast", fast), ("enumeration", enum)):
        sols, times = [], np.empty(len(problems))
        for i, prob in enumerate(tqdm(problems, desc=f"QP {name}", disable=not progress, leave=False)):
            t = time.perf_counter()
            sols.append(solver.solve(*prob))
            times[i] = time.perf_counter() - t
        results[name] = sols
        out[name] = {"median_us": float(np.median(times) * 1e6),
                     "p99_us": float(np.percentile(times, 99) * 1e6),
                     "solves_per_s": float(1.0 / np.mean(times))}
    for name in ("fast", "enumeration"):
        worst, mismatched, compared = 0.0, 0, 0
        for a, b in zip(results["cvxpy"], results[name], strict=True):
            if a.status == "solver_failed":
                continue  # counted below: the reference itself gave no answer
            if a.status != b.status:
                mismatched += 1
            elif a.ok:
                compared += 1
                worst = max(worst, float(np.max(np.abs(a.u - b.u))))
        out[name].update({"max_abs_diff_vs_cvxpy": worst, "status_mismatches": mismatched,
                          "optimal_compared": compared})
    out["problems"] = len(problems)
    out["cvxpy_solver_failures"] = sum(s.status == "solver_failed" for s in results["cvxpy"])
    out["infeasible"] = sum(not s.ok for s in results["cvxpy"])
    return out


def _with_neighbours(bs: BarrierSet) -> BarrierSet:
    return BarrierSet(spheres=bs.spheres, cylinders=bs.cylinders, geofence=bs.geofence,
                      separation=Separation(0.5, NEIGHBOURS))


def _filter_calls(rng: np.random.Generator, n: int) -> tuple[dict[str, Any], list]:
    """Whole filter calls (barrier rows + QP + checks) on states from the closed-loop scene distribution."""
    bs = random_barriers(rng, spheres=1, cylinders=1)  # 8 barrier rows: 2 obstacles + 6 fence planes
    calls = []
    for _ in range(n):
        x = random_safe_state(rng, bs, GAINS["alpha1"])
        calls.append((x, rng.normal(size=3) * 8.0))
    out = {}
    for backend in ("cvxpy", "fast"):
        f = SafetyFilter(bs, lower=ACCEL_LOWER, upper=ACCEL_UPPER, backend=backend, **GAINS)
        f(*calls[0])
        times = _timed(f, calls)
        out[backend] = {"median_us": float(np.median(times) * 1e6), "calls_per_s": float(1 / np.mean(times)),
                        "p99_us": float(np.percentile(times, 99) * 1e6), **f.stats.as_dict()}
    # The same with 3 neighbours near the vehicle (11 barrier rows).
    bsn = _with_neighbours(bs)
    f = SafetyFilter(bsn, lower=ACCEL_LOWER, upper=ACCEL_UPPER, **GAINS)
    nb_calls = [(x, u, np.concatenate([x[:3] + rng.normal(size=(NEIGHBOURS, 3)),
                                       rng.normal(size=(NEIGHBOURS, 3))], axis=1)) for x, u in calls]
    times = _timed(f, nb_calls)
    out["fast_3_neighbours"] = {"median_us": float(np.median(times) * 1e6),
                                "calls_per_s": float(1 / np.mean(times)), **f.stats.as_dict()}
    return out, [bs, calls]


def _batched(bs, calls, envs: int, rng: np.random.Generator, device: str) -> dict[str, Any]:
    import torch

    from robo.safety.batched import BatchedSafetyFilter

    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    idx = rng.integers(len(calls), size=envs)
    x = torch.tensor(np.array([calls[i][0] for i in idx]), dtype=torch.float32, device=device)
    u = torch.tensor(np.array([calls[i][1] for i in idx]), dtype=torch.float32, device=device)
    nb = torch.cat([x[:, None, :3] + torch.randn(envs, NEIGHBOURS, 3, device=device),
                    torch.randn(envs, NEIGHBOURS, 3, device=device)], dim=2)
    out: dict[str, Any] = {"envs": envs, "dtype": "float32", "device": device,
                           "threads": torch.get_num_threads()}
    variants = (("obstacles_fence", bs, {}, "active_set"),
                ("with_3_neighbours", _with_neighbours(bs), {"neighbours": nb}, "active_set"),
                ("obstacles_fence_enumeration", bs, {}, "enumeration"))
    for name, barriers, kwargs, solver in variants:
        f = BatchedSafetyFilter(barriers, lower=ACCEL_LOWER, upper=ACCEL_UPPER, device=device,
                                solver=solver, **GAINS)
        _, status, _ = f(x, u, **kwargs)  # warm-up
        sync()
        reps = 5
        t = time.perf_counter()
        for _ in range(reps):
            f(x, u, **kwargs)
        sync()
        per_batch = (time.perf_counter() - t) / reps
        out[name] = {"solver": solver, "rows": barriers.num_rows, "ms_per_batch": per_batch * 1e3,
                     "us_per_env": per_batch / envs * 1e6, "env_solves_per_s": envs / per_batch,
                     "statuses": {str(k): int((status == k).sum()) for k in range(4)}}
    return out


def _c_host(bs, calls) -> dict[str, Any]:
    if shutil.which("gcc") is None:
        return {"available": False, "reason": "gcc not found"}
    with tempfile.TemporaryDirectory() as tmp:
        paths = write_c(emit_c(bs, lower=ACCEL_LOWER, upper=ACCEL_UPPER, **GAINS), tmp)
        lib = Path(tmp) / "libcbf.so"
        subprocess.run(["gcc", "-std=c99", "-O2", "-shared", "-fPIC", str(paths[1]), "-o", str(lib), "-lm"],
                       check=True)
        fn = ctypes.CDLL(str(lib)).robo_cbf_filter
        ptr = ctypes.POINTER(ctypes.c_float)
        fn.argtypes = [ptr, ptr, ptr]
        xs = np.array([c[0] for c in calls], np.float32)
        us = np.array([c[1] for c in calls], np.float32)
        out = np.zeros(3, np.float32)
        args = [(x.ctypes.data_as(ptr), u.ctypes.data_as(ptr), out.ctypes.data_as(ptr))
                for x, u in zip(xs, us, strict=True)]
        times = _timed(fn, args)
    return {"available": True, "median_us_incl_ctypes": float(np.median(times) * 1e6),
            "note": "host x86-64 gcc -O2, called through ctypes (about 1 us of the time is the call)"}


def _mcu(bs: BarrierSet, n_cases: int, rng: np.random.Generator) -> dict[str, Any]:
    """The emitted C on the emulated Cortex-M4F (QEMU mps2-an386, -icount): answers against the
    Python filter and instructions per call, for the 8-row set and with 3 neighbours (11 rows)."""
    missing = [t for t in ("arm-none-eabi-gcc", "qemu-system-arm", "make") if shutil.which(t) is None]
    if missing:
        reason = f"{', '.join(missing)} not found (bash .ci/setup installs them)"
        return {"available": False, "reason": reason}
    from robo.codegen.firmware import build, firmware_dir, run_qemu
    from robo.safety.mcu import assemble_app, compare, parse_run, random_cases

    out: dict[str, Any] = {"available": True, "board": "qemu-mps2-an386 (Cortex-M4F, -icount)",
                           "unit": "instructions per filter call (rows + QP), timing overhead removed"}
    settings = {"lower": ACCEL_LOWER, "upper": ACCEL_UPPER, **GAINS}
    for name, barriers in (("obstacles_fence", bs), ("with_3_neighbours", _with_neighbours(bs))):
        cases = random_cases(rng, barriers, n_cases)
        with tempfile.TemporaryDirectory() as tmp:
            app = assemble_app(Path(tmp) / "app", barriers, cases,
                               driver_dir=firmware_dir() / "apps" / "cbf", **settings)
            info = build(app, "qemu-mps2-an386")
            q = run_qemu(app, timeout=300)
        if q["exit_code"] != 0:
            raise RuntimeError(f"CBF firmware exited with {q['exit_code']}:\n{q['output'][-1000:]}")
        run = parse_run(q["output"], len(cases), q["ticks_per_instruction"])
        solved = run.codes >= -1  # bad-input calls return before any work
        by_code = {}
        for code, label in ((0, "pass"), (1, "modified"), (-1, "infeasible")):
            sel = run.instructions[run.codes == code]
            if len(sel):
                by_code[label] = {"calls": len(sel), "mean": float(sel.mean()), "max": float(sel.max())}
        fp = info["footprint"]
        out[name] = {
            "barrier_rows": barriers.num_rows, "calls": len(cases),
            "instructions": {k: round(v, 1) for k, v in _summary(run.instructions[solved]).items()},
            "by_outcome": by_code,
            **compare(run, SafetyFilter(barriers, **settings), cases),
            "flash_bytes": fp["flash_bytes"], "ram_bytes": fp["ram_bytes"],
            "max_stack_frame_bytes": fp["max_stack_frame_bytes"], "uses_heap": fp["uses_heap"],
        }
    return out


def _summary(instructions: np.ndarray) -> dict[str, float]:
    return {"mean": float(instructions.mean()), "median": float(np.median(instructions)),
            "p99": float(np.percentile(instructions, 99)), "max": float(instructions.max())}


def run(args: argparse.Namespace) -> dict[str, Any]:
    require(args, "problems", "steps", "envs", "threads", "mcu_cases")
    quick = (1000, 2000, 200)
    n_problems, n_steps, n_mcu = quick if args.quick else (args.problems, args.steps, args.mcu_cases)
    rng = np.random.default_rng(args.seed)
    problems = [random_qp(rng, ROWS, feasible=bool(rng.random() < 0.9)) for _ in range(n_problems)]
    qp = _agreement(problems, progress=True)
    calls, (bs, states) = _filter_calls(rng, 2000)
    import torch

    torch.set_num_threads(args.threads)
    batched = _batched(bs, states, args.envs, rng, args.device)
    c_host = _c_host(bs, states)
    mcu = _mcu(bs, n_mcu, rng)

    def make(barriers):
        return SafetyFilter(barriers, lower=ACCEL_LOWER, upper=ACCEL_UPPER, **GAINS)

    with tqdm(total=n_steps, desc="closed loop", leave=False) as bar:
        loop = run_closed_loop(make, steps=n_steps, seed=args.seed, alpha1=GAINS["alpha1"],
                               progress=bar.update)

    ref_us = qp["cvxpy"]["median_us"]
    bo, bn, be = (batched[k] for k in ("obstacles_fence", "with_3_neighbours", "obstacles_fence_enumeration"))
    rows = [
        ("QP cvxpy (Clarabel, DPP)", qp["cvxpy"]["median_us"], ""),
        ("QP fast (dual active set, plain Python)", qp["fast"]["median_us"],
         f"max |du| {qp['fast']['max_abs_diff_vs_cvxpy']:.1e}"),
        ("QP enumeration (numpy)", qp["enumeration"]["median_us"],
         f"max |du| {qp['enumeration']['max_abs_diff_vs_cvxpy']:.1e}"),
        ("filter call cvxpy (rows + QP)", calls["cvxpy"]["median_us"], ""),
        ("filter call fast (rows + QP)", calls["fast"]["median_us"],
         f"{calls['fast']['calls_per_s']:.0f} calls/s"),
        ("filter call fast, 3 neighbours (11 rows)", calls["fast_3_neighbours"]["median_us"],
         f"{calls['fast_3_neighbours']['calls_per_s']:.0f} calls/s"),
        (f"batched torch {batched['device']}, {args.envs} envs (per env)", bo["us_per_env"],
         f"{bo['ms_per_batch']:.1f} ms per batch"),
        (f"batched, {args.envs} envs, 3 neighbours (per env)", bn["us_per_env"],
         f"{bn['ms_per_batch']:.1f} ms per batch"),
        (f"batched, {args.envs} envs, enumeration solver", be["us_per_env"],
         f"{be['ms_per_batch']:.1f} ms per batch"),
    ]
    if c_host["available"]:
        rows.append(("emitted C, host (per call)", c_host["median_us_incl_ctypes"], "float32"))
    print(f"\nCBF filter, 3 inputs, {ROWS} barrier rows + input bounds; {n_problems} random QPs "
          f"({qp['infeasible']} infeasible)")
    print(f"{'path':46s} {'median us':>10s} {'x cvxpy':>8s}  note")
    for name, us, note in rows:
        print(f"{name:46s} {us:10.1f} {ref_us / us:8.1f}  {note}")
    print(f"status mismatches vs cvxpy: fast {qp['fast']['status_mismatches']}, "
          f"enumeration {qp['enumeration']['status_mismatches']}; "
          f"cvxpy solver failures (no reference answer): {qp['cvxpy_solver_failures']}")
    if mcu["available"]:
        for name in ("obstacles_fence", "with_3_neighbours"):
            m = mcu[name]
            ins = m["instructions"]
            print(f"Cortex-M4F, {m['barrier_rows']} barrier rows, {m['calls']} calls: instructions per call "
                  f"mean {ins['mean']:.0f}, median {ins['median']:.0f}, p99 {ins['p99']:.0f}, "
                  f"max {ins['max']:.0f}; status mismatches vs Python {m['status_mismatches']}, "
                  f"max |du| {m['max_abs_diff_vs_python']:.1e}; flash {m['flash_bytes']} B, "
                  f"heap {'yes' if m['uses_heap'] else 'no'}")
    else:
        print(f"Cortex-M4F: not measured ({mcu['reason']})")
    print(f"closed loop: {loop.steps} steps, min barrier {loop.min_barrier:.4g} m (target >= -1e-6), "
          f"{loop.interventions} interventions, {loop.faults} faults")
    targets = {
        "cvxpy_median_ms_le_3": qp["cvxpy"]["median_us"] <= 3000,
        "fast_filter_calls_per_s_ge_10000": calls["fast"]["calls_per_s"] >= 10_000,
        "fast_within_1e-6": (qp["fast"]["max_abs_diff_vs_cvxpy"] <= 1e-6
                             and qp["fast"]["status_mismatches"] == 0),
        "closed_loop_min_barrier_ge_-1e-6": loop.min_barrier >= -1e-6,
    }
    if mcu["available"]:
        m = mcu["obstacles_fence"]
        targets["mcu_max_instructions_le_10000"] = m["instructions"]["max"] <= MCU_INSTRUCTIONS
        targets["mcu_matches_python"] = (m["status_mismatches"] == 0
                                         and mcu["with_3_neighbours"]["status_mismatches"] == 0)
    print("targets: " + ", ".join(f"{k} {'met' if v else 'MISSED'}" for k, v in targets.items()))
    return {"qp": qp, "filter_call": calls, "batched": batched, "c_host": c_host, "mcu": mcu,
            "closed_loop": loop.as_dict(), "targets": targets}

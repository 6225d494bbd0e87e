"""``robo demo``: the whole stack on the embedded default, one stage after another, into one folder.

    policy    the committed RAPTOR student (or the quick config trained first, ``train=True``)
    export    ONNX + policy card, torch and ONNX Runtime compared over a closed-loop rollout
    fly       the exported model flies a figure-eight in the simulator behind the CBF safety filter,
              with an obstacle on the path (robo.tasks.fly)
    codegen   static C99 from the ONNX file (robo.codegen)
    firmware  cross-compiled for the Cortex-M4F, run in QEMU, compared with ONNX Runtime

Every stage only calls the building block that its own command (``robo export``, ``robo fly``,
``robo codegen``, ``robo firmware``) calls. A stage that fails ends the demo with a :class:`DemoError`
naming the stage; ``summary.json`` records what was measured up to there.

    from robo.tasks.demo import DemoConfig, run_demo, table
    summary = run_demo(DemoConfig(out="runs/demo"))
    print(table(summary))
"""

from __future__ import annotations

import contextlib
import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import robo
from robo.files import write_json
from robo.runtime import DEFAULT_POLICY

REPO = Path(robo.__file__).resolve().parent.parent
COMMITTED_STUDENT = Path(DEFAULT_POLICY).with_name("student.pt")
QUICK_CONFIG = REPO / "configs" / "raptor_quick.yaml"
MCU_HZ = 168e6  # the STM32F405's clock, to put an instruction count into time


@dataclass
class DemoConfig:
    out: str = "runs/demo"
    policy: str = ""                      # a student checkpoint; "" = the committed one (or the trained one)
    train: bool = False                   # train the RAPTOR pipeline first (out/train, resumable)
    train_config: str = str(QUICK_CONFIG)
    train_overrides: list[str] = field(default_factory=list)
    preset: str = "x500"
    duration: float = 10.0                # s of figure-eight
    # x, y, z, r (m): on the figure-eight, which passes x = 1, y = 0 at about 3.6 s
    obstacles: list[tuple[float, float, float, float]] = field(
        default_factory=lambda: [(1.0, 0.0, 1.0, 0.15)])
    firmware: bool = True                 # codegen + Cortex-M4F stages (need the ARM toolchain and QEMU)
    board: str = "qemu-mps2-an386"
    firmware_steps: int = 500             # observation steps the target runs and compares
    tol: float = 1e-5                     # max abs difference allowed in export and on the target

    def __post_init__(self) -> None:
        if self.train and self.policy:
            raise ValueError("--train and --policy exclude each other (training makes the policy)")
        if Path(self.policy).suffix == ".onnx":
            raise ValueError(f"--policy {self.policy}: the demo exports a student checkpoint (.pt, "
                             "robo.nets.policy format) itself; fly an .onnx with `robo fly --policy`")
        if self.policy and Path(self.policy).is_dir():
            raise ValueError(f"--policy {self.policy} is a folder; pass a student checkpoint (.pt)")
        if not math.isfinite(self.duration) or self.duration <= 0:
            raise ValueError(f"duration must be > 0 s, got {self.duration}")
        if self.firmware_steps < 4:
            raise ValueError(f"firmware steps must be >= 4, got {self.firmware_steps}")


class DemoError(RuntimeError):
    """A stage failed: the message names the stage and its cause in one line."""

    def __init__(self, stage: str, cause: BaseException | str):
        detail = str(cause).strip() or type(cause).__name__
        self.stage, self.detail = stage, detail
        first = detail.splitlines()[0]
        more = " (more in summary.json)" if "\n" in detail else ""
        super().__init__(f"demo stage '{stage}' failed: {first}{more}")


@dataclass
class StageResult:
    stage: str
    seconds: float
    rows: list[tuple[str, str]]           # (what was measured, value) for the table
    measured: dict[str, Any]              # the raw numbers, for summary.json


Stage = Callable[[], tuple[list[tuple[str, str]], dict[str, Any]]]


def run_demo(cfg: DemoConfig, log: Callable[[str], None] = print,
             bar: Callable[[str, int], Any] | None = None) -> dict[str, Any]:
    """Run every stage of ``cfg``; returns the summary (also written to ``out/summary.json``).

    ``bar(description, total)`` makes a progress bar (a context manager with ``update(n)``, e.g. tqdm)
    for the long stages: the flight and the training.
    """
    if cfg.policy:
        from robo.nets.policy import load_policy

        load_policy(cfg.policy)  # a bad --policy is bad input: refused before the output folder exists
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    ctx: dict[str, Any] = {}
    stages: list[tuple[str, str, Stage]] = []
    if cfg.train:
        stages.append(("train", f"RAPTOR pipeline, {Path(cfg.train_config).name} -> {out / 'train'}",
                       lambda: _train(cfg, out, ctx, log, bar)))
    stages += [
        ("policy", "the student checkpoint", lambda: _policy(cfg, ctx)),
        ("export", f"ONNX + card -> {out / 'policy.onnx'}", lambda: _export(cfg, out, ctx)),
        ("fly", f"{cfg.preset}, {cfg.duration:g} s figure-eight, safety filter on, obstacles "
                + (", ".join(f"({x:g}, {y:g}, {z:g}) r {r:g} m" for x, y, z, r in cfg.obstacles) or "none"),
         lambda: _fly(cfg, out, ctx, bar)),
    ]
    if cfg.firmware:
        stages += [
            ("codegen", f"static C99 -> {out / 'firmware'}", lambda: _codegen(out, ctx)),
            ("firmware build", f"arm-none-eabi-gcc for {cfg.board}", lambda: _build(cfg, out)),
            ("firmware run", f"QEMU {cfg.board}, {cfg.firmware_steps} steps vs ONNX Runtime",
             lambda: _run(cfg, out)),
        ]
    summary: dict[str, Any] = {"ok": False, "config": asdict(cfg), "stages": [], "outputs": {}}
    started = time.perf_counter()
    try:
        for i, (name, what, fn) in enumerate(stages, 1):
            log(f"[{i}/{len(stages)}] {name}: {what}")
            tic = time.perf_counter()
            try:
                rows, measured = fn()
            except KeyboardInterrupt:
                raise
            except Exception as exc:  # any cause, one line naming the stage
                summary["failed_stage"] = name
                raise DemoError(name, exc) from exc
            result = StageResult(name, time.perf_counter() - tic, rows, measured)
            summary["stages"].append(asdict(result))
            log(f"      done in {result.seconds:.1f} s")
        summary["ok"] = True
    except DemoError as exc:
        summary["error"] = exc.detail
        raise
    finally:
        summary["total_seconds"] = time.perf_counter() - started
        summary["outputs"] = {k: str(v) for k, v in ctx.items() if k.endswith("_path")}
        write_json(out / "summary.json", summary)
    return summary


# --- stages ------------------------------------------------------------------------------------


def _train(cfg: DemoConfig, out: Path, ctx: dict[str, Any], log: Callable[[str], None],
           bar: Callable[[str, int], Any] | None) -> tuple[list, dict]:
    from robo.config import load_config
    from robo.tasks.raptor.pipeline import RaptorConfig, train_raptor

    if not Path(cfg.train_config).is_file():
        raise OSError(f"training config not found: {cfg.train_config}")
    config = load_config(RaptorConfig, cfg.train_config, cfg.train_overrides)
    run = out / "train"
    # A demo run that was interrupted continues where it stopped (every pipeline stage resumes).
    resume = (run / "config.yaml").is_file()
    train_raptor(config, run, resume=resume, log=log, bar=bar)  # its stages log and show their own bars
    teachers = json.loads((run / "teachers" / "metrics.json").read_text())
    best = json.loads((run / "student" / "metrics.json").read_text())["best"]
    ctx["checkpoint_path"] = run / "student" / "student_best.pt"
    return ([("run folder", str(run) + (" (resumed)" if resume else "")),
             ("teachers accepted", f"{teachers['accepted']} of {teachers['teachers']}"),
             ("best student epoch, held-out success", f"{best['epoch']}, {best['success_rate']:.0%}")],
            {"run": str(run), "resumed": resume, "teachers_accepted": teachers["accepted"],
             "teachers": teachers["teachers"], "best_epoch": best["epoch"],
             "best_success_rate": best["success_rate"]})


def _policy(cfg: DemoConfig, ctx: dict[str, Any]) -> tuple[list, dict]:
    from robo.nets.policy import load_policy

    ckpt = Path(ctx.get("checkpoint_path") or cfg.policy or COMMITTED_STUDENT)
    net, meta = load_policy(ckpt)
    ctx["checkpoint_path"] = ckpt
    params = sum(p.numel() for p in net.parameters())
    arch = net.arch
    layers = (f"{arch['obs_dim']}->{arch.get('embed', '?')} ReLU, {arch.get('cell', '').upper()} "
              f"{arch.get('hidden', '?')}, ->{arch['act_dim']}" if arch.get("kind") == "recurrent"
              else f"{arch['obs_dim']}->{arch['act_dim']} {arch.get('kind', '')}")
    holdout = (meta.get("run") or {}).get("holdout") or {}
    rows = [("checkpoint", _short(ckpt) + (" (committed)" if _is_committed(ckpt) else "")),
            ("network, parameters", f"{layers}; {params:,}")]
    if "success_rate" in holdout:
        rows.append(("held-out success at training", f"{holdout['success_rate']:.0%} of "
                     f"{holdout.get('episodes', '?')} quadrotors"))
    return rows, {"checkpoint": str(ckpt), "parameters": params, "arch": arch,
                  "holdout_success_rate": holdout.get("success_rate")}


def _export(cfg: DemoConfig, out: Path, ctx: dict[str, Any]) -> tuple[list, dict]:
    from robo.export.card import load_card
    from robo.export.onnx_export import export_checkpoint

    onnx_path = out / "policy.onnx"
    card = export_checkpoint(ctx["checkpoint_path"], onnx_path, steps=500, tol=cfg.tol)
    ctx["onnx_path"] = onnx_path
    eq = card["export"]["equivalence"]
    digest = card["onnx"]["sha256"]
    same = None
    if _is_committed(ctx["checkpoint_path"]):
        same = load_card(DEFAULT_POLICY)["onnx"]["sha256"] == digest
    note = {True: " (= committed policy.onnx)", False: " (differs from committed policy.onnx)",
            None: ""}[same]
    return ([(f"torch vs ONNX Runtime, {eq['steps']} steps",
              f"max abs {eq['max_abs_error']:.2g} (limit {cfg.tol:g})"),
             ("model sha256", digest[:12] + note)],
            {"onnx": str(onnx_path), "max_abs_error": eq["max_abs_error"], "steps": eq["steps"],
             "sha256": digest, "same_as_committed": same})


def _fly(cfg: DemoConfig, out: Path, ctx: dict[str, Any],
         bar: Callable[[str, int], Any] | None) -> tuple[list, dict]:
    from robo.config import dump_yaml
    from robo.export.card import load_card
    from robo.runtime import TrajectoryConfig
    from robo.tasks.fly import FlyConfig, fly, write_flight

    fcfg = FlyConfig(policy=str(ctx["onnx_path"]), preset=cfg.preset, duration=cfg.duration,
                     trajectory=TrajectoryConfig(kind="figure8"), obstacles=list(cfg.obstacles), filter=True)
    steps = round(cfg.duration * load_card(ctx["onnx_path"])["control_rate_hz"])  # fly() steps at this rate
    with (bar("flying", steps) if bar else contextlib.nullcontext()) as b:
        result = fly(fcfg, b.update if b is not None else None)
    folder = write_flight(result, out / "flight")
    dump_yaml(fcfg, folder / "config.yaml")
    ctx["flight_path"] = folder
    m = result["metrics"]
    if not m["completed"]:
        raise RuntimeError(f"the {cfg.preset} did not complete the flight: {m['crash']}")
    if m["collision"]:
        raise RuntimeError(f"collision: {-m['min_obstacle_clearance_m']:.3f} m inside an obstacle")
    fs = m["filter_stats"]
    clearance = m["min_obstacle_clearance_m"]
    rows = [("tracking RMSE", f"{m['tracking_rmse_m']:.3f} m (max {m['max_tracking_error_m']:.2f} m)")]
    if clearance is not None:
        rows.append(("min obstacle clearance", f"{clearance:.3f} m, no collision"))
    rows += [("filter interventions", f"{fs['interventions']} of {fs['calls']} steps, {fs['faults']} faults"),
             ("filter + policy step, p99", f"{m['loop_latency_us']['p99']:.0f} us")]
    return rows, {"folder": str(folder), **{k: m[k] for k in (
        "duration_s", "tracking_rmse_m", "max_tracking_error_m", "min_obstacle_clearance_m", "collision",
        "filter_stats", "loop_latency_us")}}


def _codegen(out: Path, ctx: dict[str, Any]) -> tuple[list, dict]:
    from robo.codegen.c_emitter import generate_from_file

    folder = out / "firmware"
    m = generate_from_file(ctx["onnx_path"], folder, name="policy")
    ctx["firmware_path"] = folder
    return ([("C module", f"{len(m['sources']) + 1} files, arena {m['arena_floats']} floats"),
             ("ONNX ops", ", ".join(m["ops"]))],
            {"folder": str(folder), "arena_floats": m["arena_floats"], "ops": m["ops"]})


def _build(cfg: DemoConfig, out: Path) -> tuple[list, dict]:
    from robo.codegen.firmware import build

    info = build(out / "firmware", cfg.board, steps=cfg.firmware_steps, seed=0)
    fp = info["footprint"]
    heap = "uses " + ", ".join(fp["heap_symbols"]) if fp["uses_heap"] else "none"
    return ([("policy flash / RAM", f"{fp['flash_bytes']:,} B / {fp['ram_bytes']:,} B, heap {heap}")],
            {"elf": info["elf"], "footprint": fp, "image": info["image"]})


def _run(cfg: DemoConfig, out: Path) -> tuple[list, dict]:
    from robo.codegen.firmware import run_qemu
    from robo.codegen.verify import check_policy_run  # the same check `robo firmware run` makes

    folder = out / "firmware"
    result = check_policy_run(folder, run_qemu(folder, cfg.board, timeout=120.0), cfg.tol)
    n = result["build"]["steps"]
    instructions = result.get("instructions_per_step")
    rows = [("self-test (golden sequence)", f"passed, max abs {result['selftest_max_abs_error']:.2g}"),
            (f"vs ONNX Runtime, {n} steps", f"max abs {result['max_abs_error_vs_onnxruntime']:.2g} "
             f"(limit {cfg.tol:g}), NaN fallback matches")]
    if instructions is not None:
        at_mcu = instructions / MCU_HZ * 1e6
        rows.append(("instructions per inference",
                     f"{instructions:,.0f} (~{at_mcu:.0f} us at 168 MHz, 1 instr/cycle)"))
    return rows, {"steps": n, "max_abs_error_vs_onnxruntime": result["max_abs_error_vs_onnxruntime"],
                  "selftest_max_abs_error": result["selftest_max_abs_error"],
                  "status_matches": result["status_matches"], "instructions_per_step": instructions,
                  "exit_code": result["exit_code"]}


# --- the table ---------------------------------------------------------------------------------


def table(summary: dict[str, Any]) -> str:
    """One table: stage, what was measured, value, seconds the stage took."""
    lines = [("stage", "measured", "value", "time")]
    for s in summary["stages"]:
        for i, (what, value) in enumerate(s["rows"]):
            first = i == 0
            lines.append((s["stage"] if first else "", what, value, f"{s['seconds']:.1f} s" if first else ""))
    lines.append(("total", "", "", f"{summary['total_seconds']:.1f} s"))
    widths = [max(len(row[c]) for row in lines) for c in range(4)]
    fmt = [row[0].ljust(widths[0]) + "  " + row[1].ljust(widths[1]) + "  " + row[2].ljust(widths[2]) + "  "
           + row[3].rjust(widths[3]) for row in lines]
    fmt = [line.rstrip() for line in fmt]
    rule = "-" * len(fmt[0])
    return "\n".join([fmt[0], rule, *fmt[1:-1], rule, fmt[-1]])


def _is_committed(path: Path) -> bool:
    return Path(path).resolve() == COMMITTED_STUDENT.resolve()


def _short(path: Path) -> str:
    """A path relative to the working directory when it lies below it (shorter in the table)."""
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)

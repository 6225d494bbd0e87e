"""RAPTOR stages 2 and 3: distil the teachers into one recurrent student, and the whole pipeline.

The student (Linear(22->16)+ReLU -> GRU(16) -> Linear(16->4)) learns by on-policy DAgger
(:mod:`robo.rl.distill`): every epoch, each teacher's quadrotor is flown for ``episodes_per_teacher``
full episodes, by the teachers during the first ``teacher_epochs`` epochs and by the student afterwards,
and every state is labelled with that teacher's deterministic action. Before that, each teacher's
steady-state position offset (its mean position error over steps 250-500 of hover episodes) is measured
and subtracted from the student's position input, so the student learns to hover on target rather than
to copy each teacher's offset. Model selection: every ``eval_interval`` epochs the student flies
recovery episodes on quadrotors that no teacher was trained on; the best one is kept.

Student run folder::

    config.yaml, offsets.json       resolved config; per-teacher steady-state offsets
    checkpoint.pt                   everything --resume needs (written atomically every epoch)
    student_best.pt, student_last.pt   policies (robo.nets.policy format)
    history.csv, learning_curves.png, metrics.json
    tensorboard/student/            TensorBoard scalars per epoch (loss, alive fraction, held-out metrics)

Pipeline folder (``robo train raptor``): fleet.json, teachers/ (stage 1), student/ (stage 2),
eval/ (metrics, plots), policy.onnx + policy.json (the exported best student),
tensorboard/eval/ (the evaluation's metrics as TensorBoard scalars; the stages log under their folders).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from robo.config import check_device
from robo.files import save_torch, write_csv, write_json
from robo.nets.policy import raptor_student, save_policy
from robo.registry import silent_bar
from robo.rl.distill import collect, fit
from robo.run_dir import RunDir
from robo.tasks.raptor import evaluation
from robo.tasks.raptor.teachers import (
    RaptorTeachersConfig,
    TeacherSet,
    load_teacher_runs,
    resumed_steps,
    train_teachers,
)
from sim.quadrotor import (
    QuadrotorEnv,
    QuadrotorEnvConfig,
    QuadrotorParams,
    load_fleet,
    sample_fleet,
    save_fleet,
)
from sim.quadrotor.observation import LAYOUTS, STUDENT, quadrotor_student_meta
from sim.quadrotor.sampler import THRUST_CURVES, coverage_order


@dataclass
class StudentConfig:
    # Which teachers of the run are distilled: "accepted" (those that met the acceptance), or "all" (every
    # teacher's judged best snapshot, as the authors distil all theirs, keeping each one's best checkpoint).
    teachers: str = "accepted"
    epochs: int = 1000
    teacher_epochs: int = 10  # the teachers fly the first epochs, the student afterwards
    episodes_per_teacher: int = 10
    batch_size: int = 64  # sequences (whole episodes) per gradient step
    passes: int = 1  # passes over each epoch's data (the paper's epochs hold 10,000 episodes; small
    # fleets need several passes to take as many gradient steps per rollout)
    lr: float = 1e-4
    # Cosine decay from lr (epoch 1) to lr_final (the last epoch): the last epochs then move the weights
    # little, so the held-out choice is not between epochs that swing. None: lr throughout.
    lr_final: float | None = None
    grad_clip: float | None = None
    offset_episodes: int = 10  # hover episodes per teacher for its steady-state offset
    holdout: int = 64  # unseen sampled quadrotors for model selection
    holdout_seed: int = 1_000_003
    # Where those come from: "paper" (the paper's sampler, the distribution robo eval raptor reports) or
    # "teachers" (the non-teacher vehicles of the teacher runs' fleets, evenly over the runs: a fleet of
    # other thrust curves then counts in the choice of the best epoch).
    holdout_from: str = "paper"
    eval_interval: int = 10
    seed: int = 0
    device: str = "cpu"
    threads: int = 0
    env: QuadrotorEnvConfig = field(default_factory=lambda: QuadrotorEnvConfig(
        observation="teacher", auto_reset=False))

    def __post_init__(self) -> None:
        for name in ("epochs", "episodes_per_teacher", "batch_size", "passes", "eval_interval", "holdout"):
            if getattr(self, name) <= 0:
                raise ValueError(f"student.{name} must be > 0, got {getattr(self, name)}")
        if self.teacher_epochs < 0 or self.offset_episodes < 0:
            raise ValueError("student.teacher_epochs and student.offset_episodes must be >= 0")
        if self.lr <= 0:
            raise ValueError(f"student.lr must be > 0, got {self.lr}")
        if self.lr_final is not None and not 0 < self.lr_final <= self.lr:
            raise ValueError(f"student.lr_final must be in (0, lr = {self.lr:g}], got {self.lr_final}")
        check_device(self.device, "student.device")
        if self.holdout_from not in ("paper", "teachers"):
            raise ValueError(f"student.holdout_from must be 'paper' or 'teachers', got {self.holdout_from!r}")
        if self.teachers not in ("accepted", "all"):
            raise ValueError(f"student.teachers must be 'accepted' or 'all', got {self.teachers!r}")
        if self.env.observation == "student" or self.env.auto_reset:
            raise ValueError("student.env must have a teacher observation and auto_reset: false (labels "
                             "need the teachers' observation, which the run takes from its teachers; a row "
                             "is one episode)")

    def epoch_lr(self, epoch: int) -> float:
        """The learning rate of ``epoch`` (1-based): ``lr``, or its cosine decay to ``lr_final``. A
        function of the epoch alone, so a resumed run follows the same schedule (more ``epochs`` on a
        resume stretch what is left of it)."""
        if self.lr_final is None or self.epochs == 1:
            return self.lr
        t = min(max((epoch - 1) / (self.epochs - 1), 0.0), 1.0)
        return self.lr_final + 0.5 * (self.lr - self.lr_final) * (1.0 + math.cos(math.pi * t))


FLEET_ORDERS = ("sampled", "coverage")


@dataclass
class FleetConfig:
    size: int = 1000
    seed: int = 0
    # The teachers are the first vehicles of the fleet: "coverage" reorders it so that those spread
    # over mass and thrust-to-weight (sim.quadrotor.sampler.coverage_order), which a small teacher
    # count needs; "sampled" keeps the order of the draw, as the paper does with all 1000.
    order: str = "sampled"
    # "crazyflie": the paper's rescaled Crazyflie thrust curves; "varied": blended toward linear curves,
    # so that teachers also hover at the low throttles of vehicles like the arpl (sim.quadrotor.sampler).
    thrust_curves: str = "crazyflie"

    def __post_init__(self) -> None:
        if self.size <= 0:
            raise ValueError(f"fleet.size must be > 0, got {self.size}")
        if self.order not in FLEET_ORDERS:
            raise ValueError(f"fleet.order must be one of {', '.join(FLEET_ORDERS)}, got {self.order!r}")
        if self.thrust_curves not in THRUST_CURVES:
            raise ValueError(f"fleet.thrust_curves must be one of {', '.join(THRUST_CURVES)}, "
                             f"got {self.thrust_curves!r}")

    def sample(self) -> list[QuadrotorParams]:
        fleet = sample_fleet(self.size, self.seed, thrust_curves=self.thrust_curves)
        return coverage_order(fleet) if self.order == "coverage" else fleet


@dataclass
class RaptorConfig:
    fleet: FleetConfig = field(default_factory=FleetConfig)
    teachers: RaptorTeachersConfig = field(default_factory=RaptorTeachersConfig)
    student: StudentConfig = field(default_factory=StudentConfig)
    eval: evaluation.EvalConfig = field(default_factory=evaluation.EvalConfig)


# ---------------------------------------------------------------------------------------------
# Stage 2: the student
# ---------------------------------------------------------------------------------------------


def steady_state_offsets(teacher: Callable, params, config: StudentConfig, seed: int) -> torch.Tensor:
    """Each teacher's mean position error [K, 3] over steps 250-500 of hover episodes it flies itself."""
    k = len(params)
    if config.offset_episodes == 0:
        return torch.zeros(k, 3)
    env_cfg = replace(config.env, reference="hold")
    env = QuadrotorEnv(params.repeat(config.offset_episodes), env_cfg, seed=seed)
    data = collect(env, env_cfg.episode_steps, teacher, lambda obs: obs[:, STUDENT.slice("p_err")], None)
    start = env_cfg.episode_steps // 2
    mask = data.mask[:, start:, None]
    per_row = (data.inputs[:, start:] * mask).sum(1)
    per_row = per_row.view(k, config.offset_episodes, 3).sum(1)
    counts = mask.sum(1).view(k, config.offset_episodes).sum(1).clamp(min=1)
    return per_row / counts[:, None]


def train_student(config: StudentConfig, teacher_run: str | Path | Sequence[str | Path], out_dir: str | Path,
                  *, resume: bool = False, progress: Callable[[int], None] | None = None,
                  log: Callable[[str], None] = print,
                  status: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Distil the teachers of ``teacher_run`` (``config.teachers``; one run, or several joined) into a
    student in ``out_dir``."""
    out = Path(out_dir)
    runs = [Path(teacher_run)] if isinstance(teacher_run, str | Path) else [Path(r) for r in teacher_run]
    joined = load_teacher_runs(runs, accepted_only=config.teachers == "accepted")
    names, teachers, vehicles, digest = joined.names, joined.teachers, joined.vehicles, joined.digest
    # More epochs continue a run (its budget), like threads they do not change what was trained so far.
    RunDir.open(out, config, kind="raptor-student", resume=resume, may_change=("threads", "epochs"))
    # The labelling environments show the teachers the observation they were trained on.
    config = replace(config, env=replace(config.env, observation=teachers.layout))
    if config.threads:
        torch.set_num_threads(config.threads)
    k, per = len(vehicles), config.episodes_per_teacher

    def label(obs: torch.Tensor) -> torch.Tensor:  # env rows are teacher-major (any rows per teacher)
        return teachers.deterministic(obs.view(k, -1, obs.shape[-1])).reshape(obs.shape[0], -1)

    from sim.quadrotor import BatchedParams

    params = BatchedParams.stack(vehicles)
    offsets_file = out / "offsets.json"
    if offsets_file.is_file():
        offsets = torch.tensor(json.loads(offsets_file.read_text())["offsets"])
    else:
        offsets = steady_state_offsets(label, params, config, config.seed + 7)
        write_json(offsets_file, {"teachers": names, "offsets": offsets.tolist()})
    row_offsets = offsets.repeat_interleave(per, dim=0)

    def student_input(obs: torch.Tensor) -> torch.Tensor:
        x = obs[:, LAYOUTS[teachers.layout].part(STUDENT)].clone()
        x[:, STUDENT.slice("p_err")] -= row_offsets
        return x

    holdout = holdout_vehicles(config, joined)
    if {_physics(p) for p in holdout} & {_physics(p) for p in vehicles}:
        raise ValueError("held-out quadrotors include a teacher's quadrotor; change student.holdout_seed")
    eval_cfg = evaluation.EvalConfig(vehicles=0, presets=(), env=QuadrotorEnvConfig(
        observation="teacher", reference="hold", auto_reset=False))

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)  # the same config gives the same student, resumed or not
        student = raptor_student()
    optimizer = torch.optim.Adam(student.parameters(), lr=config.lr)
    generator = torch.Generator().manual_seed(config.seed)
    state = {"epoch": 0, "history": [], "best": None, "seconds": 0.0}
    checkpoint = out / "checkpoint.pt"
    if resume and checkpoint.is_file():
        saved = torch.load(checkpoint, map_location="cpu", weights_only=False)
        if saved["fleet_sha256"] != digest:
            raise ValueError(f"{checkpoint}: student checkpoint from another teacher fleet")
        student.load_state_dict(saved["student"])
        optimizer.load_state_dict(saved["optimizer"])
        generator.set_state(saved["generator"])
        state = saved["state"]
        log(f"student: resumed after epoch {state['epoch']}")
    if progress is not None and state["epoch"]:
        progress(state["epoch"])

    started = time.perf_counter() - state["seconds"]
    scalars = RunDir(out).scalars("student")
    for epoch in range(state["epoch"] + 1, config.epochs + 1):
        teacher_flies = epoch <= config.teacher_epochs
        env = QuadrotorEnv(params.repeat(per), config.env, seed=config.seed * 100_003 + epoch)
        data = collect(env, config.env.episode_steps, label, student_input,
                       None if teacher_flies else student)
        lr = config.epoch_lr(epoch)
        for group in optimizer.param_groups:
            group["lr"] = lr
        loss = sum(fit(student, optimizer, data, config.batch_size, generator, config.grad_clip)
                   for _ in range(config.passes)) / config.passes
        row: dict[str, Any] = {"epoch": epoch, "flown_by": "teachers" if teacher_flies else "student",
                               "loss": loss, "lr": lr,
                               "alive_fraction": float(data.mask.mean()),
                               "seconds": time.perf_counter() - started}
        if epoch % config.eval_interval == 0 or epoch == config.epochs:
            result = evaluation.recovery(evaluation.TorchStudent(student), holdout, eval_cfg,
                                          seed=config.holdout_seed)
            summary = evaluation.summarise_recovery(result)
            student.train()
            row.update(holdout_success=summary["success_rate"],
                       holdout_length=summary["mean_episode_length"],
                       holdout_final_error=summary["median_final_error_m"])
            score = (summary["success_rate"], summary["mean_episode_length"])
            if state["best"] is None or score > tuple(state["best"]["score"]):
                state["best"] = {"epoch": epoch, "score": list(score), **summary}
                save_policy(out / "student_best.pt", student, _meta(runs, digest, epoch, summary,
                                                                          out / "config.yaml"))
        state["history"].append(row)
        state["epoch"] = epoch
        state["seconds"] = time.perf_counter() - started
        save_policy(out / "student_last.pt", student,
                    _meta(runs, digest, epoch, None, out / "config.yaml"))
        save_torch({"student": student.state_dict(), "optimizer": optimizer.state_dict(),
                     "generator": generator.get_state(), "state": state, "fleet_sha256": digest},
                    checkpoint)
        _write_history(out / "history.csv", state["history"])
        scalars.add_all({k: v for k, v in row.items() if k not in ("epoch", "seconds")}, epoch, "student/")
        if status is not None:
            best = state["best"]
            status(f"loss {loss:.4f}, {row['flown_by']} fly"
                   + (f", best held-out success {best['success_rate']:.0%} (epoch {best['epoch']})"
                      if best else ""))
        if progress is not None:
            progress(1)

    scalars.close()
    metrics = {"teachers": len(names), "epochs": state["epoch"], "wall_seconds": state["seconds"],
               "best": state["best"], "final_loss": state["history"][-1]["loss"],
               "offsets_max_m": float(offsets.norm(dim=-1).max()) if len(offsets) else 0.0}
    write_json(out / "metrics.json", metrics)
    plot_history(out / "learning_curves.png", state["history"])
    return metrics


def holdout_vehicles(config: StudentConfig, joined: TeacherSet) -> list[QuadrotorParams]:
    """The student's held-out vehicles for picking its best epoch (``config.holdout_from``)."""
    if config.holdout_from == "paper":
        return sample_fleet(config.holdout, config.holdout_seed)
    taken = {_physics(p) for p in joined.vehicles}
    generator = torch.Generator().manual_seed(config.holdout_seed)
    chosen: list[QuadrotorParams] = []
    runs = joined.runs
    for i, (run, fleet) in enumerate(zip(runs, joined.fleets, strict=True)):
        pool = [p for p in fleet if _physics(p) not in taken]
        count = config.holdout // len(runs) + (i < config.holdout % len(runs))
        if count > len(pool):
            raise ValueError(f"student.holdout: {count} held-out vehicles wanted from {run}, whose fleet has "
                             f"{len(pool)} that are not teachers")
        chosen += [pool[j] for j in torch.randperm(len(pool), generator=generator)[:count].tolist()]
    return chosen


def _physics(params) -> str:
    return json.dumps({k: v for k, v in params.to_dict().items() if k != "name"}, sort_keys=True)


def _meta(runs: list[Path], digest: str, epoch: int, summary: dict | None,
          config_file: Path | None = None) -> dict[str, Any]:
    teacher_run: str | list[str] = str(runs[0]) if len(runs) == 1 else [str(r) for r in runs]
    run = {"task": "raptor", "epoch": epoch, "teacher_run": teacher_run, "fleet_sha256": digest}
    if summary is not None:
        run["holdout"] = summary
    return quadrotor_student_meta(run=run, config=str(config_file) if config_file else None)


def _write_history(path: Path, history: list[dict[str, Any]]) -> None:
    write_csv(path, history, ["epoch", "flown_by", "loss", "lr", "alive_fraction", "holdout_success",
                              "holdout_length", "holdout_final_error", "seconds"])


def plot_history(path: Path, history: list[dict[str, Any]]) -> Path:
    """Imitation loss and held-out success over epochs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from robo.files import save_figure

    fig, ax = plt.subplots(figsize=(7, 4))
    epochs = [r["epoch"] for r in history]
    ax.semilogy(epochs, [r["loss"] for r in history], color="tab:blue", label="imitation loss")
    ax.set_xlabel("epoch")
    ax.set_ylabel("imitation loss (MSE)", color="tab:blue")
    evals = [r for r in history if "holdout_success" in r]
    if evals:
        ax2 = ax.twinx()
        ax2.plot([r["epoch"] for r in evals], [r["holdout_success"] for r in evals], "o-", color="tab:green")
        ax2.set_ylabel("held-out success", color="tab:green")
        ax2.set_ylim(-0.02, 1.02)
    switch = next((r["epoch"] for r in history if r["flown_by"] == "student"), None)
    if switch is not None:
        ax.axvline(switch - 0.5, color="grey", ls=":", lw=1)
    ax.set_title("RAPTOR student distillation")
    fig.tight_layout()
    return save_figure(fig, path, dpi=100)


# ---------------------------------------------------------------------------------------------
# The whole pipeline
# ---------------------------------------------------------------------------------------------


def prepare_fleet(config: FleetConfig, path: Path) -> None:
    """Sample the fleet into ``path``, or check that the one there is what the config samples."""
    fleet = config.sample()
    if path.is_file():
        stored, _ = load_fleet(path)
        if [p.to_dict() for p in stored] != [p.to_dict() for p in fleet]:
            raise ValueError(f"{path} does not match the config's fleet (size {config.size}, seed "
                             f"{config.seed}, order {config.order}, thrust curves {config.thrust_curves}); "
                             f"start a new run folder")
        return
    save_fleet(fleet, path, meta={"seed": config.seed, "order": config.order,
                                  "thrust_curves": config.thrust_curves})


def train_raptor(config: RaptorConfig, run_dir: str | Path, *, resume: bool = False,
                 log: Callable[[str], None] = print,
                 bar: Callable[[str, int], Any] | None = None) -> dict[str, Any]:
    """Fleet -> teachers -> student -> evaluation -> ONNX export, each stage resumable."""
    # A changed config is refused before any stage runs: config.yaml keeps saying what trained the run.
    run = RunDir.open(run_dir, config, kind="raptor", resume=resume,
                      may_change=("teachers.threads", "student.threads")).path
    prepare_fleet(config.fleet, run / "fleet.json")

    teachers_dir = run / "teachers"
    if not (teachers_dir / "metrics.json").is_file():
        log("stage 1/4: teachers")
        total = -(-config.teachers.teachers // config.teachers.group_size) * config.teachers.train.steps
        resume_teachers = (teachers_dir / "fleet.json").is_file()
        # A resumed stage's bar starts where it stands, so its rate and ETA count this session's steps.
        done = resumed_steps(config.teachers, teachers_dir) if resume_teachers else 0
        with (bar or silent_bar)("teachers", total, initial=done) as b:
            train_teachers(config.teachers, run / "fleet.json", teachers_dir,
                           resume=resume_teachers, progress=b.update,
                           log=log, status=b.set_postfix_str)
    student_dir = run / "student"
    student_metrics = student_dir / "metrics.json"
    if not student_metrics.is_file():
        log("stage 2/4: student")
        with (bar or silent_bar)("student epochs", config.student.epochs) as b:
            train_student(config.student, teachers_dir, student_dir,
                          resume=(student_dir / "config.yaml").is_file(), progress=b.update,
                          log=log, status=b.set_postfix_str)
    eval_file = run / "eval" / "metrics.json"
    if eval_file.is_file():
        metrics = json.loads(eval_file.read_text())
    else:
        log("stage 3/4: evaluation")
        # What the student was taught: each teacher, deterministic, on its own quadrotor.
        teachers = evaluation.evaluate_teachers(teachers_dir, config.eval, config.eval.preset_episodes)
        write_json(run / "eval" / "teachers_eval.json", {"episodes": config.eval.preset_episodes,
                                                         "teachers": teachers})
        log(evaluation.teachers_table(teachers))
        controller = evaluation.load_controller(student_dir / "student_best.pt")
        result = evaluation.evaluate(controller, config.eval)
        write_eval(result, run / "eval", config.eval.figure8_periods, student_dir)
        metrics = result["metrics"]
        with RunDir(run).scalars("eval") as scalars:
            scalars.add_all(metrics, 0, "eval/")
    if not (run / "policy.json").is_file():
        log("stage 4/4: ONNX export")
        from robo.export.onnx_export import export_checkpoint

        export_checkpoint(student_dir / "student_best.pt", run / "policy.onnx")
    return metrics


def write_eval(result: dict[str, Any], out: Path, periods: tuple[float, ...],
               student_dir: Path | None = None) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "metrics.json", result["metrics"])
    written = [out / "metrics.json", *evaluation.plot(result, out, periods)]
    if student_dir is not None and (student_dir / "learning_curves.png").is_file():
        written.append(student_dir / "learning_curves.png")
    return written


"""The RAPTOR stages as ``robo train`` / ``robo eval`` run them: flags -> config -> stage -> report."""

from __future__ import annotations

import argparse
import time
from typing import Any

from robo.registry import Context


def teacher_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--fleet", required=True, metavar="FLEET.json", help="the quadrotor fleet file")
    p.add_argument("--teachers", type=int, default=None, metavar="N",
                   help="train the first N quadrotors of the fleet (default: the config's teachers)")
    p.add_argument("--device", choices=("cpu", "cuda"), default=None, help="default: the config's (cpu)")
    ray_address_argument(p)


def ray_address_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument("--ray-address", nargs="?", const="local", default=None, metavar="ADDR",
                   help="train the teacher groups as Ray tasks: on a new local Ray when no ADDR is given, "
                        "else on the cluster at ADDR (HOST:PORT, ray://HOST:PORT or auto), whose nodes "
                        "must all see the run folder (shared storage, same path); needs robo[ray]")


def student_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--teachers", required=True, nargs="+", metavar="RUN",
                   help="a finished raptor-teachers run folder (RUN/teachers of a raptor run); several "
                        "are joined into one teacher set, e.g. runs on fleets of other thrust curves")


def eval_arguments(p: argparse.ArgumentParser) -> None:
    who = p.add_mutually_exclusive_group(required=True)
    who.add_argument("--policy", metavar="P", help="student checkpoint (.pt) or exported policy (.onnx)")
    who.add_argument("--baseline", action="store_true", help="evaluate the geometric baseline controller")
    who.add_argument("--teachers", metavar="RUN", help="a finished raptor-teachers run: every teacher on its "
                     "own quadrotor, recovery episodes and figure-eights")
    p.add_argument("--episodes", type=int, default=None,
                   help="recovery episodes per teacher (--teachers only; default 100)")
    p.add_argument("--compare", action="append", default=[], metavar="P",
                   help="also fly P on the same episodes and print one table: 'released' (the authors' "
                        "policy, after robo import raptor-released), 'baseline', or a policy path "
                        "(repeatable); with --teachers, P flies the figure-eights on each teacher's "
                        "vehicle beside the teacher (is the student as good as what it imitates?)")


def stage_config(section: str, schema: type, path: str | None, overrides: list[str]) -> Any:
    """A stage's config (``schema``) from its own YAML, or from ``section`` of a pipeline YAML; the
    ``overrides`` name the stage's own keys either way."""
    from robo.config import load_config, read_yaml
    from robo.tasks.raptor.pipeline import RaptorConfig

    # isinstance: a teacher YAML has a "teachers" key too, the count
    if path is not None and isinstance(read_yaml(path).get(section), dict):
        return getattr(load_config(RaptorConfig, path, [f"{section}.{o}" for o in overrides]), section)
    return load_config(schema, path, overrides)


def student_config(path: str | None, overrides: list[str]) -> Any:
    """A student config from a student YAML, or from the student section of a pipeline YAML."""
    from robo.tasks.raptor.pipeline import StudentConfig

    return stage_config("student", StudentConfig, path, overrides)


def teachers_config(path: str | None, overrides: list[str]) -> Any:
    """A teacher config from a teacher YAML, or from the teachers section of a pipeline YAML."""
    from robo.tasks.raptor.teachers import RaptorTeachersConfig

    return stage_config("teachers", RaptorTeachersConfig, path, overrides)


def _check_cuda(device: str, key: str, ray_address: str | None = None) -> None:
    """Refuse a CUDA device this torch cannot see, before a run folder is written."""
    import torch

    # With Ray the workers need CUDA, not this driver; each task checks on its own node.
    if device.startswith("cuda") and ray_address is None and not torch.cuda.is_available():
        raise RuntimeError(f"{key} {device}: this torch build sees no CUDA device")


def train_teachers(config: Any, args: argparse.Namespace, ctx: Context) -> str:
    from robo.tasks.raptor.teachers import resumed_steps
    from robo.tasks.raptor.teachers import train_teachers as train

    if args.teachers is not None:
        config.teachers = _positive("--teachers", args.teachers)
    if args.device is not None:
        config.device = args.device
    if args.ray_address is not None:
        # Set directly, not as a --set override: YAML would read some addresses as other types.
        config.ray_address = args.ray_address
    _check_cuda(config.device, "--device", config.ray_address)

    groups = -(-config.teachers // config.group_size)
    # A resumed run's bar starts where the run stands, so its rate and ETA count only this session's steps.
    done = resumed_steps(config, ctx.out) if ctx.resume else 0
    with ctx.bar(f"{config.teachers} teachers, groups of {config.group_size}",
                 groups * config.train.steps, initial=done) as bar:
        metrics = train(config, args.fleet, ctx.out, resume=ctx.resume, progress=bar.update,
                        log=ctx.log, status=bar.set_postfix_str)
    return teachers_report(metrics, config, ctx)


def teachers_report(metrics: dict[str, Any], config: Any, ctx: Context) -> str:
    lines = [f"\n{metrics['accepted']}/{metrics['teachers']} teachers accepted "
             f"(threshold {metrics['acceptance']}); run folder {ctx.out}"]
    if metrics["rejected"]:
        lines.append(f"{'rejected':<14}{'steps':>10}{'mean length':>14}{'mean return':>14}{'episodes':>10}"
                     f"{'deterministic length':>22}{'best snapshot: step, success, final err':>42}")
        for r in metrics["rejected"]:
            # The deterministic check ran only when the training episodes met the threshold; the
            # judged snapshots only with train.select_interval.
            checked = f"{r['eval_length']:.1f}" if "eval_length" in r else "-"
            best = (f"{r['best_step']}, {r['best_success']:.0%}, {r['best_final_error']:.3f} m"
                    if r.get("best_final_error") is not None else "-")
            lines.append(f"{r['name']:<14}{r['steps']:>10}{r['mean_length']:>14.1f}"
                         f"{r['mean_return']:>14.1f}{r['episodes']:>10}{checked:>22}{best:>42}")
    per = metrics["core_minutes_per_accepted_teacher"]
    per = "n/a" if per is None else f"{per:.2f}"
    if config.ray_address:
        # The groups ran side by side: their seconds add up to training time, not to elapsed time.
        spent = (f"{metrics['wall_seconds']:.0f} s of training summed over groups, "
                 f"{metrics['threads']} thread(s) each")
    else:
        spent = f"wall {metrics['wall_seconds']:.0f} s on {metrics['threads']} thread(s)"
    lines.append(f"{spent}; core-minutes per accepted teacher: {per} (paper: 31)")
    return "\n".join(lines)


def train_student(config: Any, args: argparse.Namespace, ctx: Context) -> str:
    from robo.tasks.raptor.pipeline import train_student as train

    _check_cuda(config.device, "device")
    with ctx.bar("student", config.epochs) as bar:
        metrics = train(config, args.teachers, ctx.out, resume=ctx.resume, progress=bar.update,
                        log=ctx.log, status=bar.set_postfix_str)
    best = metrics["best"]
    best_path = ctx.out / "student_best.pt"
    return (f"student from {metrics['teachers']} teachers, {metrics['epochs']} epochs in "
            f"{metrics['wall_seconds']:.0f} s; best epoch {best['epoch']}: held-out success "
            f"{best['success_rate']:.0%}, mean episode length {best['mean_episode_length']:.0f}\n"
            f"policy: {best_path}  (robo eval raptor --policy {best_path})")


def train_pipeline(config: Any, args: argparse.Namespace, ctx: Context) -> str:
    from robo.tasks.raptor.evaluation import table
    from robo.tasks.raptor.pipeline import train_raptor

    if args.ray_address is not None:
        config.teachers.ray_address = args.ray_address
    _check_cuda(config.teachers.device, "teachers.device", config.teachers.ray_address)
    _check_cuda(config.student.device, "student.device")
    started = time.perf_counter()
    metrics = train_raptor(config, ctx.out, resume=ctx.resume, log=ctx.log, bar=ctx.bar)
    return (f"{table(metrics, config.eval.figure8_periods)}\n\nrun folder {ctx.out} "
            f"({time.perf_counter() - started:.0f} s); policy {ctx.out / 'policy.onnx'}")


def evaluate_policy(config: Any, args: argparse.Namespace, ctx: Context) -> str:
    from pathlib import Path

    from robo.files import write_json
    from robo.tasks.raptor.compare import comparison_table, resolve_controllers
    from robo.tasks.raptor.evaluation import (
        Baseline,
        evaluate,
        evaluate_teachers,
        load_controller,
        table,
        teachers_table,
    )
    from robo.tasks.raptor.pipeline import write_eval

    if args.episodes is not None and not args.teachers:
        raise ValueError("--episodes counts episodes per teacher with --teachers; a policy's episodes are "
                         "--set vehicles=N and --set preset_episodes=N")
    if args.teachers:
        label = "teacher"  # the teachers table's own column
    else:
        label = "baseline" if args.baseline else Path(args.policy).parent.name or args.policy
    others = resolve_controllers(args.compare, taken=(label,))  # a bad one fails before any flight
    if args.teachers:
        episodes = _positive("--episodes", 100 if args.episodes is None else args.episodes)
        rows = evaluate_teachers(args.teachers, config, episodes, others)
        summary = {"episodes": episodes, "success_radius_m": config.success_radius, "teachers": rows}
        path = write_json(Path(ctx.out or args.teachers) / "teachers_eval.json", summary)
        return f"{teachers_table(rows)}\nwrote {path}"
    if args.baseline:
        controller = Baseline()
        out = Path(ctx.out or "runs/eval/baseline")
    else:
        controller = load_controller(args.policy)
        out = Path(ctx.out or Path(args.policy).parent / f"eval_{Path(args.policy).stem}")
    result = evaluate(controller, config, progress=lambda what: ctx.log(f"  evaluated {what}"))
    written = write_eval(result, out, config.figure8_periods)
    report = f"{table(result['metrics'], config.figure8_periods)}\nwrote {', '.join(map(str, written))}"
    if not others:
        return report
    results = {label: result["metrics"]}
    for name, other in others.items():
        ctx.log(f"  evaluating {name} on the same episodes")
        results[name] = evaluate(other, config)["metrics"]
    write_json(out / "comparison.json", results)
    return f"{report}\n\nsame episodes:\n{comparison_table(results, config.figure8_periods)}"


def _positive(flag: str, value: int) -> int:
    if value <= 0:
        raise ValueError(f"{flag} must be > 0, got {value}")
    return value

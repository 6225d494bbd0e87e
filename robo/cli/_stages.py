"""What ``robo train`` and ``robo eval`` share: one subcommand per registered task stage, the same options
everywhere (``--config``, ``--set``, ``--out``, ``--resume``), and progress bars on the terminal."""

from __future__ import annotations

import argparse
import contextlib
import time
from pathlib import Path

from robo.cli._parsers import add_config_options
from robo.registry import Stage, tasks


def add_stage_commands(group: argparse.ArgumentParser, which: str) -> None:
    """One subparser per task that has a ``which`` stage ("train" or "evaluate")."""
    group.set_defaults(_group_parser=group)
    task_sub = None
    for task in tasks().values():
        stage: Stage | None = getattr(task, which)
        if stage is None:
            continue
        if task_sub is None:
            task_sub = group.add_subparsers(dest="task", metavar="<task>", title="tasks")
        p = task_sub.add_parser(task.name, help=stage.summary or task.summary, description=stage.description,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
        if stage.arguments is not None:
            stage.arguments(p)
        add_config_options(p, "YAML config (default: the paper's settings)", "seed=1")
        where = f"default {stage.out}/<time>" if stage.out else "default: next to what is evaluated"
        p.add_argument("--out", default=None, help=f"output folder ({where})")
        if stage.resumable:
            p.add_argument("--resume", action="store_true", help="continue the run in --out")
        p.set_defaults(func=_runner(stage))


def _runner(stage: Stage):
    def run(args: argparse.Namespace) -> int:
        from tqdm import tqdm

        from robo.files import check_output_folder
        from robo.registry import Context, load_stage_config, resolve
        from robo.run_dir import undo_failed_start

        config = load_stage_config(stage, args.config, list(args.set))
        resume = bool(getattr(args, "resume", False))
        if resume and args.out is None:
            raise ValueError("--resume needs --out RUN_FOLDER (the run to continue)")
        out = Path(args.out) if args.out else None
        check_output_folder(out)
        if out is None and stage.out:
            out = Path(f"{stage.out}/{time.strftime('%Y-%m-%d_%H-%M-%S')}")

        def bar(desc: str, total: int, initial: int = 0):
            return tqdm(total=total, initial=initial, desc=desc, unit_scale=True, dynamic_ncols=True)

        ctx = Context(out=out, resume=resume, log=tqdm.write, bar=bar)
        # A training that fails before it saved anything leaves no half-made run folder behind
        # (an evaluation writes next to what it evaluates, and its files are replaced atomically).
        guard = undo_failed_start(out, resume) if stage.resumable else contextlib.nullcontext()
        with guard:
            report = resolve(stage.run)(config, args, ctx)
        print(report)
        return 0

    return run

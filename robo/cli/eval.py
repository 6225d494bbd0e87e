"""``robo eval <task>``: measure a trained policy the way its paper does."""

from __future__ import annotations

import argparse
from pathlib import Path

ORDER = 25

RAPTOR_DESCRIPTION = """\
Evaluate a quadrotor policy (a torch checkpoint .pt, or an exported .onnx with its card) the RAPTOR
way: recovery from the paper's initial-state distribution on N held-out sampled quadrotors and on
every preset (success = full 500-step episode and final position error below 0.1 m), figure-eight
RMSE at 10 s and 5.5 s periods on every preset, and a linear probe from the recurrent state to
thrust-to-weight (R^2). Writes metrics.json, success_mass_twr.png and figure8_tracks.png.

examples:
  robo eval raptor --policy runs/raptor/a/student/student_best.pt
  robo eval raptor --policy runs/raptor/a/policy.onnx --set vehicles=100
  robo eval raptor --baseline                     # the geometric controller, same measurements
  robo eval raptor --teachers runs/raptor/a/teachers   # each teacher, deterministic, on its own vehicle

--teachers measures what the student will imitate: every teacher of a run (accepted or not) flies
recovery episodes on its own quadrotor with its deterministic action (acceptance during training
looks at stochastic episodes). Writes teachers_eval.json into the run.
"""


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("eval", help="evaluate trained policies (RAPTOR: success, figure-eight, probe)",
                            description="Evaluate trained policies with the measurements of their paper.")
    parser.set_defaults(_group_parser=parser)
    tasks = parser.add_subparsers(dest="task", metavar="<task>", title="tasks")
    p = tasks.add_parser("raptor", help="quadrotor policies: held-out success, presets, figure-eights, probe",
                         description=RAPTOR_DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    who = p.add_mutually_exclusive_group(required=True)
    who.add_argument("--policy", metavar="P", help="student checkpoint (.pt) or exported policy (.onnx)")
    who.add_argument("--baseline", action="store_true", help="evaluate the geometric baseline controller")
    who.add_argument("--teachers", metavar="RUN", help="a finished raptor-teachers run: every teacher on its "
                     "own quadrotor")
    p.add_argument("--episodes", type=int, default=100, help="recovery episodes per teacher (--teachers)")
    p.add_argument("--config", default=None, help="YAML of evaluation settings (EvalConfig)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a setting, e.g. --set vehicles=100 (repeatable)")
    p.add_argument("--out", default=None, help="folder for metrics.json and plots (default: by the policy)")
    p.set_defaults(func=_raptor)


def _raptor(args: argparse.Namespace) -> int:
    from robo.config import load_config
    from robo.tasks.raptor.evaluation import Baseline, EvalConfig, evaluate, load_controller, table
    from robo.tasks.raptor.pipeline import write_eval

    config = load_config(EvalConfig, args.config, list(args.set))
    if args.teachers:
        return _teachers(args, config)
    if args.baseline:
        controller = Baseline()
        out = Path(args.out or "runs/eval/baseline")
    else:
        controller = load_controller(args.policy)
        out = Path(args.out or Path(args.policy).parent / f"eval_{Path(args.policy).stem}")
    result = evaluate(controller, config, progress=lambda what: print(f"  evaluated {what}", flush=True))
    written = write_eval(result, out, config.figure8_periods)
    print(table(result["metrics"], config.figure8_periods))
    print("wrote " + ", ".join(str(p) for p in written))
    return 0


def _teachers(args: argparse.Namespace, config) -> int:
    from robo.tasks.raptor.evaluation import evaluate_teachers, teachers_table
    from robo.tasks.run_files import write_json

    if args.episodes <= 0:
        raise ValueError(f"--episodes must be > 0, got {args.episodes}")
    rows = evaluate_teachers(args.teachers, config, args.episodes)
    print(teachers_table(rows))
    summary = {"episodes": args.episodes, "success_radius_m": config.success_radius, "teachers": rows}
    path = write_json(Path(args.out or args.teachers) / "teachers_eval.json", summary)
    print(f"wrote {path}")
    return 0

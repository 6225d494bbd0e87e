"""``robo train <task>``: training runs. Each task is a subcommand; the work lives in robo/tasks."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

ORDER = 20

DESCRIPTION = """\
Train policies in simulation. Every run writes a folder with the resolved config, checkpoints
(written atomically), learning curves and metrics.json; --resume continues an interrupted run.

tasks:
  raptor             the whole RAPTOR pipeline: fleet, teachers, student, evaluation, ONNX export
  raptor-teachers    one SAC teacher per sampled quadrotor, many trained as one batched program
  raptor-student     distil a teacher run into the 2k-parameter recurrent student (on-policy DAgger)
"""

TEACHERS_DESCRIPTION = """\
Train RAPTOR teachers: one SAC agent per quadrotor of a fleet file, each seeing the 26-value
privileged observation of its own vehicle. Teachers are trained --set group_size=K at a time as one
batched program (stacked networks over K stacked environments), each stops once the mean length of
its last training episodes reaches the acceptance threshold (train.acceptance.*), and teachers that
miss it within train.steps are rejected and listed with their numbers. Every teacher's actor and
learning curve are kept under RUN/teachers/<name>/.

examples:
  python -c "import sim.quadrotor as q; q.save_fleet(q.sample_fleet(1000, 0), 'fleet.json')"
  robo train raptor-teachers --fleet fleet.json --teachers 32 --config configs/raptor_teachers_quick.yaml
  robo train raptor-teachers --fleet fleet.json --teachers 1000 --device cuda --set group_size=1000
  robo train raptor-teachers --fleet fleet.json --out runs/raptor-teachers/a --resume
  robo train raptor-teachers --fleet fleet.json --teachers 64 --ray-address          # a local Ray
  robo train raptor-teachers --fleet fleet.json --teachers 1000 --ray-address head:6379 \
      --out /shared/runs/raptor-teachers/a                    # a Ray cluster, shared run folder

Without --ray-address the groups run one after another on this machine. With it, each group is a
Ray task (threads CPUs, one GPU with --device cuda) and the groups run side by side: on a new local
Ray (no address), or on the cluster at ADDR (HOST:PORT of its head node, ray://HOST:PORT, or auto).
Every task writes into the run folder, so on a cluster it must be on storage every node sees, at the
same path (NFS or similar), and every node needs robo installed. Needs pip install 'robo[ray]'.
"""


RAPTOR_DESCRIPTION = """\
The whole RAPTOR pipeline in one run folder, each stage resumable with --resume:
  1. sample the fleet (fleet.size quadrotors, fleet.seed)      -> RUN/fleet.json
  2. train teachers (SAC, batched groups; see raptor-teachers) -> RUN/teachers/
  3. distil the student (on-policy DAgger, BPTT)               -> RUN/student/student_best.pt
  4. evaluate it (held-out quadrotors, presets, figure-eights)  -> RUN/eval/metrics.json, plots
  5. export it to ONNX with its policy card                     -> RUN/policy.onnx, RUN/policy.json

examples:
  robo train raptor --config configs/raptor_quick.yaml            # about 13 min on a 2-core CPU
  robo train raptor --config configs/raptor.yaml --set teachers.device=cuda
  robo train raptor --config configs/raptor_quick.yaml --out runs/raptor/a --resume
  robo train raptor --config configs/raptor.yaml --ray-address head:6379 --out /shared/runs/raptor/a

--ray-address trains the teacher groups (stage 1) as Ray tasks, as in raptor-teachers: the run
folder must then be on storage every node of the cluster sees.
"""

STUDENT_DESCRIPTION = """\
Distil the accepted teachers of a teacher run into RAPTOR's student, Linear(22->16)+ReLU ->
GRU(16) -> Linear(16->4). Each epoch flies every teacher's quadrotor for episodes_per_teacher
episodes (the teachers fly the first teacher_epochs epochs, the student afterwards), labels every
state with the teacher's deterministic action and fits the student by MSE with backpropagation
through whole episodes. The best epoch on held-out quadrotors is kept as student_best.pt.

examples:
  robo train raptor-student --teachers runs/raptor-teachers/a --config configs/raptor_quick.yaml
  robo train raptor-student --teachers runs/raptor-teachers/a --set epochs=200 --out runs/student/a
"""


def _common(p: argparse.ArgumentParser, out_default: str) -> None:
    p.add_argument("--config", default=None, help="YAML config (default: the paper's settings)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key, e.g. --set student.epochs=50 (repeatable)")
    p.add_argument("--out", default=None, help=f"run folder (default {out_default}/<time>)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out")


def _ray_address(p: argparse.ArgumentParser) -> None:
    p.add_argument("--ray-address", nargs="?", const="local", default=None, metavar="ADDR",
                   help="train the teacher groups as Ray tasks: on a new local Ray when no ADDR is given, "
                        "else on the cluster at ADDR (HOST:PORT, ray://HOST:PORT or auto), whose nodes "
                        "must all see the run folder (shared storage, same path); needs robo[ray]")


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "train",
        help="train policies in simulation (RAPTOR teachers, ...)",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.set_defaults(_group_parser=parser)
    tasks = parser.add_subparsers(dest="task", metavar="<task>", title="tasks")
    p = tasks.add_parser(
        "raptor-teachers",
        help="one SAC teacher per quadrotor of a fleet, trained K at a time",
        description=TEACHERS_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--fleet", required=True, metavar="FLEET.json", help="the quadrotor fleet file")
    p.add_argument("--teachers", type=int, default=None, metavar="N",
                   help="train the first N quadrotors of the fleet (default: the config's teachers)")
    p.add_argument("--device", choices=("cpu", "cuda"), default=None, help="default: the config's (cpu)")
    p.add_argument("--config", default=None, help="YAML config (default: the paper's settings)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key, e.g. --set train.steps=200000 (repeatable)")
    p.add_argument("--out", default=None, help="run folder (default runs/raptor-teachers/<time>)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    _ray_address(p)
    p.set_defaults(func=_raptor_teachers)

    p = tasks.add_parser("raptor-student", help="distil a teacher run into the recurrent student",
                         description=STUDENT_DESCRIPTION,
                         formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--teachers", required=True, metavar="RUN", help="a finished raptor-teachers run folder")
    _common(p, "runs/raptor-student")
    p.set_defaults(func=_raptor_student)

    p = tasks.add_parser("raptor", help="fleet -> teachers -> student -> evaluation -> ONNX, resumable",
                         description=RAPTOR_DESCRIPTION,
                         formatter_class=argparse.RawDescriptionHelpFormatter)
    _common(p, "runs/raptor")
    _ray_address(p)
    p.set_defaults(func=_raptor)


def _raptor_teachers(args: argparse.Namespace) -> int:
    import torch
    from tqdm import tqdm

    from robo.config import load_config
    from robo.tasks.raptor.teachers import RaptorTeachersConfig, resumed_steps, train_teachers

    overrides = list(args.set)
    if args.teachers is not None:
        overrides.append(f"teachers={args.teachers}")
    if args.device is not None:
        overrides.append(f"device={args.device}")
    config = load_config(RaptorTeachersConfig, args.config, overrides)
    if args.ray_address is not None:
        # Set directly, not as a --set override: YAML would read some addresses as other types.
        config.ray_address = args.ray_address
    elif config.device == "cuda" and not torch.cuda.is_available():
        # With Ray the workers need CUDA, not this driver; each task checks on its own node.
        raise RuntimeError("--device cuda: this torch build sees no CUDA device")
    if args.resume and args.out is None:
        raise ValueError("--resume needs --out RUN_FOLDER (the run to continue)")
    out = Path(args.out or f"runs/raptor-teachers/{time.strftime('%Y-%m-%d_%H-%M-%S')}")

    groups = -(-config.teachers // config.group_size)
    # A resumed run's bar starts where the run stands, so its rate and ETA count only this session's steps.
    bar = tqdm(total=groups * config.train.steps, unit="step", unit_scale=True,
               initial=resumed_steps(config, out) if args.resume else 0,
               desc=f"{config.teachers} teachers, groups of {config.group_size}")
    try:
        metrics = train_teachers(config, args.fleet, out, resume=args.resume, progress=bar.update,
                                 log=tqdm.write, status=bar.set_postfix_str)
    finally:
        bar.close()

    print(f"\n{metrics['accepted']}/{metrics['teachers']} teachers accepted "
          f"(threshold {metrics['acceptance']}); run folder {out}")
    if metrics["rejected"]:
        print(f"{'rejected':<14}{'steps':>10}{'mean length':>14}{'mean return':>14}{'episodes':>10}"
              f"{'deterministic length':>22}")
        for r in metrics["rejected"]:
            # The deterministic check ran only when the training episodes met the threshold.
            checked = f"{r['eval_length']:.1f}" if "eval_length" in r else "-"
            print(f"{r['name']:<14}{r['steps']:>10}{r['mean_length']:>14.1f}{r['mean_return']:>14.1f}"
                  f"{r['episodes']:>10}{checked:>22}")
    per = metrics["core_minutes_per_accepted_teacher"]
    per = "n/a" if per is None else f"{per:.2f}"
    if config.ray_address:
        # The groups ran side by side: their seconds add up to training time, not to elapsed time.
        spent = (f"{metrics['wall_seconds']:.0f} s of training summed over groups, "
                 f"{metrics['threads']} thread(s) each")
    else:
        spent = f"wall {metrics['wall_seconds']:.0f} s on {metrics['threads']} thread(s)"
    print(f"{spent}; core-minutes per accepted teacher: {per} (paper: 31)")
    return 0


def _out(args: argparse.Namespace, default: str) -> Path:
    if args.resume and args.out is None:
        raise ValueError("--resume needs --out RUN_FOLDER (the run to continue)")
    return Path(args.out or f"{default}/{time.strftime('%Y-%m-%d_%H-%M-%S')}")


def _config_for_student(config_path: str | None, overrides: list[str]):
    """A student config from a student YAML, or from the student section of a pipeline YAML."""
    from robo.config import load_config, read_yaml
    from robo.tasks.raptor.pipeline import RaptorConfig, StudentConfig

    if config_path is not None and "student" in read_yaml(config_path):
        return load_config(RaptorConfig, config_path, [f"student.{o}" for o in overrides]).student
    return load_config(StudentConfig, config_path, overrides)


def _raptor_student(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from robo.tasks.raptor.pipeline import train_student

    config = _config_for_student(args.config, list(args.set))
    out = _out(args, "runs/raptor-student")
    with tqdm(total=config.epochs, unit="epoch", desc="student") as bar:
        metrics = train_student(config, args.teachers, out, resume=args.resume, progress=bar.update,
                                log=tqdm.write, status=bar.set_postfix_str)
    best = metrics["best"]
    print(f"student from {metrics['teachers']} teachers, {metrics['epochs']} epochs in "
          f"{metrics['wall_seconds']:.0f} s; best epoch {best['epoch']}: held-out success "
          f"{best['success_rate']:.0%}, mean episode length {best['mean_episode_length']:.0f}")
    print(f"policy: {out / 'student_best.pt'}  (robo eval raptor --policy {out / 'student_best.pt'})")
    return 0


def _raptor(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from robo.config import load_config
    from robo.tasks.raptor.evaluation import table
    from robo.tasks.raptor.pipeline import RaptorConfig, train_raptor

    config = load_config(RaptorConfig, args.config, list(args.set))
    if args.ray_address is not None:
        config.teachers.ray_address = args.ray_address
    out = _out(args, "runs/raptor")
    started = time.perf_counter()
    metrics = train_raptor(config, out, resume=args.resume, log=tqdm.write,
                           bar=lambda desc, total: tqdm(total=total, desc=desc, unit_scale=True))
    print(table(metrics, config.eval.figure8_periods))
    print(f"\nrun folder {out} ({time.perf_counter() - started:.0f} s); policy {out / 'policy.onnx'}")
    return 0

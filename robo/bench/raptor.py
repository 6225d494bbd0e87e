"""``robo bench raptor``: RAPTOR teacher training cost: throughput, stacked updates, steps to precision.

Sections (one run measures its baselines beside the figures it compares):

* **throughput** (default): the real training loop, K batched teachers vs one alone (below);
* **updates** (default): the stacked SAC update alone, teacher-updates/s for ``--update-teachers``
  (1, 16, 64) teachers, eager vs ``torch.compile`` (``sac.compile``) in the same run, with the compile
  time; ``--skip-updates`` leaves it out;
* **precision** (``--precision``): env steps and core-seconds until a teacher's deterministic median
  final position error (:class:`robo.tasks.raptor.teachers.Precision`: recovery episodes on its own
  vehicle, a crash counts as infinite) falls below ``--final-error`` (0.1 m), for the vehicles of
  ``--vehicles-precision`` (presets across mass and thrust-to-weight), trained together as one group,
  judged every ``--select-interval`` steps, within ``--steps``; a teacher that does not get there is
  reported with the best snapshot it reached. Core-seconds: each judged interval's CPU time of this
  process (all its threads; so a busy or paused machine does not inflate it), shared equally by the
  teachers still training in it. ``--figure8`` also flies each
  judged snapshot (the teacher's actor at that step) through the evaluation's figure-eights on its
  vehicle, and ``--compare`` each named policy once on the same vehicles: how tracking grows with a
  teacher's budget, beside the policy it should approach. ``--train-past-precision`` keeps precise
  teachers training to ``--steps``.

Throughput details:
For each K the same SAC teachers (the paper's networks and batch size) run the real loop on K sampled
quadrotors: each iteration steps E environments per teacher and makes the SAC updates that are due,
one per ``update_interval`` env steps per teacher (E = 1, interval 1: one env step, one gradient step).
The replay is first filled with ``--warmup`` random steps, then iterations are timed for ``--seconds``.
K = 1 is the baseline, one teacher trained alone, measured in the same run.

Budgets are in env steps (the paper: 1M per teacher), so the extrapolations divide by env steps/s with
the updates they bring included. Core-minutes per accepted teacher = (env steps a teacher needs to be
accepted) / (teacher env steps per second per core). The steps come from a real run's metrics.json
(``--from-run``) when given; otherwise from ``--steps-to-accept`` (default 100k, the paper's "most
teachers reach near-full episodes by 100k"), and the table says it is an estimate.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from robo.bench.common import require

HELP = "RAPTOR teacher training throughput (env and gradient steps/s) for K batched teachers vs one"

PAPER_CORE_MINUTES = 31.0  # per teacher, 1M steps, one laptop core


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--teachers", default="1,8,32", help="comma-separated group sizes K (1 = baseline)")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (cores used)")
    parser.add_argument("--seconds", type=float, default=10.0, help="timed seconds per group size")
    parser.add_argument("--warmup", type=int, default=500, help="random steps to fill the replay first")
    parser.add_argument("--tf32", action="store_true", help="allow TF32 matmuls on CUDA")
    parser.add_argument("--steps-to-accept", type=float, default=100_000.0,
                        help="steps per accepted teacher for the core-minute estimate")
    parser.add_argument("--from-run", default=None, metavar="RUN",
                        help="take steps per accepted teacher from a teacher run's metrics.json")
    parser.add_argument("--config", default=None,
                        help="take the SAC settings from a teacher config or a pipeline config's "
                             "teachers: section (default: the paper's)")
    parser.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                        help="override a key of the teacher config (a pipeline config's teachers: "
                             "section), e.g. --set sac.critic_hidden=[128,128,128]")
    parser.add_argument("--envs-per-teacher", type=int, default=None,
                        help="environments per teacher (default: the config's train.envs_per_member)")
    parser.add_argument("--update-interval", type=int, default=None,
                        help="env steps per teacher between SAC updates (default: the config's)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quality", default=None, metavar="RUN",
                        help="also measure policy quality: the student of a `robo train raptor` run folder, "
                             "the baseline controller and one teacher on its own quadrotor, in one table")
    parser.add_argument("--vehicles", type=int, default=1000, help="held-out quadrotors for --quality")
    parser.add_argument("--preset-episodes", type=int, default=100, help="recovery episodes per preset")
    parser.add_argument("--skip-throughput", action="store_true",
                        help="leave out the training-loop throughput")
    parser.add_argument("--skip-updates", action="store_true", help="leave out the eager-vs-compiled updates")
    parser.add_argument("--update-teachers", default="1,16,64",
                        help="comma-separated teacher counts for the stacked-update section")
    parser.add_argument("--update-seconds", type=float, default=5.0, help="timed seconds per update setting")
    parser.add_argument("--precision", action="store_true",
                        help="measure env steps and core-seconds to a precise teacher (minutes to hours)")
    parser.add_argument("--vehicles-precision", default="crazyflie,arpl,x500,fs-base",
                        help="comma-separated presets, one teacher each, for --precision")
    parser.add_argument("--steps", type=int, default=1_000_000,
                        help="env-step budget per teacher (--precision)")
    parser.add_argument("--select-interval", type=int, default=50_000,
                        help="env steps between judged snapshots (--precision)")
    parser.add_argument("--select-episodes", type=int, default=32,
                        help="deterministic recovery episodes per judgement (--precision)")
    parser.add_argument("--final-error", type=float, default=0.1,
                        help="median final position error [m] a precise teacher reaches (--precision)")
    parser.add_argument("--figure8", action="store_true",
                        help="each judged snapshot also flies the figure-eights on its vehicle (--precision)")
    parser.add_argument("--train-past-precision", action="store_true",
                        help="precise teachers go on training to --steps (--precision)")
    parser.add_argument("--compare", action="append", default=[], metavar="POLICY",
                        help="with --figure8: this policy (a path, `released` or `baseline`) flies the same "
                             "figure-eights on each vehicle; repeatable")


def run(args: argparse.Namespace) -> dict[str, Any]:
    # every part's numbers are checked here, before the first part spends minutes
    require(args, "threads", "warmup", "envs_per_teacher", "update_interval", "steps", "select_interval",
            "select_episodes")
    require(args, "seconds", "update_seconds", "steps_to_accept", "final_error", least=0, above=True)
    require(args, "vehicles", "preset_episodes", least=0)
    if (args.figure8 or args.train_past_precision or args.compare) and not args.precision:
        raise ValueError("--figure8, --train-past-precision and --compare belong to --precision")
    if args.compare and not args.figure8:
        raise ValueError("--compare flies figure-eights: add --figure8")
    out: dict[str, Any] = {}
    if not args.skip_throughput:
        out["throughput"] = throughput(args)
    if not args.skip_updates:
        out["updates"] = updates(args)
    if args.precision:
        out["precision"] = precision(args)
    if args.quality is not None:
        out["quality"] = quality(args)
    if not out:
        raise ValueError("--skip-throughput and --skip-updates leave nothing to measure; add --precision "
                         "or --quality RUN")
    return out


def _teachers_config(args: argparse.Namespace) -> Any:
    """The teacher config of ``--config`` (a teacher config, or a pipeline config's ``teachers:``) with
    the ``--set`` overrides, as ``robo train raptor-teachers`` reads it."""
    from robo.tasks.raptor.commands import teachers_config

    return teachers_config(args.config, [*args.sets, f"device={args.device}", f"seed={args.seed}"])


def _loop_shape(args: argparse.Namespace, train: Any) -> tuple[int, int]:
    """(environments per teacher, env steps between updates): the flags, else the config's."""
    return (train.envs_per_member if args.envs_per_teacher is None else args.envs_per_teacher,
            train.update_interval if args.update_interval is None else args.update_interval)


def updates(args: argparse.Namespace) -> dict[str, Any]:
    """Stacked SAC updates per second for K teachers, eager vs ``torch.compile``, on random batches of
    the teachers' shapes (26 inputs, 4 actions); the compile time is reported on its own."""
    import dataclasses as dc

    import torch

    from robo.rl.sac import SACGroup

    sizes = _sizes(args.update_teachers)
    torch.set_num_threads(args.threads)
    sac = _teachers_config(args).sac
    sync = torch.cuda.synchronize if args.device == "cuda" else (lambda: None)
    rows = []
    for k in sizes:
        g = torch.Generator(device=args.device).manual_seed(args.seed)
        b = sac.batch_size

        def rand(*shape: int, g: torch.Generator = g) -> torch.Tensor:
            return torch.randn(*shape, generator=g, device=args.device)

        batch = {"obs": rand(k, b, 26), "action": rand(k, b, 4).tanh(), "reward": rand(k, b),
                 "next_obs": rand(k, b, 26), "terminated": torch.zeros(k, b, device=args.device)}
        row: dict[str, Any] = {"teachers": k}
        first: dict[str, torch.Tensor] = {}
        for mode in ("eager", "compiled"):
            group = SACGroup(k, 26, 4, dc.replace(sac, compile=mode == "compiled"), device=args.device,
                             seed=args.seed)
            start = time.perf_counter()
            first[mode] = group.update(batch)["critic_loss"]  # same seed, batch and noise in both modes
            for _ in range(2 * sac.policy_frequency):  # compiles both the critic-only and the full update
                group.update(batch)
            sync()
            row[f"{mode}_warmup_s"] = time.perf_counter() - start
            n, elapsed = _timed(functools.partial(group.update, batch), args.update_seconds, sync, every=5)
            row[f"{mode}_teacher_updates_per_s"] = k * n / elapsed
        row["compiled_vs_eager"] = row["compiled_teacher_updates_per_s"] / row["eager_teacher_updates_per_s"]
        row["first_critic_loss_max_rel_diff"] = float(
            ((first["compiled"] - first["eager"]).abs() / first["eager"].abs().clamp(min=1e-12)).max())
        rows.append(row)
    base = rows[0]["eager_teacher_updates_per_s"] / sizes[0]
    for r in rows:
        r["eager_vs_one_teacher"] = r["eager_teacher_updates_per_s"] / r["teachers"] / base
    where = f"{args.threads} CPU thread(s)" if args.device == "cpu" else "CUDA"
    print(f"\nstacked SAC update (critics {list(sac.critic_hidden)}, batch {sac.batch_size}, actor every "
          f"{sac.policy_frequency}) on {where}: teacher-updates/s")
    print(f"{'K':>6}{'eager':>12}{'compiled':>12}{'compiled/eager':>16}{'compile s':>11}{'loss diff':>11}")
    for r in rows:
        print(f"{r['teachers']:>6}{r['eager_teacher_updates_per_s']:>12.1f}"
              f"{r['compiled_teacher_updates_per_s']:>12.1f}{r['compiled_vs_eager']:>15.2f}x"
              f"{r['compiled_warmup_s']:>11.0f}{r['first_critic_loss_max_rel_diff']:>11.1e}")
    print("loss diff: largest relative difference of the first critic loss, compiled vs eager")
    return {"device": args.device, "threads": args.threads, "seconds_per_setting": args.update_seconds,
            "batch_size": sac.batch_size, "critic_hidden": list(sac.critic_hidden),
            "policy_frequency": sac.policy_frequency, "results": rows}


def precision(args: argparse.Namespace) -> dict[str, Any]:
    """Env steps and core-seconds until each vehicle's teacher is precise (see the module text)."""
    import dataclasses as dc

    import torch

    from robo.rl.off_policy_runner import OffPolicyRunner
    from robo.tasks.raptor.compare import resolve_controllers
    from robo.tasks.raptor.evaluation import EvalConfig, Teacher, figure8_rmse, metres
    from robo.tasks.raptor.teachers import (
        Acceptance,
        AcceptanceConfig,
        OwnEpisodes,
        Precision,
        make_env_factory,
    )
    from sim.quadrotor import preset

    names = [n.strip() for n in args.vehicles_precision.split(",") if n.strip()]
    if not names:
        raise ValueError("--vehicles-precision: name at least one preset")
    vehicles = [preset(n) for n in names]
    others = resolve_controllers(args.compare)  # a bad path fails here, not after the training
    torch.set_num_threads(args.threads)
    config = _teachers_config(args)
    envs, interval = _loop_shape(args, config.train)
    train = dc.replace(config.train, steps=args.steps, envs_per_member=envs, update_interval=interval,
                       select_interval=args.select_interval,
                       log_interval=args.select_interval, checkpoint_interval=10**12,
                       stop_on_accept=not args.train_past_precision, compact=True,
                       select_episodes=args.select_episodes, success_radius=args.final_error)
    config = dc.replace(config, train=train)
    tracks = EvalConfig()
    tracks = dc.replace(tracks, env=dc.replace(tracks.env, observation=config.env.observation))
    figure8: list[list[dict[str, float]]] = [[] for _ in vehicles]
    acceptance = AcceptanceConfig(final_error=args.final_error, window=1)

    def own(ids: list[int]) -> OwnEpisodes:
        return OwnEpisodes(vehicles, ids, args.select_episodes, config.env, args.device)

    runner = OffPolicyRunner(list(range(len(vehicles))), make_env_factory(vehicles, config), config.sac,
                             train, device=args.device, seed=args.seed, window=1,
                             should_finish=Acceptance(acceptance, not args.train_past_precision),
                             judge=Precision(own, args.final_error))
    core_seconds = [0.0] * len(vehicles)
    start = time.perf_counter()
    last = [time.process_time()]
    flown = [0.0]  # CPU seconds of figure-eight flights since the last booking: measuring, not training
    precise_at: list[tuple[int, float] | None] = [None] * len(vehicles)  # (env steps, core-seconds)

    def fly_figure8(trainer: OffPolicyRunner, i: int) -> None:
        """The member's current actor (it is still in the group while it finishes) on its vehicle."""
        began = time.process_time()
        actor = trainer.group.member_policy(trainer.ids.index(i)).requires_grad_(False)
        rmse = figure8_rmse(Teacher(actor), vehicles[i], tracks, config.env.observation)
        figure8[i].append({"step": trainer.step, **rmse})
        flown[0] += time.process_time() - began

    def finished(i: int, record: dict[str, Any], actor: Any) -> None:
        if args.figure8:  # before the runner drops it from the group
            fly_figure8(runner, i)

    def account(trainer: OffPolicyRunner) -> None:
        trained = [i for i, c in trainer.curves.items() if c and c[-1]["step"] == trainer.step]
        if args.figure8:
            for k, i in enumerate(trainer.ids):
                if i in trained and bool(trainer.group.active[k]):
                    fly_figure8(trainer, i)
        cpu = time.process_time()
        for i in trained:
            core_seconds[i] += (cpu - last[0] - flown[0]) / len(trained)
        last[0], flown[0] = cpu, 0.0
        for i in trained:  # steps to precision: the first judged snapshot below the radius
            if precise_at[i] is None and trainer.curves[i][-1].get("select_final_error", math.inf) < \
                    args.final_error:
                precise_at[i] = (trainer.step, core_seconds[i])
        judged = ", ".join(f"{names[i]} {p.get('select_success', 0.0):.0%} / "
                           f"{p.get('select_final_error', math.inf):.3f} m"
                           for i in trained for p in trainer.curves[i][-1:])
        for i in trained:
            if figure8[i] and figure8[i][-1]["step"] == trainer.step:
                rmse = [v for key, v in figure8[i][-1].items() if key != "step"]
                judged += f"; {names[i]} fig-8 " + " / ".join(metres(v) for v in rmse)
        print(f"  step {trainer.step} ({time.perf_counter() - start:.0f} s): success / median final error: "
              f"{judged}", flush=True)

    runner.on_log, runner.on_finish = account, finished
    records = runner.run()
    wall = time.perf_counter() - start
    rows = []
    for i, name in enumerate(names):
        r = records[i]
        v = vehicles[i]
        steps, core = precise_at[i] or (r["steps"], core_seconds[i])
        rows.append({"vehicle": name, "mass_kg": v.mass, "thrust_to_weight": v.thrust_to_weight(),
                     "precise": precise_at[i] is not None, "steps": steps, "core_seconds": core,
                     "trained_steps": r["steps"], "trained_core_seconds": core_seconds[i],
                     **{k: r[k] for k in ("best_step", "best_success", "best_final_error", "best_length")
                        if k in r}})
    sac = config.sac
    print(f"\nsteps to precision (median final error < {args.final_error} m over {args.select_episodes} "
          f"deterministic recovery episodes, judged every {args.select_interval} steps, budget "
          f"{args.steps}); {train.envs_per_member} env(s) per teacher, 1 update per {train.update_interval} "
          f"env steps, batch {sac.batch_size}, actor every {sac.policy_frequency}, critics "
          f"{list(sac.critic_hidden)}; {args.threads} thread(s)")
    print(f"{'vehicle':<11}{'mass kg':>8}{'T/W':>6}{'precise':>9}{'env steps':>11}{'core-s':>8}"
          f"{'best at':>9}{'success':>9}{'median m':>10}")
    for r in rows:
        err = r.get("best_final_error", float("inf"))
        print(f"{r['vehicle']:<11}{r['mass_kg']:>8.3f}{r['thrust_to_weight']:>6.2f}"
              f"{'yes' if r['precise'] else 'no':>9}{r['steps'] if r['precise'] else '-':>11}"
              f"{r['core_seconds']:>8.0f}{r.get('best_step', '-'):>9}{r.get('best_success', 0.0):>9.0%}"
              f"{err:>10.3f}")
    print("not precise: the budget ran out; best at/success/median are the best snapshot reached")
    compared = {}
    if args.figure8:
        compared = {label: [figure8_rmse(c, v, tracks) for v in vehicles] for label, c in others.items()}
        _print_figure8(names, figure8, compared, tracks.figure8_periods)
    return {"vehicles": names, "steps_budget": args.steps, "select_interval": args.select_interval,
            "select_episodes": args.select_episodes, "final_error_m": args.final_error,
            "threads": args.threads, "wall_seconds": wall, "config": args.config,
            "envs_per_teacher": train.envs_per_member, "update_interval": train.update_interval,
            "sac": {"batch_size": sac.batch_size, "policy_frequency": sac.policy_frequency,
                    "critic_hidden": list(sac.critic_hidden), "actor_hidden": list(sac.actor_hidden),
                    "learning_starts": sac.learning_starts, "lr": [sac.actor_lr, sac.critic_lr]},
            "results": rows, **({"figure8": dict(zip(names, figure8, strict=True)),
                                 "figure8_compared": {label: dict(zip(names, r, strict=True))
                                                      for label, r in compared.items()}}
                                if args.figure8 else {})}


def _print_figure8(names: list[str], figure8: list[list[dict[str, float]]],
                   compared: dict[str, list[dict[str, float]]], periods: tuple[float, ...]) -> None:
    """Rows: judged steps, then the compared policies; per vehicle the RMSE (m) at each period."""
    from robo.tasks.raptor.evaluation import metres

    label = " / ".join(f"{p:g} s" for p in periods)
    print(f"\nfigure-eight RMSE (m, {label}) of each judged snapshot on its own vehicle")
    print(f"{'step':<12}" + "".join(f"{n:>18}" for n in names))

    def cells(row: dict[str, float] | None) -> str:
        return f"{' / '.join(metres(v) for k, v in row.items() if k != 'step'):>18}" if row else f"{'-':>18}"

    for step in sorted({r["step"] for rows in figure8 for r in rows}):
        print(f"{step:<12}" + "".join(cells(next((r for r in rows if r["step"] == step), None))
                                      for rows in figure8))
    for name, rows in compared.items():
        print(f"{name:<12}" + "".join(cells(r) for r in rows))


def throughput(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    from robo.rl.off_policy_runner import OffPolicyRunner, RunnerConfig
    from robo.tasks.raptor.teachers import make_env_factory
    from sim.quadrotor import sample_fleet

    sizes = _sizes(args.teachers)
    if args.device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("--device cuda: this torch build sees no CUDA device")
    torch.set_num_threads(args.threads)
    if args.tf32:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    steps_to_accept, source = _steps_to_accept(args)

    fleet = sample_fleet(max(sizes), seed=args.seed)
    config = _teachers_config(args)
    envs, interval = _loop_shape(args, config.train)
    train = RunnerConfig(steps=10**9, log_interval=10**9, checkpoint_interval=10**9, envs_per_member=envs,
                             update_interval=interval)
    config = dataclasses.replace(config, train=train)
    make_env = make_env_factory(fleet, config)
    sac = dataclasses.replace(config.sac, learning_starts=args.warmup)
    sync = torch.cuda.synchronize if args.device == "cuda" else (lambda: None)

    rows = []
    for k in sizes:
        trainer = OffPolicyRunner(list(range(k)), make_env, sac, train, device=args.device, seed=args.seed)
        trainer.run(until=args.warmup)
        for _ in range(3):  # first updates allocate optimiser state and warm kernels
            trainer.collect_step()
            trainer.update()
        sync()
        updates = trainer.group.updates

        def iteration(trainer: OffPolicyRunner = trainer) -> None:
            trainer.collect_step()
            trainer.train_step()

        iterations, elapsed = _timed(iteration, args.seconds, sync, every=10)
        updates = trainer.group.updates - updates
        rows.append({"teachers": k, "iterations": iterations, "seconds": elapsed,
                     "env_steps_per_s": k * envs * iterations / elapsed,
                     "gradient_steps_per_s": k * updates / elapsed,
                     "batched_updates_per_s": updates / elapsed})
        del trainer

    base = rows[0]["env_steps_per_s"] if sizes[0] == 1 else None
    cores = args.threads if args.device == "cpu" else None
    for r in rows:
        r["speedup_vs_one_teacher"] = r["env_steps_per_s"] / base if base else None
        if cores:
            per_core = r["env_steps_per_s"] / cores
            r["core_minutes_per_teacher_1M_steps"] = 1e6 / per_core / 60
            r["core_minutes_per_accepted_teacher"] = steps_to_accept / per_core / 60
        else:
            r["gpu_hours_1000_teachers_1M_steps"] = 1000 * 1e6 / r["env_steps_per_s"] / 3600

    _print_table(rows, args, steps_to_accept, source, sac, envs, interval)
    return {"device": args.device, "threads": args.threads, "seconds_per_size": args.seconds,
            "warmup_steps": args.warmup, "tf32": args.tf32, "steps_to_accept": steps_to_accept,
            "steps_to_accept_source": source, "paper_core_minutes_per_teacher": PAPER_CORE_MINUTES,
            "config": args.config, "envs_per_teacher": envs, "update_interval": interval,
            "sac": {"actor_hidden": list(sac.actor_hidden), "critic_hidden": list(sac.critic_hidden),
                    "batch_size": sac.batch_size}, "results": rows}


def _timed(step: Callable[[], Any], seconds: float, sync: Callable[[], Any], every: int) -> tuple[int, float]:
    """Call ``step`` until ``seconds`` have passed, checked (after ``sync``) every ``every`` calls;
    returns the calls and the seconds they took."""
    calls, start = 0, time.perf_counter()
    while True:
        step()
        calls += 1
        if calls % every == 0:
            sync()
            elapsed = time.perf_counter() - start
            if elapsed >= seconds:
                return calls, elapsed


def _sizes(text: str) -> list[int]:
    try:
        sizes = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise ValueError(f"--teachers {text!r}: expected comma-separated integers, e.g. 1,8,32") from None
    if not sizes or min(sizes) <= 0:
        raise ValueError(f"--teachers {text!r}: group sizes must be > 0")
    return sizes


def _steps_to_accept(args: argparse.Namespace) -> tuple[float, str]:
    if args.from_run is None:
        return float(args.steps_to_accept), "estimate (--steps-to-accept)"
    path = Path(args.from_run) / "metrics.json"
    if not path.is_file():
        raise OSError(f"--from-run: {path} not found")
    metrics = json.loads(path.read_text())
    steps = metrics.get("mean_steps_accepted")
    if not steps:
        raise ValueError(f"--from-run: {path} has no accepted teachers to measure steps from")
    return float(steps), f"measured ({path})"


def _print_table(rows: list[dict[str, Any]], args: argparse.Namespace, steps: float, source: str,
                 sac: Any, envs: int, interval: int) -> None:
    where = f"{args.threads} CPU thread(s)" if args.device == "cpu" else "CUDA"
    nets = f"actor {list(sac.actor_hidden)}, critics {list(sac.critic_hidden)}, batch {sac.batch_size}"
    print(f"RAPTOR teachers, SAC ({nets}) on {where}; {envs} environment(s) per teacher, "
          f"one gradient step per {interval} env step(s) per teacher")
    last = "core-min/accepted" if args.device == "cpu" else "GPU-h 1000x1M"
    print(f"{'K':>6}{'env steps/s':>14}{'grad steps/s':>14}{'vs 1 alone':>12}{last:>20}")
    for r in rows:
        speed = f"{r['speedup_vs_one_teacher']:.2f}x" if r["speedup_vs_one_teacher"] else "-"
        extra = (r.get("core_minutes_per_accepted_teacher") if args.device == "cpu"
                 else r.get("gpu_hours_1000_teachers_1M_steps"))
        print(f"{r['teachers']:>6}{r['env_steps_per_s']:>14.0f}{r['gradient_steps_per_s']:>14.0f}"
              f"{speed:>12}{extra:>20.2f}")
    if args.device == "cpu":
        print(f"core-minutes per accepted teacher at {steps:.0f} steps, {source}; "
              f"paper: {PAPER_CORE_MINUTES:.0f} core-minutes per teacher (1M steps)")


def quality(args: argparse.Namespace) -> dict[str, Any]:
    """Student vs baseline vs a teacher on its own quadrotor, with the measurements of robo eval raptor."""

    from robo.nets.policy import load_policy
    from robo.tasks.raptor import evaluation as ev
    from sim.quadrotor import QuadrotorParams

    run = Path(args.quality)
    student_file = run / "student" / "student_best.pt"
    if not student_file.is_file():
        raise OSError(f"--quality: {student_file} not found (is {run} a finished `robo train raptor` run?)")
    config = ev.EvalConfig(vehicles=args.vehicles, preset_episodes=args.preset_episodes, seed=args.seed)
    rows: dict[str, dict[str, Any]] = {}
    for name, controller in (("baseline", ev.Baseline()), ("student", ev.load_controller(student_file))):
        metrics = ev.evaluate(controller, config)["metrics"]
        rows[name] = {
            "held_out_success": metrics["held_out"]["success_rate"],
            "presets_success": {p: r["success_rate"] for p, r in metrics["presets"].items()},
            **{k: v for k, v in metrics.items() if k.startswith("figure8_")},
            "probe_r2": metrics.get("probe_r2_thrust_to_weight"),
        }
    accepted = json.loads((run / "teachers" / "metrics.json").read_text())["accepted_names"]
    if accepted:
        actor_file = run / "teachers" / "teachers" / accepted[0] / "actor.pt"
        policy, meta = load_policy(actor_file)
        vehicle = QuadrotorParams.from_dict(meta["origin"]["quadrotor"])
        teacher = ev.Teacher(policy)
        own = ev.summarise_recovery(ev.recovery(teacher, [vehicle], config, episodes=args.preset_episodes,
                                                seed=args.seed))
        rows[f"teacher {accepted[0]} (own quadrotor)"] = {
            "held_out_success": None, "own_quadrotor_success": own["success_rate"],
            **{f"figure8_{p:g}s_mean_rmse_m": ev.figure8_flight(teacher, vehicle, p, config)["rmse_m"]
               for p in config.figure8_periods},
        }

    def cell(v: Any, spec: str) -> str:
        return format(v, spec) if isinstance(v, float) and math.isfinite(v) else "-"

    periods = config.figure8_periods
    print(f"\npolicy quality ({args.vehicles} held-out quadrotors, "
          f"{args.preset_episodes} episodes per preset)")
    head = f"{'controller':<34}{'held-out':>9}" + "".join(f"{p:>11}" for p in ev.PRESET_NAMES)
    head += "".join(f"{f'fig8 {p:g}s':>11}" for p in periods)
    print(head)
    for name, r in rows.items():
        presets = r.get("presets_success", {})
        line = f"{name:<34}{cell(r.get('held_out_success'), '.1%'):>9}"
        if "own_quadrotor_success" in r:
            line += f"{'own: ' + cell(r['own_quadrotor_success'], '.0%'):>55}"
        else:
            line += "".join(f"{cell(presets.get(p), '.0%'):>11}" for p in ev.PRESET_NAMES)
        line += "".join(f"{cell(r.get(f'figure8_{p:g}s_mean_rmse_m'), '.3f'):>11}" for p in periods)
        print(line)
    print("success: full 500-step episode and final position error < 0.1 m; fig8: mean RMSE [m] over the "
          "presets (teacher: its own quadrotor); paper targets 0.11 m (10 s), 0.20 m (5.5 s)")
    return {"run": str(run), "vehicles": args.vehicles, "preset_episodes": args.preset_episodes,
            "rows": rows}

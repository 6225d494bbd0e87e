"""RAPTOR stage 1: one SAC teacher per sampled quadrotor, trained K at a time as one batched program.

Each teacher sees the 26-value privileged observation of its own vehicle and RAPTOR's reward
(``sim.quadrotor.QuadrotorEnv`` with ``observation="teacher"``); with ``env.observation: teacher_force``
also the episode's constant external force (29 values), so that it can cancel the force instead of
holding off target by force / stiffness, and its labels ask the student to infer the force from its
history. Teachers are trained in groups of
``group_size``: the K vehicles (``train.envs_per_member`` environments each) are stacked into one
batched environment and the K SAC agents into stacked networks, trained by
:class:`robo.rl.off_policy_runner.OffPolicyRunner` with :class:`Acceptance` as its ``should_finish``.
A teacher stops as soon as the mean length (and, if set, return) of its last ``window`` training
episodes meets the acceptance threshold and, with ``acceptance.evaluate`` (the default), so do its
deterministic episodes, one per environment; finished teachers leave the batch so the rest run on
smaller tensors. A teacher that reaches its step budget without meeting the threshold is rejected,
listed with its numbers, and its checkpoint is kept.

Precision swings between snapshots of one teacher, so with ``train.select_interval`` every teacher is
judged that often by :class:`Precision`: ``train.select_episodes`` deterministic recovery episodes on its
own vehicle (hold reference, RAPTOR's start states, fixed per teacher), scored by success rate (full
episode and final position error below ``train.success_radius``), then median final error, then return.
Its best snapshot is what ``actor.pt`` holds (its step and numbers are ``best_*`` in the record), and
``acceptance.final_error`` can require that snapshot's median final error to be below a threshold.
Groups run one after another, or as Ray tasks spread over a cluster (``ray_address``,
:mod:`robo.rl.distributed`), all writing into the one run folder, which on a cluster must be on storage
every node sees, at the same path. An interrupted run (Ctrl-C, SIGTERM, a Ray worker that died) continues
with ``resume``: finished groups are skipped, a group with a checkpoint continues it, and the config must
be the one in the run's ``config.yaml``.

Run folder layout::

    config.yaml                  resolved config
    fleet.json                   the fleet the teachers belong to (its sha256 is in every checkpoint)
    groups/group_0003.pt         a group's full training state while it runs (--resume continues it)
    groups/group_0003.json       a finished group's records
    teachers/<name>/actor.pt     one teacher's deterministic policy (robo.nets.policy.load_policy): its
                                 best judged snapshot with select_interval, else its last weights
    teachers/<name>/curve.csv    its learning curve (env step, mean return, mean length, ...)
    metrics.json                 accepted / rejected teachers, steps, core-minutes per accepted teacher
    learning_curves.png
    tensorboard/teachers/        TensorBoard scalars per teacher (return, length, judged precision)
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import functools
import hashlib
import json
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from robo.config import check_device, to_dict
from robo.files import write_bytes, write_csv, write_json
from robo.nets.ensemble import EnsembleMLP
from robo.nets.policy import load_policy
from robo.rl import distributed
from robo.rl.checkpoint import load_checkpoint
from robo.rl.off_policy_runner import EnvFactory, EpisodeStats, Fly, OffPolicyRunner, RunnerConfig
from robo.rl.sac import SACConfig, save_actor
from robo.run_dir import RunDir, Scalars
from sim.quadrotor import QuadrotorEnv, QuadrotorEnvConfig, QuadrotorParams, load_fleet
from sim.quadrotor.observation import LAYOUTS, TEACHER, layout_named, policy_meta


@dataclass
class AcceptanceConfig:
    """When a member counts as trained: means over its last ``window`` training episodes and, with
    ``evaluate``, also over deterministic episodes (one per environment, from one fixed set of start
    states) run when the training episodes pass. Training episodes are stochastic, and with several
    environments per member the last ones to end are a biased sample (those started together and
    survived end together); the deterministic policy is also what a teacher hands on."""

    episode_length: float | None = None  # e.g. 500 for RAPTOR's full 5 s episodes
    episode_return: float | None = None
    window: int = 10
    evaluate: bool = False
    # m: the best judged snapshot's median final position error must be below this (needs the runner's
    # select_interval; the record's best_final_error)
    final_error: float | None = None

    def __post_init__(self) -> None:
        if self.window <= 0:
            raise ValueError(f"acceptance.window must be > 0, got {self.window}")
        if self.final_error is not None and self.final_error <= 0:
            raise ValueError(f"acceptance.final_error must be > 0 m, got {self.final_error}")


class Acceptance:
    """The runner's ``should_finish`` for teachers: a member is accepted when its window means meet the
    thresholds (and, with ``evaluate``, its deterministic episodes do too); accepted members finish when
    ``stop_on_accept``. Notes ``accepted`` and, where they ran, ``eval_return``/``eval_length``."""

    def __init__(self, config: AcceptanceConfig, stop_on_accept: bool = True):
        self.config, self.stop_on_accept = config, stop_on_accept

    def __call__(self, stats: EpisodeStats) -> torch.Tensor:
        acc = self.config
        ok = stats.episodes >= acc.window
        if acc.episode_length is not None:
            ok &= stats.mean_length >= acc.episode_length
        if acc.episode_return is not None:
            ok &= stats.mean_return >= acc.episode_return
        if acc.episode_length is None and acc.episode_return is None and acc.final_error is None:
            ok &= False  # no threshold: every member trains for its full budget
        if acc.final_error is not None:
            if "best_step" not in stats.best:
                raise ValueError("acceptance.final_error needs judged snapshots (train.select_interval > 0)")
            best = stats.best.get("best_final_error")  # absent before the first judgement
            ok &= best < acc.final_error if best is not None else False  # NaN is not below either
        ok &= stats.active
        if acc.evaluate and bool(ok.any()):
            eval_return, eval_length = stats.evaluate(ok.clone())
            if acc.episode_length is not None:
                ok &= eval_length >= acc.episode_length
            if acc.episode_return is not None:
                ok &= eval_return >= acc.episode_return
            stats.notes.update(eval_return=eval_return, eval_length=eval_length)
        stats.notes["accepted"] = ok
        return ok & self.stop_on_accept


@dataclass
class TeacherAcceptance(AcceptanceConfig):
    episode_length: float | None = 490.0  # of RAPTOR's 500-step episodes
    evaluate: bool = True  # confirmed by the deterministic actor, which is what the student imitates


@dataclass
class TeacherTrainConfig(RunnerConfig):
    # The paper trains each teacher for a fixed 1M steps; most reach near-full episodes by 100k, so
    # stopping at the threshold is where most of the saving comes from. Defaults live in the class
    # (not a factory) so that overriding one key from YAML keeps the others.
    steps: int = 1_000_000
    log_interval: int = 5_000
    checkpoint_interval: int = 50_000
    stop_on_accept: bool = True  # freeze a member once it meets the acceptance threshold
    acceptance: TeacherAcceptance = field(default_factory=TeacherAcceptance)
    # select_interval (RunnerConfig, 0 = off): env steps per teacher between judged snapshots.
    select_episodes: int = 32  # deterministic recovery episodes per teacher and judgement
    success_radius: float = 0.1  # m, final position error of a successful judged episode

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.select_episodes <= 0:
            raise ValueError(f"train.select_episodes must be > 0, got {self.select_episodes}")
        if self.success_radius <= 0:
            raise ValueError(f"train.success_radius must be > 0 m, got {self.success_radius}")
        if self.acceptance.final_error is not None and not self.select_interval:
            raise ValueError("train.acceptance.final_error needs train.select_interval > 0 "
                             "(judged snapshots)")


@dataclass
class RaptorTeachersConfig:
    teachers: int = 1000  # the first N quadrotors of the fleet
    group_size: int = 32  # K teachers trained as one batched program
    seed: int = 0
    device: str = "cpu"
    threads: int = 0  # torch CPU threads; 0 keeps torch's default (on Ray: 1, the CPUs a task asks for)
    # None: groups one after another on this machine. "local": a new local Ray; "auto", "HOST:PORT" or
    # "ray://HOST:PORT": that Ray cluster, whose nodes must all see the run folder at the same path.
    ray_address: str | None = None
    sac: SACConfig = field(default_factory=SACConfig)
    train: TeacherTrainConfig = field(default_factory=TeacherTrainConfig)
    env: QuadrotorEnvConfig = field(default_factory=lambda: QuadrotorEnvConfig(observation="teacher"))

    def __post_init__(self) -> None:
        if self.teachers <= 0:
            raise ValueError(f"teachers must be > 0, got {self.teachers}")
        if self.group_size <= 0:
            raise ValueError(f"group_size must be > 0, got {self.group_size}")
        if self.env.observation == "student":
            raise ValueError("env.observation must be teacher (RAPTOR's 26 values) or teacher_force (those "
                             "and the external force), not student")
        if self.threads < 0:
            raise ValueError(f"threads must be >= 0, got {self.threads}")
        check_device(self.device, "device")
        if self.ray_address is not None and not self.ray_address.strip():
            raise ValueError("ray_address must not be empty (null: no Ray; 'local': start a local Ray)")


def fleet_digest(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def make_env_factory(fleet: list[QuadrotorParams],
                     config: RaptorTeachersConfig) -> Callable[[list[int]], Any]:
    """Env factory for :class:`OffPolicyRunner`: ``train.envs_per_member`` environments per teacher id,
    all of that teacher's vehicle, teacher-major."""
    envs = config.train.envs_per_member

    def make_env(ids: list[int]) -> QuadrotorEnv:
        return QuadrotorEnv([fleet[i] for i in ids for _ in range(envs)], config.env, device=config.device,
                            seed=config.seed * 1_000_003 + ids[0])

    return make_env


_SELECT_SEED = 700_000_000  # + the teacher's fleet index: its judged episodes' start states


class Precision:
    """The runner's judge for teachers: each active teacher flies ``episodes`` deterministic recovery
    episodes on its own vehicle (:class:`OwnEpisodes`), scored by (success rate, -median final position
    error, mean return), larger is better. A terminated episode's final error counts as infinite, so a
    median below the radius means most episodes ended alive and on target. Values (per teacher):
    ``success``, ``final_error`` (median, m), ``length`` (mean) and ``return`` (mean)."""

    def __init__(self, make_env: EnvFactory, radius: float):
        self.make_env, self.radius = make_env, radius

    def __call__(self, active: torch.Tensor, fly: Fly) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        index = active.nonzero()[:, 0]
        episodes = fly(active, self.make_env)
        error = episodes.final_obs[..., TEACHER.slice("p_err")].norm(dim=-1)
        error = torch.where(episodes.terminated, torch.inf, error)
        success = ~episodes.terminated & (error < self.radius)
        ordered, n = error.sort(1).values, error.shape[1]
        median = 0.5 * (ordered[:, (n - 1) // 2] + ordered[:, n // 2])
        judged = {"success": success.float().mean(1), "final_error": median,
                  "length": episodes.lengths.mean(1), "return": episodes.returns.mean(1)}
        k = active.numel()
        score = torch.full((k, 3), -torch.inf, device=active.device)
        score[index] = torch.stack((judged["success"], -median, judged["return"]), 1)
        values = {}
        for name, v in judged.items():
            values[name] = torch.full((k,), torch.nan, device=active.device)
            values[name][index] = v
        return score, values


class OwnEpisodes:
    """Judged episodes of several teachers as one ``VecEnv``: ``episodes`` environments per teacher on
    its own vehicle with the hold reference, whose start states depend on the teacher alone (seeded by
    its fleet index; ``reset``'s seed is ignored), so every snapshot of a teacher is judged on the same
    episodes, whichever group it trains in and whoever is still in it."""

    action_size = 4

    def __init__(self, fleet: list[QuadrotorParams], ids: list[int], episodes: int,
                 config: QuadrotorEnvConfig, device: str):
        cfg = dataclasses.replace(config, reference="hold", auto_reset=False)
        self.ids = ids
        self.envs = [QuadrotorEnv([fleet[i]] * episodes, cfg, device=device) for i in ids]
        self.num_envs = episodes * len(ids)
        self.observation_size = self.envs[0].observation_size

    def reset(self, seed: int | None = None) -> tuple[torch.Tensor, dict]:
        return torch.cat([env.reset(seed=_SELECT_SEED + i)[0] for env, i in zip(self.envs, self.ids,
                                                                                   strict=True)]), {}

    def step(self, action: torch.Tensor) -> tuple[torch.Tensor, ...]:
        parts = [env.step(a) for env, a in zip(self.envs, action.chunk(len(self.envs)), strict=True)]
        obs, reward, terminated, truncated = (torch.cat([p[j] for p in parts]) for j in range(4))
        return obs, reward, terminated, truncated, {}


def train_teachers(config: RaptorTeachersConfig, fleet_path: str | Path, run_dir: str | Path, *,
                   resume: bool = False, progress: Callable[[int], None] | None = None,
                   log: Callable[[str], None] = print,
                   status: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Train ``config.teachers`` teachers of the fleet at ``fleet_path`` into ``run_dir``; returns metrics.

    Groups run one after another here, or as Ray tasks when ``config.ray_address`` is set
    (:func:`robo.rl.distributed.run_groups`); either way each group is trained by :func:`train_group`.
    """
    run_dir = Path(run_dir)
    fleet, _ = load_fleet(fleet_path)
    if config.teachers > len(fleet):
        raise ValueError(f"{fleet_path}: the fleet has {len(fleet)} quadrotors, the config asks for "
                         f"{config.teachers} teachers")
    digest = fleet_digest(fleet_path)
    ids = list(range(config.teachers))
    groups = [ids[i: i + config.group_size] for i in range(0, len(ids), config.group_size)]
    session: contextlib.AbstractContextManager[Any] = contextlib.nullcontext()
    if config.ray_address is not None:
        # Connect before the run folder is made: a bad address must not leave a half-made run behind.
        session = distributed.connect(config.ray_address, log=log)
    with session:
        _prepare_run_dir(run_dir, config, fleet_path, digest, resume)
        if config.threads:
            torch.set_num_threads(config.threads)
        # the threads each group trains with: this process's, or each Ray task's
        threads = torch.get_num_threads() if config.ray_address is None else config.threads or 1

        records: dict[int, dict[str, Any]] = {}
        wall = cpu = 0.0
        pending: list[tuple[int, list[int]]] = []
        for g, members in enumerate(groups):
            done_file = run_dir / "groups" / f"group_{g:04d}.json"
            if done_file.is_file():
                saved = json.loads(done_file.read_text())
                records.update({int(r["id"]): r for r in saved["records"]})
                wall += saved["seconds"]
                # a group finished before CPU time was booked: its wall time x threads, an upper bound
                cpu += saved.get("cpu_seconds", saved["seconds"] * threads)
            else:
                pending.append((g, members))

        if config.ray_address is None:
            results = {g: train_group(config, run_dir, g, members, fleet=fleet, digest=digest,
                                      progress=progress, log=log, status=status)
                       for g, members in pending}
        else:
            names = [p.name for p in fleet]
            where = run_dir.resolve()  # a task's working folder is not the driver's
            results = distributed.run_groups(
                functools.partial(_train_group_task, config, str(where), digest), pending,
                num_cpus=config.threads or 1, num_gpus=1 if config.device == "cuda" else 0,
                what="teacher groups", describe=lambda g, m: f"group {g} ({', '.join(names[i] for i in m)})",
                hint=f"The other groups' results are kept in {where}; resume the run to retry",
                progress=progress, log=log, status=status)
        for group_records, seconds, cpu_seconds in results.values():
            records.update({r["id"]: r for r in group_records})
            wall += seconds
            cpu += cpu_seconds

    metrics = summarise(records, wall, cpu, threads, config)
    write_json(run_dir / "metrics.json", metrics)
    plot_curves(run_dir, [records[i] for i in ids])
    return metrics


def train_group(config: RaptorTeachersConfig, run_dir: Path, g: int, members: list[int], *,
                fleet: list[QuadrotorParams], digest: str,
                progress: Callable[[int], None] | None = None, log: Callable[[str], None] = print,
                status: Callable[[str], None] | None = None) -> tuple[list[dict[str, Any]], float, float]:
    """Train group ``g`` (teacher ids ``members``) to the end, resuming its checkpoint if there is one.

    Writes every member's files, then ``groups/group_XXXX.json``; returns the members' records, the
    group's training seconds and its CPU seconds. The sequential and the Ray path both call this, so
    they cannot drift.
    """
    make_env = make_env_factory(fleet, config)
    names = [p.name for p in fleet]
    done_file = run_dir / "groups" / f"group_{g:04d}.json"
    checkpoint = run_dir / "groups" / f"group_{g:04d}.pt"
    train = config.train
    judge = None
    if train.select_interval:
        def own(ids: list[int]) -> OwnEpisodes:
            return OwnEpisodes(fleet, ids, train.select_episodes, config.env, config.device)

        judge = Precision(own, train.success_radius)
    trainer = OffPolicyRunner(members, make_env, config.sac, train, device=config.device,
                              seed=config.seed * 1_000_003 + members[0], window=train.acceptance.window,
                              should_finish=Acceptance(train.acceptance, train.stop_on_accept),
                              checkpoint=checkpoint, judge=judge)
    trainer.on_finish = _teacher_writer(run_dir, trainer, names, fleet, digest, config.env.observation)

    def same_fleet(state: dict[str, Any]) -> None:
        if state.get("fleet_sha256") not in (None, digest):
            raise ValueError(f"{checkpoint}: teacher checkpoint from another fleet (sha256 "
                             f"{state['fleet_sha256'][:12]}, this fleet {digest[:12]})")

    seconds_before = cpu_before = 0.0
    if checkpoint.is_file():
        meta = trainer.load(checkpoint, check=same_fleet)
        seconds_before = float(meta.get("seconds", 0.0))
        cpu_before = float(meta.get("cpu_seconds", seconds_before * torch.get_num_threads()))
        log(f"group {g}: resumed at env step {trainer.step}")
    scalars = RunDir(run_dir).scalars("teachers")
    # A resumed group logged its earlier curve points before it was interrupted.
    trainer.on_log = _logger(g, len(members), names, scalars, status,
                             logged={i: len(c) for i, c in trainer.curves.items()})
    start, cpu_start = time.perf_counter(), time.process_time()
    # Every group checkpoint also records its fleet and the time spent so far. Core-seconds are the
    # process's CPU time (all its threads), which a busy or paused machine does not inflate.
    trainer.checkpoint_meta = lambda: {"fleet_sha256": digest,
                                       "seconds": seconds_before + time.perf_counter() - start,
                                       "cpu_seconds": cpu_before + time.process_time() - cpu_start}
    with scalars:
        trainer.run(progress=progress)
    seconds = seconds_before + time.perf_counter() - start
    cpu_seconds = cpu_before + time.process_time() - cpu_start
    group_records = [trainer.finished[i] for i in members]
    for r in group_records:
        r["name"] = names[r["id"]]
        r["core_seconds"] = cpu_seconds / len(members)
    write_json(done_file, {"group": g, "members": members, "seconds": seconds, "cpu_seconds": cpu_seconds,
                           "records": group_records})
    checkpoint.unlink(missing_ok=True)  # the teachers' own files hold what is kept
    log(f"group {g}: {sum(r['accepted'] for r in group_records)}/{len(members)} accepted "
        f"in {seconds:.0f} s")
    return group_records, seconds, cpu_seconds


def summarise(records: dict[int, dict[str, Any]], wall: float, cpu: float, threads: int,
              config: RaptorTeachersConfig) -> dict[str, Any]:
    accepted = [r for r in records.values() if r["accepted"]]
    rejected = [r for r in records.values() if not r["accepted"]]
    core_minutes = cpu / 60.0
    return {
        "teachers": len(records),
        "accepted": len(accepted),
        # eval_length/eval_return: present when the training episodes passed and the deterministic
        # episodes did not, which is why such a teacher is rejected.
        "rejected": [{k: r[k] for k in ("name", "steps", "mean_length", "mean_return", "episodes",
                                        "eval_length", "eval_return", *_BEST) if k in r}
                     for r in sorted(rejected, key=lambda r: r["id"])],
        # The judged snapshot each teacher hands on (with train.select_interval).
        "snapshots": [{"name": r["name"], **{k: r[k] for k in _BEST if k in r}}
                      for r in sorted(records.values(), key=lambda r: r["id"]) if "best_step" in r],
        "accepted_names": [r["name"] for r in sorted(accepted, key=lambda r: r["id"])],
        "mean_steps_accepted": (sum(r["steps"] for r in accepted) / len(accepted)) if accepted else None,
        "wall_seconds": wall,
        "threads": threads,
        "device": config.device,
        "group_size": config.group_size,
        "ray_address": config.ray_address,
        "core_minutes_total": core_minutes,
        "core_minutes_per_accepted_teacher": core_minutes / len(accepted) if accepted else None,
        "acceptance": to_dict(config.train.acceptance),
    }


def _prepare_run_dir(run_dir: Path, config: RaptorTeachersConfig, fleet_path: str | Path, digest: str,
                     resume: bool) -> None:
    stored_fleet = run_dir / "fleet.json"
    if resume:
        if not stored_fleet.is_file():
            raise OSError(f"--resume: {run_dir} holds no teacher run (no fleet.json)")
        if fleet_digest(stored_fleet) != digest:
            raise ValueError(f"--resume: {fleet_path} is not the fleet this run was started with "
                             f"({stored_fleet})")
    # Where and how fast a run trains, not what it trains: a run may resume with other values.
    RunDir.open(run_dir, config, kind="raptor-teachers", resume=resume, may_change=("ray_address", "threads"))
    if not resume:  # config.yaml first: a run with a fleet.json always has its config
        (run_dir / "groups").mkdir(exist_ok=True)
        (run_dir / "teachers").mkdir(exist_ok=True)
        write_bytes(stored_fleet, Path(fleet_path).read_bytes())


def resumed_steps(config: RaptorTeachersConfig, run_dir: str | Path) -> int:
    """Env steps per member a resumed run has behind it, summed over groups (a progress bar's start):
    a finished group counts its whole budget, a group with a checkpoint its checkpoint's step."""
    groups = Path(run_dir) / "groups"
    done = 0
    for g in range(-(-config.teachers // config.group_size)):
        if (groups / f"group_{g:04d}.json").is_file():
            done += config.train.steps
        elif (groups / f"group_{g:04d}.pt").is_file():
            with contextlib.suppress(ValueError, OSError):  # an unreadable checkpoint is reported later
                done += int(load_checkpoint(groups / f"group_{g:04d}.pt", mmap=True)["step"])
    return done


def _train_group_task(config: RaptorTeachersConfig, run_dir: str, digest: str, g: int, members: list[int],
                      **callbacks: Any) -> tuple[list[dict[str, Any]], float, float]:
    """One group on a Ray worker (:func:`robo.rl.distributed.run_groups`): :func:`train_group` on the
    run folder, once the node is seen to share it."""
    fleet_file = Path(run_dir) / "fleet.json"
    if not fleet_file.is_file() or fleet_digest(fleet_file) != digest:
        raise RuntimeError(f"node {socket.gethostname()} does not see the run folder {run_dir} (its "
                           f"fleet.json is missing or another); put the run folder on storage every "
                           f"node sees, at the same path")
    if config.device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"node {socket.gethostname()}: torch sees no CUDA device")
    fleet, _ = load_fleet(fleet_file)
    return train_group(config, Path(run_dir), g, members, fleet=fleet, digest=digest, **callbacks)


_BEST = ("best_step", "best_success", "best_final_error", "best_length", "best_return")
# Curve columns logged as TensorBoard scalars, tagged <teacher>/<column>.
_SCALARS = ("return", "length", "critic_loss", "alpha", "eval_length", "select_success",
            "select_final_error", "select_length")


def _logger(group: int, members: int, names: list[str], scalars: Scalars,
            status: Callable[[str], None] | None,
            logged: dict[int, int]) -> Callable[[OffPolicyRunner], None]:
    """After each curve point: every teacher's points after the first ``logged[id]`` as TensorBoard
    scalars (tag ``<teacher>/<column>``, step = env steps), and the status line (members still
    training, their mean episode length)."""

    def on_log(trainer: OffPolicyRunner) -> None:
        for i, curve in trainer.curves.items():
            for point in curve[logged.get(i, 0):]:
                # Window means of no episode yet are zeros, not measurements.
                keys = _SCALARS if point["episodes"] else _SCALARS[2:]
                for key in (k for k in keys if k in point):
                    scalars.add(f"{names[i]}/{key}", point[key], point["step"])
            logged[i] = len(curve)
        if status is not None:
            lengths = [c[-1]["length"] for c in trainer.curves.values() if c and c[-1]["episodes"]]
            mean = f"{sum(lengths) / len(lengths):.0f}" if lengths else "-"
            status(f"group {group}: training {len(trainer.ids)}/{members}, mean episode length {mean}")

    return on_log


def _teacher_writer(run_dir: Path, trainer: OffPolicyRunner, names: list[str], fleet: list[QuadrotorParams],
                    digest: str, layout: str) -> Callable:
    def on_finish(i: int, record: dict[str, Any], actor: torch.nn.Module) -> None:
        folder = run_dir / "teachers" / names[i]
        meta = policy_meta(LAYOUTS[layout], run=str(run_dir), origin={
            "teacher": names[i], "fleet_sha256": digest, "quadrotor": fleet[i].to_dict(), "record": record})
        save_actor(folder / "actor.pt", actor.cpu(), trainer.group.act_size, meta)
        _write_curve(folder / "curve.csv", trainer.curves[i])
        write_json(folder / "result.json", {**record, "name": names[i]})

    return on_finish


def _write_curve(path: Path, points: list[dict[str, float]]) -> None:
    # eval_*: the deterministic confirmation (acceptance.evaluate), only on points where it ran.
    # select_*: the judged precision (train.select_interval), only on points where it ran.
    write_csv(path, points, ["step", "return", "length", "episodes", "alpha", "critic_loss",
                             "eval_return", "eval_length", "select_success", "select_final_error",
                             "select_length", "select_return"])


def run_metrics(run_dir: str | Path) -> dict[str, Any]:
    """A finished teacher run's metrics.json (accepted names, rejected teachers with their numbers)."""
    path = Path(run_dir) / "metrics.json"
    if not path.is_file():
        raise OSError(f"{run_dir}: no metrics.json (is the teacher run finished?)")
    try:
        metrics = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(metrics, dict) or "accepted_names" not in metrics:
        raise ValueError(f"{run_dir}: not a raptor-teachers run (no accepted_names in its metrics.json)")
    return metrics


def load_teachers(run_dir: str | Path, names: list[str] | None = None, *, accepted_only: bool = True,
                  device: str | torch.device = "cpu") -> tuple[list[str], StackedTeachers]:
    """Stack a teacher run's actors for batched labelling: ``actor.deterministic(obs [K, B, 26 or 29])``;
    ``.layout`` names the observation they take (``sim.quadrotor.observation.LAYOUTS``).

    ``names`` defaults to the run's accepted teachers (all teachers with ``accepted_only=False``), in
    fleet order. A teacher file that belongs to another fleet than the run's is refused.
    """
    names, nets, layouts, _ = _teacher_nets(Path(run_dir), names, accepted_only)
    return names, _stack(nets, layouts, str(run_dir), device)


@dataclass
class TeacherSet:
    """Teachers of one or more runs, stacked in one ensemble, with their vehicles and fleets."""

    names: list[str]                 # "q226" for one run; "small_force/q226" when several are joined
    teachers: StackedTeachers
    vehicles: list[QuadrotorParams]  # each teacher's own quadrotor, in the order of ``names``
    digest: str                      # the fleet's sha256 for one run, else one over the runs' fleets
    runs: list[Path]
    fleets: list[list[QuadrotorParams]]  # each run's whole fleet, teachers and the rest


def load_teacher_runs(runs: list[Path], *, accepted_only: bool) -> TeacherSet:
    """Join several teacher runs into one teacher set, as the authors distil teachers trained apart
    (fleets may differ, e.g. in thrust curves; the observation must be the same)."""
    if not runs:
        raise ValueError("no teacher runs given")
    labels = [_run_label(r) for r in runs]
    if len(set(map(str, runs))) < len(runs):
        raise ValueError(f"a teacher run is given twice: {', '.join(map(str, runs))}")
    if len(set(labels)) < len(labels):
        labels = [str(r) for r in runs]
    names, nets, layouts, vehicles, digests, fleets = [], [], set(), [], [], []
    for run, label in zip(runs, labels, strict=True):
        run_names, run_nets, run_layouts, run_digest = _teacher_nets(run, None, accepted_only)
        fleets.append(load_fleet(run / "fleet.json")[0])
        by_name = {p.name: p for p in fleets[-1]}
        vehicles += [by_name[n] for n in run_names]
        names += run_names if len(runs) == 1 else [f"{label}/{n}" for n in run_names]
        nets += run_nets
        layouts |= run_layouts
        digests.append(run_digest)
    where = " and ".join(map(str, runs))
    digest = digests[0] if len(runs) == 1 else hashlib.sha256(" ".join(digests).encode()).hexdigest()
    return TeacherSet(names, _stack(nets, layouts, where, "cpu"), vehicles, digest, list(runs), fleets)


def _run_label(run: Path) -> str:
    """A teacher run's short name: its folder, or the pipeline run's for ``RUN/teachers``."""
    return run.parent.name if run.name == "teachers" and run.parent.name else run.name


def _teacher_nets(run_dir: Path, names: list[str] | None,
                  accepted_only: bool) -> tuple[list[str], list[torch.nn.Module], set[str], str]:
    """A run's teacher names, actor networks, the observation layouts they take and its fleet's
    digest (every teacher file is checked against it)."""
    if names is None:
        metrics = run_metrics(run_dir)
        names = list(metrics["accepted_names"])
        if not accepted_only:
            names = sorted(names + [r["name"] for r in metrics["rejected"]])
    if not names:
        raise ValueError(f"{run_dir}: no teachers to load")
    digest = fleet_digest(run_dir / "fleet.json")
    nets, layouts = [], set()
    for name in names:
        path = run_dir / "teachers" / name / "actor.pt"
        policy, meta = load_policy(path)
        if meta.get("origin", {}).get("fleet_sha256") != digest:
            raise ValueError(f"{path}: teacher trained on another fleet than {run_dir / 'fleet.json'}")
        layouts.add(layout_named([e["name"] for e in meta["observation"]]))
        nets.append(policy.net)
    return list(names), nets, layouts, digest


def _stack(nets: list[torch.nn.Module], layouts: set[str], where: str,
           device: str | torch.device) -> StackedTeachers:
    if len(layouts) > 1:
        raise ValueError(f"{where}: teachers take different observations ({', '.join(sorted(layouts))})")
    stacked = StackedTeachers(EnsembleMLP.from_members(nets), layouts.pop())
    return stacked.to(device).requires_grad_(False)


class StackedTeachers(torch.nn.Module):
    """K teachers' deterministic policies as one ensemble: ``deterministic(obs [K, B, 26 or 29])``."""

    def __init__(self, net: EnsembleMLP, layout: str):
        super().__init__()
        self.net, self.layout = net, layout

    def deterministic(self, obs: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.net(obs))


def read_curve(path: str | Path) -> list[dict[str, float]]:
    with Path(path).open() as f:
        return [{k: float(v) for k, v in row.items() if v != ""} for row in csv.DictReader(f)]


def plot_curves(run_dir: Path, records: list[dict[str, Any]]) -> Path | None:
    """All teachers' mean episode length over env steps, accepted in blue, rejected in red."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for r in records:
        curve_file = run_dir / "teachers" / r["name"] / "curve.csv"
        if not curve_file.is_file():
            continue
        curve = [p for p in read_curve(curve_file) if p.get("episodes", 0) > 0]
        ax.plot([p["step"] for p in curve], [p["length"] for p in curve], lw=0.8,
                color="tab:blue" if r["accepted"] else "tab:red", alpha=0.6)
    ax.set_xlabel("env steps per teacher")
    ax.set_ylabel("mean episode length (last window)")
    ax.set_title("RAPTOR teachers (blue accepted, red rejected)")
    path = run_dir / "learning_curves.png"
    tmp = run_dir / ".learning_curves.tmp.png"
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    tmp.replace(path)
    return path

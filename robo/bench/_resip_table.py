"""The success table of ``robo bench resip``: per task and randomness level, the scripted expert, the
diffusion base (DDIM 16), the MLP-BC base and, for ``--rl-cells``, ResiP on the diffusion base and MLP-BC +
PPO on the MLP base at the same environment steps, each over the same seeded evaluation episodes.

Everything lives under ``--runs``: ``demos/TASK_LEVEL.hdf5`` (the base config's ``demo_episodes``
expert demonstrations, recorded when missing) and one run folder per stage and cell, ``dp_``, ``mlp_``,
``resip_`` and ``mlpppo_TASK_LEVEL``.
Like ``robo bench gpayn`` it is resumable and keeps budgets equal: a finished run whose stored config
equals the one the bench would train is reused, an unfinished one resumes from its checkpoint, and one with
another config is refused, naming the key, before anything trains. Evaluations are kept in their run
(``eval_dp_ddim16/``, ``eval_dp/``, the RL runs' own ``metrics.json``) and reused while they are newer than
the policy and were played with the same episodes and seed.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from tqdm import tqdm

from robo.config import load_config
from robo.files import save_figure, write_json
from robo.registry import Context
from robo.run_dir import RunDir
from robo.tasks.resip import eval_dp, train_dp, train_mlp_ppo, train_resip
from sim.assembly.config import PRESETS, RANDOMNESS
from sim.assembly.demos import record_task
from sim.assembly.measure import expert_success

CELLS = tuple(f"{task}:{level}" for task in PRESETS for level in RANDOMNESS)
EVAL_SEED = eval_dp.DPEvalConfig().seed
EVAL_DDIM = 16  # the paper's evaluation sampler for the base
# Settings a task needs beyond the quick configs: the pick task's normalised x/y range is 2.5-4x the
# peg's, so the residual's held noise is scaled down to stay near 1 mm. (Its base once needed 6,000
# gradient steps here, when the quick config took 2,000; it takes 10,000 now.) At 0.2 mm the quick
# config's 1 mm of held noise is five clearances: on the 10,000-step base (73.0 % at DDIM 8) it took
# ResiP to 39.5 %, std 0.1 (0.25 mm) to 71.5 % (README, round 8).
TASK_SETTINGS = {"pick_peg_2mm": {"resip": ["runner.init_std=0.15"]},
                 "peg_0.2mm": {"resip": ["runner.init_std=0.1"]}}


# The evaluation of a finished RL run may change: resuming it re-evaluates (its train() allows it).
MAY_CHANGE = {"dp": ["threads"], "mlp": ["threads"], "resip": ["threads", "eval_episodes", "eval_seed"],
              "mlpppo": ["threads", "eval_episodes", "eval_seed"]}
STAGES = {"dp": train_dp, "mlp": train_dp, "resip": train_resip, "mlpppo": train_mlp_ppo}
# the names a stage's paired evaluation gives (its base, itself) in its metrics.json
RL_KEYS = {"resip": ("base", "resip"), "mlpppo": ("bc", "fine_tuned")}
NAMES = {"dp": "diffusion base", "mlp": "MLP-BC", "resip": "ResiP", "mlpppo": "MLP-BC + PPO"}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--cells", default=",".join(CELLS),
                   help="task:level cells of the table, comma-separated (default: every task and level)")
    p.add_argument("--rl-cells", default="peg_2mm:low",
                   help="cells that also get ResiP and MLP-BC + PPO runs (each ~10-20 min of a core); "
                        "'all', or '' for none")
    p.add_argument("--episodes", type=int, default=200, help="evaluation episodes per policy and cell")
    p.add_argument("--runs", default="bench_results/resip_runs",
                   help="folder of the demonstrations and runs: finished runs are reused, unfinished resumed")
    p.add_argument("--dp-config", default="configs/resip_quick.yaml", help="the diffusion base's config")
    p.add_argument("--mlp-config", default="configs/resip_mlp_quick.yaml", help="the MLP-BC base's config")
    p.add_argument("--resip-config", default="configs/resip_residual_quick.yaml",
                   help="the residual's config")
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="[TASK:]STAGE.KEY=VALUE",
                   help=f"override one config key of a stage ({', '.join(STAGES)}) in every cell, or in one "
                        "task's cells, after the task's own settings; repeatable. E.g. --set "
                        "peg_0.2mm:resip.residual_scale=0.3. MLP-BC + PPO's runner.iterations always follows "
                        "the residual's environment steps")


def _cells(text: str, flag: str) -> list[tuple[str, str]]:
    cells = []
    for item in (c.strip() for c in (",".join(CELLS) if text == "all" else text).split(",") if c.strip()):
        task, _, level = item.partition(":")
        if task not in PRESETS or level not in RANDOMNESS:
            raise ValueError(f"{flag}: {item!r} is not TASK:LEVEL with a task of {', '.join(PRESETS)} and a "
                             f"level of {', '.join(RANDOMNESS)}")
        cells.append((task, level))
    return cells


def _stage_sets(sets: list[str]) -> list[tuple[str | None, str, str]]:
    """``--set [TASK:]STAGE.KEY=VALUE`` items as (task or None, stage, ``KEY=VALUE``)."""
    parsed = []
    for item in sets:
        head, eq, value = item.partition("=")
        task, _, path = head.rpartition(":")  # before the '.': task names hold one (peg_0.2mm)
        stage, _, key = path.partition(".")
        if stage not in STAGES or (task and task not in PRESETS) or not key or not eq:
            raise ValueError(f"--set: {item!r} is not [TASK:]STAGE.KEY=VALUE with a stage of "
                             f"{', '.join(STAGES)} and a task of {', '.join(PRESETS)}")
        parsed.append((task or None, stage, f"{key}={value}"))
    return parsed


class Table:
    """The runs of the table under one folder, checked before anything trains."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.root = Path(args.runs)
        if self.root.exists() and not self.root.is_dir():
            raise OSError(f"--runs {self.root} is a file, not a folder")
        if args.episodes < 1:
            raise ValueError(f"--episodes must be >= 1, got {args.episodes}")
        self.sets = _stage_sets(args.sets)
        self.cells = _cells(args.cells, "--cells")
        self.rl_cells = _cells(args.rl_cells, "--rl-cells")
        missing = [f"{t}:{lv}" for t, lv in self.rl_cells if (t, lv) not in self.cells]
        if missing:
            raise ValueError(f"--rl-cells: {missing[0]} is not among --cells")
        for flag in ("dp_config", "mlp_config", "resip_config"):
            if not Path(getattr(args, flag)).is_file():
                raise OSError(f"--{flag.replace('_', '-')}: no file {getattr(args, flag)}")
        self.configs: dict[tuple[str, str, str], Any] = {}
        for task, level in self.cells:
            for stage, path in (("dp", args.dp_config), ("mlp", args.mlp_config)):
                self.configs[task, level, stage] = self._config(stage, path, task, level)
        for task, level in self.rl_cells:
            resip = self._config("resip", args.resip_config, task, level)
            self.configs[task, level, "resip"] = resip
            # the baseline at the residual's environment steps (both count every simulated step)
            mlp_ppo = load_config(train_mlp_ppo.MLPPPOTrainConfig, None, [
                f"threads={args.threads}", f"eval_episodes={args.episodes}", *self._sets("mlpppo", task)])
            chunk = self.configs[task, level, "mlp"].diffusion.action_horizon
            per_iteration = mlp_ppo.runner.num_steps * mlp_ppo.envs * chunk
            steps = resip.runner.iterations * resip.runner.num_steps * resip.hold_steps * resip.envs
            mlp_ppo.runner.iterations = max(1, round(steps / per_iteration))
            self.configs[task, level, "mlpppo"] = mlp_ppo
        for (task, level, stage), config in self.configs.items():  # another config is refused up front
            folder = self.folder(task, level, stage)
            if folder.is_dir() and any(folder.iterdir()):
                kind = STAGES[stage].KIND
                try:
                    RunDir.check_resumable(folder, config, kind=kind, may_change=MAY_CHANGE[stage])
                except (OSError, ValueError) as e:
                    raise type(e)(f"--runs: {folder} is not this bench's {stage} run of {task} {level}: "
                                  f"{e}") from None

    def _config(self, stage: str, path: str, task: str, level: str) -> Any:
        """``path`` for this cell: the table's demonstrations, episodes and the task's own settings."""
        sets = [f"threads={self.args.threads}", *TASK_SETTINGS.get(task, {}).get(stage, []),
                *self._sets(stage, task)]
        if stage == "resip":
            sets += [f"eval_episodes={self.args.episodes}", f"eval_seed={EVAL_SEED}"]
            return load_config(train_resip.ResiPTrainConfig, path, sets)
        sets += [f"task={task}", f"randomness={level}", f"demos={self.demos(task, level)}"]
        return load_config(train_dp.DPTrainConfig, path, sets)

    def _sets(self, stage: str, task: str) -> list[str]:
        return [setting for only, of, setting in self.sets if of == stage and only in (None, task)]

    def demos(self, task: str, level: str) -> Path:
        return self.root / "demos" / f"{task}_{level}.hdf5"

    def folder(self, task: str, level: str, stage: str) -> Path:
        return self.root / f"{stage}_{task}_{level}"

    def run(self, log: Any = print) -> list[dict[str, Any]]:
        rows = []
        for task, level in self.cells:
            demos = self.demos(task, level)
            if not demos.is_file():
                count = self.configs[task, level, "dp"].demo_episodes
                log(f"{task} {level}: recording {count} expert demonstrations into {demos}")
                record_task(demos, task, level, count)
            row: dict[str, Any] = {"task": task, "level": level,
                                   "expert": self.expert(task, level)}
            for stage in ("dp", "mlp"):
                folder = self.trained(task, level, stage)
                row[stage] = self.base_eval(folder)
            if (task, level) in self.rl_cells:
                for stage, base in (("resip", "dp"), ("mlpppo", "mlp")):
                    folder = self.trained(task, level, stage, base=self.folder(task, level, base))
                    row[stage] = rl_summary(stage, folder)
                # the residual's paired base plays with the sampler used in RL, not the table's DDIM 16
                row["resip"]["base_ddim_steps"] = self.configs[task, level, "resip"].base_ddim_steps or \
                    self.configs[task, level, "dp"].diffusion.rl_ddim_steps
            log(line(row))
            rows.append(row)
        return rows

    def expert(self, task: str, level: str) -> dict[str, Any]:
        """The scripted expert's success, kept in ``expert.json`` per cell and episode count."""
        path, key = self.root / "expert.json", f"{task}:{level}:{self.args.episodes}"
        kept = json.loads(path.read_text()) if path.is_file() else {}
        if key not in kept:
            kept[key] = expert_success(task, level, self.args.episodes)
            write_json(path, kept)
        return kept[key]

    def trained(self, task: str, level: str, stage: str, base: Path | None = None) -> Path:
        """The cell's finished ``stage`` run: reused, resumed or trained."""
        config, folder = self.configs[task, level, stage], self.folder(task, level, stage)
        if not _finished(folder, stage, config):
            resume = folder.is_dir() and any(folder.iterdir())
            args = argparse.Namespace(task=task, base=None if base is None else str(base))
            ctx = Context(out=folder, resume=resume, log=tqdm.write, bar=_bar)
            tqdm.write(STAGES[stage].train(config, args, ctx))
        return folder

    def base_eval(self, folder: Path) -> dict[str, Any]:
        """A base's success over the table's episodes (DDIM 16 for a diffusion base), kept in its run."""
        config = eval_dp.DPEvalConfig(episodes=self.args.episodes, ddim_steps=EVAL_DDIM, seed=EVAL_SEED,
                                      threads=self.args.threads, strip_frames=0)
        kept = [folder / name / "metrics.json" for name in (f"eval_dp_ddim{EVAL_DDIM}", "eval_dp")]
        policy = (folder / "policy.pt").stat().st_mtime
        for path in kept:
            if path.is_file() and path.stat().st_mtime >= policy:
                metrics = json.loads(path.read_text())
                # the rows' count decides which seeded episodes are played, so it must match too
                played = (metrics["episodes"], metrics["seed"], metrics["envs"], metrics["action_horizon"])
                if played == (config.episodes, config.seed, min(config.envs, config.episodes),
                              config.action_horizon) and metrics["ddim_steps"] in (None, EVAL_DDIM):
                    return metrics
        eval_dp.evaluate(config, argparse.Namespace(base=str(folder)), Context(out=None, bar=_bar))
        return json.loads(next(p for p in kept if p.is_file()).read_text())


def _bar(desc: str, total: int, initial: int = 0) -> tqdm:
    return tqdm(total=total, initial=initial, desc=desc, unit_scale=True, dynamic_ncols=True, leave=False)


def _finished(folder: Path, stage: str, config: Any) -> bool:
    path = folder / "metrics.json"
    if not path.is_file():
        return False
    metrics = json.loads(path.read_text())
    if stage in ("dp", "mlp"):
        steps = config.diffusion.gradient_steps
        return (folder / "policy.pt").is_file() and metrics["gradient_steps"] >= steps
    # an RL run's metrics hold its paired evaluation: finished for this table when it has the table's
    return (metrics["iterations"] >= config.runner.iterations
            and (metrics.get("eval_episodes"), metrics.get("eval_seed")) == (config.eval_episodes,
                                                                             config.eval_seed))


def rl_summary(stage: str, folder: Path) -> dict[str, Any]:
    """An RL run's paired evaluation against its own base, under names common to both RL stages."""
    m = json.loads((folder / "metrics.json").read_text())
    base, it = RL_KEYS[stage]
    return {"success_rate": m[f"{it}_success_rate"], "its_base_success_rate": m[f"{base}_success_rate"],
            "only_it_succeeds": m[f"only_{it}_succeeds"],
            "only_its_base_succeeds": m[f"only_{base}_succeeds"],
            "mcnemar_exact_p": m["mcnemar_exact_p"], "env_steps": m["env_steps"],
            "episodes": m["eval_episodes"], "run": str(folder)}


def line(row: dict[str, Any]) -> str:
    """One cell of the table as text."""
    parts = [f"expert {row['expert']['success']:.1%}", f"diffusion base {row['dp']['success_rate']:.1%}",
             f"MLP-BC {row['mlp']['success_rate']:.1%}"]
    for stage in RL_KEYS:
        if stage in row:
            m = row[stage]
            sampler = f" at DDIM {m['base_ddim_steps']}" if "base_ddim_steps" in m else ""
            parts.append(f"{NAMES[stage]} {m['success_rate']:.1%} (its base{sampler} "
                         f"{m['its_base_success_rate']:.1%} paired, p {m['mcnemar_exact_p']:.2g}, "
                         f"{m['env_steps']:,} steps)")
    return f"{row['task']} {row['level']}: " + ", ".join(parts)


def plot(rows: list[dict[str, Any]], path: Path) -> Path:
    """Grouped bars: success per cell for each policy in the table."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    resip = next((r["resip"] for r in rows if "resip" in r), None)
    columns = [("expert", lambda r: r["expert"]["success"]),
               (f"diffusion base (DDIM {EVAL_DDIM})", lambda r: r["dp"]["success_rate"]),
               ("MLP-BC", lambda r: r["mlp"]["success_rate"]),
               *((NAMES[stage], lambda r, stage=stage: r[stage]["success_rate"] if stage in r else None)
                 for stage in RL_KEYS)]
    if resip is not None:  # what ResiP is paired with: its base at the RL sampler
        columns.insert(3, (f"ResiP's base (DDIM {resip['base_ddim_steps']}, paired)",
                           lambda r: r["resip"]["its_base_success_rate"] if "resip" in r else None))
    fig, ax = plt.subplots(figsize=(1.6 + 1.5 * len(rows), 4.2))
    width = 0.8 / len(columns)
    for i, (name, rate) in enumerate(columns):
        shown = [(j, 100 * rate(r)) for j, r in enumerate(rows) if rate(r) is not None]
        if shown:
            ax.bar([j + (i - len(columns) / 2 + 0.5) * width for j, _ in shown], [y for _, y in shown], width,
                   label=name)
    ax.set_xticks(range(len(rows)), [f"{r['task']}\n{r['level']}" for r in rows], fontsize=8)
    ax.set_ylabel(f"success over {rows[0]['dp']['episodes']} episodes (%)")
    ax.set_ylim(0, 105)
    ax.legend(fontsize=7, ncol=3, loc="upper center", bbox_to_anchor=(0.5, -0.18))
    ax.set_title("assembly success per task and level (robo bench resip)", fontsize=9)
    fig.tight_layout()
    return save_figure(fig, path)

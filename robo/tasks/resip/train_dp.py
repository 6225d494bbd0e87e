"""``robo train dp``: behaviour cloning of the diffusion base on the expert's demonstrations.

The run folder (:class:`~robo.run_dir.RunDir`) holds the resolved config, ``demos.hdf5`` (recorded
here unless ``demos`` names a file), ``checkpoint.pt`` (policy, optimiser, schedule, step, the
minibatch generator: ``--resume`` continues the same sequence of minibatches), TensorBoard scalars,
``loss.csv``/``loss.png``, ``metrics.json`` and ``policy.pt`` (:func:`robo.tasks.resip.base.load_base`).
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from robo.config import read_yaml, to_dict
from robo.registry import Context
from robo.rl.checkpoint import load_checkpoint
from robo.rl.diffusion_bc import ChunkBC, DiffusionBC, DiffusionConfig, build_policy, windows
from robo.run_dir import CONFIG, RunDir
from robo.tasks.resip.curves import write_curve
from sim.assembly import demos
from sim.assembly.config import PRESETS, check_randomness, preset
from sim.assembly.env import ACTION_NAMES, LAYOUTS

KIND = "dp"
CHECKPOINT = "checkpoint.pt"
CHECKPOINT_FORMAT = "robo-dp-train/1"
DEMOS = "demos.hdf5"


@dataclass
class DPTrainConfig:
    task: str = "peg_2mm"
    randomness: str = "low"
    demos: str = ""  # an existing demonstrations file; empty: record demo_episodes into the run folder
    demo_episodes: int = 50
    seed: int = 0
    threads: int = 2  # torch CPU threads; may change on --resume
    log_interval: int = 50
    checkpoint_interval: int = 500
    # diffusion: the DP U-Net (ResiP's base); mlp: the MLP-BC baseline, an MLP regressing the whole
    # chunk (diffusion.pred_horizon actions; the optimiser, schedule and EMA keys of diffusion apply)
    policy: str = "diffusion"
    mlp_hidden: list[int] = field(default_factory=lambda: [256, 256])
    diffusion: DiffusionConfig = field(default_factory=DiffusionConfig)

    def __post_init__(self) -> None:
        if self.task not in PRESETS:
            raise ValueError(f"task: unknown task {self.task!r} (known: {', '.join(PRESETS)})")
        check_randomness(self.randomness)
        if self.policy not in ("diffusion", "mlp"):
            raise ValueError(f"policy: {self.policy!r} is not one of diffusion, mlp")
        if not self.mlp_hidden or min(self.mlp_hidden) < 1:
            raise ValueError(f"mlp_hidden: layer sizes must be >= 1, got {self.mlp_hidden}")
        for key in ("demo_episodes", "threads", "log_interval", "checkpoint_interval"):
            if getattr(self, key) < 1:
                raise ValueError(f"{key}: must be >= 1, got {getattr(self, key)}")


def _demonstrations(config: DPTrainConfig, run: RunDir, log) -> tuple[list[demos.Episode], Path]:
    path = Path(config.demos) if config.demos else run / DEMOS
    if not config.demos and not path.is_file():
        log(f"recording {config.demo_episodes} expert demonstrations of {config.task} ({config.randomness})")
        demos.record_task(path, config.task, config.randomness, config.demo_episodes, seed=config.seed)
    episodes = _check_demonstrations(path, config)
    return [e for e in episodes if e.success], path


def _check_demonstrations(path: Path, config: DPTrainConfig) -> list[demos.Episode]:
    episodes, attrs = demos.load(path, task=config.task)
    found = attrs["env_config"]["randomness"]
    if found != config.randomness:
        raise ValueError(f"demonstrations {path}: randomness {found!r}, expected {config.randomness!r}")
    return episodes


def train(config: DPTrainConfig, args: argparse.Namespace, ctx: Context) -> str:
    if args.task:
        config.task = args.task
    elif ctx.resume and ctx.out and (Path(ctx.out) / CONFIG).is_file():
        # another kind of run has no task: RunDir.open refuses it below
        config.task = read_yaml(Path(ctx.out) / CONFIG).get("task", config.task)
    DPTrainConfig.__post_init__(config)
    if config.demos:  # a wrong file is refused before the run folder is touched
        _check_demonstrations(Path(config.demos), config)
    run = RunDir.open(ctx.out, config, kind=KIND, resume=ctx.resume, may_change=["threads"])
    torch.set_num_threads(config.threads)
    successful, demo_path = _demonstrations(config, run, ctx.log)
    if not successful:
        raise RuntimeError(f"demonstrations {demo_path}: no successful episode to learn from")
    dc = config.diffusion
    obs_np, act_np = windows([(e.obs, e.action) for e in successful], dc.pred_horizon)
    obs, actions = torch.from_numpy(obs_np), torch.from_numpy(act_np)

    torch.manual_seed(config.seed)
    mlp_hidden = tuple(config.mlp_hidden) if config.policy == "mlp" else None
    policy = build_policy(dc, obs.shape[1], actions.shape[2], mlp_hidden)
    policy.fit_normalizer(obs, actions)
    bc = ChunkBC(policy, dc) if config.policy == "mlp" else DiffusionBC(policy, dc)
    generator = torch.Generator().manual_seed(config.seed)
    step, history = 0, []
    if ctx.resume and (run / CHECKPOINT).is_file():
        state = load_checkpoint(run / CHECKPOINT, format=CHECKPOINT_FORMAT)
        bc.load_state_dict(state["bc"])
        generator.set_state(state["generator"])
        step, history = state["step"], state["history"]

    def save_checkpoint() -> None:
        from robo.files import save_torch

        save_torch({"format": CHECKPOINT_FORMAT, "bc": bc.state_dict(), "generator": generator.get_state(),
                    "step": step, "history": history}, run / CHECKPOINT)

    first, started, losses = step, time.perf_counter(), []
    with run.scalars("dp") as scalars, ctx.bar(f"dp {config.task}", dc.gradient_steps, initial=step) as bar:
        while step < dc.gradient_steps:
            index = torch.randint(0, len(obs), (dc.batch_size,), generator=generator)
            losses.append(bc.train_step(obs[index], actions[index], generator))
            step += 1
            bar.update()
            if step % config.log_interval == 0 or step == dc.gradient_steps:
                row = {"step": step, "loss": float(np.mean(losses)), "lr": bc.lr_schedule.get_last_lr()[0]}
                history.append(row)
                scalars.add_all({"loss": row["loss"], "lr": row["lr"]}, step, "dp/")
                bar.set_postfix_str(f"loss {row['loss']:.4f}")
                losses = []
            if step % config.checkpoint_interval == 0 or step == dc.gradient_steps:
                save_checkpoint()
    seconds = time.perf_counter() - started

    from robo.nets.policy import save_policy

    env_config = preset(config.task, randomness=config.randomness)
    meta = {"task": config.task, "observation": LAYOUTS[env_config.task].card_entries(),
            "action": [{"name": n, "unit": "m" if n.startswith("pos") else "1"} for n in ACTION_NAMES],
            "control_rate_hz": 1 / env_config.control_dt, "run": str(run.path),
            "config": {**to_dict(config), "env": to_dict(env_config)}}
    save_policy(run / "policy.pt", bc.ema, meta)  # the moving average acts
    if history:
        labels = {"xlabel": "gradient step",
                  "ylabel": "chunk MSE" if config.policy == "mlp" else "noise-prediction MSE",
                  "title": f"{config.policy} BC, {config.task}"}
        write_curve(run, "loss", history, "step", "loss", labels, log_y=True)
    params = sum(p.numel() for p in policy.parameters())
    run.write_json("metrics.json", {
        "task": config.task, "randomness": config.randomness, "demonstrations": str(demo_path),
        "successful_demonstrations": len(successful), "windows": len(obs), "parameters": params,
        "gradient_steps": step, "final_loss": history[-1]["loss"] if history else None,
        "session_started_at_step": first, "session_wall_seconds": seconds, "threads": config.threads})
    return (f"dp {config.task} ({config.policy}): {step} gradient steps ({step - first} in {seconds:.0f} s "
            f"this session) on "
            f"{len(successful)} demonstrations, {params / 1e6:.1f}M parameters, loss "
            f"{history[-1]['loss'] if history else float('nan'):.4f}\n"
            f"base {run / 'policy.pt'}; robo eval dp --base {run.path}")

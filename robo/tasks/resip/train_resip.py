"""``robo train resip``: residual PPO on top of a frozen diffusion base (ResiP, Ankile et al. 2024).

The base (a ``robo train dp`` run, DDIM 4, chunks of 8) acts; a Gaussian MLP residual sees the
normalised observation and the base's current action and adds ``0.1 x`` its output in the base's
normalised action space (:class:`robo.rl.residual.ResidualEnv`). Its last layer starts at zero, so at
iteration 0 ResiP is exactly its base. PPO (:mod:`robo.rl.ppo` through
:class:`robo.rl.on_policy_runner.OnPolicyRunner`) with the paper's settings: one episode length of
steps per environment per iteration, gamma 0.999, GAE 0.95, clip 0.2, up to 50 full-batch epochs
stopped at approximate KL 0.1, actor lr 3e-4, critic lr 5e-3, fixed log-std -1, the sparse success
reward, no entropy bonus. ``critic_warmup`` rollouts of the unmoved residual may first train the critic
alone (default none); ``bootstrap_truncated: false`` scores an episode cut by the time limit as a
failure (0) instead of bootstrapping it from the critic. At the end the deterministic policy (residual
mean) is evaluated against the base on the same seeded episodes.

The run folder holds config.yaml, checkpoint.pt (resume), TensorBoard scalars, learning_curve.csv/.png,
residual.pt (the residual's mean network with the base it belongs to), resip.onnx + resip.json (base and
residual as one ONNX graph with its card, :mod:`robo.tasks.resip.export`) and metrics.json.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from robo.config import to_dict
from robo.nets.actor_critic import ActorCritic
from robo.registry import Context
from robo.rl.diffusion_bc import check_noise_scale
from robo.rl.on_policy_runner import RESUMABLE_CHANGES, OnPolicyConfig, OnPolicyRunner
from robo.rl.ppo import PPOConfig
from robo.rl.residual import ResidualEnv
from robo.run_dir import RunDir
from robo.tasks.resip.base import Base, load_base
from robo.tasks.resip.episodes import play_outcomes, write_summary
from robo.tasks.resip.validation import VALIDATION_MAY_CHANGE, Validation, ValidationConfig
from sim.assembly.env import ACTION_NAMES, LAYOUTS, AssemblyEnv
from sim.assembly.failures import Outcome

KIND = "resip"
CHECKPOINT = "checkpoint.pt"
RESIDUAL = "residual.pt"
ONE_GRAPH = "resip.onnx"  # its card beside it: resip.json


def _ppo() -> PPOConfig:
    return PPOConfig(learning_rate=3e-4, schedule="fixed", num_epochs=50, num_minibatches=1, clip=0.2,
                     clip_value=False, value_coef=1.0, entropy_coef=0.0, max_grad_norm=1.0, gamma=0.999,
                     lam=0.95, critic_learning_rate=5e-3, target_kl=0.1)


def _runner() -> OnPolicyConfig:
    return OnPolicyConfig(iterations=20, num_steps=200, actor_hidden=(256, 256), critic_hidden=(256, 256),
                          activation="relu", init_std=math.exp(-1.0), learn_std=False, actor_head_gain=0.0,
                          checkpoint_interval=1)


@dataclass
class ResiPTrainConfig(ValidationConfig):
    envs: int = 16  # environments stepped together (the paper: 1024 on a GPU)
    residual_scale: float = 0.1  # of the residual in the base's normalised action space
    base_ddim_steps: int = 0  # of the base while training and evaluating; 0: the base run's rl_ddim_steps
    # of the base's DDIM start noise while training, evaluating and in the exported graph: 1 as trained,
    # 0 one deterministic chunk per observation (robo eval dp --set noise_scale=0 measures the base so)
    base_noise_scale: float = 1.0
    seed: int = 0
    threads: int = 1  # torch CPU threads; may change on --resume
    eval_episodes: int = 200  # of the base and of ResiP, same seeds; 0: no evaluation
    eval_envs: int = 50
    eval_seed: int = 1000  # not the training seeds
    eval_episode_steps: int = 0  # the evaluation's time limit; 0: the task's (longer: slow or failing?)
    critic_warmup: int = 0  # rollouts that train only the critic before the first PPO update; 0: none
    # false: an episode cut by the time limit (or unstable physics) is a failure worth 0, not
    # bootstrapped from the critic's estimate of succeeding later
    bootstrap_truncated: bool = True
    # > 1: each residual action (and its exploration noise) is held for this many environment steps, one
    # PPO decision (robo.rl.residual); runner.num_steps then counts decisions, and ppo.gamma is per
    # decision. Evaluation and export apply the residual mean at every step.
    hold_steps: int = 1
    # the action channels (sim.assembly ACTION_NAMES) the residual corrects; empty: all (the paper's)
    residual_channels: list[str] = field(default_factory=list)
    ppo: PPOConfig = field(default_factory=_ppo)
    runner: OnPolicyConfig = field(default_factory=_runner)

    def __post_init__(self) -> None:
        if self.base_ddim_steps < 0:
            raise ValueError(f"base_ddim_steps: must be >= 0, got {self.base_ddim_steps}")
        check_noise_scale(self.base_noise_scale, "base_noise_scale")
        if self.critic_warmup < 0:
            raise ValueError(f"critic_warmup: must be >= 0, got {self.critic_warmup}")
        if self.eval_episode_steps < 0:
            raise ValueError(f"eval_episode_steps: must be >= 0, got {self.eval_episode_steps}")
        for key in ("envs", "threads", "eval_envs", "hold_steps"):
            if getattr(self, key) < 1:
                raise ValueError(f"{key}: must be >= 1, got {getattr(self, key)}")
        if self.eval_episodes < 0:
            raise ValueError(f"eval_episodes: must be >= 0, got {self.eval_episodes}")
        if not self.residual_scale > 0:
            raise ValueError(f"residual_scale: must be > 0, got {self.residual_scale}")
        channel_indices(self.residual_channels)  # names every unknown channel
        self.check_validation(self.eval_seed, self.runner.checkpoint_interval)


def channel_indices(names: list[str]) -> list[int] | None:
    """Indices in ACTION_NAMES of the residual's channels (None: all of them)."""
    unknown = [n for n in names if n not in ACTION_NAMES]
    if unknown or len(set(names)) != len(names):
        raise ValueError(f"residual_channels: {names} must be distinct action channels, not "
                         f"{unknown or 'repeated'} (known: {', '.join(ACTION_NAMES)})")
    return [ACTION_NAMES.index(n) for n in names] if names else None


def residual_env(base: Base, envs: int, scale: float, seed: int, ddim_steps: int = 0,
                 bootstrap_truncated: bool = True, hold_steps: int = 1,
                 channels: list[str] | None = None, episode_steps: int = 0,
                 noise_scale: float = 1.0) -> ResidualEnv:
    """The base's environment as the residual sees it (the base at ``ddim_steps``, 0: its RL setting,
    from ``noise_scale`` times DDIM's start noise; ``episode_steps`` 0: the task's time limit)."""
    policy = base.policy
    actor = base.actor(envs, ddim_steps or None, seed=seed + 1, noise_scale=noise_scale)
    env_config = base.env_config(**({"episode_steps": episode_steps} if episode_steps else {}))
    return ResidualEnv(AssemblyEnv(envs, env_config, seed=seed), actor, policy.normalize_obs,
                       policy.normalize_actions, policy.unnormalize_actions, scale, bootstrap_truncated,
                       hold_steps, channel_indices(channels or []))


class ResiPActor:
    """The deterministic ResiP policy for evaluation: base action plus the scaled residual mean."""

    def __init__(self, env: ResidualEnv, residual: torch.nn.Module):
        self.env, self.residual = env, residual
        self.obs: torch.Tensor | None = None

    def __call__(self, obs: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            # Clipped as the runner clips what it sends while training.
            return self.env.combined_action(self.residual(self.env.observe(obs)).clamp(-1.0, 1.0))

    def reset(self, rows: Any = None) -> None:
        self.env.base.reset(rows)


def successes(base: Base, residual: torch.nn.Module | None, config: ResiPTrainConfig, bar=None) -> list[bool]:
    """Success of each of ``eval_episodes`` seeded episodes: the base alone (``residual=None``) or ResiP."""
    return [o.success for o in outcomes(base, residual, config, bar)]


def outcomes(base: Base, residual: torch.nn.Module | None, config: ResiPTrainConfig,
             bar=None, validation: bool = False) -> list[Outcome]:
    """How each of :func:`successes`' episodes ended (success, or why it failed); ``validation``: the
    validation episodes (val_episodes of val_seed) instead of the test episodes."""
    episodes, seed = config.episode_set(validation)
    envs = min(config.eval_envs, episodes)
    wrapped = residual_env(base, envs, config.residual_scale, seed, config.base_ddim_steps,
                           channels=config.residual_channels, episode_steps=config.eval_episode_steps,
                           noise_scale=config.base_noise_scale)
    act = wrapped.base if residual is None else ResiPActor(wrapped, residual)
    return play_outcomes(wrapped.env, act, math.ceil(episodes / envs), bar)[:episodes]


@torch.no_grad()
def rollout_diagnostics(runner: OnPolicyRunner) -> dict[str, float]:
    """What tells a residual that learns from one that drifts, on the iteration's rollout: the updated
    residual mean's size (in units of its output, before the residual scale), the critic's values
    against the returns they estimate (a value scale far off the returns misleads every advantage),
    and the spread of the raw advantages."""
    storage = runner.storage
    mean = runner.model.actor(storage.obs.flatten(0, 1))
    return {"residual_abs_mean": float(mean.abs().mean()), "residual_abs_max": float(mean.abs().max()),
            "value_mean": float(storage.values.mean()), "return_mean": float(storage.returns.mean()),
            "advantage_std": float(storage.advantages.std())}


def warm_up_critic(runner: OnPolicyRunner, rollouts: int, log: Callable[[str], None] = print) -> list[float]:
    """Value-only updates on ``rollouts`` rollouts of the unmoved residual (the base plus exploration
    noise; the actor's head is zero): under the sparse reward the first advantages are otherwise the
    untrained critic's errors, and PPO moves the actor on them. Each rollout gets the PPO epochs and
    minibatches of the critic's loss only, with the runner's optimiser (the actor's parameters get no
    gradient, so Adam leaves them as they are). Returns each rollout's last value loss."""
    ppo, model = runner.ppo, runner.model
    epochs, minibatches = ppo.config.num_epochs, ppo.config.num_minibatches
    losses = []
    for k in range(rollouts):
        runner.collect()
        for batch in runner.storage.minibatches(minibatches, epochs, runner.generator):
            loss = (model.value(batch["obs"]) - batch["returns"]).pow(2).mean()
            ppo.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.critic.parameters(), ppo.config.max_grad_norm)
            ppo.optimizer.step()
        losses.append(float(loss.detach()))
        log(f"critic warm-up {k + 1}/{rollouts}: value loss {losses[-1]:.4f}, "
            f"return mean {float(runner.storage.returns.mean()):.3f}")
    return losses


def train(config: ResiPTrainConfig, args: argparse.Namespace, ctx: Context) -> str:
    base = load_base(args.base)  # a bad base fails before the run folder is touched
    if args.task and args.task != base.task:
        raise ValueError(f"--task {args.task}: the base {base.run} was trained on {base.task}")
    base.ddim_steps(config.base_ddim_steps)
    # the evaluation may change on --resume: a finished run resumed with another eval_seed re-evaluates
    may_change = ["threads", "eval_episodes", "eval_envs", "eval_seed", "eval_episode_steps",
                  *VALIDATION_MAY_CHANGE, *(f"runner.{k}" for k in RESUMABLE_CHANGES)]
    run = RunDir.open(ctx.out, config, kind=KIND, resume=ctx.resume, may_change=may_change)
    torch.set_num_threads(config.threads)
    env = residual_env(base, config.envs, config.residual_scale, config.seed, config.base_ddim_steps,
                       config.bootstrap_truncated, config.hold_steps, config.residual_channels,
                       noise_scale=config.base_noise_scale)
    runner = OnPolicyRunner(env, config.ppo, config.runner, seed=config.seed, checkpoint=run / CHECKPOINT)
    if ctx.resume and (run / CHECKPOINT).is_file():
        runner.load(run / CHECKPOINT)
    if runner.iteration == 0:
        warm_up_critic(runner, config.critic_warmup, ctx.log)
    per_iteration = config.runner.num_steps * config.hold_steps * config.envs  # environment steps

    def val_success(model: ActorCritic) -> float:
        won = [o.success for o in outcomes(base, model.deterministic_actor(), config, validation=True)]
        return sum(won) / len(won)

    validation = Validation(run, config, runner, per_iteration, val_success, "resip/val_success", ctx.log)
    first, seconds = validation.train_with_curve(env, ctx.bar, "resip", f"resip {base.task}",
                                                 f"ResiP, {base.task}", lambda: rollout_diagnostics(runner))

    from robo.nets.policy import save_policy

    residual = validation.chosen().deterministic_actor()
    layout = LAYOUTS[base.env_config().task]
    inputs = [{"name": f"normalised.{e['name']}", "unit": "1"} for e in layout.card_entries()]
    inputs += [{"name": f"base.{name}", "unit": "1"} for name in ACTION_NAMES]
    save_policy(run / RESIDUAL, residual, {
        "task": base.task, "observation": inputs, "run": str(run.path),
        "action": [{"name": f"residual.{name}", "unit": "1"}
                   for name in (config.residual_channels or ACTION_NAMES)],
        "action_clip": [-1.0, 1.0],
        "action_mapping": f"env action = base.unnormalize(base action + {config.residual_scale} x residual), "
                          f"in the normalised action space of the base {base.run / 'policy.pt'}",
        "config": {**to_dict(config), "base": str(base.run)}})
    from robo.tasks.resip.export import export

    export(run.path, run / ONE_GRAPH)  # base + residual as one ONNX graph with its card, for the runtime
    compared = {"base": lambda bar: outcomes(base, None, config, bar),
                "ResiP": lambda bar: outcomes(base, residual, config, bar)}
    return write_summary(ctx, run, KIND, base, runner.iteration, first, seconds,
                         runner.iteration * per_iteration, config, compared,
                         f"residual {run / RESIDUAL}{validation.chosen_line()}; "
                         f"one ONNX graph {run / ONE_GRAPH}",
                         {"base_noise_scale": config.base_noise_scale, **validation.metrics()})

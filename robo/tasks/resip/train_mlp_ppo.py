"""``robo train mlp-ppo``: ResiP's baseline, PPO fine-tuning of an MLP-BC policy with action chunking.

The base is a ``robo train dp --set policy=mlp`` run (:class:`robo.nets.chunking.MLPChunkPolicy`). Its MLP
becomes the Gaussian actor's mean, unchanged, so iteration 0 is the BC policy; an action is a whole
normalised chunk of ``action_horizon`` steps, executed open loop (:class:`robo.rl.chunk_env.ChunkEnv`:
rewards summed over the chunk), so one PPO decision covers ``action_horizon`` environment steps and
``gamma`` is per decision (0.992 = 0.999 ** 8, ResiP's per-step discount). PPO's other settings are ResiP's
(:mod:`robo.tasks.resip.train_resip`), with lambda 1 and a time-limit failure worth 0, which ResiP's
residual needed, a fixed std of 0.01 (about 0.3 mm on the positions) and actor lr 1e-5. Budgets compare at
equal environment steps: an iteration here is ``num_steps x action_horizon`` steps per environment (25 x 8 =
one 200-step episode, as ResiP's).

The run folder holds config.yaml, checkpoint.pt (resume), TensorBoard scalars,
learning_curve.csv/.png, policy.pt (the fine-tuned policy: an ``mlp-chunk`` base with the trained mean,
so ``robo eval dp --base RUN`` evaluates it) and metrics.json (BC alone and fine-tuned, on the same
seeded episodes).
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import math
from dataclasses import dataclass, field

import torch

from robo.config import to_dict
from robo.nets.actor_critic import ActorCritic
from robo.nets.chunking import MLPChunkPolicy
from robo.registry import Context
from robo.rl.chunk_env import ChunkEnv
from robo.rl.on_policy_runner import RESUMABLE_CHANGES, OnPolicyConfig, OnPolicyRunner
from robo.rl.ppo import PPOConfig
from robo.run_dir import RunDir
from robo.tasks.resip.base import Base, load_base
from robo.tasks.resip.episodes import play_outcomes, write_summary
from robo.tasks.resip.validation import VALIDATION_MAY_CHANGE, Validation, ValidationConfig
from sim.assembly.env import AssemblyEnv
from sim.assembly.failures import Outcome

KIND = "mlp-ppo"
CHECKPOINT = "checkpoint.pt"
POLICY = "policy.pt"


def _ppo() -> PPOConfig:
    # Actor lr 1e-5, not ResiP's 3e-4: with a std of 0.01 one full-batch step at 3e-4 moves the mean by
    # many standard deviations (the exploring rollouts fell from 44 % to 2 % in 4 iterations).
    return PPOConfig(learning_rate=1e-5, schedule="fixed", num_epochs=50, num_minibatches=1, clip=0.2,
                     clip_value=False, value_coef=1.0, entropy_coef=0.0, max_grad_norm=1.0, gamma=0.992,
                     lam=1.0, critic_learning_rate=5e-3, target_kl=0.1)


def _runner() -> OnPolicyConfig:
    return OnPolicyConfig(iterations=60, num_steps=25, critic_hidden=(256, 256), activation="relu",
                          init_std=0.01, learn_std=False, checkpoint_interval=1)


@dataclass
class MLPPPOTrainConfig(ValidationConfig):
    envs: int = 64
    seed: int = 0
    threads: int = 1  # torch CPU threads; may change on --resume
    eval_episodes: int = 200  # of the BC policy and the fine-tuned one, same seeds; 0: no evaluation
    eval_envs: int = 50
    eval_seed: int = 1000  # not the training seeds
    # false: an episode cut by the time limit is a failure worth 0, not bootstrapped from the critic
    bootstrap_truncated: bool = False
    ppo: PPOConfig = field(default_factory=_ppo)
    runner: OnPolicyConfig = field(default_factory=_runner)  # actor sizes: the base's, not these

    def __post_init__(self) -> None:
        for key in ("envs", "threads", "eval_envs"):
            if getattr(self, key) < 1:
                raise ValueError(f"{key}: must be >= 1, got {getattr(self, key)}")
        if self.eval_episodes < 0:
            raise ValueError(f"eval_episodes: must be >= 0, got {self.eval_episodes}")
        self.check_validation(self.eval_seed, self.runner.checkpoint_interval)


def chunk_env(base: Base, envs: int, seed: int, bootstrap_truncated: bool) -> ChunkEnv:
    """The base's environment with whole normalised chunks as actions."""
    policy, horizon = base.policy, base.meta["config"]["diffusion"]["action_horizon"]
    env = AssemblyEnv(envs, base.env_config(), seed=seed)
    return ChunkEnv(env, policy.arch["pred_horizon"], policy.normalize_obs, policy.decode_chunk,
                    env.hold_action, horizon, bootstrap_truncated)


def fine_tuned(base: Base, model: ActorCritic) -> MLPChunkPolicy:
    """The base with the actor's mean network in place of its MLP."""
    policy = copy.deepcopy(base.policy)
    policy.mlp.load_state_dict(model.actor.state_dict())
    return policy.eval().requires_grad_(False)


def outcomes(base: Base, policy: MLPChunkPolicy, config: MLPPPOTrainConfig, bar=None,
             validation: bool = False) -> list[Outcome]:
    """How each seeded episode of ``policy`` (the BC base's or a fine-tuned MLP) acting as the base does
    ended (success, or why it failed); ``validation``: the validation episodes, not the test episodes."""
    episodes, seed = config.episode_set(validation)
    envs = min(config.eval_envs, episodes)
    env = AssemblyEnv(envs, base.env_config(), seed=seed)
    act = dataclasses.replace(base, policy=policy).actor(envs)
    return play_outcomes(env, act, math.ceil(episodes / envs), bar)[:episodes]


def train(config: MLPPPOTrainConfig, args: argparse.Namespace, ctx: Context) -> str:
    base = load_base(args.base, (MLPChunkPolicy,))  # a bad base fails before the run folder is touched
    # the evaluation may change on --resume: a finished run resumed with another eval_seed re-evaluates
    may_change = ["threads", "eval_episodes", "eval_envs", "eval_seed", *VALIDATION_MAY_CHANGE,
                  *(f"runner.{k}" for k in RESUMABLE_CHANGES)]
    run = RunDir.open(ctx.out, config, kind=KIND, resume=ctx.resume, may_change=may_change)
    torch.set_num_threads(config.threads)
    env = chunk_env(base, config.envs, config.seed, config.bootstrap_truncated)
    arch, r = base.policy.arch, config.runner

    def model() -> ActorCritic:
        ac = ActorCritic(env.observation_size, env.action_size, tuple(arch["hidden"]), r.critic_hidden,
                         arch["activation"], r.init_std, learn_std=r.learn_std)
        ac.actor.load_state_dict(base.policy.mlp.state_dict())  # iteration 0 is the BC policy
        return ac

    runner = OnPolicyRunner(env, config.ppo, r, seed=config.seed, checkpoint=run / CHECKPOINT, model=model)
    if ctx.resume and (run / CHECKPOINT).is_file():
        runner.load(run / CHECKPOINT)
    steps_per_iteration = r.num_steps * env.executed * config.envs

    def val_success(model: ActorCritic) -> float:
        won = [o.success for o in outcomes(base, fine_tuned(base, model), config, validation=True)]
        return sum(won) / len(won)

    validation = Validation(run, config, runner, steps_per_iteration, val_success, f"{KIND}/val_success",
                            ctx.log)
    first, seconds = validation.train_with_curve(env, ctx.bar, KIND, f"mlp-ppo {base.task}",
                                                 f"MLP-BC + PPO, {base.task}")
    from robo.nets.policy import save_policy

    policy = fine_tuned(base, validation.chosen())
    fine_tuning = {"base": str(base.run), **to_dict(config)}
    save_policy(run / POLICY, policy, {**base.meta, "run": str(run.path),
                                       "config": {**base.meta["config"], "fine_tuning": fine_tuning}})
    return write_summary(ctx, run, KIND, base, runner.iteration, first, seconds,
                         runner.iteration * steps_per_iteration, config, {
                             "BC": lambda bar: outcomes(base, base.policy, config, bar),
                             "fine-tuned": lambda bar: outcomes(base, policy, config, bar)},
                         f"policy {run / POLICY}{validation.chosen_line()} (robo eval dp --base {run.path})",
                         validation.metrics())

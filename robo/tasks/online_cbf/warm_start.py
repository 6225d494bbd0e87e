"""PPO bootstrapped by demonstrations: the tuner first imitates the yield rule (``train.imitate``).

PPO from a random tuner never found a rule that lets two groups through the tilt-0 corridor (the
README's runs): the reward only comes once every agent of one group has given way for many seconds
together, which Gaussian exploration per agent and step does not stumble on. The yield rule
(:mod:`robo.tasks.online_cbf.yield_rule`) does get through. So, before PPO, the environment is rolled
under the rule for ``train.imitate_steps`` steps; the actor's mean (pre-squash) is fitted by MSE to the
rule's outputs on every visited view, and the critic to the discounted returns the rule earned there
(so PPO's first advantages are not the noise of an untrained critic). PPO then goes on with the run's
reward; on per-agent rewards it undoes the rule (who gives way pays for the others' progress), which
``train.reward.team`` prevents (the README's table). Both stages run on the environment's own seeded
training episodes.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from robo.nets.gnn import GNNActorCritic, unsquash_gains
from robo.rl.checkpoint import NonFiniteLoss
from robo.rl.rollout_storage import RolloutStorage
from robo.tasks.online_cbf.config import OnlineCbfConfig
from robo.tasks.online_cbf.gain_env import SwarmGainEnv
from robo.tasks.online_cbf.yield_rule import yield_outputs

BATCH = 4096
LEARNING_RATE = 1e-3


@torch.no_grad()
def _demonstrations(config: OnlineCbfConfig, steps: int, progress: Callable[[int], None] | None
                    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, dict[str, float]]:
    """(views [S, obs], the rule's outputs in the actor's pre-squash space [S, act], discounted returns
    [S'], the rule's episodes) from ``steps`` steps of the training environment under the rule; returns
    are kept only for the first S' views, whose rest of the rollout covers the discount's horizon."""
    t = config.train
    # the rule places two values; placing their pre-squash images gives the actor's targets directly
    low, high = unsquash_gains(t.imitate, [t.k_min] * 2, [t.k_max] * 2)
    env = SwarmGainEnv(config)
    obs, _ = env.reset(seed=config.seed)
    rollout = RolloutStorage(steps, env.num_envs, env.observation_size, env.action_size)
    zeros = torch.zeros(env.num_envs)
    for _ in range(steps):
        action = yield_outputs(obs.double(), config.swarm.dim, t.neighbours, low, high).float()
        next_obs, reward, terminated, truncated, _ = env.step(action)
        # no critic yet: values 0 and lambda 1 make GAE's return the plain discounted return
        rollout.add(obs, action, zeros, zeros, reward, terminated, truncated, zeros)
        obs = next_obs
        if progress is not None:
            progress(env.num_envs)
    rollout.compute_returns(zeros, t.ppo.gamma, lam=1.0)
    horizon = min(steps - 1, math.ceil(math.log(0.01) / math.log(t.ppo.gamma)))  # tail weight below 1 %
    ended = env.take_finished()
    episodes = {key: sum(e[key] for e in ended) / max(len(ended), 1) for key in ("success", "deadlock")}
    episodes["episodes"] = float(len(ended))
    return (rollout.obs.flatten(0, 1), rollout.actions.flatten(0, 1),
            rollout.returns[:steps - horizon].flatten(), episodes)


def imitate(model: GNNActorCritic, config: OnlineCbfConfig, generator: torch.Generator,
            progress: Callable[[int], None] | None = None) -> dict[str, float]:
    """Fit ``model``'s actor mean to the yield rule and its critic to the rule's returns, in place;
    returns the losses before and after, and how the rule's own training episodes ended. ``progress``
    counts the demonstrations' rows as they are collected, then once more per epoch as they are fitted
    (``train.imitate_steps * num_envs * (1 + train.imitate_epochs)`` in all)."""
    t = config.train
    views, targets, returns, stats = _demonstrations(config, t.imitate_steps, progress)
    value_views = views[:len(returns)]
    params = [*model.actor.parameters(), *model.critic.parameters()]
    optimizer = torch.optim.Adam(params, lr=LEARNING_RATE)

    def losses(rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        actor = (model.actor(views[rows]) - targets[rows]).pow(2).mean()
        value_rows = rows[rows < len(returns)]
        critic = (model.critic(value_views[value_rows]).squeeze(-1) - returns[value_rows]).pow(2).mean()
        return actor, critic

    with torch.no_grad():
        probe = torch.randperm(len(views), generator=generator)[:BATCH]
        before = [float(x) for x in losses(probe)]
    for _ in range(t.imitate_epochs):
        order = torch.randperm(len(views), generator=generator)
        for start in range(0, len(views), BATCH):
            rows = order[start:start + BATCH]
            actor, critic = losses(rows)
            loss = actor + critic
            value = float(loss.detach())
            if not math.isfinite(value):
                raise NonFiniteLoss(f"imitation of the yield rule: loss {value}; nothing was saved")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
            if progress is not None:
                progress(len(rows))
    with torch.no_grad():
        after = [float(x) for x in losses(probe)]
    return {"imitate_actor_mse_before": before[0], "imitate_actor_mse": after[0],
            "imitate_critic_mse_before": before[1], "imitate_critic_mse": after[1],
            "rule_episode_success": stats["success"], "rule_episode_deadlock": stats["deadlock"],
            "rule_episodes": stats["episodes"], "samples": float(len(views))}

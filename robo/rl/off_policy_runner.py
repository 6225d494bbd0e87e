"""The interaction loop of K independent off-policy (SAC) agents, in the manner of rsl_rl's runners.

:class:`OffPolicyRunner` owns the loop over a batched environment (:mod:`robo.rl.vec_env`,
``envs_per_member`` environments per member, member-major): uniform random actions until
``learning_starts``, then the group's stochastic actions; every transition into the member's own replay
slice (:mod:`robo.rl.replay`, optionally mixed with demonstrations); one SAC update
(:class:`robo.rl.sac.SACGroup`) per ``update_interval`` transitions per member. It keeps each member's
episode bookkeeping, writes a learning-curve point every ``log_interval`` steps, checkpoints atomically
(and on SIGINT/SIGTERM, so an interrupted run loses at most the step in progress), and stops on a
non-finite loss.

When a member is done is not the runner's business: at every curve point it asks
``should_finish(stats) -> mask`` (a ``[K]`` bool tensor; ``stats`` holds the window means and a way to
run deterministic evaluation episodes). Members in the mask, and every member whose step budget ran out,
are frozen, handed to ``on_finish`` and (with ``compact``) dropped from the batch.

Which weights a member hands on need not be its last: with ``select_interval`` and a ``judge``, every
``select_interval`` env steps the judge scores each active member from deterministic episodes
(:meth:`OffPolicyRunner.fly`), and the runner keeps each member's best-scoring actor so far (scores
compare lexicographically, larger is better). ``on_finish`` then gets that snapshot, and the record
says from which step it is and what it scored (``best_*``); ``should_finish`` sees the best scores too.
"""

from __future__ import annotations

import contextlib
import copy
import math
import signal
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from robo.files import save_torch
from robo.rl.checkpoint import NonFiniteLoss, load_checkpoint
from robo.rl.replay import ReplayBuffer
from robo.rl.sac import SACConfig, SACGroup
from robo.rl.vec_env import VecEnv, final_observation


@dataclass
class RunnerConfig:
    steps: int = 1_000_000  # env steps (transitions) per member
    log_interval: int = 1_000  # env steps per member between learning-curve points and should_finish checks
    checkpoint_interval: int = 50_000
    # E environments per member step together, so the group collects E transitions per member for one
    # batched environment step; one SAC update follows every `update_interval` transitions per member.
    # RLtools trains its RAPTOR teachers once per 16 env steps; E = 16 with an interval of 16 is that
    # ratio at one update per batched step, with the environment's cost spread over 16 rows.
    envs_per_member: int = 1
    update_interval: int = 1
    compact: bool = True  # drop finished members from the batch (needs an env factory that can subset)
    demo_fraction: float = 0.0  # share of each batch drawn from the replay's demonstration partition
    # Env steps per member between judged snapshots (0: no judging, the last weights are handed on); a
    # multiple of log_interval, since judging happens at curve points.
    select_interval: int = 0

    def __post_init__(self) -> None:
        for name in ("steps", "log_interval", "checkpoint_interval", "envs_per_member", "update_interval"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if self.select_interval < 0 or self.select_interval % self.log_interval:
            raise ValueError(f"select_interval must be 0 or a multiple of log_interval "
                             f"({self.log_interval}), got {self.select_interval}")
        if not 0.0 <= self.demo_fraction <= 1.0:
            raise ValueError(f"demo_fraction must be in [0, 1], got {self.demo_fraction}")


@dataclass
class EpisodeStats:
    """What ``should_finish`` sees: per-member means over the last ``window`` counted episodes."""

    step: int  # env steps per member so far
    ids: list[int]
    mean_return: torch.Tensor  # [K]
    mean_length: torch.Tensor  # [K]
    episodes: torch.Tensor  # [K] episodes in the window (at most ``window``)
    window: int
    active: torch.Tensor  # [K] bool: still training
    final: bool  # the step budget ran out; every active member finishes now
    # evaluate(mask) -> (mean return, mean length) of one deterministic episode per environment for the
    # members in the mask (NaN for the others).
    evaluate: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
    # Per-member values the hook wants kept ([K] tensors): float values go into the curve point and the
    # finish record where finite; bool values into the finish record only (e.g. "accepted").
    notes: dict[str, torch.Tensor] = field(default_factory=dict)
    # The judge's values of each member's best snapshot so far ([K], NaN where none), with ``best_step``.
    best: dict[str, torch.Tensor] = field(default_factory=dict)


@dataclass
class Episodes:
    """Deterministic episodes of ``m`` members, ``n`` each: ``[m, n]`` per field."""

    returns: torch.Tensor
    lengths: torch.Tensor
    terminated: torch.Tensor  # bool: ended by a termination (not by truncation or the step limit)
    final_obs: torch.Tensor  # [m, n, obs]: the observation each episode ended in


ShouldFinish = Callable[[EpisodeStats], torch.Tensor]
EnvFactory = Callable[[list[int]], VecEnv]
OnFinish = Callable[[int, dict[str, Any], nn.Sequential], None]
# fly(mask, make_env=None) -> Episodes of the members in the mask (see OffPolicyRunner.fly).
Fly = Callable[..., Episodes]
# judge(active [K] bool, fly) -> (score [K, S], values {name: [K] float}): a member's snapshot replaces
# its best one when its score is lexicographically larger; values go into the curve and the record.
Judge = Callable[[torch.Tensor, Fly], tuple[torch.Tensor, dict[str, torch.Tensor]]]
RUN_FORMAT = "robo-sac-group/3"
_OLD_RUN_FORMAT = "robo-sac-group/2"  # the replay inside the group's state


def never_finish(stats: EpisodeStats) -> torch.Tensor:
    """The default hook: every member trains for its full budget."""
    return torch.zeros_like(stats.active)


class OffPolicyRunner:
    """Train the members ``ids`` on ``make_env(ids)``: ``envs_per_member`` environments per member,
    member-major (member k owns rows ``k * E .. k * E + E - 1``).

    ``make_env`` is called again with the remaining ids when finished members are dropped
    (``compact``), so it must build the environments of exactly the ids it is given, in that order.
    ``on_finish(id, record, actor)`` is called once per member when it finishes; ``on_log(runner)``
    after each curve point; ``checkpoint_meta()`` adds entries to every checkpoint.
    """

    def __init__(self, ids: list[int], make_env: EnvFactory, sac: SACConfig, config: RunnerConfig,
                 *, device: torch.device | str = "cpu", seed: int = 0, window: int = 10,
                 should_finish: ShouldFinish = never_finish, checkpoint: str | Path | None = None,
                 on_finish: OnFinish | None = None, judge: Judge | None = None):
        if window <= 0:
            raise ValueError(f"window must be > 0, got {window}")
        if (judge is None) != (config.select_interval == 0):
            raise ValueError("select_interval and a judge go together: set both or neither")
        self.judge = judge
        self.ids = list(ids)
        self.make_env, self.config, self.seed, self.window = make_env, config, seed, window
        self.device = torch.device(device)
        self.should_finish = should_finish
        self.checkpoint = Path(checkpoint) if checkpoint is not None else None
        self.on_finish = on_finish
        self.on_log: Callable[[OffPolicyRunner], None] | None = None
        self.checkpoint_meta: Callable[[], dict[str, Any]] = dict
        self.envs = config.envs_per_member
        self.env = make_env(self.ids)
        if self.env.num_envs != len(self.ids) * self.envs:
            raise ValueError(f"make_env built {self.env.num_envs} environments for {len(self.ids)} members "
                             f"x {self.envs} environments each")
        k, obs_size, act_size = len(self.ids), self.env.observation_size, self.env.action_size
        self.group = SACGroup(k, obs_size, act_size, sac, device=self.device, seed=seed)
        self.replay = ReplayBuffer(k, obs_size, act_size, sac.buffer_size, self.device,
                                   demo_fraction=config.demo_fraction)
        self.step = 0  # env steps (transitions) per member
        self.pending = 0  # transitions per member collected since the last update
        self.obs = self.env.reset(seed=seed)[0].to(self.device)
        self.episode_return = torch.zeros(k, self.envs, device=self.device)
        self.episode_length = torch.zeros(k, self.envs, device=self.device)
        # The last `window` finished episodes per member, plus one spare column that absorbs the
        # environments whose episode did not end (so one scatter records every ending at once).
        self.window_return = torch.zeros(k, window + 1, device=self.device)
        self.window_length = torch.zeros(k, window + 1, device=self.device)
        self.episodes = torch.zeros(k, dtype=torch.long, device=self.device)  # counted after learning starts
        self.curves: dict[int, list[dict[str, float]]] = {i: [] for i in self.ids}
        self.finished: dict[int, dict[str, Any]] = {}
        self.last_losses: dict[str, torch.Tensor] = {}
        self.running = True  # some member still trains
        # Each member's best judged snapshot: actor weights (stacked like the actor's), its score, the
        # env step it was taken at (-1: none yet) and the judge's values then.
        self.best_actor = {n: t.detach().clone() for n, t in self.group.actor.state_dict().items()}
        self.best_score: torch.Tensor | None = None
        self.best_step = torch.full((k,), -1, dtype=torch.long, device=self.device)
        self.best_values: dict[str, torch.Tensor] = {}

    # ----- the loop ------------------------------------------------------------------------
    def run(self, progress: Callable[[int], None] | None = None,
            until: int | None = None) -> dict[int, dict[str, Any]]:
        """Train until every member is finished (or env step ``until``); returns ``{id: record}``.

        SIGINT and SIGTERM end the step in progress, save a checkpoint and raise ``KeyboardInterrupt``;
        so does a ``KeyboardInterrupt`` raised by ``progress``.
        """
        stop = self.config.steps if until is None else min(until, self.config.steps)
        whole = True  # the state is between two loop iterations, so a checkpoint of it can resume
        with _deferred_signals() as interrupted:
            try:
                while self.running and self.step < stop:
                    whole = False
                    self.collect_step()
                    self.train_step()
                    if self._crossed(self.config.log_interval):
                        self.check_finite()
                        self.log_and_finish()
                        if self.on_log is not None:
                            self.on_log(self)
                    if self.checkpoint is not None and self._crossed(self.config.checkpoint_interval):
                        self.save(self.checkpoint)
                    whole = True
                    if progress is not None:
                        progress(self.envs)
                    if interrupted():
                        raise KeyboardInterrupt
            except KeyboardInterrupt:
                if whole and self.checkpoint is not None:
                    self.save(self.checkpoint)
                raise
        self.check_finite()
        if bool(self.group.active.any()) and self.step >= self.config.steps:
            self.log_and_finish(final=True)
            if self.on_log is not None:
                self.on_log(self)
        if self.checkpoint is not None:
            self.save(self.checkpoint)
        return self.finished

    def _crossed(self, interval: int) -> bool:
        """Did the last batched step pass a multiple of ``interval`` env steps per member?"""
        return self.step // interval > (self.step - self.envs) // interval

    def collect_step(self) -> None:
        """One step of every environment: E transitions per member into the replay buffer."""
        group, k, e = self.group, len(self.ids), self.envs
        exploring = self.step < group.config.learning_starts
        obs = self.obs.view(k, e, -1)
        action = group.random_action(e) if exploring else group.act(obs)
        next_obs, reward, terminated, truncated, info = self.env.step(action.reshape(k * e, -1))
        next_obs, reward = next_obs.to(self.device), reward.to(self.device)
        terminated, truncated = terminated.to(self.device), truncated.to(self.device)
        done = terminated | truncated
        if "final_observation" in info:
            info = {**info, "final_observation": info["final_observation"].to(self.device)}
        real_next = final_observation(next_obs, done, info)
        self.replay.add(obs, action, reward.view(k, e), real_next.view(k, e, -1), terminated.view(k, e))
        self.obs = next_obs
        self.step += e

        done = done.view(k, e)
        self.episode_return += reward.view(k, e)
        self.episode_length += 1
        # Only episodes that end after learning started say anything about the learned policy.
        count = done & (self.step > group.config.learning_starts)
        rank = count.long().cumsum(1) - 1
        slot = torch.where(count, (self.episodes[:, None] + rank) % self.window, self.window)
        self.window_return.scatter_(1, slot, self.episode_return)
        self.window_length.scatter_(1, slot, self.episode_length)
        self.episodes += count.sum(1)
        self.episode_return = torch.where(done, 0.0, self.episode_return)
        self.episode_length = torch.where(done, 0.0, self.episode_length)

    def train_step(self) -> None:
        """The SAC updates the transitions collected so far are due (one per ``update_interval``)."""
        if self.step < self.group.config.learning_starts:
            return
        self.pending += self.envs
        while self.pending >= self.config.update_interval:
            self.update()
            self.pending -= self.config.update_interval

    def update(self) -> dict[str, torch.Tensor]:
        """One SAC update on a batch from the replay (and its demonstrations)."""
        batch = self.replay.sample(self.group.config.batch_size, self.group.generator)
        self.last_losses = self.group.update(batch)
        return self.last_losses

    def window_means(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Mean return and length over each member's last ``window`` counted episodes, and that count."""
        n = self.episodes.clamp(max=self.window)
        denom = n.clamp(min=1).to(self.window_return.dtype)
        return (self.window_return[:, : self.window].sum(1) / denom,
                self.window_length[:, : self.window].sum(1) / denom, n)

    def log_and_finish(self, final: bool = False) -> None:
        """A curve point per member; then the members ``should_finish`` names (all, when ``final``)
        are frozen, handed to ``on_finish`` and, with ``compact``, dropped."""
        mean_return, mean_length, n = self.window_means()
        final = final or self.step >= self.config.steps
        judged = self._judge(final)
        best = {**{f"best_{name}": v for name, v in self.best_values.items()},
                "best_step": self.best_step.double()} if self.judge is not None else {}
        stats = EpisodeStats(self.step, list(self.ids), mean_return, mean_length, n, self.window,
                             self.group.active.clone(), final, self.evaluate, best=best)
        done = self.should_finish(stats).to(self.device)
        flags = {name: v.tolist() for name, v in stats.notes.items() if v.dtype == torch.bool}
        values = {name: v.tolist() for name, v in {**judged, **stats.notes}.items() if v.dtype != torch.bool}
        best_lists = {name: v.tolist() for name, v in best.items()}
        alpha = self.group.alpha.cpu()
        critic = self.last_losses.get("critic_loss")
        rows = zip(self.ids, mean_return.tolist(), mean_length.tolist(), n.tolist(), alpha.tolist(),
                   strict=True)
        for k, (i, ret, length, count, a) in enumerate(rows):
            point = {"step": self.step, "return": ret, "length": length, "episodes": count, "alpha": a}
            if critic is not None:
                point["critic_loss"] = float(critic[k])
            point.update({name: v[k] for name, v in values.items() if math.isfinite(v[k])})
            self.curves[i].append(point)
        done = (done | stats.final) & self.group.active
        if not bool(done.any()):
            return
        for k in done.nonzero()[:, 0].tolist():
            i = self.ids[k]
            record = {"id": i, **{name: bool(v[k]) for name, v in flags.items()}, "steps": self.step,
                      "updates": self.group.updates, "mean_return": float(mean_return[k]),
                      "mean_length": float(mean_length[k]), "episodes": int(n[k]), "alpha": float(alpha[k]),
                      **{name: v[k] for name, v in values.items() if math.isfinite(v[k])}}
            if self.judge is not None and best_lists["best_step"][k] >= 0:
                record.update({name: (int(v[k]) if name == "best_step" else v[k])
                               for name, v in best_lists.items() if math.isfinite(v[k])})
            self.finished[i] = record
            if self.on_finish is not None:
                self.on_finish(i, record, self.handed_on_actor(k))
        self.group.freeze(done)
        self.running = bool(self.group.active.any())
        if self.config.compact:
            self._drop_finished()

    @torch.no_grad()
    def evaluate(self, members: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean return and length of one deterministic episode per training environment for the
        members in the mask (NaN for the others); see :meth:`fly`."""
        index = members.nonzero()[:, 0]
        episodes = self.fly(members)
        out_return = torch.full((self.group.members,), math.nan, device=self.device)
        out_length = torch.full((self.group.members,), math.nan, device=self.device)
        out_return[index], out_length[index] = episodes.returns.mean(1), episodes.lengths.mean(1)
        return out_return, out_length

    @torch.no_grad()
    def fly(self, members: torch.Tensor, make_env: EnvFactory | None = None,
            max_steps: int = 100_000) -> Episodes:
        """One deterministic episode per environment of ``make_env(ids)`` (default: the training
        factory, E per member) for the members in the mask, with their current actors.

        The environments are fresh and reset from one fixed seed, so every call starts from the same
        states (a factory may fix its own start states, e.g. per member) and training's environments
        and random streams are untouched."""
        index = members.nonzero()[:, 0]
        m = int(index.numel())
        env = (make_env or self.make_env)([self.ids[k] for k in index.tolist()])
        e = env.num_envs // max(m, 1)
        obs = env.reset(seed=self.seed + 1)[0].to(self.device)
        total = torch.zeros(m, e, device=self.device)
        length = torch.zeros(m, e, device=self.device)
        running = torch.ones(m, e, dtype=torch.bool, device=self.device)
        ended_by_termination = torch.zeros(m, e, dtype=torch.bool, device=self.device)
        final_obs = obs.view(m, e, -1).clone()
        stacked = torch.zeros(self.group.members, e, obs.shape[-1], device=self.device)
        for _ in range(max_steps):
            stacked[index] = obs.view(m, e, -1)
            action = self.group.actor.deterministic(stacked)[index]
            obs, reward, terminated, truncated, info = env.step(action.reshape(m * e, -1))
            obs, terminated = obs.to(self.device), terminated.to(self.device).view(m, e)
            done = terminated | truncated.to(self.device).view(m, e)
            last = final_observation(obs, done.view(-1), info).to(self.device).view(m, e, -1)
            final_obs = torch.where(running[..., None], last, final_obs)
            total += torch.where(running, reward.to(self.device).view(m, e), 0.0)
            length += running.float()
            ended_by_termination |= running & terminated
            running &= ~done
            if not bool(running.any()):
                break
        return Episodes(total, length, ended_by_termination, final_obs)

    def _judge(self, final: bool) -> dict[str, torch.Tensor]:
        """Score the active members' current actors when a ``select_interval`` was crossed (or the
        budget ran out) and keep those that beat their best snapshot; returns the judge's values."""
        interval = self.config.select_interval
        if self.judge is None or not (final or self._crossed(interval)):
            return {}
        active = self.group.active
        score, values = self.judge(active.clone(), self.fly)
        score = score.to(self.device)
        if self.best_score is None:
            self.best_score = torch.full_like(score, -math.inf)
        better = active & _lexicographically_greater(score, self.best_score)
        self.best_score = torch.where(better[:, None], score, self.best_score)
        self.best_step = torch.where(better, self.step, self.best_step)
        for name, value in values.items():
            value = value.to(self.device, torch.float32)
            kept = self.best_values.get(name, torch.full_like(value, math.nan))
            self.best_values[name] = torch.where(better, value, kept)
        rows = better.nonzero()[:, 0]
        for name, weights in self.group.actor.state_dict().items():
            self.best_actor[name][rows] = weights.detach()[rows]
        return {f"select_{name}": v for name, v in values.items()}

    def handed_on_actor(self, k: int) -> nn.Sequential:
        """Member ``k``'s best judged snapshot as a plain MLP, or its current actor when none was judged."""
        if int(self.best_step[k]) < 0:
            return self.group.member_actor(k)
        net = copy.deepcopy(self.group.actor.net)
        net.load_state_dict({n.removeprefix("net."): t for n, t in self.best_actor.items()})
        return net.member(k)

    def _drop_finished(self) -> None:
        keep = self.group.active.nonzero()[:, 0]
        if keep.numel() in (0, len(self.ids)):
            return  # nothing to drop, or nothing left to train (keep the last group for inspection)
        self.group.select(keep)
        self.replay.select(keep)
        self.ids = [self.ids[k] for k in keep.tolist()]
        for name in ("episode_return", "episode_length", "window_return", "window_length", "episodes",
                     "best_step"):
            setattr(self, name, getattr(self, name)[keep])
        self.best_actor = {n: t[keep] for n, t in self.best_actor.items()}
        self.best_values = {n: t[keep] for n, t in self.best_values.items()}
        if self.best_score is not None:
            self.best_score = self.best_score[keep]
        # The remaining members start fresh episodes on an environment of just their ids.
        self.env = self.make_env(self.ids)
        self.obs = self.env.reset(seed=self.seed + self.step)[0].to(self.device)
        self.episode_return.zero_()
        self.episode_length.zero_()

    def check_finite(self) -> None:
        bad = self.group.nonfinite
        if bool(bad.any()):
            which = [self.ids[k] for k in bad.nonzero()[:, 0].tolist()]
            where = f"; last good checkpoint: {self.checkpoint}" if self.checkpoint is not None else ""
            raise NonFiniteLoss(f"SAC: non-finite loss for member(s) {which} by env step {self.step}, "
                                f"stopping{where}")

    # ----- checkpoints ---------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {"format": RUN_FORMAT, "ids": list(self.ids), "step": self.step, "pending": self.pending,
                "envs_per_member": self.envs, "group": self.group.state_dict(),
                "replay": self.replay.state_dict(), "obs": self.obs,
                "episode_return": self.episode_return, "episode_length": self.episode_length,
                "window_return": self.window_return, "window_length": self.window_length,
                "episodes": self.episodes, "curves": self.curves, "finished": self.finished,
                "best": {"actor": self.best_actor, "score": self.best_score, "step": self.best_step,
                         "values": self.best_values},
                "env": self.env.state_dict() if hasattr(self.env, "state_dict") else None,
                **self.checkpoint_meta()}

    def save(self, path: str | Path) -> Path:
        """Write the whole training state atomically; refuses to overwrite it with non-finite numbers."""
        self.check_finite()
        return save_torch(self.state_dict(), path)

    def load(self, path: str | Path, check: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
        """Continue from :meth:`save`'s file (the environment too when it supports ``state_dict``);
        ``check(state)`` may refuse it before anything changes. Returns the file's contents."""
        state = load_checkpoint(path)
        if not isinstance(state, dict):
            raise ValueError(f"{path}: not a SAC group checkpoint")
        if check is not None:
            check(state)
        if state.get("format") not in (RUN_FORMAT, _OLD_RUN_FORMAT):
            raise ValueError(f"{path}: not a SAC group checkpoint of this version ({RUN_FORMAT})")
        if state["envs_per_member"] != self.envs:
            raise ValueError(f"{path}: checkpoint ran {state['envs_per_member']} environments per member, "
                             f"the config asks for {self.envs}")
        # A run whose last members finished keeps them in "ids" too (compact never empties the batch).
        saved_ids = sorted(set(state["ids"]) | set(state["finished"]))
        if saved_ids != sorted(set(self.ids) | set(state["finished"])):
            raise ValueError(f"{path}: checkpoint is for members {sorted(saved_ids)}, not {sorted(self.ids)}")
        if list(state["ids"]) != self.ids:
            self.ids = list(state["ids"])
            self.env = self.make_env(self.ids)
        self.group = SACGroup.from_state_dict(state["group"], device=self.device)
        self.replay.load_state_dict(state["replay"] if "replay" in state else state["group"]["buffer"])
        self.step, self.pending = int(state["step"]), int(state["pending"])
        self.running = bool(self.group.active.any())
        for name in ("obs", "episode_return", "episode_length", "window_return", "window_length", "episodes"):
            setattr(self, name, state[name].to(self.device))
        self.curves, self.finished = state["curves"], state["finished"]
        if "best" in state:  # absent in checkpoints written before snapshots were judged
            best = state["best"]
            self.best_actor = {n: t.to(self.device) for n, t in best["actor"].items()}
            self.best_score = None if best["score"] is None else best["score"].to(self.device)
            self.best_step = best["step"].to(self.device)
            self.best_values = {n: t.to(self.device) for n, t in best["values"].items()}
        else:
            self.best_actor = {n: t.detach().clone() for n, t in self.group.actor.state_dict().items()}
            self.best_step = torch.full((len(self.ids),), -1, dtype=torch.long, device=self.device)
        if state["env"] is not None and hasattr(self.env, "load_state_dict"):
            self.env.load_state_dict(state["env"])
        else:
            self.obs = self.env.reset(seed=self.seed + self.step)[0].to(self.device)
            self.episode_return.zero_()
            self.episode_length.zero_()
        return state


def _lexicographically_greater(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Row-wise ``a > b`` for ``[K, S]`` scores compared column by column (NaN never wins)."""
    greater = torch.zeros(a.shape[0], dtype=torch.bool, device=a.device)
    equal = torch.ones_like(greater)
    for column in range(a.shape[1]):
        greater |= equal & (a[:, column] > b[:, column])
        equal &= a[:, column] == b[:, column]
    return greater


@contextlib.contextmanager
def _deferred_signals() -> Iterator[Callable[[], bool]]:
    """SIGINT and SIGTERM only set a flag while the loop runs, so the loop can end its step, save and
    stop; a second signal interrupts at once. Yields ``interrupted()``. Off the main thread (where
    Python cannot install handlers) signals keep their usual effect."""
    if threading.current_thread() is not threading.main_thread():
        yield lambda: False
        return
    received: list[int] = []

    def handler(signum: int, frame: Any) -> None:
        if received:
            raise KeyboardInterrupt
        received.append(signum)

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield lambda: bool(received)
    finally:
        for s, h in previous.items():
            signal.signal(s, h)

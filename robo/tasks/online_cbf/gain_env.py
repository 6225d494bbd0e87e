"""The swarm as a PPO environment where every agent is one sample and the action is its CBF gains.

``E`` episodes of ``N`` agents are ``E * N`` rows of the :mod:`robo.rl.vec_env` contract (agent-major
within an episode: row ``e * N + i``), so one shared policy learns from every agent (parameter
sharing). A step: the clipped action of each row becomes that agent's (k1, k2), with
``train.tilt_range`` also its right-hand-rule turn and with ``train.per_neighbour`` also each edge
slot's (k1, k2), through :func:`robo.nets.gnn.squash_gains` and
:func:`~robo.tasks.online_cbf.neighbour_gains.split_outputs`; the
nominal PD command goes through the decentralised filter with those gains; the swarm steps.
Per-agent reward (weights in :class:`RewardWeights`): progress toward the goal, a time cost while
away from it, a deadlock penalty at the onset, a slack (fault) penalty, a collision penalty, and a
shared success bonus when every agent of the episode arrived with no collision; ``reward.team`` mixes
the episode's mean into every agent's (so an agent that gives way is not the one that pays for it). An episode
terminates when every agent is at its goal and is truncated at ``train.episode_time`` (a deadlock
does not end it: agents that stalled may still get through, as they do in the evaluation); its rows
are then reset with the next seeded scenario (same step).

Episode ``e`` plays ``train.scenarios[e % len]``; the scenarios' obstacles are padded to one count
with far-away dummies (beyond every sensing radius, so they never enter a row or an edge).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch

from robo.nets.gnn import base_outputs, output_range, squash_gains
from robo.safety.batched_multi_agent import filter_accelerations
from robo.tasks.online_cbf.config import OnlineCbfConfig
from robo.tasks.online_cbf.neighbour_gains import split_outputs
from sim.swarm import (
    Scenario,
    SwarmState,
    at_goal,
    flat_layout,
    flat_observation_and_slots,
    make_scenario,
    nominal_accelerations,
    replace_envs,
    reset,
    step,
)

FAR = 1e4  # m, where dummy obstacles sit


def _padded(scenario: Scenario, count: int) -> Scenario:
    """``scenario`` with dummy obstacles far away appended up to ``count`` obstacles."""
    E, _, D = scenario.starts.shape
    extra = count - scenario.obstacle_p.shape[1]
    far = FAR * (1 + torch.arange(extra, dtype=scenario.starts.dtype))[None, :, None].expand(E, extra, D)
    return dataclasses.replace(
        scenario, obstacle_p=torch.cat([scenario.obstacle_p, far], dim=1),
        obstacle_r=torch.cat([scenario.obstacle_r, torch.full((E, extra), 0.01, dtype=far.dtype)], dim=1))


class SwarmGainEnv:
    """``VecEnv`` of ``train.envs * agents`` rows; observation :func:`sim.swarm.flat_layout`, action 2
    (k1, k2) or 3 (k1, k2, tilt), plus 2 per edge slot with ``train.per_neighbour``."""

    def __init__(self, config: OnlineCbfConfig):
        self.config, t = config, config.train
        self.swarm = dataclasses.replace(config.swarm, episode_time=t.episode_time)
        self.filter = config.filter_config()
        self.E, self.N = t.envs, config.agents
        self.num_envs = self.E * self.N
        self.observation_size = flat_layout(self.swarm.dim, t.neighbours).size
        slots = t.neighbours if t.per_neighbour else 0
        self.action_size = base_outputs(t.tilt_range) + 2 * slots
        self.out_lo, self.out_hi = (torch.tensor(x, dtype=torch.float64)
                                    for x in output_range(t.k_min, t.k_max, t.tilt_range, slots))
        self.episodes_started = 0
        self.obstacles = max(self._make(name, 0).obstacle_p.shape[1] for name in t.scenarios)
        self.finished: list[dict[str, float]] = []  # per ended episode: success, deadlock, collisions

    # ----- scenarios -------------------------------------------------------------------------
    def _make(self, name: str, seed: int) -> Scenario:
        c = self.config
        return make_scenario(name, c.agents, 1, seed=seed, dim=self.swarm.dim, spacing=c.spacing,
                             jitter=c.jitter, obstacles=c.obstacles)

    def _scenarios(self, envs: list[int]) -> Scenario:
        """Fresh episodes for environment slots ``envs`` (each its slot's scenario, the next seed)."""
        t = self.config.train
        made = []
        for e in envs:
            made.append(_padded(self._make(t.scenarios[e % len(t.scenarios)], t.seed + self.episodes_started),
                                self.obstacles))
            self.episodes_started += 1
        fields = dataclasses.fields(Scenario)
        return Scenario(*(torch.cat([getattr(m, f.name) for m in made]) for f in fields))

    # ----- VecEnv ----------------------------------------------------------------------------
    def observe(self) -> torch.Tensor:
        """The view of every agent; the slots that filled it stay with ``self.state`` for :meth:`gains`."""
        t = self.config.train
        obs, self.slots = flat_observation_and_slots(self.state, self.swarm, t.neighbours,
                                                     agents_first=t.per_neighbour)
        return obs.reshape(self.num_envs, -1).float()

    def reset(self, seed: int | None = None) -> tuple[torch.Tensor, dict[str, Any]]:
        if seed is not None:
            self.episodes_started = seed * 1_000_000
        self.state = reset(self._scenarios(list(range(self.E))), self.swarm)
        self.t = torch.zeros(self.E, dtype=torch.long)
        return self.observe(), {}

    def gains(self, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | float]:
        """(k1, k2, tilt): the gains [E, N] (per row [E, N, N + O] with ``train.per_neighbour``) and the
        tilt [E, N], the config's unless the tuner sets it."""
        dtype, t = self.state.p.dtype, self.config.train
        k = squash_gains(action.to(dtype), self.out_lo.to(dtype), self.out_hi.to(dtype)).reshape(
            self.E, self.N, self.action_size)
        k1, k2, tilt = split_outputs(k, t.tilt_range is not None, self.slots if t.per_neighbour else None,
                                     self.N + self.state.obstacle_p.shape[1])
        return k1, k2, self.config.tilt if tilt is None else tilt

    def step(self, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor,
                                                  dict[str, Any]]:
        c, sw, w = self.config, self.swarm, self.config.train.reward
        s = self.state
        k1, k2, tilt = self.gains(action)
        u = nominal_accelerations(s.p, s.v, s.goal, max_speed=sw.max_speed, max_accel=sw.max_accel,
                                  kp=c.kp, kd=c.kd, tilt=tilt)
        out = filter_accelerations(s.p, s.v, u, s.obstacle_p, s.obstacle_r, k1, k2, self.filter)
        new = step(s, out.u, sw)
        self.t += 1
        there = at_goal(new, sw)
        hit = (new.contact & ~s.contact).any(dim=2) | (new.obstacle_contact & ~s.obstacle_contact).any(dim=2)
        progress = (s.p - s.goal).norm(dim=-1) - (new.p - new.goal).norm(dim=-1)
        reward = (w.progress * progress - w.time * (~there) - w.deadlock * (new.deadlocked & ~s.deadlocked)
                  - w.slack * out.fault - w.collision * hit)
        all_there = there.all(dim=1)
        success = all_there & (new.collisions == 0)
        reward = reward + w.success * success[:, None]
        # who gives way loses time for the others' gain: with a team share the episode's mean pays it back
        reward = (1.0 - w.team) * reward + w.team * reward.mean(dim=1, keepdim=True)
        terminated = all_there
        truncated = ~terminated & (self.t >= sw.episode_steps)
        self.state = new
        info: dict[str, Any] = {}
        done = terminated | truncated
        if bool(done.any()):
            info["final_observation"] = self.observe()
            ended = torch.nonzero(done)[:, 0]
            for e in ended.tolist():
                self.finished.append({"success": float(success[e]), "collisions": float(new.collisions[e]),
                                      "deadlock": float(new.deadlocked[e].any())})
            self.state = replace_envs(new, reset(self._scenarios(ended.tolist()), sw), ended)
            self.t[ended] = 0
        rows = lambda x: x[:, None].expand(self.E, self.N).reshape(-1)  # noqa: E731
        return (self.observe(), reward.reshape(-1).float(), rows(terminated), rows(truncated), info)

    def take_finished(self) -> list[dict[str, float]]:
        """The episodes that ended since the last call (for logging)."""
        done, self.finished = self.finished, []
        return done

    def state_dict(self) -> dict[str, Any]:
        return {"state": dataclasses.asdict(self.state), "t": self.t,
                "episodes_started": self.episodes_started}

    def load_state_dict(self, data: dict[str, Any]) -> None:
        self.state = SwarmState(**data["state"])
        self.t = data["t"]
        self.episodes_started = int(data["episodes_started"])
        self.observe()  # the slots of the restored state

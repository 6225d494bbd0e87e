"""Batched SAC and its off-policy runner: learns the pendulum, K batched members == K separate agents,
freezing, resume, NaN stop."""

from __future__ import annotations

import copy
import dataclasses
import math

import pytest
import torch
from torch import nn
from torch.distributions import Normal
from torch.distributions.transforms import TanhTransform

from robo.config import ConfigError, load_config
from robo.nets.policy import load_policy
from robo.rl.checkpoint import NonFiniteLoss
from robo.rl.off_policy_runner import OffPolicyRunner, RunnerConfig
from robo.rl.replay import ReplayBuffer
from robo.rl.sac import SACConfig, SACGroup, save_actor
from sim.pendulum import PendulumEnv

torch.set_num_threads(1)

SMALL = SACConfig(actor_hidden=(16, 16), critic_hidden=(32, 32), batch_size=32, learning_starts=100,
                  buffer_size=10_000)
MASSES = [1.0, 0.8, 1.2, 1.0]
LENGTHS = [1.0, 1.0, 0.9, 1.2]


def make_pendulums(ids: list[int]) -> PendulumEnv:
    return PendulumEnv([MASSES[i] for i in ids], [LENGTHS[i] for i in ids], seed=7)


def filled_group(members: int = 3, seed: int = 0) -> tuple[SACGroup, ReplayBuffer]:
    g = SACGroup(members, 5, 2, SMALL, seed=seed)
    buffer = ReplayBuffer(members, 5, 2, SMALL.buffer_size)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(200):
        buffer.add(torch.randn(members, 5, generator=gen), torch.rand(members, 2, generator=gen) * 2 - 1,
                     torch.randn(members, generator=gen), torch.randn(members, 5, generator=gen),
                     torch.rand(members, generator=gen) < 0.1)
    with torch.no_grad():  # different temperatures, so a mix-up between members would show
        g.log_alpha.copy_(torch.log(torch.linspace(0.2, 1.0, members)))
    for _ in range(3):  # non-trivial Adam moments
        g.update(buffer.sample(32, g.generator))
    return g, buffer


def rows(batch: dict[str, torch.Tensor], k: int) -> dict[str, torch.Tensor]:
    return {name: v[k: k + 1] for name, v in batch.items()}


def all_params(g: SACGroup) -> list[torch.Tensor]:
    return [*g.actor.parameters(), *g.critic.parameters(), *g.critic_target.parameters(), g.log_alpha]


def member_view(g: SACGroup, k: int) -> list[torch.Tensor]:
    """Member k's slice of every parameter (critic rows k and K + k)."""
    K = g.members
    out = [p.detach()[k] for p in g.actor.parameters()]
    for net in (g.critic, g.critic_target):
        out += [p.detach()[[k, K + k]] for p in net.parameters()]
    return [*out, g.log_alpha.detach()[k]]


# ----- a plain single-agent SAC written with nn.Sequential and torch.distributions -------------------

def ref_sample(actor: nn.Sequential, obs, noise, cfg: SACConfig):
    mean, raw = actor(obs).chunk(2, -1)
    log_std = cfg.log_std_min + 0.5 * (cfg.log_std_max - cfg.log_std_min) * (torch.tanh(raw) + 1)
    u = mean + log_std.exp() * noise
    a = torch.tanh(u)
    log_prob = Normal(mean, log_std.exp()).log_prob(u).sum(-1)
    log_prob = log_prob - TanhTransform().log_abs_det_jacobian(u, a).sum(-1)
    return a, log_prob


def ref_losses(g: SACGroup, k: int, batch, noise):
    """Critic, actor and alpha loss of member k from plain per-member modules."""
    cfg, K = g.config, g.members
    actor = g.actor.net.member(k)
    q1, q2 = g.critic.net.member(k), g.critic.net.member(K + k)
    t1, t2 = g.critic_target.net.member(k), g.critic_target.net.member(K + k)
    log_alpha = g.log_alpha.detach()[k].clone().requires_grad_(True)
    b = {n: v[k] for n, v in batch.items()}
    with torch.no_grad():
        na, nlp = ref_sample(actor, b["next_obs"], noise[0, k], cfg)
        x = torch.cat((b["next_obs"], na), -1)
        nv = torch.min(t1(x), t2(x))[:, 0] - log_alpha.exp() * nlp
        target = b["reward"] + cfg.gamma * (1 - b["terminated"]) * nv
    x = torch.cat((b["obs"], b["action"]), -1)
    critic = ((q1(x)[:, 0] - target) ** 2).mean() + ((q2(x)[:, 0] - target) ** 2).mean()
    a, lp = ref_sample(actor, b["obs"], noise[1, k], cfg)
    x = torch.cat((b["obs"], a), -1)
    actor_loss = (log_alpha.detach().exp() * lp - torch.min(q1(x), q2(x))[:, 0]).mean()
    alpha_loss = (-log_alpha * (lp.detach() + cfg.target_entropy)).mean()
    return critic, actor_loss, alpha_loss, (actor, q1, q2, log_alpha)


def test_batched_group_equals_separate_agents_losses_and_gradients() -> None:
    torch.manual_seed(0)
    g, buffer = filled_group(3)
    K = g.members
    batch = buffer.sample(32, torch.Generator().manual_seed(1))
    noise = torch.randn(2, K, 32, 2)

    critic = g.critic_loss(batch, noise[0])
    g.critic.zero_grad()
    critic.sum().backward()
    actor, log_prob = g.actor_loss(batch["obs"], noise[1])
    g.actor.zero_grad()
    actor.sum().backward()
    alpha = g.alpha_loss(log_prob)
    g.log_alpha.grad = None
    alpha.sum().backward()

    for k in range(K):
        # (1) the same group code with K = 1 on member k's slice
        single = copy.deepcopy(g)
        single.select([k])
        c1 = single.critic_loss(rows(batch, k), noise[0, k: k + 1])
        c1.sum().backward()
        a1, lp1 = single.actor_loss(batch["obs"][k: k + 1], noise[1, k: k + 1])
        a1.sum().backward()
        single.log_alpha.grad = None
        al1 = single.alpha_loss(lp1)
        al1.sum().backward()
        for batched, alone in ((critic, c1), (actor, a1), (alpha, al1)):
            torch.testing.assert_close(batched[k], alone[0], atol=1e-6, rtol=1e-6)
        for pb, p1 in zip(g.actor.parameters(), single.actor.parameters(), strict=True):
            torch.testing.assert_close(pb.grad[k], p1.grad[0], atol=1e-6, rtol=1e-6)
        for pb, p1 in zip(g.critic.parameters(), single.critic.parameters(), strict=True):
            torch.testing.assert_close(pb.grad[[k, K + k]], p1.grad, atol=1e-6, rtol=1e-6)
        torch.testing.assert_close(g.log_alpha.grad[k], single.log_alpha.grad[0], atol=1e-6, rtol=1e-6)

        # (2) an independent plain-torch SAC on the same member
        rc, ra, ral, (r_actor, r_q1, _, r_log_alpha) = ref_losses(g, k, batch, noise)
        torch.testing.assert_close(critic[k], rc, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(actor[k], ra, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(alpha[k], ral, atol=1e-5, rtol=1e-5)
        rc.backward()
        r_q1_grad = r_q1[0].weight.grad.T
        torch.testing.assert_close(g.critic.net.layers[0].weight.grad[k], r_q1_grad, atol=1e-5, rtol=1e-4)
        r_actor.zero_grad()
        ra.backward()
        torch.testing.assert_close(g.actor.net.layers[0].weight.grad[k], r_actor[0].weight.grad.T,
                                   atol=1e-5, rtol=1e-4)
        ral.backward()
        torch.testing.assert_close(g.log_alpha.grad[k], r_log_alpha.grad, atol=1e-6, rtol=1e-5)


def test_a_full_update_equals_k_separate_updates() -> None:
    torch.manual_seed(1)
    g, buffer = filled_group(4)
    singles = []
    for k in range(4):
        s = copy.deepcopy(g)
        s.select([k])
        singles.append(s)
    for step in range(3):
        batch = buffer.sample(32, torch.Generator().manual_seed(10 + step))
        noise = torch.randn(2, 4, 32, 2)
        g.update(batch, noise)
        for k, s in enumerate(singles):
            s.update(rows(batch, k), noise[:, k: k + 1])
    for k, s in enumerate(singles):
        for pb, p1 in zip(member_view(g, k), member_view(s, 0), strict=True):
            torch.testing.assert_close(pb, p1, atol=1e-6, rtol=1e-6)


def test_freeze_leaves_exactly_the_frozen_members_untouched() -> None:
    torch.manual_seed(2)
    g, buffer = filled_group(3)
    before = [[t.clone() for t in member_view(g, k)] for k in range(3)]
    moments = {k: [g.critic_opt.state[p]["exp_avg"][[k, 3 + k]].clone() for p in g.critic.parameters()]
               for k in range(3)}
    g.freeze(torch.tensor([False, True, False]))
    for _ in range(5):
        g.update(buffer.sample(32, g.generator))
    for k in range(3):
        same = all(torch.equal(a, b) for a, b in zip(before[k], member_view(g, k), strict=True))
        same_moments = all(torch.equal(m, g.critic_opt.state[p]["exp_avg"][[k, 3 + k]])
                           for m, p in zip(moments[k], g.critic.parameters(), strict=True))
        assert same == (k == 1), f"member {k}"
        assert same_moments == (k == 1), f"member {k} Adam moments"


def test_select_carries_optimiser_state() -> None:
    torch.manual_seed(3)
    g, buffer = filled_group(3)
    sub = copy.deepcopy(g)
    sub.select([2, 0])
    batch = buffer.sample(32, torch.Generator().manual_seed(4))
    noise = torch.randn(2, 3, 32, 2)
    g.update(batch, noise)
    sub.update({n: v[[2, 0]] for n, v in batch.items()}, noise[:, [2, 0]])
    for j, k in enumerate((2, 0)):
        for a, b in zip(member_view(g, k), member_view(sub, j), strict=True):
            torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-6)


# Settings that swing a pendulum up within a few thousand steps.
LEARNING = SACConfig(actor_hidden=(64, 64), critic_hidden=(64, 64), learning_starts=500, actor_lr=1e-3,
                     critic_lr=1e-3, alpha_lr=1e-3, initial_alpha=0.2, target_entropy=-1.0,
                     buffer_size=10_000)


def assert_swings_up(runner: OffPolicyRunner, ids: list[int]) -> None:
    """The runner's deterministic policies do far better than random actions on pendulums ``ids``."""

    def episode_return(policy) -> torch.Tensor:
        env = make_pendulums(ids)
        obs, _ = env.reset(seed=123)
        total = torch.zeros(len(ids))
        for _ in range(200):
            obs, reward, *_ = env.step(policy(obs))
            total += reward
        return total

    learned = episode_return(lambda obs: runner.group.act(obs, deterministic=True))
    gen = torch.Generator().manual_seed(0)
    random = episode_return(lambda obs: torch.rand(len(ids), 1, generator=gen) * 2 - 1)
    assert (learned > random + 400).all(), (learned, random)
    assert (learned > -600).all(), learned


def test_sac_learns_two_different_pendulums_at_once() -> None:
    """Return rises from random (about -1200) to a swing-up within 4000 steps (about 20 s on one core)."""
    train = RunnerConfig(steps=4000, log_interval=1000)
    trainer = OffPolicyRunner([1, 2], make_pendulums, LEARNING, train, seed=0)
    trainer.run()
    assert sorted(trainer.finished) == [1, 2]
    assert all(r["steps"] == 4000 for r in trainer.finished.values())  # no should_finish: budget ran out
    assert_swings_up(trainer, [1, 2])


def test_checkpoint_resume_continues_identically(tmp_path) -> None:
    train = RunnerConfig(steps=400, log_interval=100, checkpoint_interval=200)
    straight = OffPolicyRunner([0, 3], make_pendulums, SMALL, train, seed=5)
    straight.run()

    path = tmp_path / "group.pt"
    first = OffPolicyRunner([0, 3], make_pendulums, SMALL, train, seed=5, checkpoint=path)
    first.run(until=200)
    del first
    resumed = OffPolicyRunner([0, 3], make_pendulums, SMALL, train, seed=5, checkpoint=path)
    resumed.load(path)
    assert resumed.step == 200
    resumed.run()
    for k in range(2):
        for a, b in zip(member_view(straight.group, k), member_view(resumed.group, k), strict=True):
            assert torch.equal(a, b)
    for name in ("obs", "reward", "next_obs"):
        a, b = straight.replay.data[name], resumed.replay.data[name]
        assert torch.equal(a[:, :400], b[:, :400])
    assert straight.curves == resumed.curves
    assert straight.finished == resumed.finished


class NaNAfter(PendulumEnv):
    """A pendulum whose reward turns NaN at one step (a stand-in for a diverging simulation)."""

    def __init__(self, *args, bad_step: int, **kwargs):
        super().__init__(*args, **kwargs)
        self.bad_step, self.calls = bad_step, 0

    def step(self, action):
        obs, reward, terminated, truncated, info = super().step(action)
        self.calls += 1
        if self.calls == self.bad_step:
            reward = reward.clone()
            reward[1] = math.nan
        return obs, reward, terminated, truncated, info


def test_nan_loss_stops_with_a_clear_message_and_keeps_the_last_good_checkpoint(tmp_path) -> None:
    path = tmp_path / "group.pt"
    train = RunnerConfig(steps=2000, log_interval=100, checkpoint_interval=200)
    trainer = OffPolicyRunner([0, 1], lambda ids: NaNAfter(MASSES[:2], LENGTHS[:2], bad_step=450), SMALL,
                              train, checkpoint=path)
    with pytest.raises(NonFiniteLoss, match=r"non-finite loss for member\(s\) \[1\].*last good checkpoint"):
        trainer.run()
    state = torch.load(path, weights_only=True)
    assert state["step"] == 400
    assert all(torch.isfinite(v).all() for v in state["group"]["actor"].values())
    assert [p.name for p in tmp_path.iterdir()] == ["group.pt"]  # no temporary file left behind


def test_actor_export_round_trip(tmp_path) -> None:
    g, _ = filled_group(3)
    path = save_actor(tmp_path / "a.pt", g.member_actor(2), g.act_size, {"origin": {"teacher": "q2"}})
    policy, meta = load_policy(path)
    assert [m.out_features for m in policy.net if isinstance(m, nn.Linear)] == [16, 16, 2]
    obs = torch.randn(3, 5)
    assert meta == {"origin": {"teacher": "q2"}}
    torch.testing.assert_close(policy(obs[2:3]), g.act(obs, deterministic=True)[2:3], atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(policy(obs[2:3]), g.member_policy(2)(obs[2:3]))
    with pytest.raises(OSError, match="not found"):
        load_policy(tmp_path / "missing.pt")


def test_config_defaults_are_the_papers_and_bad_keys_are_named(tmp_path) -> None:
    cfg = load_config(SACConfig)
    assert (cfg.buffer_size, cfg.batch_size, cfg.gamma, cfg.tau) == (1_000_000, 128, 0.99, 0.005)
    assert (cfg.actor_lr, cfg.critic_lr, cfg.initial_alpha, cfg.target_entropy) == (3e-4, 3e-4, 0.5, -2.0)
    assert (cfg.learning_starts, cfg.actor_hidden, cfg.critic_hidden) == (10_000, (64,) * 3, (256,) * 3)
    with pytest.raises(ConfigError, match="batch_sise"):
        load_config(SACConfig, overrides=["batch_sise=64"])
    with pytest.raises(ConfigError, match="tau"):
        load_config(SACConfig, overrides=["tau=0"])


def test_resume_after_finished_members_were_dropped(tmp_path) -> None:
    train = RunnerConfig(steps=400, log_interval=100, checkpoint_interval=1000)

    def above(stats):
        return (stats.episodes >= 1) & (stats.mean_return >= -500.0)

    a = OffPolicyRunner([0, 1, 2], make_pendulums, SMALL, train, seed=2, window=1, should_finish=above)
    a.run(until=150)
    a.window_return[:, 0] = torch.tensor([-900.0, -100.0, -900.0])
    a.episodes[:] = 1
    a.log_and_finish()
    assert a.ids == [0, 2] and sorted(a.finished) == [1]
    a.save(tmp_path / "g.pt")
    b = OffPolicyRunner([0, 1, 2], make_pendulums, SMALL, train, seed=2, window=1, should_finish=above)
    b.load(tmp_path / "g.pt")
    assert b.ids == [0, 2] and b.env.num_envs == 2 and b.group.members == 2
    a.run(until=250)
    b.run(until=250)
    for k in range(2):
        for x, y in zip(member_view(a.group, k), member_view(b.group, k), strict=True):
            assert torch.equal(x, y)
    with pytest.raises(ValueError, match="members"):
        OffPolicyRunner([0, 3], make_pendulums, SMALL, train).load(tmp_path / "g.pt")


class TaggedEnv:
    """K x E environments whose reward is the member's id and whose episodes last 5 + e steps."""

    observation_size, action_size = 2, 1

    def __init__(self, ids: list[int], envs: int):
        self.member = torch.tensor(ids, dtype=torch.float32).repeat_interleave(envs)
        self.limit = torch.arange(envs).repeat(len(ids)) + 5
        self.num_envs = len(ids) * envs
        self.t = torch.zeros(self.num_envs, dtype=torch.long)

    def observe(self) -> torch.Tensor:
        return torch.stack((self.member, self.t.float()), -1)

    def reset(self, seed=None):
        self.t.zero_()
        return self.observe(), {}

    def step(self, action):
        assert action.shape == (self.num_envs, 1)
        self.t += 1
        truncated = self.t >= self.limit
        final = self.observe()
        self.t = torch.where(truncated, 0, self.t)
        return self.observe(), self.member.clone(), torch.zeros_like(truncated), truncated, {
            "final_observation": final}


def test_several_environments_per_member_fill_their_own_replay_and_windows() -> None:
    """E = 3 environments per member: 3 transitions per member per batched step, one update per
    `update_interval` transitions, and episodes that end on the same step all reach the window."""
    cfg = dataclasses.replace(SMALL, learning_starts=30)
    train = RunnerConfig(steps=120, log_interval=60, envs_per_member=3, update_interval=2)
    trainer = OffPolicyRunner([4, 9], lambda ids: TaggedEnv(ids, 3), cfg, train, window=50)
    trainer.run()
    assert trainer.step == 120 and trainer.replay.size == 120
    # Updates begin with the batched step that brings the buffer to learning_starts (step 30, 3 rows).
    assert trainer.group.updates == (120 - 30 + 3) // 2
    data = trainer.replay.data
    for k, member in enumerate((4, 9)):
        assert bool((data["reward"][k, :120] == member).all())  # only its own environments' rows
        assert bool((data["obs"][k, :120, 0] == member).all())
    # Envs of lengths 5, 6, 7 over 40 steps: the episodes that end after step 10 (30 transitions).
    lengths = [length for length in (5, 6, 7) for t in range(length, 41, length) if t > 10]
    _, mean_length, n = trainer.window_means()
    assert n.tolist() == [len(lengths)] * 2
    torch.testing.assert_close(mean_length, torch.full((2,), sum(lengths) / len(lengths)))

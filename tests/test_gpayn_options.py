"""G-PAYN round 4's options: the critic's LayerNorm (a generic SAC option, off by default), noise on the
demonstrator's actions, and G-PAYN's demonstrations in a partition sampled at a fixed share (RLPD's
symmetric sampling)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import math

import pytest
import torch
from torch.nn import functional as F

from robo.config import ConfigError, load_config
from robo.registry import Context
from robo.rl.checkpoint import load_checkpoint
from robo.rl.sac import SACConfig, SACGroup
from robo.tasks.gpayn.config import GPAYNTrainConfig
from robo.tasks.gpayn.demos import generate
from robo.tasks.gpayn.train import algorithm_settings, train
from sim.hand.env import HandEnvConfig

torch.set_num_threads(1)


def test_layer_norm_critic_normalises_every_hidden_layer_and_bounds_q():
    config = SACConfig(actor_hidden=(8,), critic_hidden=(16, 16))
    assert not config.critic_layer_norm
    plain = SACGroup(2, 5, 3, config, seed=2)
    normed = SACGroup(2, 5, 3, SACConfig(actor_hidden=(8,), critic_hidden=(16, 16), critic_layer_norm=True),
                      seed=2)
    g = torch.Generator().manual_seed(0)
    obs, action = torch.randn(2, 7, 5, generator=g), torch.rand(2, 7, 3, generator=g) * 2 - 1
    # Same weights, so the plain critic is the same MLP without the normalisation.
    with torch.no_grad():
        q1 = normed.critic.net.member(1)  # member 1's first Q-network
        x = torch.cat((obs[1], action[1]), -1)
        for layer in [m for m in q1 if isinstance(m, torch.nn.Linear)][:-1]:
            x = F.relu(F.layer_norm(layer(x), (layer.out_features,)))
        want = q1[-1](x)[:, 0]
        torch.testing.assert_close(normed.critic(obs, action)[0, 1], want)
        torch.testing.assert_close(plain.critic(obs, action)[0, 1], plain.critic.net.member(1)(
            torch.cat((obs[1], action[1]), -1))[:, 0])
        # Far from the data the plain critic grows with the input; the normalised one cannot pass
        # |last weights| x sqrt(width) + |bias| (a normalised, rectified vector has norm <= sqrt(width)).
        far = action * 1e4
        last = normed.critic.net.layers[-1]
        bound = last.weight.norm(dim=1).max() * 16 ** 0.5 + last.bias.abs().max()
        assert normed.critic(obs, far).abs().max() <= bound
        assert plain.critic(obs, far).abs().max() > 10 * bound


def test_noisy_demonstrations_change_the_actions_within_range_and_still_lift():
    env = HandEnvConfig(object="box_tall", episode_steps=200, start="pre_grasp")
    clean = generate(env, 800, 4, seed=0)
    noisy = generate(env, 800, 4, seed=0, noise=0.3)
    assert noisy["action"].abs().max() <= 1.0
    deviation = (noisy["action"] - clean["action"]).abs()
    assert deviation[:4].mean() > 0.1  # the first step's observations agree, its actions do not
    torch.testing.assert_close(generate(env, 800, 4, seed=0)["action"], clean["action"])
    assert int(noisy["successes"]) >= 1  # the script corrects the drift and still lifts


def test_gpayn_demo_fraction_moves_the_demonstrations_into_a_partition(tmp_path):
    config = load_config(GPAYNTrainConfig, "configs/gpayn_quick.yaml", ["gpayn_bc_weight=0"])
    sac, runner = algorithm_settings(config)
    assert runner.demo_fraction == 0.5 and sac.bc_weight == 0 and sac.learning_starts == 0
    paper = load_config(GPAYNTrainConfig, "configs/gpayn.yaml")
    assert algorithm_settings(paper)[1].demo_fraction == 0.0  # the paper's single FIFO
    tiny = ["demo_transitions=64", "demo_envs=4", "eval_episodes=2", "env.episode_steps=100",
            "sac.actor_hidden=[16]", "sac.critic_hidden=[16]", "sac.batch_size=16", "runner.steps=32",
            "runner.envs_per_member=4", "runner.log_interval=16", "runner.select_interval=32",
            "runner.checkpoint_interval=32"]
    train(load_config(GPAYNTrainConfig, "configs/gpayn_quick.yaml", tiny),
          argparse.Namespace(object="box_tall", algo="gpayn"), Context(out=tmp_path / "run"))
    replay = load_checkpoint(tmp_path / "run" / "checkpoint.pt")["replay"]
    demos = torch.load(tmp_path / "run" / "demonstrations.pt", weights_only=True)["demonstrations"]
    assert replay["size"] == 32 and replay["demo"]["reward"].shape == (1, 64)  # agent FIFO, partition
    torch.testing.assert_close(replay["demo"]["action"][0], demos["action"])
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["updates"] == 32  # none first
    with pytest.raises(ConfigError, match="pretrain_updates needs gpayn_demo_fraction = 0"):
        load_config(GPAYNTrainConfig, None, ["gpayn_demo_fraction=0.5", "pretrain_updates=10"])
    with pytest.raises(ConfigError, match=r"gpayn_demo_fraction must be in \[0, 1\)"):
        load_config(GPAYNTrainConfig, None, ["gpayn_demo_fraction=1.0"])
    with pytest.raises(ConfigError, match="demo_action_noise must be >= 0"):
        load_config(GPAYNTrainConfig, None, ["demo_action_noise=-0.1"])


def test_unfiltered_bc_clones_every_demonstration_row_and_oerld_stays_filtered():
    g = torch.Generator().manual_seed(3)
    data = {"obs": torch.randn(2, 8, 5, generator=g), "action": torch.rand(2, 8, 2, generator=g) * 2 - 1,
            "reward": torch.zeros(2, 8), "next_obs": torch.randn(2, 8, 5, generator=g),
            "terminated": torch.zeros(2, 8),
            "demo": torch.arange(8).expand(2, -1) >= 4}
    config = SACConfig(actor_hidden=(8,), critic_hidden=(8,), bc_weight=1.0, bc_q_filter=False)
    group = SACGroup(2, 5, 2, config, seed=1)
    with torch.no_grad():
        error = (group.actor.deterministic(data["obs"]) - data["action"]).pow(2).sum(-1)
        torch.testing.assert_close(group.bc_loss(data), error[:, 4:].mean(-1))
        filtered = SACGroup(2, 5, 2, SACConfig(actor_hidden=(8,), critic_hidden=(8,), bc_weight=1.0), seed=1)
        assert not torch.equal(filtered.bc_loss(data), group.bc_loss(data))  # the filter drops some rows
    gpayn = load_config(GPAYNTrainConfig, "configs/gpayn_quick.yaml",
                        ["gpayn_demo_fraction=0.5", "pretrain_updates=0", "gpayn_bc_weight=5",
                         "sac.bc_q_filter=false"])
    assert algorithm_settings(gpayn)[0].bc_weight == 5 and not algorithm_settings(gpayn)[0].bc_q_filter
    oerld = algorithm_settings(dataclasses.replace(gpayn, algo="oerld"))[0]
    assert oerld.bc_q_filter and oerld.bc_weight == gpayn.oerld_bc_weight
    with pytest.raises(ConfigError, match="gpayn_bc_weight must be >= 0 and needs gpayn_demo_fraction"):
        load_config(GPAYNTrainConfig, None, ["gpayn_bc_weight=1"])


def test_log_likelihood_bc_is_the_gaussian_nll_of_the_demonstrated_action_and_trains_the_std():
    g = torch.Generator().manual_seed(4)
    data = {"obs": torch.randn(2, 8, 5, generator=g), "action": torch.rand(2, 8, 2, generator=g) * 2 - 1,
            "reward": torch.zeros(2, 8), "demo": torch.arange(8).expand(2, -1) >= 4}
    data["action"][:, 5, 0] = 1.0  # on the bound: atanh is infinite, the loss must stay finite
    config = SACConfig(actor_hidden=(8,), critic_hidden=(8,), bc_weight=1.0, bc_q_filter=False,
                       bc_log_likelihood=True)
    group = SACGroup(2, 5, 2, config, seed=1)
    mean, log_std = group.actor(data["obs"])
    gaussian = torch.distributions.Normal(mean, log_std.exp())
    nll = -gaussian.log_prob(torch.atanh(data["action"].clamp(-0.99, 0.99))).sum(-1) - 2 * math.log(
        math.sqrt(2 * math.pi))  # the loss leaves out the constant
    loss = group.bc_loss(data)
    torch.testing.assert_close(loss, nll[:, 4:].mean(-1))
    loss.sum().backward()
    std_rows = group.actor.net.layers[-1].weight.grad  # the last layer makes (mean, raw log-std)
    assert std_rows is not None and std_rows[:, :, 2:].abs().sum() > 0  # the std is trained too
    gpayn = load_config(GPAYNTrainConfig, "configs/gpayn_quick.yaml", ["sac.bc_log_likelihood=true"])
    assert algorithm_settings(gpayn)[0].bc_log_likelihood
    assert not algorithm_settings(dataclasses.replace(gpayn, algo="oerld"))[0].bc_log_likelihood


def test_a_critic_ensemble_takes_the_minimum_of_a_random_pair_and_selects_every_critic():
    with pytest.raises(ValueError, match=r"sac\.critics must be >= 2"):
        SACConfig(critics=1)
    config = SACConfig(actor_hidden=(8,), critic_hidden=(16,), critics=5)
    group = SACGroup(2, 5, 3, config, seed=0)
    g = torch.Generator().manual_seed(0)
    obs, action = torch.randn(2, 7, 5, generator=g), torch.rand(2, 7, 3, generator=g) * 2 - 1
    q = group.critic(obs, action)
    assert q.shape == (5, 2, 7)
    pairs = [group.critic_pair() for _ in range(20)]
    assert all(p.numel() == 2 and p.unique().numel() == 2 for p in pairs)
    assert len({tuple(sorted(p.tolist())) for p in pairs}) > 1  # a new pair each update
    pair = pairs[0]
    batch = {"obs": obs, "action": action, "reward": torch.randn(2, 7, generator=g),
             "next_obs": torch.randn(2, 7, 5, generator=g), "terminated": torch.zeros(2, 7)}
    noise = torch.randn(2, 2, 7, 3, generator=g)
    with torch.no_grad():  # the target is the pair's minimum, not the whole ensemble's
        next_action, next_log_prob = group.actor.sample(batch["next_obs"], noise[0])
        next_q = group.critic_target(batch["next_obs"], next_action)[pair].min(0).values
        target = batch["reward"] + config.gamma * (next_q - group.alpha[:, None] * next_log_prob)
        want = (q - target).pow(2).mean(-1).sum(0)
        torch.testing.assert_close(group.critic_loss(batch, noise[0], pair), want)
    assert torch.isfinite(group.update(batch)["critic_loss"]).all()
    member_1 = group.critic(obs, action)[:, 1:]
    group.select([1])  # every one of member 1's five critics is kept, in order
    torch.testing.assert_close(group.critic(obs[1:], action[1:]), member_1)
    assert SACGroup(1, 5, 3, SACConfig(actor_hidden=(8,), critic_hidden=(16,)), seed=0).critic_pair() is None

"""G-PAYN on the hand: OERLD's Q-filtered behaviour cloning (off by default), the demonstration mask,
demonstrations in the buffer per algorithm, and a tiny real run of ``robo train gpayn`` and ``robo eval
gpayn`` (real MuJoCo, ONNX Runtime)."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest
import torch

from robo.cli import main
from robo.config import ConfigError, load_config
from robo.export.card import load_card
from robo.registry import Context
from robo.rl.replay import FIELDS, ReplayBuffer
from robo.rl.sac import SACConfig, SACGroup
from robo.tasks.gpayn.config import GPAYNTrainConfig
from robo.tasks.gpayn.demos import generate
from robo.tasks.gpayn.episodes import grasp_episodes, outcomes_from_final, start_height
from robo.tasks.gpayn.train import algorithm_settings, train
from sim.hand.env import LAYOUT, HandEnv, HandEnvConfig

torch.set_num_threads(1)
TINY = ["demo_transitions=96", "demo_envs=4", "eval_episodes=2", "env.episode_steps=200",
        "sac.actor_hidden=[16,16]", "sac.critic_hidden=[16,16]", "sac.batch_size=16", "sac.buffer_size=500",
        "sac.learning_starts=0", "runner.steps=48", "runner.envs_per_member=4", "runner.log_interval=24",
        "runner.select_interval=48", "runner.checkpoint_interval=48", "runner.update_interval=4",
        "pretrain_updates=2", "gpayn_demo_fraction=0", "gpayn_bc_weight=0"]  # the paper's single FIFO


def batch(k: int = 2, b: int = 8, demos: int = 4, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    out = {"obs": torch.randn(k, b, 5, generator=g), "action": torch.rand(k, b, 2, generator=g) * 2 - 1,
           "reward": torch.randn(k, b, generator=g), "next_obs": torch.randn(k, b, 5, generator=g),
           "terminated": torch.zeros(k, b)}
    out["demo"] = torch.arange(b).expand(k, -1) >= b - demos
    return out


def test_bc_loss_is_the_q_filtered_error_on_demonstration_rows_only():
    group = SACGroup(2, 5, 2, SACConfig(actor_hidden=(8,), critic_hidden=(8,), bc_weight=1.0), seed=1)
    data = batch()
    with torch.no_grad():
        mean = group.actor.deterministic(data["obs"])
        better = (group.critic(data["obs"], data["action"]).min(0).values
                  > group.critic(data["obs"], mean).min(0).values)
        error = (mean - data["action"]).pow(2).sum(-1)
        want = (error * (better & data["demo"])).sum(-1) / data["demo"].sum(-1)
        torch.testing.assert_close(group.bc_loss(data), want)
        assert (better & data["demo"]).any() and not torch.equal(want, error.mean(-1))
        assert group.bc_loss({**data, "demo": torch.zeros_like(data["demo"])}).abs().max() == 0


def test_bc_off_by_default_leaves_updates_as_they_were():
    config = SACConfig(actor_hidden=(8,), critic_hidden=(8,))
    assert config.bc_weight == 0.0
    plain, masked = SACGroup(2, 5, 2, config, seed=3), SACGroup(2, 5, 2, config, seed=3)
    data = batch()
    plain.update({k: v for k, v in data.items() if k != "demo"})
    masked.update(data)
    for a, b in zip(plain.actor.parameters(), masked.actor.parameters(), strict=True):
        assert torch.equal(a, b)
    with_bc = SACGroup(2, 5, 2, SACConfig(actor_hidden=(8,), critic_hidden=(8,), bc_weight=1.0), seed=3)
    assert "bc_loss" in with_bc.update(data)
    assert not torch.equal(next(with_bc.actor.parameters()), next(plain.actor.parameters()))
    with pytest.raises(ValueError, match="bc_weight"):
        SACConfig(bc_weight=-1.0)


def test_replay_marks_its_demonstration_rows():
    buffer = ReplayBuffer(2, 5, 2, 100, demo_fraction=0.25)
    rows = batch(b=10, demos=0)
    buffer.add(*(rows[name] for name in FIELDS))
    buffer.add_demonstrations(*(rows[name] for name in FIELDS))
    sampled = buffer.sample(16, torch.Generator().manual_seed(0))
    assert sampled["demo"].sum(1).tolist() == [4, 4] and sampled["demo"][:, 12:].all()
    plain = ReplayBuffer(2, 5, 2, 100)
    plain.add(*(rows[name] for name in FIELDS))
    assert "demo" not in plain.sample(16, torch.Generator().manual_seed(0))


def test_config_names_bad_input():
    with pytest.raises(ConfigError, match=r"unknown object 'mug'.*choices: box_tall"):
        load_config(GPAYNTrainConfig, None, ["env.object=mug"])
    with pytest.raises(ConfigError, match=r"unknown algo 'ddpg'.*gpayn, sac, oerld"):
        load_config(GPAYNTrainConfig, None, ["algo=ddpg"])
    with pytest.raises(ConfigError, match="pretrain_updates must be >= 0"):
        load_config(GPAYNTrainConfig, None, ["pretrain_updates=-1"])
    with pytest.raises(ConfigError, match="follow from algo"):
        load_config(GPAYNTrainConfig, None, ["sac.bc_weight=1.0"])
    oerld = load_config(GPAYNTrainConfig, "configs/gpayn.yaml", ["algo=oerld"])
    sac, runner = algorithm_settings(oerld)
    assert sac.batch_size == 288 and round(runner.demo_fraction * sac.batch_size) == 32 and sac.bc_weight == 1
    quick = load_config(GPAYNTrainConfig, "configs/gpayn_quick.yaml")
    assert algorithm_settings(quick)[0].learning_starts == 0  # demonstrations are there from the start


def test_demonstrations_and_scripted_episodes_lift_the_object():
    env = HandEnvConfig(object="box_tall", episode_steps=200, start="pre_grasp")
    demos = generate(env, 700, 4, seed=0)
    assert demos["reward"].shape == (700,) and demos["obs"].shape == (700, LAYOUT.size)
    assert int(demos["successes"]) >= 1 and int(demos["successes"]) <= int(demos["episodes"])
    outcome = grasp_episodes(env, 2, seed=5)
    assert outcome.success.all() and not outcome.dropped.any() and (outcome.length < 200).all()
    # The runner's view of the same endings (terminated + final observation) agrees.
    lifted = np.zeros((1, LAYOUT.size))
    lifted[0, LAYOUT.slice("object")] = [0, 0, start_height(env) + 0.1]
    judged = outcomes_from_final(np.array([True]), lifted, np.array([160]), start_height(env))
    assert judged.success.tolist() == [True] and judged.summary()["time_to_lift_s"] == 4.0


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("gpayn") / "run"
    config = load_config(GPAYNTrainConfig, "configs/gpayn_quick.yaml", TINY)
    report = train(config, argparse.Namespace(object="cylinder_thin", algo="gpayn"), Context(out=out))
    return out, report


def test_train_writes_the_run_and_a_card_naming_every_observation(trained):
    out, report = trained
    assert "gpayn (gpayn, cylinder_thin): 48 env steps" in report
    for name in ("demonstrations.pt", "checkpoint.pt", "learning_curve.csv", "learning_curve.png",
                 "metrics.json", "policy.pt", "policy.onnx"):
        assert (out / name).is_file(), name
    card = load_card(out / "policy.onnx")
    assert card["task"] == "gpayn" and card["control_rate_hz"] == 40.0
    assert [e["name"] for e in card["observation"]["layout"]] == LAYOUT.names
    assert card["action"]["size"] == HandEnv.action_size
    assert card["export"]["equivalence"]["max_abs_error"] < 1e-5
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["demonstrations"]["transitions"] == 96 and metrics["env_steps"] == 48
    assert metrics["updates"] == 2 + 48 // 4  # the updates on the demonstrations, then one per 4 steps
    assert "select_success" in (out / "learning_curve.csv").read_text()


def test_gpayn_buffer_starts_full_of_demonstrations_and_oerld_keeps_them_apart(trained):
    from robo.rl.checkpoint import load_checkpoint

    out, _ = trained
    state = load_checkpoint(out / "checkpoint.pt")
    demos = torch.load(out / "demonstrations.pt", weights_only=True)["demonstrations"]
    replay = state["replay"]
    # 96 demonstrations, then 48 agent transitions, in one FIFO; no partition.
    assert replay["size"] == 96 + 48 and replay["demo"]["reward"].shape[1] == 0
    torch.testing.assert_close(replay["obs"][0, :96], demos["obs"])


def test_resume_reuses_the_demonstrations_and_eval_compares_with_the_script(trained, tmp_path, capsys):
    out, _ = trained
    before = (out / "demonstrations.pt").stat().st_mtime_ns
    config = load_config(GPAYNTrainConfig, "configs/gpayn_quick.yaml",
                         [*TINY, "env.object=cylinder_thin"])
    train(config, argparse.Namespace(), Context(out=out, resume=True))
    assert (out / "demonstrations.pt").stat().st_mtime_ns == before
    assert main(["eval", "gpayn", "--policy", str(out / "policy.onnx"), "--set", "episodes=2", "--no-strip",
                 "--runs", str(out), "--out", str(tmp_path / "e")]) == 0
    metrics = json.loads((tmp_path / "e" / "metrics.json").read_text())
    assert metrics["scripted_metrics"]["success"] == 1.0 and metrics["object"] == "cylinder_thin"
    assert (tmp_path / "e" / "learning_curves.png").is_file()
    assert main(["eval", "gpayn", "--policy", str(out / "missing.onnx")]) == 1
    assert "no such file" in capsys.readouterr().err
    # another task's run among --runs is refused before anything is evaluated or written
    before = (tmp_path / "e" / "metrics.json").read_bytes()
    assert main(["eval", "gpayn", "--policy", str(out / "policy.onnx"),
                 "--runs", "robo/policies/online_cbf_gnn", "--out", str(tmp_path / "e")]) == 1
    assert "--runs robo/policies/online_cbf_gnn: not a gpayn run" in capsys.readouterr().err
    assert (tmp_path / "e" / "metrics.json").read_bytes() == before


def test_critic_diagnostics_read_the_buffer_without_touching_the_training_streams():
    from types import SimpleNamespace

    from robo.tasks.gpayn.train import critic_diagnostics

    group = SACGroup(2, 5, 2, SACConfig(actor_hidden=(8,), critic_hidden=(8,)), seed=4)
    replay = ReplayBuffer(2, 5, 2, 64)
    data = batch(k=2, b=64, demos=0)
    replay.add(*(data[name] for name in FIELDS))
    runner = SimpleNamespace(group=group, replay=replay, device=torch.device("cpu"), step=7)
    before = group.generator.get_state()
    stats = critic_diagnostics(runner, rows=64)
    assert torch.equal(group.generator.get_state(), before)
    rows = replay.sample(64, torch.Generator().manual_seed(7))
    with torch.no_grad():
        want = group.critic(rows["obs"], rows["action"]).min(0).values.mean(-1)
    torch.testing.assert_close(stats["q_data"], want)
    assert stats["q_policy"].shape == stats["entropy"].shape == (2,)
    assert not torch.equal(stats["q_policy"], stats["q_data"])

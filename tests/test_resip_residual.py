"""robo train resip on a tiny base (real MuJoCo, real diffusers): the residual starts at exactly zero
(ResiP is its base at iteration 0), one PPO iteration runs and moves it, resume, and the refusals."""

from __future__ import annotations

import argparse
import csv
import json

import pytest
import torch

from robo.config import load_config
from robo.registry import Context, tasks
from robo.rl.on_policy_runner import OnPolicyRunner
from robo.rl.residual import ResidualEnv
from robo.tasks.resip.base import load_base
from robo.tasks.resip.train_dp import DPTrainConfig
from robo.tasks.resip.train_dp import train as train_dp
from robo.tasks.resip.train_resip import ResiPTrainConfig, residual_env, train, warm_up_critic
from sim.assembly import demos
from sim.assembly.env import AssemblyEnv
from sim.assembly.failures import KINDS

TINY_BASE = ["demo_episodes=2", "diffusion.down_dims=[16,32]", "diffusion.step_embed_dim=16",
             "diffusion.pred_horizon=16", "diffusion.action_horizon=4", "diffusion.gradient_steps=4",
             "diffusion.batch_size=16", "diffusion.warmup_steps=2", "threads=1"]
TINY = ["envs=2", "runner.num_steps=20", "runner.iterations=1", "runner.actor_hidden=[32,32]",
        "runner.critic_hidden=[32,32]", "ppo.num_epochs=3", "eval_episodes=2", "eval_envs=2", "threads=1"]


@pytest.fixture(scope="module")
def base_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("resip")
    demos.record_task(root / "demos.hdf5", "peg_2mm", "low", episodes=2, num_envs=2)
    config = load_config(DPTrainConfig, None, [*TINY_BASE, f"demos={root / 'demos.hdf5'}"])
    train_dp(config, argparse.Namespace(task="peg_2mm"), Context(out=root / "dp", log=lambda s: None))
    return root / "dp"


def test_resip_is_registered():
    assert tasks()["resip"].train is not None


def test_residual_starts_at_exactly_zero_so_resip_is_its_base(base_run):
    base = load_base(base_run)
    config = load_config(ResiPTrainConfig, None, TINY)
    runner = OnPolicyRunner(residual_env(base, 2, 0.1, seed=3), config.ppo, config.runner, seed=0)
    plain = residual_env(base, 2, 0.1, seed=3)  # the same episodes and base noise, no residual
    plain_obs, _ = plain.reset(seed=0)
    assert torch.equal(runner.obs, plain_obs)
    for _ in range(5):
        with torch.no_grad():
            mean = runner.model.actor(runner.obs)
        assert torch.equal(mean, torch.zeros_like(mean))
        resip_action = runner.env.combined_action(mean)
        base_action = plain.combined_action(torch.zeros(2, 10))
        assert torch.equal(resip_action, base_action)
        runner.obs = runner.env.step(mean)[0]
        plain.step(torch.zeros(2, 10))


def test_one_ppo_iteration_trains_saves_evaluates_and_resumes(base_run, tmp_path):
    out = tmp_path / "resip"
    config = load_config(ResiPTrainConfig, None, TINY)
    report = train(config, argparse.Namespace(base=str(base_run), task="peg_2mm"),
                   Context(out=out, log=lambda s: None))
    assert "1 iterations, 40 environment steps" in report
    metrics = json.loads((out / "metrics.json").read_text())  # base and ResiP paired on the same episodes
    assert metrics["only_base_succeeds"] + metrics["only_resip_succeeds"] <= 2
    assert 0.0 < metrics["mcnemar_exact_p"] <= 1.0
    episodes = json.loads((out / "eval_episodes.json").read_text())  # each episode's outcome, pairable
    for name in ("base", "ResiP"):
        kinds = [e["kind"] for e in episodes[name]]
        assert len(kinds) == 2 and metrics[f"{name.lower()}_success_rate"] == kinds.count("success") / 2
        assert all(metrics[f"{name.lower()}_outcomes"][k] == kinds.count(k) for k in KINDS)
    for name in ("residual.pt", "checkpoint.pt", "learning_curve.csv", "learning_curve.png", "metrics.json",
                 "resip.onnx", "resip.json"):
        assert (out / name).is_file(), name
    from robo.export.card import sha256_file

    card = json.loads((out / "resip.json").read_text())  # the one-graph export, a by-product of training
    assert card["onnx"]["sha256"] == sha256_file(out / "resip.onnx") and card["residual"]["scale"] == 0.1
    with open(out / "learning_curve.csv") as f:
        row = next(csv.DictReader(f))
    assert 0.0 <= float(row["rollout_success"]) <= 1.0 or row["rollout_success"] == "nan"
    assert float(row["residual_abs_mean"]) > 0  # the updated residual no longer outputs zero
    state = torch.load(out / "checkpoint.pt", weights_only=False)
    head = [v for k, v in state["model"].items() if k.startswith("actor.") and k.endswith("weight")][-1]
    assert head.abs().max() > 0  # PPO moved the zero-initialised head
    assert float(state["model"]["log_std"].mean()) == pytest.approx(-1.0)  # fixed, never learned
    config = load_config(ResiPTrainConfig, None, [*TINY, "runner.iterations=2", "eval_episodes=0",
                                                  "eval_seed=2000"])  # the evaluation may change on resume
    report = train(config, argparse.Namespace(base=str(base_run), task=None),
                   Context(out=out, resume=True, log=lambda s: None))
    assert "2 iterations" in report and "(1 in" in report
    config = load_config(ResiPTrainConfig, None, [*TINY, "runner.iterations=2", "eval_episode_steps=3"])
    train(config, argparse.Namespace(base=str(base_run), task=None), Context(out=out, resume=True,
                                                                             log=lambda s: None))
    metrics = json.loads((out / "metrics.json").read_text())  # re-evaluated with a 3-step time limit
    assert metrics["base_outcomes"]["never_reached"] == metrics["resip_outcomes"]["never_reached"] == 2


def test_critic_warm_up_trains_the_critic_and_leaves_the_actor_at_zero(base_run):
    config = load_config(ResiPTrainConfig, None, TINY)
    env = residual_env(load_base(base_run), 2, 0.1, seed=3)
    runner = OnPolicyRunner(env, config.ppo, config.runner, seed=0)
    actor = {k: v.clone() for k, v in runner.model.actor.state_dict().items()}
    critic = {k: v.clone() for k, v in runner.model.critic.state_dict().items()}
    lines: list[str] = []
    losses = warm_up_critic(runner, 2, lines.append)
    assert len(losses) == 2 and all(loss >= 0 for loss in losses) and len(lines) == 2
    assert runner.iteration == 0  # warm-up rollouts are not PPO iterations
    for k, v in runner.model.actor.state_dict().items():
        assert torch.equal(v, actor[k]), k  # the residual is still exactly zero
    assert any(not torch.equal(v, critic[k]) for k, v in runner.model.critic.state_dict().items())
    with pytest.raises(ValueError, match=r"^config: critic_warmup: must be >= 0, got -1"):
        load_config(ResiPTrainConfig, None, [*TINY, "critic_warmup=-1"])
    with pytest.raises(ValueError, match=r"^config: base_noise_scale: must be in \[0, 1\], got 2"):
        load_config(ResiPTrainConfig, None, [*TINY, "base_noise_scale=2"])


@pytest.mark.parametrize("bootstrap", [True, False])
def test_a_time_limit_is_bootstrapped_or_a_failure(base_run, bootstrap):
    base = load_base(base_run)
    policy = base.policy
    env = ResidualEnv(AssemblyEnv(2, base.env_config(episode_steps=3), seed=0), base.actor(2, seed=1),
                      policy.normalize_obs, policy.normalize_actions, policy.unnormalize_actions, 0.1,
                      bootstrap_truncated=bootstrap)
    env.reset(seed=0)
    for _ in range(3):
        _, reward, terminated, truncated, _ = env.step(torch.zeros(2, 10))
    assert float(reward.sum()) == 0.0 and env.episodes == 2 and env.successes == 0  # no insertion in 3 steps
    # Bootstrapped: truncated, so a runner values the final observation; not: a terminal failure.
    assert bool(truncated.all()) == bootstrap and bool(terminated.all()) == (not bootstrap)
    assert not bool((terminated & truncated).any())


def test_a_base_of_another_task_is_refused_before_the_run_folder_is_made(base_run, tmp_path):
    config = load_config(ResiPTrainConfig, None, TINY)
    with pytest.raises(ValueError, match=r"^--task peg_0.2mm: the base .* was trained on peg_2mm"):
        train(config, argparse.Namespace(base=str(base_run), task="peg_0.2mm"),
              Context(out=tmp_path / "r", log=lambda s: None))
    assert not (tmp_path / "r").exists()
    with pytest.raises(OSError, match=r"no policy\.pt"):
        train(config, argparse.Namespace(base=str(tmp_path), task=None), Context(out=tmp_path / "r"))
    config = load_config(ResiPTrainConfig, None, [*TINY, "base_ddim_steps=1000"])
    with pytest.raises(ValueError, match=r"^DDIM steps 1000: the base .* takes 1 to its 100 diffusion"):
        train(config, argparse.Namespace(base=str(base_run), task=None), Context(out=tmp_path / "r"))
    assert not (tmp_path / "r").exists()


def test_a_held_residual_is_one_decision_over_several_base_steps(base_run):
    base = load_base(base_run)
    policy = base.policy

    def wrapped(hold: int) -> ResidualEnv:
        return ResidualEnv(AssemblyEnv(2, base.env_config(episode_steps=3), seed=0), base.actor(2, seed=1),
                           policy.normalize_obs, policy.normalize_actions, policy.unnormalize_actions, 0.1,
                           hold_steps=hold)

    held, plain = wrapped(2), wrapped(1)  # the same episodes and base noise
    held.reset(seed=0)
    plain.reset(seed=0)
    residual = torch.full((2, 10), 0.5)
    obs, reward, terminated, truncated, _ = held.step(residual)
    plain.step(residual)
    assert torch.equal(obs, plain.step(residual)[0])  # = the residual applied on two fresh base actions
    assert not bool((terminated | truncated).any()) and float(reward.sum()) == 0.0
    # Step 3 hits the time limit; step 4 is the next episode's first, on the base alone (residual 0).
    obs, reward, terminated, truncated, info = held.step(residual)
    _, _, _, plain_truncated, plain_info = plain.step(residual)
    assert bool(truncated.all()) and bool(plain_truncated.all()) and not bool(terminated.any())
    assert torch.equal(info["final_observation"], plain_info["final_observation"])  # the ended episode's
    assert torch.equal(obs, plain.step(torch.zeros(2, 10))[0])
    assert held.episodes == plain.episodes == 2
    with pytest.raises(ValueError, match=r"^residual hold_steps must be >= 1, got 0"):
        wrapped(0)


def test_a_residual_on_some_channels_leaves_the_others_to_the_base(base_run):
    base = load_base(base_run)
    env = residual_env(base, 2, 0.1, seed=3, channels=["pos.x", "pos.z"])
    assert env.action_size == 2 and env.observation_size == AssemblyEnv.observation_size + 10
    env.reset(seed=0)
    policy = base.policy
    combined = policy.normalize_actions(env.combined_action(torch.tensor([[0.5, -1.0], [1.0, 0.0]])))
    moved = combined - env.base_action  # in the normalised space, where the residual is added
    expected = torch.zeros(2, 10)
    expected[:, 0], expected[:, 2] = torch.tensor([0.05, 0.1]), torch.tensor([-0.1, 0.0])
    assert torch.allclose(moved, expected, atol=1e-5)
    with pytest.raises(ValueError, match=r"^config: residual_channels: \['pos.x', 'pos.w'\] must be distinct "
                                         r"action channels, not \['pos.w'\]"):
        load_config(ResiPTrainConfig, None, [*TINY, "residual_channels=[pos.x,pos.w]"])
    with pytest.raises(ValueError, match=r"^residual channels must be distinct indices"):
        ResidualEnv(env.env, env.base, policy.normalize_obs, policy.normalize_actions,
                    policy.unnormalize_actions, channels=[0, 0])

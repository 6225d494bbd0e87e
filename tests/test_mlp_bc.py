"""ResiP's MLP-BC baseline: the chunk policy, chunks as actions (ChunkEnv), and robo train dp
(policy=mlp) -> robo eval dp -> robo train mlp-ppo end to end on real MuJoCo demonstrations."""

from __future__ import annotations

import argparse
import json

import pytest
import torch

from robo.config import load_config
from robo.nets.chunking import MLPChunkPolicy
from robo.nets.policy import load_policy, save_policy
from robo.registry import Context, tasks
from robo.rl.chunk_env import ChunkEnv
from robo.tasks.resip.base import BASE_KINDS, load_base
from robo.tasks.resip.eval_dp import DPEvalConfig, evaluate
from robo.tasks.resip.train_dp import DPTrainConfig
from robo.tasks.resip.train_dp import train as train_dp
from robo.tasks.resip.train_mlp_ppo import MLPPPOTrainConfig, chunk_env
from robo.tasks.resip.train_mlp_ppo import train as train_mlp_ppo
from sim.pendulum import PendulumConfig, PendulumEnv
from tests.test_resip import TINY, base_run, demo_file  # noqa: F401 (fixtures)

MLP = ["policy=mlp", "mlp_hidden=[32,32]", "diffusion.pred_horizon=4", "diffusion.action_horizon=4",
       "diffusion.gradient_steps=40", "diffusion.batch_size=16", "diffusion.warmup_steps=2",
       "diffusion.relative_obs=[0,3]", "log_interval=10", "checkpoint_interval=20", "threads=1"]
PPO = ["envs=3", "runner.iterations=1", "runner.num_steps=3", "eval_episodes=3", "eval_envs=3", "threads=1"]


@pytest.fixture(scope="module")
def mlp_run(tmp_path_factory, demo_file):  # noqa: F811
    out = tmp_path_factory.mktemp("runs") / "mlp"
    config = load_config(DPTrainConfig, None, [f"demos={demo_file}", *MLP])
    report = train_dp(config, argparse.Namespace(task="peg_2mm"), Context(out=out, log=lambda s: None))
    assert "(mlp): 40 gradient steps" in report
    return out


def test_mlp_ppo_is_registered():
    assert tasks()["mlp-ppo"].train is not None


def test_chunk_policy_round_trips_its_chunks_and_its_file(tmp_path):
    policy = MLPChunkPolicy(5, 3, pred_horizon=4, hidden=(8,), relative_obs=(0, 1))
    with pytest.raises(ValueError, match="normalisation statistics are missing"):
        policy.sample(torch.zeros(2, 5))
    obs, chunks = torch.randn(50, 5), torch.randn(50, 4, 3)
    policy.fit_normalizer(obs, chunks)
    encoded = policy.encode_chunk(chunks, obs)
    assert encoded.abs().max() <= 1 + 1e-5  # relative chunks fill [-1, 1]
    torch.testing.assert_close(policy.decode_chunk(encoded, obs), chunks, atol=1e-5, rtol=0)
    save_policy(tmp_path / "p.pt", policy, {"task": "peg_2mm"})
    loaded, _ = load_policy(tmp_path / "p.pt")
    assert isinstance(loaded, MLPChunkPolicy)
    torch.testing.assert_close(loaded.sample(obs[:7]), policy.sample(obs[:7]))


def test_chunk_env_sums_rewards_and_holds_the_next_episode_after_an_end():
    config = PendulumConfig(episode_steps=5)
    env = ChunkEnv(PendulumEnv([1.0, 1.5], [1.0, 0.8], config, seed=3), predicted=4,
                   normalize_obs=lambda o: o * 2, decode=lambda a, o: a * 0.5,
                   hold=lambda: torch.full((2, 1), -0.25), executed=3)
    reference = PendulumEnv([1.0, 1.5], [1.0, 0.8], config, seed=3)
    obs, _ = env.reset(seed=3)
    torch.testing.assert_close(obs, reference.reset(seed=3)[0] * 2)
    chunks = torch.rand(2, 2, 4) * 2 - 1  # two decisions, 4 actions each (1 channel)
    # Decision 1: steps 1-3. Decision 2: steps 4, 5 (the episode ends), then one hold step of the next.
    for d, expected_end in ((0, False), (1, True)):
        obs, reward, terminated, truncated, info = env.step(chunks[:, d])
        total = torch.zeros(2)
        for k in range(3):
            ended = k == 2 and expected_end
            act = torch.full((2, 1), -0.25) if ended else chunks[:, d, k:k + 1] * 0.5
            ref_obs, r, _, ref_trunc, ref_info = reference.step(act)
            if not ended:
                total += r
            if ref_trunc.any():
                final = ref_info["final_observation"]
        torch.testing.assert_close(reward, total)
        assert bool(truncated.all()) is expected_end and not terminated.any()
        torch.testing.assert_close(obs, ref_obs * 2)  # the new episode's state after the hold step
    torch.testing.assert_close(info["final_observation"], final * 2)
    with pytest.raises(ValueError, match=r"executed actions 5 must be in \[1, predicted 4\]"):
        ChunkEnv(reference, 4, lambda o: o, lambda a, o: a, lambda: torch.zeros(2, 1), executed=5)


def test_mlp_bc_evaluates_and_ppo_starts_from_it_and_improves_nothing_it_should_not(mlp_run, tmp_path):
    base = load_base(mlp_run, BASE_KINDS)
    assert isinstance(base.policy, MLPChunkPolicy)
    assert not any(p.requires_grad for p in base.policy.parameters())
    with pytest.raises(ValueError, match="action_horizon: 8 exceeds the base's prediction horizon 4"):
        base.actor(2, action_horizon=8)
    evaluate(DPEvalConfig(episodes=2, envs=2, action_horizon=4, strip_frames=0, threads=1),
             argparse.Namespace(base=str(mlp_run)), Context(out=tmp_path / "eval"))
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert metrics["episodes"] == 2 and metrics["ddim_steps"] is None and metrics["chunks_sampled"] > 0

    # Iteration 0 of the fine-tuning is the BC policy: the actor's mean is the BC MLP's chunk.
    env = chunk_env(base, 2, seed=0, bootstrap_truncated=False)
    obs, _ = env.reset(seed=0)
    from robo.nets.actor_critic import ActorCritic

    ac = ActorCritic(env.observation_size, env.action_size, (32, 32), (8,), "relu", 0.01, learn_std=False)
    ac.actor.load_state_dict(base.policy.mlp.state_dict())
    torch.testing.assert_close(ac.actor(obs).reshape(2, 4, 10), base.policy(obs))

    out = tmp_path / "ppo"
    config = load_config(MLPPPOTrainConfig, None, PPO)
    report = train_mlp_ppo(config, argparse.Namespace(base=str(mlp_run)),
                           Context(out=out, log=lambda s: None))
    assert "1 iterations, 36 environment steps" in report  # 3 decisions x 4 steps x 3 environments
    summary = json.loads((out / "metrics.json").read_text())
    assert summary["eval_episodes"] == 3 and 0 <= summary["fine_tuned_success_rate"] <= 1
    tuned = load_base(out, BASE_KINDS)  # the fine-tuned policy is itself an MLP-BC base
    assert tuned.task == "peg_2mm" and tuned.meta["config"]["fine_tuning"]["base"] == str(mlp_run)
    moved = [(a - b).abs().max() for a, b in zip(tuned.policy.mlp.parameters(), base.policy.mlp.parameters(),
                                                 strict=True)]
    assert max(moved) > 0  # PPO changed the MLP
    torch.testing.assert_close(tuned.policy.chunk_min, base.policy.chunk_min)  # not its normalisation


def test_mlp_ppo_refuses_a_diffusion_base_before_the_run_folder_is_made(base_run, tmp_path):  # noqa: F811
    config = load_config(MLPPPOTrainConfig, None, PPO)
    with pytest.raises(ValueError, match="a 'diffusion-unet1d' policy, not a mlp-chunk base"):
        train_mlp_ppo(config, argparse.Namespace(base=str(base_run)), Context(out=tmp_path / "run"))
    assert not (tmp_path / "run").exists()
    with pytest.raises(ValueError, match=r"policy: 'unet' is not one of diffusion, mlp"):
        load_config(DPTrainConfig, None, [*TINY, "policy=unet"])

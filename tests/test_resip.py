"""robo train dp / robo eval dp end to end on a tiny base (real MuJoCo demonstrations, real diffusers),
the frozen-base API for the residual stage, and the refusals."""

from __future__ import annotations

import argparse
import dataclasses

import pytest
import torch

from robo.config import load_config
from robo.nets.policy import load_policy, save_policy
from robo.registry import Context, tasks
from robo.tasks.resip.base import load_base
from robo.tasks.resip.eval_dp import DPEvalConfig, evaluate
from robo.tasks.resip.train_dp import DPTrainConfig, train
from sim.assembly import demos
from sim.assembly.failures import KINDS

TINY = ["demo_episodes=2", "diffusion.down_dims=[16,32]", "diffusion.step_embed_dim=16",
        "diffusion.pred_horizon=16", "diffusion.action_horizon=4", "diffusion.gradient_steps=12",
        "diffusion.batch_size=16", "diffusion.warmup_steps=2", "log_interval=4", "checkpoint_interval=6",
        "threads=1"]


@pytest.fixture(scope="module")
def demo_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("demos") / "peg_2mm_low.hdf5"
    demos.record_task(path, "peg_2mm", "low", episodes=2, num_envs=2)
    return path


@pytest.fixture(scope="module")
def base_run(tmp_path_factory, demo_file):
    out = tmp_path_factory.mktemp("runs") / "dp"
    config = load_config(DPTrainConfig, None, [*TINY, f"demos={demo_file}"])
    report = train(config, argparse.Namespace(task="peg_2mm"), Context(out=out, log=lambda s: None))
    assert "12 gradient steps" in report
    return out


def test_dp_is_registered():
    task = tasks()["dp"]
    assert task.train is not None and task.evaluate is not None


def test_train_writes_a_base_that_loads_frozen_with_its_statistics(base_run):
    for name in ("policy.pt", "checkpoint.pt", "loss.csv", "loss.png", "metrics.json", "config.yaml"):
        assert (base_run / name).is_file(), name
    base = load_base(base_run)
    assert base.task == "peg_2mm" and base.env_config().clearance == 0.002
    assert not any(p.requires_grad for p in base.policy.parameters())
    act = base.actor(num_envs=3)  # DDIM 4, chunks of 4 here (the run's action_horizon)
    obs = torch.randn(3, base.policy.arch["obs_dim"]) * 0.01
    first = act(obs)
    assert first.shape == (3, 10) and torch.isfinite(first).all()
    lo, hi = base.policy.act_min, base.policy.act_max
    assert ((first >= lo - 1e-5) & (first <= hi + 1e-5)).all()  # samples stay in the demonstrations' range


def test_eval_counts_the_requested_episodes_deterministically(base_run, tmp_path):
    config = DPEvalConfig(episodes=3, envs=3, ddim_steps=2, strip_frames=0, threads=1)
    results = []
    for k in range(2):
        evaluate(config, argparse.Namespace(base=str(base_run)), Context(out=tmp_path / f"e{k}"))
        results.append((tmp_path / f"e{k}" / "metrics.json").read_text())
    import json

    first = json.loads(results[0])
    assert first["episodes"] == 3 and 0.0 <= first["success_rate"] <= 1.0
    assert json.loads(results[1])["success_rate"] == first["success_rate"]
    assert json.loads(results[1])["chunks_sampled"] == first["chunks_sampled"]
    assert sum(first["outcomes"][k] for k in KINDS) == 3 and first["outcomes"]["success"] == round(
        3 * first["success_rate"])  # how each episode ended
    short = dataclasses.replace(config, episode_steps=3)  # cut off long before the hole
    evaluate(short, argparse.Namespace(base=str(base_run)), Context(out=tmp_path / "short"))
    metrics = json.loads((tmp_path / "short" / "metrics.json").read_text())
    assert metrics["episode_steps"] == 3 and metrics["outcomes"]["never_reached"] == 3
    evaluate(dataclasses.replace(short, noise_scale=0.0), argparse.Namespace(base=str(base_run)),
             Context(out=tmp_path / "quiet"))
    assert json.loads((tmp_path / "quiet" / "metrics.json").read_text())["noise_scale"] == 0.0
    with pytest.raises(ValueError, match=r"noise_scale: must be in \[0, 1\], got -1"):
        DPEvalConfig(noise_scale=-1)


def test_demonstrations_of_another_task_are_refused_before_the_run_folder_is_touched(demo_file, tmp_path):
    config = load_config(DPTrainConfig, None, [*TINY, f"demos={demo_file}"])
    with pytest.raises(ValueError, match=r"task 'peg_2mm', expected 'peg_0\.2mm'"):
        train(config, argparse.Namespace(task="peg_0.2mm"), Context(out=tmp_path / "run"))
    assert not (tmp_path / "run").exists()
    with pytest.raises(ValueError, match=r"^task: unknown task 'peg_5mm'"):
        train(config, argparse.Namespace(task="peg_5mm"), Context(out=tmp_path / "run"))


def test_a_base_without_normalisation_statistics_is_refused(base_run, tmp_path):
    policy, meta = load_policy(base_run / "policy.pt")
    policy.fitted.zero_()
    save_policy(tmp_path / "policy.pt", policy, meta)
    with pytest.raises(ValueError, match="normalisation statistics are missing"):
        load_base(tmp_path)
    with pytest.raises(OSError, match=r"no policy\.pt"):
        load_base(tmp_path / "missing")

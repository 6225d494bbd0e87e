"""The ResiP stages on the two-stage task (sim.assembly pick_insert): its own observation layout reaches
the base's card and its evaluation (real MuJoCo demonstrations, a tiny diffusion base)."""

from __future__ import annotations

import argparse
import json

from robo.config import load_config
from robo.nets.policy import load_policy
from robo.registry import Context
from robo.tasks.resip.base import load_base
from robo.tasks.resip.eval_dp import DPEvalConfig, evaluate
from robo.tasks.resip.train_dp import DPTrainConfig, train
from sim.assembly import demos
from sim.assembly.env import PICK_LAYOUT

TINY = ["task=pick_peg_2mm", "demo_episodes=2", "diffusion.down_dims=[16,32]", "diffusion.step_embed_dim=16",
        "diffusion.pred_horizon=16", "diffusion.action_horizon=4", "diffusion.gradient_steps=4",
        "diffusion.batch_size=16", "diffusion.warmup_steps=2", "log_interval=2", "checkpoint_interval=4",
        "threads=1"]


def test_a_pick_insert_base_carries_the_pick_layout_and_evaluates_on_its_task(tmp_path):
    path = tmp_path / "pick.hdf5"
    demos.record_task(path, "pick_peg_2mm", "low", episodes=2, num_envs=2)
    config = load_config(DPTrainConfig, None, [*TINY, f"demos={path}"])
    train(config, argparse.Namespace(task=None), Context(out=tmp_path / "dp", log=lambda s: None))
    _, meta = load_policy(tmp_path / "dp" / "policy.pt")
    assert [e["name"] for e in meta["observation"]] == PICK_LAYOUT.names
    base = load_base(tmp_path / "dp")
    assert base.policy.arch["obs_dim"] == PICK_LAYOUT.size and base.env_config().task == "pick_insert"
    evaluate(DPEvalConfig(episodes=2, envs=2, ddim_steps=2, strip_frames=0, threads=1),
             argparse.Namespace(base=str(tmp_path / "dp")), Context(out=tmp_path / "eval"))
    assert json.loads((tmp_path / "eval" / "metrics.json").read_text())["episodes"] == 2

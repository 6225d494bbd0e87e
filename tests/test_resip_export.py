"""ResiP as one ONNX graph (robo.tasks.resip.export): ONNX Runtime against the torch policy (diffusers'
DDIM, the chunk queue, the residual) on a real MuJoCo episode with the same noise, across queue refills."""

from __future__ import annotations

import argparse

import numpy as np
import onnxruntime as ort
import pytest
import torch

from robo.config import load_config
from robo.export.card import load_card
from robo.nets.policy import load_policy
from robo.registry import Context
from robo.tasks.resip.base import load_base
from robo.tasks.resip.export import export
from robo.tasks.resip.train_resip import ResiPActor, ResiPTrainConfig, residual_env, train
from sim.assembly.env import ACTION_NAMES, AssemblyEnv
from tests.test_resip_residual import TINY, base_run  # noqa: F401 (base_run is a fixture)


@pytest.fixture(scope="module")
def resip_run(base_run, tmp_path_factory):  # noqa: F811
    out = tmp_path_factory.mktemp("resip_export") / "run"
    config = load_config(ResiPTrainConfig, None, [*TINY, "eval_episodes=0"])
    train(config, argparse.Namespace(base=str(base_run), task=None), Context(out=out, log=lambda s: None))
    return out


def _worst_gap_over_four_chunks(run, onnx_file, config: ResiPTrainConfig) -> float:
    """ONNX Runtime against ResiPActor (the residual mean at every step) on one real episode."""
    card = load_card(onnx_file.with_suffix(".json"))
    horizon, pred = card["chunking"]["action_horizon"], card["chunking"]["pred_horizon"]
    residual = load_policy(run / "residual.pt")[0]
    assert any(p.abs().max() > 0 for p in residual.parameters())  # a residual that changes the action
    env = residual_env(load_base(card["training"]["base"]), 1, config.residual_scale, seed=5,
                       channels=config.residual_channels, noise_scale=config.base_noise_scale)
    actor = ResiPActor(env, residual)
    noise_source = torch.Generator().manual_seed(5 + 1)  # residual_env seeds the base's queue with seed + 1
    sess = ort.InferenceSession(str(onnx_file))
    queue, left = np.zeros((1, horizon * 10), np.float32), np.zeros((1, 1), np.float32)
    obs, _ = env.env.reset()
    actor.reset()
    worst = 0.0
    for _ in range(3 * horizon + 1):  # four chunks
        noise = (torch.randn((1, pred, 10), generator=noise_source) if left[0, 0] <= 0
                 else torch.zeros(1, pred, 10))
        expected = actor(obs)
        got, queue, left = sess.run(None, {"obs": obs.numpy(), "noise": noise.numpy(), "queue_in": queue,
                                           "left_in": left})
        worst = max(worst, float(np.abs(got - expected.numpy()).max()))
        obs = env.env.step(expected)[0]
    return worst


def test_one_graph_matches_the_torch_policy_over_refills(resip_run, tmp_path):
    written = export(resip_run, tmp_path / "resip.onnx")
    card = load_card(tmp_path / "resip.json")
    assert card["onnx"]["sha256"] == written["onnx"]["sha256"]
    assert [t["role"] for t in card["onnx"]["inputs"]] == [
        "observation", "auxiliary", "recurrent_state", "recurrent_state"]
    assert card["residual"]["channels"] == list(ACTION_NAMES)
    assert card["chunking"]["noise_scale"] == 1.0
    config = load_config(ResiPTrainConfig, None, TINY)
    worst = _worst_gap_over_four_chunks(resip_run, tmp_path / "resip.onnx", config)
    assert worst < 1e-4, worst


def test_a_residual_on_some_channels_held_for_several_steps_on_a_quieter_base_exports_the_same_way(
        base_run, tmp_path):  # noqa: F811
    settings = [*TINY, "eval_episodes=0", "hold_steps=2", "runner.num_steps=10",
                "residual_channels=[pos.x,pos.y]", "base_noise_scale=0.5"]
    config = load_config(ResiPTrainConfig, None, settings)
    report = train(config, argparse.Namespace(base=str(base_run), task=None),
                   Context(out=tmp_path / "run", log=lambda s: None))
    assert "40 environment steps" in report  # 10 decisions held 2 steps each, 2 environments
    assert load_policy(tmp_path / "run" / "residual.pt")[0].arch["act_dim"] == 2
    card = load_card(tmp_path / "run" / "resip.json")
    assert card["residual"]["channels"] == ["pos.x", "pos.y"]
    assert card["chunking"]["noise_scale"] == 0.5  # the graph scales the caller's N(0, 1) as the run did
    worst = _worst_gap_over_four_chunks(tmp_path / "run", tmp_path / "run" / "resip.onnx", config)
    assert worst < 1e-4, worst


def test_a_run_without_a_residual_is_refused_and_nothing_is_written(base_run, tmp_path):  # noqa: F811
    with pytest.raises(OSError, match=r"residual\.pt"):
        export(base_run, tmp_path / "x.onnx")
    assert not (tmp_path / "x.onnx").exists()


def test_the_residual_alone_goes_through_onnx_and_c(resip_run, tmp_path):
    from robo.codegen.c_emitter import generate_from_file
    from robo.codegen.host import HostPolicy
    from robo.export.onnx_export import export_checkpoint

    card = export_checkpoint(resip_run / "residual.pt", tmp_path / "residual.onnx", steps=50)
    size = AssemblyEnv.observation_size + AssemblyEnv.action_size  # normalised obs + the base's action
    assert card["observation"]["size"] == size
    generate_from_file(tmp_path / "residual.onnx", tmp_path / "c")
    c_policy = HostPolicy(tmp_path / "c")
    residual = load_policy(resip_run / "residual.pt")[0]
    inputs = np.random.default_rng(0).uniform(-1, 1, (20, size)).astype(np.float32)
    with torch.no_grad():
        expected = residual(torch.from_numpy(inputs)).clamp(-1, 1).numpy()
    got = np.stack([c_policy.step(x)[0] for x in inputs])
    assert np.abs(got - expected).max() < 1e-5

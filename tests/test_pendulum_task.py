"""The pendulum task end to end through the CLI: train PPO, eval the export against a random policy
(ONNX Runtime and torch on the same episodes), resume exactly or refuse a changed config, and the
export loads in the deployment runtime."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from robo.cli import main
from robo.nets.policy import load_policy
from robo.runtime import DEFAULT_POLICY, OnnxPolicy

# 40 iterations of 64 x 64 steps (164k transitions): the training mean return climbs from about -1200
# to about -500, far enough above the random policy for an assertion that cannot pass by chance.
SHORT = ["--set", "runner.iterations=40", "--set", "runner.checkpoint_interval=20"]
# 4 iterations of 8 x 16 steps with 20-step episodes: enough to see episodes end and checkpoints fall
# inside them.
TINY = ["--set", "envs=8", "--set", "runner.num_steps=16", "--set", "pendulum.episode_steps=20",
        "--set", "runner.checkpoint_interval=2", "--set", "runner.actor_hidden=[16]",
        "--set", "runner.critic_hidden=[16]"]


def eval_metrics(policy, out) -> dict:
    assert main(["eval", "pendulum", "--policy", str(policy), "--set", "episodes=32", "--out", str(out)]) == 0
    return json.loads((out / "metrics.json").read_text())


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    run = tmp_path_factory.mktemp("pendulum") / "run"
    assert main(["train", "pendulum", *SHORT, "--out", str(run)]) == 0
    return run


def test_training_writes_the_run_and_the_policy_beats_a_random_one_in_onnx_and_torch(trained, tmp_path):
    for name in ("config.yaml", "run.json", "checkpoint.pt", "learning_curve.csv", "learning_curve.png",
                 "metrics.json", "policy.pt", "policy.onnx", "policy.json"):
        assert (trained / name).is_file(), name
    assert json.loads((trained / "metrics.json").read_text())["iterations"] == 40
    assert len((trained / "learning_curve.csv").read_text().splitlines()) == 1 + 40

    onnx = eval_metrics(trained / "policy.onnx", tmp_path / "onnx")
    torch_ = eval_metrics(trained / "policy.pt", tmp_path / "pt")
    assert onnx["random_mean_return"] == torch_["random_mean_return"]  # the same episodes
    assert onnx["random_mean_return"] < -900
    assert onnx["mean_return"] > onnx["random_mean_return"] + 300, onnx
    assert onnx["mean_return"] == pytest.approx(torch_["mean_return"], rel=1e-4, abs=1e-3)


def test_the_export_loads_in_the_runtime_with_the_pendulum_layout(trained):
    policy = OnnxPolicy(trained / "policy.onnx")
    assert policy.task == "pendulum" and policy.act_size == 1
    assert policy.observation_names == ["cos", "sin", "omega"]
    net, meta = load_policy(trained / "policy.pt")
    obs = np.array([np.cos(2.5), np.sin(2.5), -1.5], np.float32)
    with torch.no_grad():
        expected = net(torch.from_numpy(obs)[None]).clamp(-1.0, 1.0).numpy()[0]
    np.testing.assert_allclose(policy.step(obs).action, expected, atol=1e-5)
    # The observation normalisation is inside the network: raw observations in, a non-trivial action out.
    assert meta["task"] == "pendulum" and net.arch["kind"] == "normalized-mlp"
    assert not torch.equal(net.obs_mean, torch.zeros(3))


def test_resume_refuses_a_changed_config_and_leaves_the_run_as_it_was(trained, capsys):
    before = {p.name: p.read_bytes() for p in trained.iterdir() if p.is_file()}
    changed = ["--set", "ppo.clip=0.1", "--out", str(trained), "--resume"]
    assert main(["train", "pendulum", *SHORT, *changed]) == 1
    assert "differs from the run's" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in trained.iterdir() if p.is_file()} == before


def test_a_resumed_run_ends_exactly_like_an_uninterrupted_one(tmp_path):
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    assert main(["train", "pendulum", *TINY, "--set", "runner.iterations=4", "--out", str(straight)]) == 0
    assert main(["train", "pendulum", *TINY, "--set", "runner.iterations=2", "--out", str(resumed)]) == 0
    # Training longer is what resuming is for, so runner.iterations may change.
    assert main(["train", "pendulum", *TINY, "--set", "runner.iterations=4", "--out", str(resumed),
                 "--resume"]) == 0
    assert json.loads((resumed / "metrics.json").read_text())["session_started_at_iteration"] == 2
    curve = (straight / "learning_curve.csv").read_text()
    assert len(curve.splitlines()) == 1 + 4
    assert (resumed / "learning_curve.csv").read_text() == curve
    a, b = load_policy(straight / "policy.pt")[0], load_policy(resumed / "policy.pt")[0]
    for (name, x), y in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(x, y), name


def test_eval_refuses_another_tasks_policy_and_an_unknown_file(tmp_path, capsys):
    assert main(["eval", "pendulum", "--policy", DEFAULT_POLICY, "--out", str(tmp_path / "e")]) == 1
    assert "a policy for task 'quadrotor', not 'pendulum'" in capsys.readouterr().err
    (tmp_path / "p.txt").write_text("x")
    assert main(["eval", "pendulum", "--policy", str(tmp_path / "p.txt")]) == 1
    assert "expected a .onnx" in capsys.readouterr().err
    assert not (tmp_path / "e").exists()

"""The GNN tuner's training environment, robo train online-cbf (resume, export, card) and
robo eval online-cbf --policy (ONNX Runtime and torch give the same numbers)."""

import dataclasses
import json

import pytest
import torch

from robo.cli import main
from robo.nets.policy import MLPPolicy, save_policy
from robo.tasks.online_cbf.config import OnlineCbfConfig, RewardWeights, TrainSettings
from robo.tasks.online_cbf.gain_env import SwarmGainEnv
from robo.tasks.online_cbf.tuner import AS_TRAINED, GainTuner


def _env(**train) -> SwarmGainEnv:
    return SwarmGainEnv(OnlineCbfConfig(agents=4, train=TrainSettings(envs=2, neighbours=4, **train)))


def test_every_agent_is_a_row_and_episodes_reset_in_the_same_step():
    env = _env(episode_time=0.2)  # 4 steps
    obs, _ = env.reset(seed=0)
    assert obs.shape == (8, env.observation_size) and env.observation_size == 4 + 4 * 7
    # episode 0 is a swap (no obstacles), episode 1 a corridor; both padded to the corridor's walls
    assert env.state.obstacle_r.shape == (2, env.obstacles) and env.obstacles > 0
    for _ in range(4):
        obs, reward, terminated, truncated, info = env.step(torch.zeros(8, 2))
        assert reward.shape == (8,) and bool(torch.isfinite(reward).all())
    assert truncated.all() and not terminated.any()
    assert not torch.equal(info["final_observation"], obs)  # the next episode's first view
    assert int(env.t.sum()) == 0 and len(env.take_finished()) == 2


def test_progress_is_rewarded_and_the_state_dict_resumes_exactly():
    env = _env()
    env.reset(seed=1)
    action = torch.full((8, 2), 0.5)
    rewards = [env.step(action)[1] for _ in range(10)]
    assert float(rewards[-1].mean()) > 0  # under way toward their goals: progress beats the time cost
    saved = env.state_dict()
    after = env.step(action)
    other = _env()
    other.reset(seed=5)
    other.load_state_dict(saved)
    again = other.step(action)
    assert torch.equal(after[0], again[0]) and torch.equal(after[1], again[1])


TINY = ["--set", "train.envs=2", "--set", "agents=4", "--set", "train.neighbours=4",
        "--set", "train.hidden=8", "--set", "train.runner.num_steps=8",
        "--set", "train.runner.checkpoint_interval=1"]


def test_a_team_share_gives_every_agent_of_an_episode_its_mean_reward():
    action = torch.full((8, 2), 0.5)
    own, team = _env(), _env(reward=RewardWeights(team=1.0))
    own.reset(seed=1)
    team.reset(seed=1)
    for _ in range(40):  # 2 s: the agents meet, and their filters treat them differently
        r_own, r_team = own.step(action)[1].reshape(2, 4), team.step(action)[1].reshape(2, 4)
    assert float(r_own.std(dim=1).max()) > 1e-4  # agents earn differently on their own
    assert torch.allclose(r_team, r_own.mean(dim=1, keepdim=True).expand(2, 4))
    with pytest.raises(ValueError, match=r"train\.reward\.team must be in \[0, 1\]"):
        OnlineCbfConfig(train=TrainSettings(reward=RewardWeights(team=1.5)))


def test_train_resumes_and_exports_a_tuner_that_eval_runs_the_same_in_onnx_and_torch(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "online-cbf", "--out", str(run), *TINY, "--set", "train.runner.iterations=1"]) == 0
    assert main(["train", "online-cbf", "--out", str(run), *TINY, "--set", "train.runner.iterations=2",
                 "--resume"]) == 0
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["iterations"] == 2 and metrics["session_started_at_iteration"] == 1
    card = json.loads((run / "policy.json").read_text())
    assert card["task"] == "online_cbf" and card["action"]["clip"] == [0.25, 4.0]
    assert card["training"]["arch"]["neighbours"] == 4 and "max neighbours 4" in card["action"]["mapping"]
    assert card["observation"]["layout"][-1]["name"] == "mask.3"
    assert (run / "learning_curve.png").is_file() and any((run / "tensorboard").rglob("events*"))

    results = {}
    for name in ("policy.onnx", "policy.pt"):
        out = tmp_path / name
        assert main(["eval", "online-cbf", "--policy", str(run / name), "--scenario", "swap", "--agents", "3",
                     "--out", str(out), "--set", "episodes=2", "--set", "grid.episodes=1",
                     "--set", "grid.k1=[2.0]", "--set", "grid.k2=[2.0]",
                     "--set", "swarm.episode_time=2.0"]) == 0
        results[name] = json.loads((out / "metrics.json").read_text())
        assert (out / "strip_swap.png").is_file()
    rows = {name: r["rows"] for name, r in results.items()}
    assert [(r["agents"], r["controller"]) for r in rows["policy.pt"]] == [
        (3, "nominal"), (3, "fixed"), (3, "GNN"), (6, "nominal"), (6, "fixed"), (6, "GNN")]
    for a, b in zip(rows["policy.onnx"], rows["policy.pt"], strict=True):
        assert a["min_distance_m"] == pytest.approx(b["min_distance_m"], abs=1e-4)
        assert a["collisions"] == b["collisions"]
    gnn = rows["policy.pt"][2]["gains"]
    assert 0.25 <= gnn["k1_p05"] <= gnn["k1_p95"] <= 4.0


def test_the_tuner_refuses_what_is_not_a_tuner(tmp_path):
    save_policy(tmp_path / "mlp.pt", MLPPolicy(4, 2, (8,)), {"task": "pendulum"})
    with pytest.raises(ValueError, match="not an online_cbf gain tuner"):
        GainTuner(tmp_path / "mlp.pt", AS_TRAINED)
    with pytest.raises(ValueError, match=r"expected a \.onnx"):
        GainTuner(tmp_path / "policy.txt", AS_TRAINED)


def test_bad_training_settings_name_the_key():
    with pytest.raises(ValueError, match=r"train\.scenarios"):
        OnlineCbfConfig(train=TrainSettings(scenarios=["maze"]))
    with pytest.raises(ValueError, match="k_min < k_max"):
        dataclasses.replace(OnlineCbfConfig(), train=TrainSettings(k_min=3.0, k_max=1.0))
    with pytest.raises(ValueError, match=r"train\.init_gains: initial output 4\.0 is outside"):
        OnlineCbfConfig(train=TrainSettings(init_gains=[4.0, 4.0]))

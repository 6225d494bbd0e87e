"""The yield rule (one direction of travel gives way, by per-neighbour gains alone) and PPO started from
its demonstrations (train.imitate): the rule reads a per-neighbour tuner's view and writes its outputs,
gets the tilt-0 corridor through where every fixed gain jams, and a tuner that imitated it starts near
it."""

import dataclasses
import json
from pathlib import Path

import pytest
import torch

from robo.cli import main
from robo.tasks.online_cbf.config import OnlineCbfConfig, TrainSettings
from robo.tasks.online_cbf.rollout import metrics, run_episodes
from robo.tasks.online_cbf.yield_rule import YIELD_SPEED, yield_outputs, yield_tuner
from sim.swarm import Scenario, SwarmConfig, flat_observation_and_slots, reset

LOW, HIGH = 0.35, 3.9


def _views(goal_x: float) -> torch.Tensor:
    """Agent 0 at the origin, still, its goal at (goal_x, 0); neighbours: agent 1 ahead coming toward -x,
    agent 2 beside it (nearest) going +x, agent 3 ahead barely moving toward -x; an obstacle at (0, -1)."""
    p = torch.tensor([[[0.0, 0.0], [1.0, 0.0], [0.0, 0.9], [2.0, 0.0]]], dtype=torch.float64)
    v = torch.tensor([[[0.0, 0.0], [-0.5, 0.0], [0.5, 0.0], [-YIELD_SPEED / 2, 0.0]]], dtype=torch.float64)
    goal = p.clone()
    goal[0, 0, 0] = goal_x
    state = reset(Scenario(p, goal, torch.tensor([[[0.0, -1.0]]], dtype=torch.float64),
                           torch.tensor([[0.1]], dtype=torch.float64)), SwarmConfig())
    state = dataclasses.replace(state, v=v)
    obs, (idx, mask) = flat_observation_and_slots(state, SwarmConfig(), 6, agents_first=True)
    assert idx[0, 0, :4].tolist() == [2, 1, 3, 4] and mask[0, 0].tolist() == [True] * 4 + [False] * 2
    return obs[0, :1]  # agent 0's view


def test_an_agent_heading_plus_x_holds_only_agents_coming_toward_minus_x_to_the_low_gains():
    out = yield_outputs(_views(goal_x=5.0), dim=2, neighbours=6, low=LOW, high=HIGH)
    assert out.shape == (1, 2 + 2 * 6)
    slots = out[0, 2:].reshape(6, 2)
    # slot order: agent 2 (0.9 m, beside), agent 1 (1.0 m, ahead), agent 3, the obstacle, two empty
    assert slots[:, 0].tolist() == [HIGH, LOW, HIGH, HIGH, HIGH, HIGH]
    assert torch.equal(slots[:, 0], slots[:, 1]) and out[0, :2].tolist() == [HIGH, HIGH]
    heading_minus_x = yield_outputs(_views(goal_x=-5.0), dim=2, neighbours=6, low=LOW, high=HIGH)
    assert bool((heading_minus_x == HIGH).all())  # the other direction gives way to nobody


def test_the_yield_rule_gets_the_tilt_0_corridor_through_where_fixed_gains_jam():
    config = OnlineCbfConfig(agents=8, tilt=0.0, scenario="corridor")  # no right-hand rule
    fixed = metrics(run_episodes(config, (4.0, 4.0), episodes=3), config)
    rule = metrics(run_episodes(config, yield_tuner(LOW, HIGH), episodes=3), config)
    assert fixed["success_rate"] == 0.0 and fixed["deadlock_rate"] == 1.0
    assert rule["success_rate"] == 1.0 and rule["deadlock_rate"] == 0.0 and rule["collisions"] == 0
    # the +x group gave way: low gains on some rows (most rows are the walls' and stay high)
    gains = rule["gains"]
    assert gains["k1_mean"] < HIGH - 0.01 and gains["k1_median"] == pytest.approx(HIGH)


def test_eval_runs_the_yield_rule_and_refuses_gains_in_the_wrong_order(tmp_path, capsys):
    out = tmp_path / "yield"
    assert main(["eval", "online-cbf", "--scenario", "swap", "--agents", "4", "--episodes", "2",
                 "--gains-yield", "0.35,3.9", "--set", "tilt=0", "--out", str(out)]) == 0
    result = json.loads((out / "metrics.json").read_text())
    assert result["gains"] == {"yield": [0.35, 3.9]} and result["controller"] == "filter"
    capsys.readouterr()
    assert main(["eval", "online-cbf", "--gains-yield", "3.9,0.35", "--out", str(tmp_path / "bad")]) != 0
    assert "--gains-yield '3.9,0.35': LOW must be below HIGH" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()


TINY = ["--set", "train.envs=2", "--set", "agents=4", "--set", "train.neighbours=4",
        "--set", "train.hidden=16", "--set", "train.runner.num_steps=8", "--set", "train.runner.iterations=1",
        "--set", "tilt=0", "--set", "train.per_neighbour=true", "--set", "train.imitate=[0.35, 3.9]",
        "--set", "train.imitate_steps=480", "--set", "train.imitate_epochs=200"]


def test_training_imitates_the_rule_before_ppo_once_and_a_resume_keeps_it(tmp_path):
    run = tmp_path / "run"
    assert main(["train", "online-cbf", "--out", str(run), *TINY]) == 0
    imitation = json.loads((run / "imitation.json").read_text())
    assert imitation["samples"] == 480 * 2 * 4
    assert imitation["imitate_actor_mse"] < 0.5 * imitation["imitate_actor_mse_before"]
    assert imitation["imitate_critic_mse"] < imitation["imitate_critic_mse_before"]
    assert json.loads((run / "metrics.json").read_text())["imitation"] == imitation
    before = (run / "imitation.json").read_bytes()
    assert main(["train", "online-cbf", "--out", str(run), *TINY, "--resume",
                 "--set", "train.runner.iterations=2"]) == 0
    assert (run / "imitation.json").read_bytes() == before  # the weights hold it: not imitated again
    assert json.loads((run / "metrics.json").read_text())["iterations"] == 2


def test_imitation_settings_are_checked_before_anything_runs():
    with pytest.raises(ValueError, match=r"train\.imitate: .*needs train\.per_neighbour=true"):
        OnlineCbfConfig(train=TrainSettings(imitate=[0.35, 3.9]))
    with pytest.raises(ValueError, match=r"train\.imitate: need \[low, high\]"):
        OnlineCbfConfig(train=TrainSettings(per_neighbour=True, imitate=[3.9, 0.35]))
    with pytest.raises(ValueError, match=r"train\.imitate: initial output 0\.25 is outside"):
        OnlineCbfConfig(train=TrainSettings(per_neighbour=True, imitate=[0.25, 3.9]))
    with pytest.raises(ValueError, match=r"train\.imitate_steps must be >= 1"):
        OnlineCbfConfig(train=TrainSettings(per_neighbour=True, imitate=[0.35, 3.9], imitate_steps=0))


def test_the_bench_runs_the_rule_on_the_scenario_table_beside_the_tuner():
    from robo.bench.online_cbf import _scenarios

    policy = Path(__file__).resolve().parents[1] / "robo/policies/online_cbf_gnn_per_neighbour/policy.pt"
    # the right-hand rule on: every controller's episodes end early (this checks the table, not the scores)
    table = _scenarios(["swap"], 2, 4, str(policy), tilt=0.4, shared_k2=4.0, rule=(LOW, HIGH))["swap"]
    rule = table["yield_rule"]
    assert rule["episodes"] == table["gnn"]["episodes"] == 2 and rule["collisions"] == 0
    assert rule["gains"]["k1_p05"] >= LOW and rule["gains"]["k1_p95"] == pytest.approx(HIGH)  # the rule's
    assert "yield_rule" not in _scenarios(["swap"], 1, 2, str(policy), tilt=0.4, shared_k2=4.0)["swap"]

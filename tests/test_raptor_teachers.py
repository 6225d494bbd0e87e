"""RAPTOR teacher fleet: groups, acceptance/rejection, kept checkpoints and curves, resume, bad input."""

from __future__ import annotations

import json

import pytest
import torch
from interrupts import interrupt_after

from robo.cli import main
from robo.config import load_config
from robo.nets.policy import load_policy

# Reported as a skip (never a pass) while the quadrotor simulator is not importable.
pytest.importorskip("sim.quadrotor", reason="needs the quadrotor simulator in sim/quadrotor",
                    exc_type=ImportError)

from robo.tasks.raptor.teachers import (
    RaptorTeachersConfig,
    load_teachers,
    read_curve,
    summarise,
    train_teachers,
)
from sim.quadrotor import sample_fleet, save_fleet

torch.set_num_threads(1)

TINY = [
    "group_size=2", "sac.actor_hidden=[16,16]", "sac.critic_hidden=[32,32]", "sac.batch_size=16",
    "sac.learning_starts=40", "sac.buffer_size=1000", "train.steps=120", "train.log_interval=20",
    "train.checkpoint_interval=40",
]


def tiny(tmp_path, *extra: str, teachers: int = 3) -> RaptorTeachersConfig:
    return load_config(RaptorTeachersConfig, None, [*TINY, f"teachers={teachers}", *extra])


@pytest.fixture
def fleet(tmp_path):
    return save_fleet(sample_fleet(4, seed=3), tmp_path / "fleet.json")


def test_unreachable_threshold_rejects_every_teacher_and_keeps_its_files(tmp_path, fleet) -> None:
    cfg = tiny(tmp_path, "train.acceptance.episode_length=1000", "train.acceptance.window=1")
    run = tmp_path / "run"
    metrics = train_teachers(cfg, fleet, run, log=lambda s: None)
    assert metrics["teachers"] == 3 and metrics["accepted"] == 0
    assert [r["name"] for r in metrics["rejected"]] == ["q0", "q1", "q2"]
    for r in metrics["rejected"]:
        assert r["steps"] == 120 and 0 < r["mean_length"] < 1000
    for name in ("q0", "q1", "q2"):
        policy, meta = load_policy(run / "teachers" / name / "actor.pt")
        assert meta["origin"]["teacher"] == name and meta["origin"]["record"]["accepted"] is False
        assert policy(torch.zeros(1, 26)).shape == (1, 4)
        curve = read_curve(run / "teachers" / name / "curve.csv")
        assert [p["step"] for p in curve] == [20, 40, 60, 80, 100, 120]
    assert (run / "learning_curves.png").stat().st_size > 0
    assert json.loads((run / "metrics.json").read_text())["rejected"] == metrics["rejected"]
    assert not list((run / "groups").glob("*.pt"))  # finished groups leave only their records

    # The distillation stage labels with all teachers at once, tanh(mean) of each.
    names, stacked = load_teachers(run, accepted_only=False)
    assert names == ["q0", "q1", "q2"]
    obs = torch.randn(3, 5, 26)
    labels = stacked.deterministic(obs)
    for k, name in enumerate(names):
        policy, _ = load_policy(run / "teachers" / name / "actor.pt")
        torch.testing.assert_close(labels[k], policy(obs[k]), atol=1e-6, rtol=1e-6)
    with pytest.raises(ValueError, match="no teachers"):
        load_teachers(run)  # none was accepted
    # A teacher file from another fleet is refused.
    (run / "fleet.json").write_text((run / "fleet.json").read_text().replace("q0", "z0"))
    with pytest.raises(ValueError, match="another fleet"):
        load_teachers(run, ["q1"])


def test_teachers_stop_at_the_threshold(tmp_path, fleet) -> None:
    cfg = tiny(tmp_path, "train.acceptance.episode_length=1", "train.acceptance.window=1",
               "train.steps=100000")
    metrics = train_teachers(cfg, fleet, tmp_path / "run", log=lambda s: None)
    assert metrics["accepted"] == 3 and metrics["rejected"] == []
    # Accepted at the first check after one counted episode, far below the budget.
    assert metrics["mean_steps_accepted"] < 2000
    assert metrics["core_minutes_per_accepted_teacher"] > 0


def test_interrupted_run_resumes_without_losing_progress(tmp_path, fleet) -> None:
    cfg = tiny(tmp_path, "train.acceptance.episode_length=1000", "train.acceptance.window=1", teachers=2)
    run = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        train_teachers(cfg, fleet, run, progress=interrupt_after(100), log=lambda s: None)
    checkpoint = torch.load(run / "groups" / "group_0000.pt", weights_only=True)
    assert checkpoint["step"] == 80  # the last checkpoint before the interruption
    with pytest.raises(OSError, match="not empty"):
        train_teachers(cfg, fleet, run, log=lambda s: None)
    messages = []
    metrics = train_teachers(cfg, fleet, run, resume=True, log=messages.append)
    assert "resumed at env step 80" in messages[0]
    assert metrics["teachers"] == 2
    curve = read_curve(run / "teachers" / "q0" / "curve.csv")
    assert [p["step"] for p in curve] == [20, 40, 60, 80, 100, 120]  # nothing lost, nothing repeated


def test_bad_fleets_are_refused(tmp_path, fleet) -> None:
    with pytest.raises(ValueError, match=r"has 4 quadrotors.*5 teachers"):
        train_teachers(tiny(tmp_path, teachers=5), fleet, tmp_path / "a", log=lambda s: None)
    cfg = tiny(tmp_path, "train.acceptance.episode_length=1000", teachers=1)
    train_teachers(cfg, fleet, tmp_path / "b", log=lambda s: None)
    other = save_fleet(sample_fleet(4, seed=4), tmp_path / "other.json")
    with pytest.raises(ValueError, match="not the fleet this run was started with"):
        train_teachers(cfg, other, tmp_path / "b", resume=True, log=lambda s: None)
    with pytest.raises(ValueError, match="observation"):
        load_config(RaptorTeachersConfig, None, ["env.observation=student"])


def test_overriding_one_key_keeps_the_other_teacher_defaults() -> None:
    cfg = load_config(RaptorTeachersConfig, None, ["train.steps=5000", "train.acceptance.window=3"])
    assert cfg.train.steps == 5000 and cfg.train.acceptance.window == 3
    assert cfg.train.acceptance.episode_length == 490.0 and cfg.train.log_interval == 5000
    assert cfg.sac.batch_size == 128 and cfg.env.observation == "teacher"


def test_cli_trains_and_lists_rejected_teachers(tmp_path, fleet, capsys) -> None:
    argv = ["train", "raptor-teachers", "--fleet", str(fleet), "--teachers", "2",
            "--out", str(tmp_path / "r")]
    for item in [*TINY, "train.acceptance.episode_length=1000"]:
        argv += ["--set", item]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "0/2 teachers accepted" in out and "q0" in out and "q1" in out
    assert main([*argv[:2], "--fleet", str(tmp_path / "missing.json"), "--out", str(tmp_path / "x")]) == 1
    assert "fleet file not found" in capsys.readouterr().err


def test_deterministic_check_is_kept_in_the_curve_and_in_the_rejected_list(tmp_path, fleet) -> None:
    # Threshold 1: every training window passes, so the deterministic check runs at the first point.
    cfg = tiny(tmp_path, "train.acceptance.episode_length=1", "train.acceptance.window=1",
               "train.acceptance.evaluate=true", teachers=2)
    run = tmp_path / "run"
    metrics = train_teachers(cfg, fleet, run, log=lambda s: None)
    assert metrics["accepted"] == 2
    for name in ("q0", "q1"):
        point = read_curve(run / "teachers" / name / "curve.csv")[-1]
        assert point["eval_length"] >= 1 and "eval_return" in point

    records = {0: {"id": 0, "name": "q0", "accepted": False, "steps": 120, "mean_length": 500.0,
                   "mean_return": 10.0, "episodes": 10, "eval_length": 300.0, "eval_return": -50.0},
               1: {"id": 1, "name": "q1", "accepted": False, "steps": 120, "mean_length": 90.0,
                   "mean_return": -90.0, "episodes": 10}}
    rejected = summarise(records, 1.0, 1, cfg)["rejected"]
    assert rejected[0]["eval_length"] == 300.0 and rejected[0]["eval_return"] == -50.0
    assert "eval_length" not in rejected[1]

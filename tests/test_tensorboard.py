"""TensorBoard scalars of training runs (RunDir.scalars), read back from the event files."""

from __future__ import annotations

import json
import math

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from robo.config import load_config
from robo.run_dir import RunDir

torch.set_num_threads(1)


def read_scalars(folder) -> dict[str, list[tuple[int, float]]]:
    """Every scalar tag under ``folder`` (all event files) -> [(step, value)] in step order."""
    out: dict[str, list[tuple[int, float]]] = {}
    for events in sorted(folder.rglob("events.out.tfevents.*")):
        acc = EventAccumulator(str(events), size_guidance={"scalars": 0})
        acc.Reload()
        for tag in acc.Tags()["scalars"]:
            out.setdefault(tag, []).extend((e.step, e.value) for e in acc.Scalars(tag))
    return {tag: sorted(values) for tag, values in out.items()}


def test_scalars_are_written_under_the_stage_and_non_finite_values_are_skipped(tmp_path) -> None:
    run = RunDir(tmp_path)
    with run.scalars("teachers") as scalars:
        scalars.add("q0/return", 1.5, 10)
        scalars.add("q0/return", math.nan, 20)
        scalars.add("q0/return", -2.0, 30)
        scalars.add("q0/final_error", math.inf, 30)
        scalars.add_all({"loss": 0.25, "flown_by": "student", "held_out": {"success_rate": 0.5}, "ok": True},
                        7, "student/")
    assert read_scalars(tmp_path / "tensorboard" / "teachers") == {
        "q0/return": [(10, 1.5), (30, -2.0)],
        "student/loss": [(7, 0.25)],
        "student/held_out/success_rate": [(7, 0.5)],
    }
    with run.scalars("empty"):
        pass
    assert not (tmp_path / "tensorboard" / "empty").exists()  # nothing logged, no folder


def test_teacher_and_student_runs_log_their_curves(tmp_path) -> None:
    pytest.importorskip("sim.quadrotor", exc_type=ImportError)
    from robo.tasks.raptor.pipeline import StudentConfig, train_student
    from robo.tasks.raptor.teachers import RaptorTeachersConfig, read_curve, train_teachers
    from sim.quadrotor import sample_fleet, save_fleet

    fleet = save_fleet(sample_fleet(2, seed=5), tmp_path / "fleet.json")
    teachers = load_config(RaptorTeachersConfig, None, [
        "teachers=2", "group_size=2", "sac.actor_hidden=[16,16]", "sac.critic_hidden=[32,32]",
        "sac.batch_size=16", "sac.learning_starts=40", "sac.buffer_size=1000", "train.steps=120",
        "train.log_interval=20", "train.select_interval=60", "train.select_episodes=2",
        "train.acceptance.episode_length=1000"])
    train_teachers(teachers, fleet, tmp_path / "teachers", log=lambda s: None)
    logged = read_scalars(tmp_path / "teachers" / "tensorboard" / "teachers")
    for name in ("q0", "q1"):
        curve = read_curve(tmp_path / "teachers" / "teachers" / name / "curve.csv")
        counted = [p for p in curve if p["episodes"]]
        assert logged[f"{name}/length"] == [(int(p["step"]), pytest.approx(p["length"])) for p in counted]
        assert [s for s, _ in logged[f"{name}/select_success"]] == [60, 120]
        judged = [p for p in curve if "select_success" in p]
        assert [v for _, v in logged[f"{name}/select_success"]] == [pytest.approx(p["select_success"])
                                                                   for p in judged]
        assert f"{name}/critic_loss" in logged

    student = load_config(StudentConfig, None, [
        "epochs=2", "teacher_epochs=1", "episodes_per_teacher=2", "batch_size=2", "offset_episodes=1",
        "holdout=2", "eval_interval=2", "env.episode_steps=20"])
    # Both teachers were rejected (length 1000 is out of reach); accept them for the student.
    metrics_file = tmp_path / "teachers" / "metrics.json"
    metrics = json.loads(metrics_file.read_text())
    metrics["accepted_names"] = ["q0", "q1"]
    metrics_file.write_text(json.dumps(metrics))
    train_student(student, tmp_path / "teachers", tmp_path / "student", log=lambda s: None)
    logged = read_scalars(tmp_path / "student" / "tensorboard" / "student")
    history = (tmp_path / "student" / "history.csv").read_text().splitlines()
    losses = [float(line.split(",")[2]) for line in history[1:]]
    assert logged["student/loss"] == [(1, pytest.approx(losses[0])), (2, pytest.approx(losses[1]))]
    assert [s for s, _ in logged["student/holdout_success"]] == [2]
    assert "student/alive_fraction" in logged and "student/holdout_length" in logged

"""robo demo: the committed student exported, flown behind the safety filter and run on the emulated MCU."""

import json
import math
import shutil

import pytest
import torch

from robo.cli import main
from robo.tasks.demo import COMMITTED_STUDENT

torch.set_num_threads(1)

STAGES = ["policy", "export", "fly", "codegen", "firmware build", "firmware run"]


@pytest.mark.qemu
def test_demo_end_to_end_on_the_committed_student(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["ok"] and [s["stage"] for s in summary["stages"]] == STAGES
    m = {s["stage"]: s["measured"] for s in summary["stages"]}
    # The one table: every stage and the total, with the numbers it measured.
    table = out[out.index("stage "):]
    for stage in [*STAGES, "total"]:
        assert f"\n{stage} " in table
    assert "tracking RMSE" in table and "instructions per inference" in table
    assert m["export"]["max_abs_error"] <= 1e-5 and m["export"]["same_as_committed"]
    fly = m["fly"]
    assert not fly["collision"] and fly["min_obstacle_clearance_m"] > 0
    assert math.isfinite(fly["tracking_rmse_m"]) and fly["tracking_rmse_m"] < 0.5
    assert fly["filter_stats"]["interventions"] > 0 and fly["filter_stats"]["faults"] == 0
    assert fly["duration_s"] == pytest.approx(10.0)
    fp = m["firmware build"]["footprint"]
    assert not fp["uses_heap"] and 0 < fp["flash_bytes"] <= 12 * 1024 and 0 < fp["ram_bytes"] <= 1024
    run = m["firmware run"]
    assert run["max_abs_error_vs_onnxruntime"] <= 1e-5 and run["status_matches"] and run["exit_code"] == 0
    assert 1000 < run["instructions_per_step"] < 10000
    for rel in ("policy.onnx", "policy.json", "flight/flight.png", "flight/trajectory.csv",
                "firmware/policy.c", "firmware/build/qemu-mps2-an386/app.elf"):
        assert (tmp_path / rel).stat().st_size > 0, rel


def test_train_flag_trains_the_quick_config_and_uses_its_student(tmp_path, monkeypatch):
    """The wiring of --train, without the 20 minutes: the pipeline is replaced by one that writes what
    the real one writes (its run folder's metrics and student_best.pt)."""
    import robo.tasks.raptor.pipeline as raptor

    calls = []

    def fake_train_raptor(config, run_dir, *, resume=False, log=print, bar=None):
        calls.append((config, run_dir, resume))
        (run_dir / "student").mkdir(parents=True, exist_ok=True)
        (run_dir / "teachers").mkdir(exist_ok=True)
        (run_dir / "config.yaml").write_text("{}\n")
        (run_dir / "teachers" / "metrics.json").write_text(json.dumps({"accepted": 8, "teachers": 16}))
        best = {"best": {"epoch": 3, "success_rate": 0.1}}
        (run_dir / "student" / "metrics.json").write_text(json.dumps(best))
        shutil.copy(COMMITTED_STUDENT, run_dir / "student" / "student_best.pt")
        return {}

    monkeypatch.setattr(raptor, "train_raptor", fake_train_raptor)
    argv = ["demo", "--train", "--train-set", "student.epochs=3", "--no-firmware", "--duration", "0.5",
            "--out", str(tmp_path)]
    assert main(argv) == 0
    config, run_dir, resume = calls[0]
    assert run_dir == tmp_path / "train" and not resume
    assert config.student.epochs == 3 and config.teachers.teachers == 16  # raptor_quick.yaml + the override
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert [s["stage"] for s in summary["stages"]] == ["train", "policy", "export", "fly"]
    m = {s["stage"]: s["measured"] for s in summary["stages"]}
    assert m["policy"]["checkpoint"] == str(tmp_path / "train" / "student" / "student_best.pt")
    assert m["train"]["teachers_accepted"] == 8 and m["export"]["same_as_committed"] is None
    assert main(argv) == 0 and calls[1][2], "a second --train must resume the run folder"


def test_a_failing_stage_is_one_line_naming_it(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PATH", str(tmp_path))  # no make, no cross-compiler
    assert main(["demo", "--duration", "0.5", "--out", str(tmp_path)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("robo: error: demo stage 'firmware build' failed: ")
    assert "bash .ci/setup" in err[-1]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert not summary["ok"] and summary["failed_stage"] == "firmware build"
    assert [s["stage"] for s in summary["stages"]] == ["policy", "export", "fly", "codegen"]


@pytest.mark.parametrize("argv, message", [
    (["--train", "--policy", "x.pt"], "exclude each other"),
    (["--preset", "nope"], "unknown preset"),
    (["--obstacle", "1,2"], "expected four finite numbers"),
    (["--policy", "/nonexistent/student.pt"], "policy checkpoint not found: /nonexistent/student.pt"),
    (["--policy", "robo/policies/raptor_default/policy.onnx"], "the demo exports a student checkpoint (.pt"),
])
def test_bad_input_is_one_line(tmp_path, capsys, argv, message):
    assert main(["demo", *argv, "--out", str(tmp_path / "demo")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("robo: error:") and message in err[-1]
    assert not (tmp_path / "demo").exists()  # bad input: refused before anything is written

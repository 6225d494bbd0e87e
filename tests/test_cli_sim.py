"""`robo sim quadrotor` end to end, and the config machinery's errors through the CLI."""

import json

import pytest

from robo.cli import main


def test_sim_quadrotor_writes_plot_csv_and_metrics(tmp_path):
    rc = main(["sim", "quadrotor", "--config", "configs/sim_quadrotor.yaml", "--preset", "x500",
               "--reference", "hold", "--set", "duration=5", "-o", str(tmp_path)])
    assert rc == 0
    out = tmp_path / "quadrotor_x500_hold"
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["final_position_error_m"] < 0.01  # started 0.5 m off target
    assert (out / "trajectory.png").stat().st_size > 10_000
    lines = (out / "trajectory.csv").read_text().splitlines()
    assert len(lines) == 501 and lines[0].startswith("t,x,y,z")


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--preset", "hummingbird"], "unknown preset 'hummingbird'"),
        (["--set", "env.refrence=hold"], "unknown config key 'env.refrence'"),
        (["--set", "duration=fast"], "config key 'duration': expected a number"),
        (["--set", "env.episode_steps=1.5"], "config key 'env.episode_steps': expected an integer"),
        (["--set", "duration=-1"], "duration must be > 0"),
    ],
)
def test_bad_input_is_one_line_and_nothing_written(tmp_path, capsys, extra, message):
    rc = main(["sim", "quadrotor", "-o", str(tmp_path / "out"), *extra])
    err = capsys.readouterr().err.strip()
    assert rc == 1
    assert message in err and len(err.splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_help_lists_the_commands(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    text = capsys.readouterr().out
    for command in ("demo", "sim", "export", "codegen", "firmware", "bench"):
        assert command in text


def test_eval_lists_what_each_evaluation_measures_not_what_its_training_does(capsys):
    from robo.registry import tasks

    with pytest.raises(SystemExit):
        main(["eval", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    evaluated = [task for task in tasks().values() if task.evaluate is not None]
    assert evaluated
    for task in evaluated:
        assert task.evaluate.summary, f"{task.name}: its evaluation has no summary of its own"
        assert " ".join(task.evaluate.summary.split()) in text
        assert task.summary not in text  # the train listing's line would describe the wrong command


def test_benchmarks_are_spelt_as_tasks_and_accept_module_names(capsys):
    with pytest.raises(SystemExit):
        main(["bench", "--help"])
    assert "online-cbf (online_cbf)" in capsys.readouterr().out
    for spelling in ("online-cbf", "online_cbf"):
        with pytest.raises(SystemExit) as stop:
            main(["bench", spelling, "--help"])
        assert stop.value.code == 0
        assert "usage: robo bench online-cbf" in capsys.readouterr().out


def test_a_headless_machine_renders_mujoco_frames_through_the_cli_without_setting_mujoco_gl():
    import os
    import subprocess
    import sys

    code = ("import os, robo.cli; from sim.hand.env import HandEnv, HandEnvConfig; "
            "from sim.hand.render import render_frame; env = HandEnv(1, HandEnvConfig()); env.reset(seed=0); "
            "print(os.environ['MUJOCO_GL'], render_frame(env, width=32, height=24).shape)")
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "MUJOCO_GL")}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-500:]
    assert out.stdout.split() == ["egl", "(24,", "32,", "3)"]
    env["MUJOCO_GL"] = "osmesa"  # the user's choice wins
    out = subprocess.run([sys.executable, "-c", "import os, robo.cli; print(os.environ['MUJOCO_GL'])"],
                         env=env, capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "osmesa"

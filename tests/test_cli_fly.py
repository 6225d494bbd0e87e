"""robo fly: the runtime (ONNX policy + safety filter) flying the simulator in-process."""

import json

import pytest

from robo.cli import main
from robo.tasks.fly import FlyConfig, fly

OBSTACLE = (1.0, 0.0, 1.0, 0.15)  # on the figure-eight: it passes x = 1, y = 0 at about 3.6 s


def test_filter_keeps_the_default_policy_out_of_an_obstacle_on_the_path():
    on = fly(FlyConfig(duration=5.0, obstacles=[OBSTACLE]))["metrics"]
    off = fly(FlyConfig(duration=5.0, obstacles=[OBSTACLE], filter=False))["metrics"]
    assert off["collision"], "without the filter the obstacle must be hit, or the test proves nothing"
    assert on["completed"] and not on["collision"] and on["min_obstacle_clearance_m"] > 0
    assert on["filter_stats"]["interventions"] > 0 and on["filter_stats"]["faults"] == 0
    assert on["tracking_rmse_m"] < 0.5


def test_cli_writes_plot_metrics_and_config(tmp_path, capsys):
    rc = main(["fly", "--set", "duration=1.5", "--obstacle", "1,0,1,0.15", "-o", str(tmp_path)])
    assert rc == 0
    for name in ("flight.png", "trajectory.csv", "metrics.json", "config.yaml"):
        assert (tmp_path / name).stat().st_size > 0
    m = json.loads((tmp_path / "metrics.json").read_text())
    assert m["completed"] and m["obstacles"] == [[1.0, 0.0, 1.0, 0.15]] and m["loop_latency_us"]["p50"] > 0


@pytest.mark.parametrize("argv, message", [
    (["--policy", "/nonexistent/p.onnx"], "no such file: /nonexistent/p.onnx"),
    (["--policy", "robo/policies/gpayn_box_tall/policy.onnx"], "a 'gpayn' policy; robo fly flies quadrotor"),
    (["--obstacle", "1,2"], "expected four finite numbers"),
    (["--obstacle", "0,0,1,0.5"], "the flight starts inside it, at [0.0, 0.0, 1.0]"),
    (["--preset", "nope"], "unknown preset"),
    (["--set", "trajectory.kind=spiral"], "unknown 'spiral'"),
    (["--set", "duration=-1"], "duration must be in (0, 3600] s, got -1"),
    (["--set", "duration=1e12"], "duration must be in (0, 3600] s, got 1e+12"),
])
def test_bad_input_is_one_line(tmp_path, capsys, argv, message):
    assert main(["fly", *argv, "-o", str(tmp_path)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("robo: error:") and message in err[-1]


def test_a_flight_into_an_obstacle_ends_with_one_error_line(tmp_path, capsys):
    argv = ["fly", "--no-filter", "--obstacle", ",".join(map(str, OBSTACLE)), "--set", "duration=4"]
    assert main([*argv, "-o", str(tmp_path)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("robo: error: the flight hit an obstacle") and str(tmp_path) in err[-1]
    assert json.loads((tmp_path / "metrics.json").read_text())["collision"]


def test_a_corrupt_model_whose_card_matches_is_one_line_in_fly_and_eval(tmp_path, capsys):
    from policy_standins import copy_default

    from robo.export.card import sha256_file

    path = copy_default(tmp_path / "p")
    path.write_bytes(b"garbage, not a model")
    card = json.loads(path.with_suffix(".json").read_text())
    card["onnx"]["sha256"] = sha256_file(path)
    path.with_suffix(".json").write_text(json.dumps(card))
    for argv in (["fly", "--policy", str(path), "-o", str(tmp_path / "fly")],
                 ["eval", "raptor", "--policy", str(path), "--out", str(tmp_path / "eval")]):
        assert main(argv) == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "ONNX Runtime cannot load it" in err[0], argv

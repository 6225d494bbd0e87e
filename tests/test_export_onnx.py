"""robo export onnx: ONNX + policy card, torch vs ONNX Runtime, and the card/hash loader."""

import json

import onnx
import pytest
import torch

from robo.cli import main
from robo.export.card import check_io_names, load_card, sha256_file
from robo.export.onnx_export import export_onnx
from robo.nets.policy import (
    RecurrentPolicy,
    generic_meta,
    raptor_student,
    save_policy,
)
from sim.quadrotor.observation import quadrotor_student_meta

torch.set_num_threads(1)


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_recurrent_export_carries_state_explicitly(tmp_path, cell):
    torch.manual_seed(0)
    net = RecurrentPolicy(10, 3, embed=8, hidden=6, cell=cell)
    card = export_onnx(net, generic_meta(10, 3, run="runs/r1"), tmp_path / "p.onnx")
    names = ["h"] if cell == "gru" else ["h", "c"]
    assert [s["name"] for s in card["recurrent_state"]] == names
    model = onnx.load(tmp_path / "p.onnx")
    assert [i.name for i in model.graph.input] == ["obs"] + [f"{n}_in" for n in names]
    assert [o.name for o in model.graph.output] == ["action"] + [f"{n}_out" for n in names]
    eq = card["export"]["equivalence"]
    assert eq["steps"] == 500 and 0.0 <= eq["max_abs_error"] <= 1e-5
    on_disk = json.loads((tmp_path / "p.json").read_text())
    assert on_disk["onnx"]["sha256"] == sha256_file(tmp_path / "p.onnx")
    assert on_disk["training"]["run"] == "runs/r1"


def test_cli_exports_a_run_folder_and_the_card_has_every_field(tmp_path, capsys):
    torch.manual_seed(0)
    save_policy(tmp_path / "run" / "policy.pt", raptor_student(), quadrotor_student_meta(config={"a": 1}))
    assert main(["export", "onnx", str(tmp_path / "run"), "-o", str(tmp_path / "out" / "policy.onnx")]) == 0
    assert "max abs error" in capsys.readouterr().out
    card = load_card(tmp_path / "out" / "policy.onnx")
    for key in ("task", "observation", "action", "control_rate_hz", "recurrent_state", "onnx", "training"):
        assert key in card
    assert card["observation"]["layout"][3] == {"name": "R.00", "unit": "1", "clip": [-1.0, 1.0]}
    assert card["action"]["clip"] == [-1.0, 1.0] and card["control_rate_hz"] == 100.0
    assert card["recurrent_state"] == [
        {"name": "h", "size": 16, "input": "h_in", "output": "h_out", "initial": "zeros"}
    ]
    assert card["training"]["config"] == {"a": 1}


def test_card_refuses_a_changed_model_or_a_missing_card(tmp_path, capsys):
    export_onnx(raptor_student(), quadrotor_student_meta(), tmp_path / "policy.onnx")
    card = load_card(tmp_path / "policy.onnx")
    with pytest.raises(ValueError, match="do not match the card"):
        check_io_names(card, ["obs"], ["action", "h_out"])
    with open(tmp_path / "policy.onnx", "ab") as f:
        f.write(b"\0")
    with pytest.raises(ValueError, match="sha256"):
        load_card(tmp_path / "policy.onnx")
    assert main(["codegen", "c", str(tmp_path / "policy.onnx"), "-o", str(tmp_path / "c")]) == 1
    assert "sha256" in capsys.readouterr().err
    (tmp_path / "policy.json").unlink()
    with pytest.raises(OSError, match="policy card not found"):
        load_card(tmp_path / "policy.onnx")


def test_cli_missing_checkpoint_is_a_one_line_error(tmp_path, capsys):
    assert main(["export", "onnx", str(tmp_path / "nope"), "-o", str(tmp_path / "p.onnx")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("robo: error:") and "nope" in err
    assert not (tmp_path / "p.onnx").exists()


def test_card_inputs_carry_their_role(tmp_path):
    card = export_onnx(raptor_student(), quadrotor_student_meta(), tmp_path / "policy.onnx", steps=10)
    assert [(t["name"], t["role"]) for t in card["onnx"]["inputs"]] == [
        ("obs", "observation"), ("h_in", "recurrent_state")]


@pytest.mark.parametrize("bad, message", [
    (["--tol", "-1"], "--tol must be a finite number >= 0"),
    (["--steps", "-5"], "--steps must be >= 1"),
    (["--steps", "0"], "a check over 0 steps checks nothing"),
    (["--tol", "0"], "differs from torch"),  # fails after writing: still nothing changes
])
def test_a_failed_export_leaves_the_old_one_exactly_as_it_was(tmp_path, capsys, bad, message):
    torch.manual_seed(0)
    save_policy(tmp_path / "run" / "policy.pt", raptor_student(), quadrotor_student_meta())
    out = tmp_path / "out"
    run = str(tmp_path / "run")
    assert main(["export", "onnx", run, "-o", str(out / "policy.onnx"), "--steps", "20"]) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    save_policy(tmp_path / "run" / "policy.pt", raptor_student(), quadrotor_student_meta())  # other weights
    capsys.readouterr()
    assert main(["export", "onnx", run, "-o", str(out / "policy.onnx"), *bad]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert load_card(out / "policy.onnx")["onnx"]["sha256"] == sha256_file(out / "policy.onnx")
    # A new folder holds a complete export or nothing (no leftover temporary folder either).
    assert main(["export", "onnx", run, "-o", str(tmp_path / "new" / "a" / "p.onnx"), *bad]) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "run"]


def test_a_new_nested_folder_appears_complete(tmp_path):
    export_onnx(raptor_student(), quadrotor_student_meta(), tmp_path / "a" / "b" / "policy.onnx", steps=10)
    assert sorted(p.name for p in (tmp_path / "a" / "b").iterdir()) == ["policy.json", "policy.onnx"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a"]


def test_cards_are_strict_json(tmp_path):
    meta = quadrotor_student_meta(run={"holdout": {"success_rate": float("nan")}}, origin={"r": float("inf")})
    export_onnx(raptor_student(), meta, tmp_path / "policy.onnx", steps=10)
    text = (tmp_path / "policy.json").read_text()
    card = json.loads(text, parse_constant=lambda c: pytest.fail(f"card contains {c}"))
    assert card["training"]["run"]["holdout"]["success_rate"] is None
    assert card["training"]["origin"] == {"r": None}


def test_a_missing_model_is_no_such_file(tmp_path):
    with pytest.raises(OSError, match=r"no such file: .*none\.onnx"):
        load_card(tmp_path / "none.onnx")


def test_card_says_which_topics_and_message_types_the_policy_node_uses(tmp_path):
    from robo.runtime.adapter import adapter_for

    card = export_onnx(raptor_student(), quadrotor_student_meta(), tmp_path / "a" / "p.onnx", steps=3)
    assert card["io"]["inputs"]["state"] == {"topic": "odom", "type": "nav_msgs/msg/Odometry"}
    assert card["io"]["outputs"]["command"]["type"] == "std_msgs/msg/Float32MultiArray"
    renamed = {"inputs": {"state": {"topic": "/mavros/odom", "type": "nav_msgs/msg/Odometry"}}}
    meta = quadrotor_student_meta(io=renamed)
    card = export_onnx(raptor_student(), meta, tmp_path / "b" / "p.onnx", steps=3)
    assert card["io"] == renamed
    assert adapter_for(card).topics["state"] == ("/mavros/odom", "nav_msgs/msg/Odometry")


def test_a_policy_with_nan_weights_is_refused_and_the_old_export_kept(tmp_path, capsys):
    """A NaN difference compares False: the check must not pass a non-finite policy."""
    torch.manual_seed(0)
    net = raptor_student()
    save_policy(tmp_path / "good" / "policy.pt", net, quadrotor_student_meta())
    out = tmp_path / "out" / "policy.onnx"
    assert main(["export", "onnx", str(tmp_path / "good"), "-o", str(out), "--steps", "5"]) == 0
    before = {p.name: p.read_bytes() for p in out.parent.iterdir()}
    with torch.no_grad():
        next(net.parameters()).view(-1)[0] = float("nan")
    save_policy(tmp_path / "bad" / "policy.pt", net, quadrotor_student_meta())
    capsys.readouterr()
    assert main(["export", "onnx", str(tmp_path / "bad"), "-o", str(out), "--steps", "5"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not finite" in err[0], err
    assert {p.name: p.read_bytes() for p in out.parent.iterdir()} == before

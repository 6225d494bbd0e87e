"""robo.nets.policy: the exported policy networks and their checkpoint format."""

import pytest
import torch

from robo.nets.policy import (
    MLPPolicy,
    RecurrentPolicy,
    load_policy,
    raptor_student,
    save_policy,
)
from sim.quadrotor.observation import quadrotor_student_meta

torch.set_num_threads(1)


def test_raptor_student_has_the_papers_shape_and_2068_parameters():
    net = raptor_student()
    assert sum(p.numel() for p in net.parameters()) == 2068
    (h,) = net.initial_state(3)
    assert h.shape == (3, 16) and torch.all(h == 0)
    act, (h2,) = net(torch.randn(3, 22), (h,))
    assert act.shape == (3, 4) and h2.shape == (3, 16)
    assert not torch.allclose(h2, h)


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_sequence_call_equals_step_by_step(cell):
    torch.manual_seed(0)
    net = RecurrentPolicy(7, 3, embed=8, hidden=5, cell=cell)
    obs = torch.randn(2, 6, 7)
    seq_act, seq_state = net.forward_sequence(obs)
    state = net.initial_state(2)
    for t in range(6):
        act, state = net(obs[:, t], state)
        torch.testing.assert_close(act, seq_act[:, t])
    for a, b in zip(state, seq_state, strict=True):
        torch.testing.assert_close(a, b)


def test_checkpoint_roundtrip_keeps_weights_and_meta(tmp_path):
    torch.manual_seed(1)
    net = MLPPolicy(22, 4, hidden=(8, 8), activation="tanh")
    meta = quadrotor_student_meta(run="runs/x", config={"lr": 1e-3})
    path = save_policy(tmp_path / "policy.pt", net, meta)
    net2, meta2 = load_policy(path)
    x = torch.randn(5, 22)
    torch.testing.assert_close(net(x), net2(x))
    assert meta2["config"] == {"lr": 1e-3} and meta2["task"] == "quadrotor"
    assert [p.name for p in tmp_path.iterdir()] == ["policy.pt"]  # no temporary file left behind


def test_bad_checkpoints_and_meta_are_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="unknown meta key 'colour'"):
        save_policy(tmp_path / "p.pt", raptor_student(), {"colour": "red"})
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="not a readable policy checkpoint"):
        load_policy(tmp_path / "junk.pt")
    with pytest.raises(OSError, match="not found"):
        load_policy(tmp_path / "missing.pt")
    with pytest.raises(ValueError, match="cell"):
        RecurrentPolicy(3, 1, cell="rnn")


def test_a_damaged_checkpoint_is_one_line_naming_what_is_wrong(tmp_path):
    good = save_policy(tmp_path / "p.pt", raptor_student(), quadrotor_student_meta())
    payload = torch.load(good, weights_only=True)

    def damaged(name: str, **change) -> str:
        torch.save({**payload, **change}, tmp_path / name)
        with pytest.raises(ValueError) as info:
            load_policy(tmp_path / name)
        assert "\n" not in str(info.value)
        return str(info.value)

    assert "has no meta mapping" in damaged("nometa.pt", meta=None)
    assert "architecture" in damaged("arch.pt", arch={**payload["arch"], "hidden": "sixteen"})
    weights = {**payload["state_dict"]}
    weights.pop(next(iter(weights)))
    assert "weights do not match" in damaged("weights.pt", state_dict=weights)

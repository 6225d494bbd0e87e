"""The one ONNX Runtime wrapper drives card inputs by role, and the controller finds its task adapter."""

import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from policy_standins import copy_default

from robo.export.card import sha256_file
from robo.runtime import Controller, OnnxPolicy, adapter_for


def write_auxiliary_model(folder, roles=("observation", "auxiliary")):
    """action = obs[:, :2] + 10 * neighbours: an observation input and an auxiliary input."""
    folder.mkdir(parents=True, exist_ok=True)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["obs", "pick"], ["own"]),
         helper.make_node("Mul", ["neighbours", "ten"], ["scaled"]),
         helper.make_node("Add", ["own", "scaled"], ["action"])],
        "aux",
        [helper.make_tensor_value_info("neighbours", TensorProto.FLOAT, [1, 2]),
         helper.make_tensor_value_info("obs", TensorProto.FLOAT, [1, 3])],
        [helper.make_tensor_value_info("action", TensorProto.FLOAT, [1, 2])],
        [numpy_helper.from_array(np.eye(3, 2, dtype=np.float32), "pick"),
         numpy_helper.from_array(np.full((1, 2), 10.0, np.float32), "ten")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = folder / "policy.onnx"
    onnx.save(model, path)
    card = {
        "format": "robo-policy-card/1", "task": "swarm-test",
        "observation": {"size": 3, "layout": [{"name": f"o{i}", "unit": "1", "clip": [-1.0, 1.0]}
                                               for i in range(3)]},
        "action": {"size": 2, "layout": [{"name": "a0", "unit": "1"}, {"name": "a1", "unit": "1"}],
                   "clip": [-100.0, 100.0], "mapping": "raw", "fallback": [0.5, -0.5]},
        "control_rate_hz": 50.0, "recurrent_state": [],
        "onnx": {"file": "policy.onnx", "sha256": sha256_file(path), "opset": 17,
                 "inputs": [{"name": "neighbours", "shape": [1, 2], "role": roles[1]},
                            {"name": "obs", "shape": [1, 3], "role": roles[0]}],
                 "outputs": [{"name": "action", "shape": [1, 2]}]},
        "training": {},
    }
    (folder / "policy.json").write_text(json.dumps(card))
    return path


def test_an_auxiliary_input_is_fed_by_name_and_the_observation_is_clipped(tmp_path):
    policy = OnnxPolicy(write_auxiliary_model(tmp_path))
    assert policy.auxiliary == {"neighbours": (1, 2)}
    step = policy.step(np.array([0.5, 3.0, 0.0]), auxiliary={"neighbours": [1.0, -2.0]})
    np.testing.assert_allclose(step.action, [10.5, -19.0])  # obs[1] = 3 was clipped to 1
    with pytest.raises(ValueError, match="auxiliary input 'neighbours' \\[1, 2\\] needs a value"):
        policy.step(np.zeros(3))
    with pytest.raises(ValueError, match="no auxiliary input 'queue'"):
        policy.step(np.zeros(3), auxiliary={"neighbours": [0, 0], "queue": [1]})
    step = policy.step(np.array([np.nan, 0, 0]), auxiliary={"neighbours": [0, 0]})
    assert step.fallback and np.array_equal(step.action, [0.5, -0.5])  # the card's fallback


def test_a_card_with_two_observation_inputs_is_refused(tmp_path):
    with pytest.raises(ValueError, match="2 inputs have the role 'observation'"):
        OnnxPolicy(write_auxiliary_model(tmp_path, roles=("observation", "observation")))


def test_a_task_without_an_adapter_is_one_line_naming_the_known_tasks(tmp_path):
    policy = OnnxPolicy(write_auxiliary_model(tmp_path))
    known = r"no runtime adapter for task 'swarm-test' \(known tasks: gpayn, quadrotor\)"
    with pytest.raises(ValueError, match=known):
        Controller(policy)


def test_the_quadrotor_adapter_builds_the_cards_layout(tmp_path):
    card = json.loads(copy_default(tmp_path).with_suffix(".json").read_text())
    adapter = adapter_for(card)
    assert adapter.topics["command"] == ("motor_command", "std_msgs/msg/Float32MultiArray")
    np.testing.assert_allclose(adapter.command(np.array([-1.0, 0.0, 1.0, 2.0])), [0.0, 0.5, 1.0, 1.0])
    card["observation"]["layout"][0]["name"] = "wind.x"
    with pytest.raises(ValueError, match="cannot build observation field 'wind'"):
        adapter_for(card)

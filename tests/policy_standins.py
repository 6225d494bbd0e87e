"""Stand-in ONNX policies with a real card, built with onnx.helper (no training): for runtime and ROS tests.

action = obs @ W + b (W, b chosen by the test), h_out = h_in + 1, so the recurrent state counts the
control ticks that committed it.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from robo.export.card import sha256_file
from robo.runtime import DEFAULT_POLICY


def write_standin(folder: Path, weight: np.ndarray | None = None, bias: np.ndarray | None = None,
                  hidden: int = 16, rate_hz: float = 100.0) -> Path:
    """policy.onnx + policy.json (the default card's layout, this model's hash) in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    w = np.zeros((22, 4), np.float32) if weight is None else weight.astype(np.float32)
    b = np.zeros(4, np.float32) if bias is None else bias.astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["obs", "W"], ["xw"]), helper.make_node("Add", ["xw", "b"], ["action"]),
         helper.make_node("Add", ["h_in", "one"], ["h_out"])],
        "standin",
        [helper.make_tensor_value_info("obs", TensorProto.FLOAT, [1, 22]),
         helper.make_tensor_value_info("h_in", TensorProto.FLOAT, [1, hidden])],
        [helper.make_tensor_value_info("action", TensorProto.FLOAT, [1, 4]),
         helper.make_tensor_value_info("h_out", TensorProto.FLOAT, [1, hidden])],
        [numpy_helper.from_array(w, "W"), numpy_helper.from_array(b, "b"),
         numpy_helper.from_array(np.ones((1, hidden), np.float32), "one")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    path = folder / "policy.onnx"
    onnx.save(model, path)
    card = json.loads(Path(DEFAULT_POLICY).with_suffix(".json").read_text())
    card["control_rate_hz"] = rate_hz
    card["recurrent_state"] = [{"name": "h", "size": hidden, "input": "h_in", "output": "h_out",
                                "initial": "zeros"}]
    card["onnx"]["inputs"][1]["shape"] = [1, hidden]
    card["onnx"]["outputs"][1]["shape"] = [1, hidden]
    card["onnx"]["sha256"] = sha256_file(path)
    card["training"] = {"run": "stand-in for tests", "checkpoint": None, "config": None, "arch": {}}
    (folder / "policy.json").write_text(json.dumps(card, indent=1))
    return path


def copy_default(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    src = Path(DEFAULT_POLICY)
    shutil.copy(src, folder / "policy.onnx")
    shutil.copy(src.with_suffix(".json"), folder / "policy.json")
    return folder / "policy.onnx"

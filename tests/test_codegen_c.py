"""robo codegen c: generated C compiled for this computer, checked against ONNX Runtime."""

import json
import re
import subprocess

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from robo.cli import main
from robo.codegen.c_emitter import generate_c, generate_from_file
from robo.codegen.firmware import sequence
from robo.codegen.host import HostPolicy
from robo.export.card import CARD_FORMAT, load_card, sha256_file, write_card
from robo.export.onnx_export import export_onnx
from robo.nets.policy import MLPPolicy, RecurrentPolicy, generic_meta, raptor_student
from robo.runtime import OnnxPolicy
from sim.quadrotor.observation import quadrotor_student_meta

torch.set_num_threads(1)


def exported_module(tmp, net, meta, name="policy"):
    export_onnx(net, meta, tmp / f"{name}.onnx", steps=50)
    generate_from_file(tmp / f"{name}.onnx", tmp / name, name=name)
    return tmp / name


def card_for(path, obs, act, states=(), clip=None):
    """A policy card for a hand-built ONNX graph (inputs obs + state inputs, outputs action + state)."""
    model = onnx.load(path)
    shape = {
        v.name: [d.dim_value for d in v.type.tensor_type.shape.dim]
        for v in list(model.graph.input) + list(model.graph.output)
    }
    card = {
        "format": CARD_FORMAT,
        "task": "test",
        "observation": {
            "size": obs,
            "layout": [{"name": f"o{i}", "unit": "1", "clip": None} for i in range(obs)],
        },
        "action": {
            "size": act,
            "layout": [{"name": f"a{i}", "unit": "1"} for i in range(act)],
            "clip": clip,
            "mapping": "raw",
            "fallback": None,
        },
        "control_rate_hz": 100.0,
        "recurrent_state": [
            {"name": s, "size": n, "input": f"{s}_in", "output": f"{s}_out"} for s, n in states
        ],
        "onnx": {
            "file": path.name,
            "sha256": sha256_file(path),
            "inputs": [{"name": v.name, "shape": shape[v.name]} for v in model.graph.input],
            "outputs": [{"name": v.name, "shape": shape[v.name]} for v in model.graph.output],
        },
        "training": {},
    }
    write_card(card, path.with_suffix(".json"))
    return load_card(path)


def compare_with_ort(module, onnx_path, steps=500, seed=3, cflags=()):
    host, ort = HostPolicy(module, cflags=cflags), OnnxPolicy(onnx_path)
    obs = sequence(host.manifest["obs_size"], steps, seed)
    ref, ref_status = ort.rollout(obs)
    got, status = zip(*(host.step(o) for o in obs), strict=True)
    assert np.array_equal(np.array(status), ref_status)
    return float(np.abs(np.array(got) - ref).max())


@pytest.fixture(scope="module")
def student(tmp_path_factory):
    torch.manual_seed(0)
    return exported_module(tmp_path_factory.mktemp("student"), raptor_student(), quadrotor_student_meta())


def test_student_matches_onnxruntime_and_passes_its_self_test(student):
    assert compare_with_ort(student, student / "policy.onnx") <= 1e-5
    rc, err = HostPolicy(student).selftest()
    assert rc == 0 and err <= 1e-5


def test_generated_code_is_static_and_defines_the_api(student):
    src = (student / "policy.c").read_text()
    header = (student / "policy.h").read_text()
    assert not re.search(r"\b(malloc|calloc|realloc|free|alloca)\s*\(", src)
    obj = student / "policy.o"
    subprocess.run(["gcc", "-std=c99", "-O2", "-c", str(student / "policy.c"), "-o", str(obj)], check=True)
    undefined = subprocess.run(["nm", "-u", str(obj)], capture_output=True, text=True, check=True).stdout
    assert undefined.split() == [], f"the policy calls into libm/libc: {undefined}"
    assert "static const float" in src and "static float arena[" in src
    assert "void policy_reset(policy_state *st);" in header
    assert (
        "int policy_step(policy_state *st, const float obs[POLICY_OBS_SIZE], float act[POLICY_ACT_SIZE]);"
        in header
    )
    assert "float h[16];" in header
    manifest = json.loads((student / "module.json").read_text())
    assert manifest["state"] == [{"name": "h", "size": 16}] and "GRU" in manifest["ops"]


@pytest.mark.parametrize(
    "net",
    [
        MLPPolicy(22, 4, hidden=(64, 64, 64)),
        RecurrentPolicy(9, 3, embed=12, hidden=10, cell="lstm"),
        MLPPolicy(5, 2, hidden=(7,), activation="tanh"),
    ],
    ids=["mlp3x64", "lstm", "tanh-mlp"],
)
def test_more_policies_match_onnxruntime(tmp_path, net):
    torch.manual_seed(0)
    meta = (
        quadrotor_student_meta()
        if net.arch["obs_dim"] == 22
        else generic_meta(net.arch["obs_dim"], net.arch["act_dim"])
    )
    module = exported_module(tmp_path, net, meta)
    assert compare_with_ort(module, tmp_path / "policy.onnx") <= 1e-5


def test_fuzz_random_and_extreme_inputs_never_give_non_finite_actions(student):
    host = HostPolicy(student)
    rng = np.random.default_rng(0)
    extremes = np.array(
        [0.0, -0.0, 1e-45, -1e-38, 1e30, -1e30, 3.4e38, -3.4e38, np.inf, -np.inf, np.nan], np.float32
    )
    for k in range(3000):
        if k % 3 == 0:
            obs = rng.choice(extremes, 22)
        elif k % 3 == 1:
            obs = (rng.normal(0, 1, 22) * 10.0 ** rng.integers(-3, 38, 22)).astype(np.float32)
        else:
            obs = rng.normal(0, 1, 22).astype(np.float32)
        act, status = host.step(obs)
        assert np.all(np.isfinite(act)) and np.all(np.abs(act) <= 1.0)
        assert np.all(np.isfinite(host.state))
        if not np.all(np.isfinite(obs)):
            assert status == 1 and np.all(act == 0.0) and np.all(host.state == 0.0)


def _save(tmp_path, nodes, inputs, outputs, inits=(), name="m.onnx"):
    graph = helper.make_graph(nodes, "g", inputs, outputs, list(inits))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    path = tmp_path / name
    onnx.save(model, path)
    return path


def _f(name, *shape):
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, list(shape))


def test_unsupported_op_is_an_error_naming_the_node(tmp_path, capsys):
    w = numpy_helper.from_array(np.ones((4, 3), np.float32), "w")
    path = _save(
        tmp_path,
        [
            helper.make_node("MatMul", ["obs", "w"], ["y"], name="dense"),
            helper.make_node("Sin", ["y"], ["action"], name="weird_sine"),
        ],
        [_f("obs", 1, 4)],
        [_f("action", 1, 3)],
        [w],
    )
    card_for(path, 4, 3)
    assert main(["codegen", "c", str(path), "-o", str(tmp_path / "c")]) == 1
    err = capsys.readouterr().err
    assert "node 'weird_sine' (op Sin) is not supported" in err
    assert not (tmp_path / "c" / "module.json").exists()


def test_dynamic_shape_is_an_error_naming_the_tensor_and_node(tmp_path):
    path = _save(
        tmp_path,
        [helper.make_node("Relu", ["obs"], ["action"], name="act_fn")],
        [_f("obs", "batch", 4)],
        [_f("action", "batch", 4)],
    )
    card = card_for(path, 4, 4)
    with pytest.raises(ValueError, match=r"'obs'.*node 'act_fn'.*dynamic dimension 'batch'"):
        generate_c(onnx.load(path), card, tmp_path / "c")


def test_hand_built_graph_with_conv_concat_and_elementwise_ops(tmp_path):
    """Conv (1-D), Concat, MatMul, Add, Mul, Sub, Div, Tanh, Sigmoid, Clip, LeakyRelu, Gemm with
    broadcasting, checked against ONNX Runtime."""
    rng = np.random.default_rng(0)
    inits = [
        numpy_helper.from_array(a.astype(np.float32), n)
        for n, a in [
            ("cw", rng.normal(0, 0.5, (3, 2, 3))),
            ("cb", rng.normal(0, 0.1, 3)),
            ("mw", rng.normal(0, 0.3, (18, 5))),
            ("scale", rng.normal(1, 0.1, (1, 5))),
            ("gw", rng.normal(0, 0.3, (4, 13))),
            ("gb", rng.normal(0, 0.1, 4)),
            ("lo", np.array(-0.5)),
            ("hi", np.array(0.7)),
            ("two", np.array([2.0])),
            ("half", np.array([[0.5], [0.25]])),
        ]
    ]
    inits.append(numpy_helper.from_array(np.array([1, 2, 8], np.int64), "seq_shape"))
    inits.append(numpy_helper.from_array(np.array([1, 12], np.int64), "flat_shape"))
    nodes = [
        helper.make_node("Reshape", ["obs", "seq_shape"], ["seq"]),
        helper.make_node("Conv", ["seq", "cw", "cb"], ["conv"], pads=[1, 1], strides=[2], name="conv1d"),
        helper.make_node("Reshape", ["conv", "flat_shape"], ["flat"]),  # [1, 12]
        helper.make_node("Slice", ["obs", "s0", "s1", "ax"], ["head"]),  # [1, 6]
        helper.make_node("Concat", ["flat", "head"], ["cat"], axis=1),  # [1, 18]
        helper.make_node("MatMul", ["cat", "mw"], ["mm"]),  # [1, 5]
        helper.make_node("Mul", ["mm", "scale"], ["mul"]),
        helper.make_node("Tanh", ["mul"], ["t"]),
        helper.make_node("Sigmoid", ["mm"], ["s"]),
        helper.make_node("Sub", ["t", "s"], ["d"]),
        helper.make_node("Div", ["d", "two"], ["q"]),
        helper.make_node("Concat", ["q", "mul", "d"], ["cat2"], axis=1),  # [1, 15]
        helper.make_node("Slice", ["cat2", "z0", "z1", "ax"], ["cut"]),  # [1, 13]
        helper.make_node("Gemm", ["cut", "gw", "gb"], ["g"], transB=1),  # [1, 4]
        helper.make_node("LeakyRelu", ["g"], ["lr"], alpha=0.2),
        helper.make_node("Expand", ["lr", "e_shape"], ["ex"]),  # [2, 4]
        helper.make_node("Mul", ["ex", "half"], ["hm"]),  # broadcast [2,1]
        helper.make_node("Add", ["hm", "lr"], ["sum"]),
        helper.make_node("Clip", ["sum", "lo", "hi"], ["clipped"]),
        helper.make_node("Transpose", ["clipped"], ["tr"], perm=[1, 0]),  # [4, 2]
        helper.make_node("Reshape", ["tr", "out_shape"], ["action"]),
    ]
    for n, v in [
        ("s0", [0]),
        ("s1", [6]),
        ("ax", [1]),
        ("z0", [1]),
        ("z1", [14]),
        ("e_shape", [2, 4]),
        ("out_shape", [1, 8]),
    ]:
        inits.append(numpy_helper.from_array(np.array(v, np.int64), n))
    path = _save(tmp_path, nodes, [_f("obs", 1, 16)], [_f("action", 1, 8)], inits)
    onnx.checker.check_model(onnx.load(path), full_check=True)
    card = card_for(path, 16, 8)
    manifest = generate_c(onnx.load(path), card, tmp_path / "c")
    assert {"Conv", "Concat", "MatMul", "Gemm", "Clip", "Transpose"} <= set(manifest["ops"])
    assert compare_with_ort(tmp_path / "c", path, steps=100) <= 1e-5


def test_gru_without_linear_before_reset(tmp_path):
    """PyTorch always exports linear_before_reset=1; the ONNX default (0) must work too."""
    rng = np.random.default_rng(1)
    h, i = 5, 3
    inits = [
        numpy_helper.from_array(rng.normal(0, 0.5, s).astype(np.float32), n)
        for n, s in [("W", (1, 3 * h, i)), ("R", (1, 3 * h, h)), ("B", (1, 6 * h))]
    ]
    inits += [
        numpy_helper.from_array(np.array(v, np.int64), n)
        for n, v in [("x_shape", [1, 1, i]), ("h_shape", [1, 1, h]), ("o_shape", [1, h])]
    ]
    nodes = [
        helper.make_node("Reshape", ["obs", "x_shape"], ["x"]),
        helper.make_node("Reshape", ["h_in", "h_shape"], ["h0"]),
        helper.make_node(
            "GRU", ["x", "W", "R", "B", "", "h0"], ["y", "yh"], hidden_size=h, linear_before_reset=0
        ),
        helper.make_node("Reshape", ["y", "o_shape"], ["action"]),
        helper.make_node("Reshape", ["yh", "o_shape"], ["h_out"]),
    ]
    path = _save(
        tmp_path, nodes, [_f("obs", 1, i), _f("h_in", 1, h)], [_f("action", 1, h), _f("h_out", 1, h)], inits
    )
    card = card_for(path, i, h, states=[("h", h)])
    generate_c(onnx.load(path), card, tmp_path / "c")
    assert compare_with_ort(tmp_path / "c", path, steps=200) <= 1e-5

"""Softmax, LayerNormalization and MatMul of two computed tensors (batched, broadcast): the ops of
a transformer, a diffusion UNet's attention and a GNN, generated as C and checked against ONNX
Runtime."""

import numpy as np
import onnx
import pytest
import torch
from onnx import helper, numpy_helper
from test_codegen_c import _f, _save, card_for, compare_with_ort
from torch import nn

from robo.codegen.c_emitter import generate_c

torch.set_num_threads(1)


class SoftmaxNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.inp, self.out = nn.Linear(6, 12), nn.Linear(24, 3)

    def forward(self, obs):
        h = self.inp(obs).reshape(1, 3, 4) * 3.0
        return self.out(torch.cat([torch.softmax(h, dim=1), torch.softmax(h, dim=-1)], -1).reshape(1, 24))


class LayerNormNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.inp, self.out = nn.Linear(6, 8), nn.Linear(16, 3)
        self.last, self.both = nn.LayerNorm(4), nn.LayerNorm([2, 4], eps=1e-3)
        with torch.no_grad():  # not the identity affine of a fresh LayerNorm
            for p in (*self.last.parameters(), *self.both.parameters()):
                p.add_(torch.randn_like(p) * 0.3)

    def forward(self, obs):
        h = self.inp(obs).reshape(1, 2, 4) * 5.0 + 2.0
        return self.out(torch.cat([self.last(h), self.both(h)], -1).reshape(1, 16))


class MatMulNet(nn.Module):
    """A [2, 3, 4] x B [1, 4, 5] (batch broadcast), a constant adjacency times node features
    (a GNN's message passing), and a vector times a matrix."""

    def __init__(self):
        super().__init__()
        self.a, self.b, self.h = nn.Linear(6, 24), nn.Linear(6, 20), nn.Linear(6, 12)
        self.register_buffer("adj", torch.tensor([[0.0, 1, 1], [1, 0, 0], [0.5, 0.5, 0]]))
        self.out = nn.Linear(30 + 12 + 4, 3)

    def forward(self, obs):
        ab = torch.matmul(self.a(obs).reshape(2, 3, 4), self.b(obs).reshape(1, 4, 5))
        msg = torch.matmul(self.adj, torch.relu(self.h(obs)).reshape(3, 4))
        vec = torch.matmul(obs.reshape(6)[:3], self.h(obs).reshape(3, 4))
        return self.out(torch.cat([ab.reshape(1, 30), msg.reshape(1, 12), vec.reshape(1, 4)], -1))


class TinyAttention(nn.Module):
    """One pre-norm transformer block over the observation as 6 one-value tokens, 2 heads."""

    def __init__(self, tokens=6, d=8, heads=2, act=3):
        super().__init__()
        self.t, self.d, self.heads = tokens, d, heads
        self.embed = nn.Linear(1, d)
        self.norm1, self.norm2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.qkv, self.proj = nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.mlp = nn.Sequential(nn.Linear(d, 2 * d), nn.Tanh(), nn.Linear(2 * d, d))
        self.head = nn.Linear(tokens * d, act)

    def forward(self, obs):
        x = self.embed(obs.reshape(1, self.t, 1))
        q, k, v = self.qkv(self.norm1(x)).chunk(3, dim=-1)
        split = lambda z: z.reshape(1, self.t, self.heads, -1).transpose(1, 2)  # noqa: E731
        q, k, v = split(q), split(k), split(v)
        att = torch.softmax(q @ k.transpose(-2, -1) / (self.d // self.heads) ** 0.5, dim=-1)
        x = x + self.proj((att @ v).transpose(1, 2).reshape(1, self.t, self.d))
        x = x + self.mlp(self.norm2(x))
        return torch.tanh(self.head(x.reshape(1, -1)))


def export(tmp_path, net, obs=6, act=3):
    torch.manual_seed(0)
    path = tmp_path / "m.onnx"
    net.eval()
    torch.onnx.export(net, (torch.zeros(1, obs),), path, input_names=["obs"], output_names=["action"],
                      opset_version=17, dynamo=False)
    return path, card_for(path, obs, act)


@pytest.mark.parametrize(
    ("make", "ops"),
    [
        (SoftmaxNet, {"Softmax"}),
        (LayerNormNet, {"LayerNormalization"}),
        (MatMulNet, {"MatMul"}),
        (TinyAttention, {"Softmax", "LayerNormalization", "MatMul", "Transpose"}),
    ],
    ids=["softmax", "layernorm", "matmul", "attention"],
)
def test_torch_models_match_onnxruntime(tmp_path, make, ops):
    torch.manual_seed(0)
    path, card = export(tmp_path, make())
    manifest = generate_c(onnx.load(path), card, tmp_path / "c")
    assert ops <= set(manifest["ops"])
    assert compare_with_ort(tmp_path / "c", path, steps=200) <= 1e-5


def test_batched_matmul_broadcast_and_softmax_opset11(tmp_path):
    """Batch dims broadcast both ways ([2, 1, 3, 4] x [3, 4, 2]), a 1-D right operand, and the
    opset-11 Softmax that flattens from its axis."""
    rng = np.random.default_rng(0)
    nodes = [
        helper.make_node("Reshape", ["obs", "a_shape"], ["a"]),  # [2, 1, 3, 4]
        helper.make_node("Mul", ["obs", "k"], ["scaled"]),
        helper.make_node("Reshape", ["scaled", "b_shape"], ["b"]),  # [3, 4, 2]
        helper.make_node("MatMul", ["a", "b"], ["ab"]),  # [2, 3, 3, 2]
        helper.make_node("Softmax", ["ab"], ["sm"], axis=2),  # opset 11: over 3 x 2 values
        helper.make_node("Slice", ["obs", "s0", "s1", "ax"], ["v4"]),  # [1, 4]
        helper.make_node("Reshape", ["v4", "v_shape"], ["v"]),  # [4]
        helper.make_node("MatMul", ["a", "v"], ["av"]),  # [2, 1, 3]
        helper.make_node("Reshape", ["sm", "o_shape"], ["flat"]),
        helper.make_node("Reshape", ["av", "o2_shape"], ["flat2"]),
        helper.make_node("Concat", ["flat", "flat2"], ["action"], axis=1),
    ]
    inits = [numpy_helper.from_array(rng.normal(1, 0.5, (1, 24)).astype(np.float32), "k")]
    for n, v in [("a_shape", [2, 1, 3, 4]), ("b_shape", [3, 4, 2]), ("v_shape", [4]), ("o_shape", [1, 36]),
                 ("o2_shape", [1, 6]), ("s0", [2]), ("s1", [6]), ("ax", [1])]:
        inits.append(numpy_helper.from_array(np.array(v, np.int64), n))
    graph = helper.make_graph(nodes, "g", [_f("obs", 1, 24)], [_f("action", 1, 42)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 11)])
    path = tmp_path / "m.onnx"
    onnx.save(model, path)
    card = card_for(path, 24, 42)
    generate_c(onnx.load(path), card, tmp_path / "c")
    assert compare_with_ort(tmp_path / "c", path, steps=100) <= 1e-5


def test_layer_norm_statistics_outputs_are_refused(tmp_path):
    nodes = [helper.make_node("LayerNormalization", ["obs", "s"], ["action", "mean"], name="ln")]
    s = numpy_helper.from_array(np.ones(4, np.float32), "s")
    path = _save(tmp_path, nodes, [_f("obs", 1, 4)], [_f("action", 1, 4), _f("mean", 1, 1)], [s])
    model = onnx.load(path)
    card = card_for(path, 4, 4)
    with pytest.raises(ValueError, match=r"node 'ln' \(op LayerNormalization\).*Mean and InvStdDev"):
        generate_c(model, card, tmp_path / "c")

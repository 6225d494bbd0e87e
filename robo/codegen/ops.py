"""One handler per ONNX op: how its outputs are stored (own buffer or a view of another tensor) and
the C that computes them. Handlers see static shapes and constant values (robo/codegen/graph.py).

Weights are re-laid out at generation time so that every matrix-vector product is a row-major
``robo_dense`` call (W[out][in], contiguous inner loop).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import onnx
from onnx import helper

from robo.codegen.c_literal import c_float
from robo.codegen.graph import StaticGraph, eval_node, node_label


class Ctx(Protocol):
    def ref(self, name: str) -> str: ...
    def scratch(self) -> str: ...
    def const(self, array: np.ndarray, hint: str) -> str: ...
    def index_table(self, idx: np.ndarray) -> str: ...
    def dense(self, w: str, b: str, x: str, y: str, rows: int, cols: int) -> str: ...


@dataclass
class Plan:
    allocs: list[str] = field(default_factory=list)  # outputs with their own buffer
    views: dict[str, tuple[str, int]] = field(default_factory=dict)  # output -> (tensor, offset)
    scratch: int = 0  # floats of temporary memory
    emit: Callable[[Ctx], list[str]] | None = None


def attrs(node: onnx.NodeProto) -> dict[str, Any]:
    out = {}
    for a in node.attribute:
        v = helper.get_attribute_value(a)
        out[a.name] = v.decode() if isinstance(v, bytes) else v
    return out


def size(shape: tuple[int, ...]) -> int:
    return int(np.prod(shape, dtype=np.int64)) if shape else 1


def _need_const(g: StaticGraph, node: onnx.NodeProto, i: int, what: str) -> np.ndarray:
    name = node.input[i] if i < len(node.input) else ""
    if not name:
        raise ValueError(f"{node_label(node)}: missing {what}")
    if name not in g.consts:
        raise ValueError(f"{node_label(node)}: {what} {name!r} must be a constant (weights), not computed")
    return g.consts[name].astype(np.float32)


def _opt_const(g: StaticGraph, node: onnx.NodeProto, i: int) -> np.ndarray | None:
    name = node.input[i] if i < len(node.input) else ""
    if not name:
        return None
    if name not in g.consts:
        raise ValueError(f"{node_label(node)}: input {i} ({name!r}) must be a constant")
    return g.consts[name]


# --- element-wise ----------------------------------------------------------------------------

UNARY = {
    "Relu": "v > 0.0f ? v : 0.0f",
    "Tanh": "robo_tanh(v)",
    "Sigmoid": "robo_sigmoid(v)",
    "Neg": "-v",
    "Abs": "v < 0.0f ? -v : v",
    "Exp": "robo_expf(v)",
}


def unary(node: onnx.NodeProto, g: StaticGraph) -> Plan:
    x, y = node.input[0], node.output[0]
    n = size(g.shapes[y])
    a = attrs(node)
    if node.op_type == "LeakyRelu":
        expr = f"v > 0.0f ? v : {c_float(a.get('alpha', 0.01))} * v"
    elif node.op_type == "Clip":
        lo = _opt_const(g, node, 1) if len(node.input) > 1 else a.get("min")
        hi = _opt_const(g, node, 2) if len(node.input) > 2 else a.get("max")
        parts = []
        if lo is not None:
            parts.append(f"if (v < {c_float(float(np.asarray(lo)))}) v = {c_float(float(np.asarray(lo)))};")
        if hi is not None:
            parts.append(f"if (v > {c_float(float(np.asarray(hi)))}) v = {c_float(float(np.asarray(hi)))};")
        body = " ".join(parts)

        def emit_clip(c: Ctx) -> list[str]:
            return [
                f"{{ int i; const float *x = {c.ref(x)}; float *y = {c.ref(y)};",
                f"  for (i = 0; i < {n}; ++i) {{ float v = x[i]; {body} y[i] = v; }} }}",
            ]

        return Plan(allocs=[y], emit=emit_clip)
    else:
        expr = UNARY[node.op_type]

    def emit(c: Ctx) -> list[str]:
        return [
            f"{{ int i; const float *x = {c.ref(x)}; float *y = {c.ref(y)};",
            f"  for (i = 0; i < {n}; ++i) {{ float v = x[i]; y[i] = {expr}; }} }}",
        ]

    return Plan(allocs=[y], emit=emit)


BINARY = {"Add": "+", "Sub": "-", "Mul": "*", "Div": "/"}


def _bcast_strides(shape: tuple[int, ...], out: tuple[int, ...]) -> list[int]:
    s = (1,) * (len(out) - len(shape)) + tuple(shape)
    strides, acc = [0] * len(out), 1
    for i in reversed(range(len(out))):
        strides[i] = 0 if s[i] == 1 and out[i] != 1 else acc
        acc *= s[i]
    return strides


def _operand(g: StaticGraph, c: Ctx, name: str, hint: str) -> str:
    return c.const(g.consts[name].astype(np.float32), hint) if name in g.consts else c.ref(name)


def broadcast_loop(
    out_shape: tuple[int, ...],
    operands: list[tuple[str, tuple[int, ...]]],
    body: Callable[[str, list[str]], str],
) -> list[str]:
    """Loops over ``out_shape`` with numpy broadcasting; ``body(out_index, operand_indices)`` is one
    C statement."""
    n = size(out_shape)
    if all(size(s) == n or size(s) == 1 for _, s in operands):
        idx = ["i" if size(s) == n else "0" for _, s in operands]
        return [f"{{ int i; for (i = 0; i < {n}; ++i) {body('i', idx)} }}"]
    dims = list(out_shape)
    names = [f"i{k}" for k in range(len(dims))]
    lines = ["{ int o = 0; int " + ", ".join(names) + ";"]
    for k, d in enumerate(dims):
        lines.append("  " * (k + 1) + f"for ({names[k]} = 0; {names[k]} < {d}; ++{names[k]})")
    idx = []
    for _, s in operands:
        st = _bcast_strides(s, out_shape)
        terms = [f"{names[k]} * {st[k]}" for k in range(len(dims)) if st[k]]
        idx.append(" + ".join(terms) or "0")
    lines.append("  " * (len(dims) + 1) + "{ " + body("o", idx) + " ++o; }")
    lines.append("}")
    return lines


def binary(node: onnx.NodeProto, g: StaticGraph) -> Plan:
    a, b = node.input[0], node.input[1]
    y = node.output[0]
    op = BINARY[node.op_type]

    def emit(c: Ctx) -> list[str]:
        pa, pb = _operand(g, c, a, "K"), _operand(g, c, b, "K")
        ops = [(pa, g.shapes[a]), (pb, g.shapes[b])]
        body = lambda o, ix: f"{c.ref(y)}[{o}] = {pa}[{ix[0]}] {op} {pb}[{ix[1]}];"  # noqa: E731
        return [f"/* {y} */", *broadcast_loop(g.shapes[y], ops, body)]

    return Plan(allocs=[y], emit=emit)


# --- matrix products -------------------------------------------------------------------------


def gemm(node: onnx.NodeProto, g: StaticGraph) -> Plan:
    a_name, b_name = node.input[0], node.input[1]
    c_name = node.input[2] if len(node.input) > 2 and node.input[2] else ""
    y = node.output[0]
    at = attrs(node)
    alpha, beta = float(at.get("alpha", 1.0)), float(at.get("beta", 1.0))
    trans_a, trans_b = int(at.get("transA", 0)), int(at.get("transB", 0))
    m, n = g.shapes[y]
    if a_name in g.consts or b_name not in g.consts or trans_a:
        return _generic_matmul(node, g, a_name, b_name, trans_a, trans_b, alpha, c_name, beta)
    bmat = g.consts[b_name].astype(np.float32)
    w = (bmat if trans_b else bmat.T) * np.float32(alpha)  # [N, K] row-major
    k = w.shape[1]
    bias = None
    if c_name and c_name in g.consts:
        bias = (np.broadcast_to(g.consts[c_name].astype(np.float32), (m, n)) * np.float32(beta)).copy()

    def emit(c: Ctx) -> list[str]:
        wn = c.const(np.ascontiguousarray(w, np.float32), "W")
        bn = c.const(bias, "B") if bias is not None else None
        lines = [f"/* Gemm {node.name}: [{m}x{k}] x [{k}x{n}] */"]
        for r in range(m):
            b_arg = f"{bn} + {r * n}" if bn else "0"
            lines.append(c.dense(wn, b_arg, f"{c.ref(a_name)} + {r * k}", f"{c.ref(y)} + {r * n}", n, k))
        if c_name and bias is None:
            lines += broadcast_loop(
                (m, n),
                [(c.ref(c_name), g.shapes[c_name])],
                lambda o, ix: f"{c.ref(y)}[{o}] += {c_float(beta)} * {c.ref(c_name)}[{ix[0]}];",
            )
        return lines

    return Plan(allocs=[y], emit=emit)


def _batch_offsets(batch: tuple[int, ...], own: tuple[int, ...], stride: int) -> str | np.ndarray:
    """Where each of the broadcast ``batch`` matrices of one operand starts: a C expression in
    ``bt`` when the offsets are regular, else a table."""
    offs = np.broadcast_to(np.arange(size(own)).reshape(own), batch).ravel() * stride
    if np.array_equal(offs, np.arange(offs.size) * stride):
        return f"bt * {stride}" if offs.size > 1 else "0"
    if not offs.any():
        return "0"
    return offs


def _generic_matmul(node, g, a_name, b_name, trans_a, trans_b, alpha, c_name, beta) -> Plan:
    """Both operands computed, or A constant, or A transposed: a triple loop per matrix, over
    numpy-broadcast batch dimensions (MatMul); a 1-D operand is a row (A) or a column (B)."""
    y = node.output[0]
    sa, sb = g.shapes[a_name], g.shapes[b_name]
    if not sa or not sb:
        raise ValueError(f"{node_label(node)}: scalar operands are not supported")
    sa = (1, *sa) if len(sa) == 1 else sa
    sb = (*sb, 1) if len(sb) == 1 else sb
    ra, ca, rb, cb = sa[-2], sa[-1], sb[-2], sb[-1]
    m, k = (ca, ra) if trans_a else (ra, ca)
    n = rb if trans_b else cb
    batch = tuple(np.broadcast_shapes(sa[:-2], sb[:-2]))
    nb = size(batch)
    if nb * m * n != size(g.shapes[y]):
        raise ValueError(f"{node_label(node)}: output shape {g.shapes[y]} does not match the operands")
    off_a, off_b = _batch_offsets(batch, sa[:-2], ra * ca), _batch_offsets(batch, sb[:-2], rb * cb)
    ia = f"kk * {ca} + r" if trans_a else f"r * {ca} + kk"
    ib = f"col * {cb} + kk" if trans_b else f"kk * {cb} + col"

    def emit(c: Ctx) -> list[str]:
        pa, pb = _operand(g, c, a_name, "A"), _operand(g, c, b_name, "B")
        oa = off_a if isinstance(off_a, str) else f"{c.index_table(off_a)}[bt]"
        ob = off_b if isinstance(off_b, str) else f"{c.index_table(off_b)}[bt]"
        lines = [
            f"/* {node.op_type} {node.name} (generic): {nb} x [{m}x{k}] x [{k}x{n}] */",
            f"{{ int bt, r, col, kk; for (bt = 0; bt < {nb}; ++bt) {{",
            f"  const float *a = {pa} + {oa}, *b = {pb} + {ob}; float *y = {c.ref(y)} + bt * {m * n};",
            f"  for (r = 0; r < {m}; ++r) for (col = 0; col < {n}; ++col) {{",
            "    float acc = 0.0f;",
            f"    for (kk = 0; kk < {k}; ++kk) acc += a[{ia}] * b[{ib}];",
            f"    y[r * {n} + col] = {c_float(alpha)} * acc; }} }} }}",
        ]
        if c_name:
            pc = _operand(g, c, c_name, "C")
            lines += broadcast_loop(
                (m, n),
                [(pc, g.shapes[c_name])],
                lambda o, ix: f"{c.ref(y)}[{o}] += {c_float(beta)} * {pc}[{ix[0]}];",
            )
        return lines

    return Plan(allocs=[y], emit=emit)


def matmul(node: onnx.NodeProto, g: StaticGraph) -> Plan:
    a_name, b_name = node.input[0], node.input[1]
    y = node.output[0]
    if b_name not in g.consts or a_name in g.consts or g.consts[b_name].ndim != 2:
        return _generic_matmul(node, g, a_name, b_name, 0, 0, 1.0, "", 1.0)
    bmat = g.consts[b_name].astype(np.float32)
    k, n = bmat.shape
    rows = size(g.shapes[a_name]) // k
    w = np.ascontiguousarray(bmat.T)

    def emit(c: Ctx) -> list[str]:
        wn = c.const(w, "W")
        return [
            f"/* MatMul {node.name} */",
            f"{{ int r; for (r = 0; r < {rows}; ++r) "
            + c.dense(wn, "0", f"{c.ref(a_name)} + r * {k}", f"{c.ref(y)} + r * {n}", n, k)
            + " }",
        ]

    return Plan(allocs=[y], emit=emit)


# --- normalisation ---------------------------------------------------------------------------


def softmax(node: onnx.NodeProto, g: StaticGraph) -> Plan:
    """Softmax along one axis (opset 13); before opset 13, over all axes from ``axis`` on. The
    maximum is subtracted first, so no exponent overflows."""
    x, y = node.input[0], node.output[0]
    shape = g.shapes[x]
    if not shape:
        raise ValueError(f"{node_label(node)}: a scalar input is not supported")
    axis = int(attrs(node).get("axis", -1 if g.opset >= 13 else 1)) % len(shape)
    outer = size(shape[:axis])
    n, inner = (shape[axis], size(shape[axis + 1 :])) if g.opset >= 13 else (size(shape[axis:]), 1)

    def emit(c: Ctx) -> list[str]:
        return [
            f"/* Softmax {node.name}: {outer} x {n} values, stride {inner} */",
            "{ int o, q, j;",
            f"  for (o = 0; o < {outer}; ++o) for (q = 0; q < {inner}; ++q) {{",
            f"    const float *x = {c.ref(x)} + o * {n * inner} + q;",
            f"    float *y = {c.ref(y)} + o * {n * inner} + q;",
            "    float top = x[0], sum = 0.0f;",
            f"    for (j = 1; j < {n}; ++j) if (x[j * {inner}] > top) top = x[j * {inner}];",
            f"    for (j = 0; j < {n}; ++j) {{",
            f"      float e = robo_expf(x[j * {inner}] - top); y[j * {inner}] = e; sum += e; }}",
            "    sum = 1.0f / sum;",
            f"    for (j = 0; j < {n}; ++j) y[j * {inner}] *= sum;",
            "  }",
            "}",
        ]

    return Plan(allocs=[y], emit=emit)


def layer_norm(node: onnx.NodeProto, g: StaticGraph) -> Plan:
    """LayerNormalization (opset 17) over the axes from ``axis`` on, with constant scale and bias."""
    x, y = node.input[0], node.output[0]
    if any(node.output[1:]):
        raise ValueError(f"{node_label(node)}: the Mean and InvStdDev outputs are not supported")
    shape = g.shapes[x]
    at = attrs(node)
    axis = int(at.get("axis", -1)) % len(shape)
    eps = float(at.get("epsilon", 1e-5))
    outer, n = size(shape[:axis]), size(shape[axis:])
    scale = np.broadcast_to(_need_const(g, node, 1, "scale"), shape[axis:]).ravel()
    bias = _opt_const(g, node, 2)
    bias = np.zeros(n, np.float32) if bias is None else np.broadcast_to(bias, shape[axis:]).ravel()

    def emit(c: Ctx) -> list[str]:
        sn, bn = c.const(scale, "S"), c.const(bias, "B")
        inv_n = c_float(1.0 / n)
        return [
            f"/* LayerNormalization {node.name}: {outer} x {n}, epsilon {eps:g} */",
            "{ int o, j;",
            f"  for (o = 0; o < {outer}; ++o) {{",
            f"    const float *x = {c.ref(x)} + o * {n}; float *y = {c.ref(y)} + o * {n};",
            "    float mean = 0.0f, var = 0.0f, inv;",
            f"    for (j = 0; j < {n}; ++j) mean += x[j];",
            f"    mean *= {inv_n};",
            f"    for (j = 0; j < {n}; ++j) {{ float d = x[j] - mean; var += d * d; }}",
            f"    inv = robo_rsqrt(var * {inv_n} + {c_float(eps)});",
            f"    for (j = 0; j < {n}; ++j) y[j] = (x[j] - mean) * inv * {sn}[j] + {bn}[j];",
            "  }",
            "}",
        ]

    return Plan(allocs=[y], emit=emit)


# --- recurrent cells -------------------------------------------------------------------------


def _rnn_checks(node: onnx.NodeProto, g: StaticGraph, acts: list[str]) -> tuple[int, int, int, int]:
    at = attrs(node)
    if at.get("direction", "forward") != "forward":
        raise ValueError(f"{node_label(node)}: only direction=forward is supported")
    if int(at.get("layout", 0)) != 0:
        raise ValueError(f"{node_label(node)}: only layout=0 (sequence first) is supported")
    if "clip" in at:
        raise ValueError(f"{node_label(node)}: the clip attribute is not supported")
    if "activations" in at and [s.lower() for s in at["activations"]] != acts:
        raise ValueError(f"{node_label(node)}: only the default activations {acts} are supported")
    if int(at.get("input_forget", 0)):
        raise ValueError(f"{node_label(node)}: input_forget is not supported")
    t, b, i = g.shapes[node.input[0]]
    h = int(at["hidden_size"])
    if len(node.input) > 4 and node.input[4]:
        lens = _opt_const(g, node, 4)
        if lens is None or not np.all(lens == t):
            raise ValueError(
                f"{node_label(node)}: sequence_lens must be constant and equal to the sequence length"
            )
    return t, b, i, h


def _rnn_outputs(c: Ctx, y: str, finals: list[tuple[str, str]], batch: int, h: int) -> list[str]:
    """Closes a cell's time loop, copying each step's hidden state ``hc`` into Y, and its batch
    loop, copying the final states (output, C variable) that the graph uses."""
    lines = [f"      for (j = 0; j < {h}; ++j) {c.ref(y)}[(t * {batch} + b) * {h} + j] = hc[j];"] if y else []
    lines.append("    }")
    for out, var in finals:
        if out:
            lines.append(f"    for (j = 0; j < {h}; ++j) {c.ref(out)}[b * {h} + j] = {var}[j];")
    return [*lines, "  }", "}"]


def gru(node: onnx.NodeProto, g: StaticGraph) -> Plan:
    t, batch, i, h = _rnn_checks(node, g, ["sigmoid", "tanh"])
    lbr = int(attrs(node).get("linear_before_reset", 0))
    w = _need_const(g, node, 1, "weights W")[0]  # [3H, I], gates z, r, h
    r = _need_const(g, node, 2, "recurrence R")[0]  # [3H, H]
    bias = _opt_const(g, node, 3)
    bias = np.zeros(6 * h, np.float32) if bias is None else bias.astype(np.float32)[0]
    x, h0 = node.input[0], (node.input[5] if len(node.input) > 5 else "")
    outs = [o for o in node.output if o]
    y = node.output[0] if len(node.output) > 0 else ""
    yh = node.output[1] if len(node.output) > 1 else ""

    def emit(c: Ctx) -> list[str]:
        wn, rn = c.const(w, "W"), c.const(r, "R")
        wb, rb = c.const(bias[: 3 * h], "B"), c.const(bias[3 * h :], "B")
        s = c.scratch()
        init = (
            f"for (j = 0; j < {h}; ++j) hc[j] = {c.ref(h0)}[b * {h} + j];"
            if h0
            else f"for (j = 0; j < {h}; ++j) hc[j] = 0.0f;"
        )
        lines = [
            f"/* GRU {node.name}: input {i}, hidden {h}, linear_before_reset={lbr} (gates z, r, h) */",
            f"{{ float *gx = {s}, *gh = {s} + {3 * h}, *hc = {s} + {6 * h}, *rh = {s} + {7 * h};",
            "  int b, t, j; (void)rh;",
            f"  for (b = 0; b < {batch}; ++b) {{",
            f"    {init}",
            f"    for (t = 0; t < {t}; ++t) {{",
            "      " + c.dense(wn, wb, f"{c.ref(x)} + (t * {batch} + b) * {i}", "gx", 3 * h, i),
        ]
        if lbr:
            lines += [
                "      " + c.dense(rn, rb, "hc", "gh", 3 * h, h),
                f"      for (j = 0; j < {h}; ++j) {{",
                "        float z = robo_sigmoid(gx[j] + gh[j]);",
                f"        float rr = robo_sigmoid(gx[{h} + j] + gh[{h} + j]);",
                f"        float n = robo_tanh(gx[{2 * h} + j] + rr * gh[{2 * h} + j]);",
                "        hc[j] = n + z * (hc[j] - n);",
                "      }",
            ]
        else:
            lines += [
                "      " + c.dense(rn, rb, "hc", "gh", 2 * h, h),
                f"      for (j = 0; j < {h}; ++j) {{ gh[j] = robo_sigmoid(gx[j] + gh[j]);",
                f"        rh[j] = robo_sigmoid(gx[{h} + j] + gh[{h} + j]) * hc[j]; }}",
                "      " + c.dense(f"{rn} + {2 * h * h}", f"{rb} + {2 * h}", "rh", f"gh + {2 * h}", h, h),
                f"      for (j = 0; j < {h}; ++j) {{ float n = robo_tanh(gx[{2 * h} + j] + gh[{2 * h} + j]);",
                "        hc[j] = n + gh[j] * (hc[j] - n); }",
            ]
        return lines + _rnn_outputs(c, y, [(yh, "hc")], batch, h)

    return Plan(allocs=outs, scratch=8 * h, emit=emit)


def lstm(node: onnx.NodeProto, g: StaticGraph) -> Plan:
    t, batch, i, h = _rnn_checks(node, g, ["sigmoid", "tanh", "tanh"])
    w = _need_const(g, node, 1, "weights W")[0]  # [4H, I], gates i, o, f, c
    r = _need_const(g, node, 2, "recurrence R")[0]
    bias = _opt_const(g, node, 3)
    bias = np.zeros(8 * h, np.float32) if bias is None else bias.astype(np.float32)[0]
    peep = _opt_const(g, node, 7)
    peep = np.zeros(3 * h, np.float32) if peep is None else peep.astype(np.float32)[0]
    use_peep = bool(np.any(peep))
    x = node.input[0]
    h0 = node.input[5] if len(node.input) > 5 else ""
    c0 = node.input[6] if len(node.input) > 6 else ""
    outs = [o for o in node.output if o]
    y, yh, yc = [*node.output, "", "", ""][:3]

    def emit(c: Ctx) -> list[str]:
        wn, rn = c.const(w, "W"), c.const(r, "R")
        bn = c.const(bias[: 4 * h] + bias[4 * h :], "B")
        pn = c.const(peep, "P") if use_peep else None
        s = c.scratch()
        pi = f" + {pn}[j] * cc[j]" if pn else ""
        pf = f" + {pn}[{2 * h} + j] * cc[j]" if pn else ""
        po = f" + {pn}[{h} + j] * cc[j]" if pn else ""
        init_h = f"{c.ref(h0)}[b * {h} + j]" if h0 else "0.0f"
        init_c = f"{c.ref(c0)}[b * {h} + j]" if c0 else "0.0f"
        lines = [
            f"/* LSTM {node.name}: input {i}, hidden {h} (gates i, o, f, c) */",
            f"{{ float *gx = {s}, *gh = {s} + {4 * h}, *hc = {s} + {8 * h}, *cc = {s} + {9 * h};",
            "  int b, t, j;",
            f"  for (b = 0; b < {batch}; ++b) {{",
            f"    for (j = 0; j < {h}; ++j) {{ hc[j] = {init_h}; cc[j] = {init_c}; }}",
            f"    for (t = 0; t < {t}; ++t) {{",
            "      " + c.dense(wn, bn, f"{c.ref(x)} + (t * {batch} + b) * {i}", "gx", 4 * h, i),
            "      " + c.dense(rn, "0", "hc", "gh", 4 * h, h),
            f"      for (j = 0; j < {h}; ++j) {{",
            f"        float ig = robo_sigmoid(gx[j] + gh[j]{pi});",
            f"        float fg = robo_sigmoid(gx[{2 * h} + j] + gh[{2 * h} + j]{pf});",
            f"        float cg = robo_tanh(gx[{3 * h} + j] + gh[{3 * h} + j]);",
            "        float og;",
            "        cc[j] = fg * cc[j] + ig * cg;",
            f"        og = robo_sigmoid(gx[{h} + j] + gh[{h} + j]{po});",
            "        hc[j] = og * robo_tanh(cc[j]);",
            "      }",
        ]
        return lines + _rnn_outputs(c, y, [(yh, "hc"), (yc, "cc")], batch, h)

    return Plan(allocs=outs, scratch=10 * h, emit=emit)


# --- convolution -----------------------------------------------------------------------------


def conv(node: onnx.NodeProto, g: StaticGraph) -> Plan:
    x, y = node.input[0], node.output[0]
    sx = g.shapes[x]
    if len(sx) != 3:
        raise ValueError(f"{node_label(node)}: only 1-D Conv (input [N, C, L]) is supported, got {sx}")
    w = _need_const(g, node, 1, "weights W")  # [M, C/group, K]
    bias = _opt_const(g, node, 2)
    at = attrs(node)
    nb, ch, length = sx
    m, cg, k = w.shape
    group = int(at.get("group", 1))
    stride = int(at.get("strides", [1])[0])
    dil = int(at.get("dilations", [1])[0])
    _, _, lout = g.shapes[y]
    pads = list(at.get("pads", [0, 0]))
    auto = at.get("auto_pad", "NOTSET")
    if auto in ("SAME_UPPER", "SAME_LOWER"):
        total = max(0, (lout - 1) * stride + (k - 1) * dil + 1 - length)
        pads = [total // 2, total - total // 2] if auto == "SAME_UPPER" else [total - total // 2, total // 2]
    elif auto == "VALID":
        pads = [0, 0]
    pb = pads[0]
    bias = np.zeros(m, np.float32) if bias is None else bias.astype(np.float32)
    per_group = m // group

    def emit(c: Ctx) -> list[str]:
        wn, bn = c.const(w, "W"), c.const(bias, "B")
        return [
            f"/* Conv1d {node.name}: {ch}->{m} channels, kernel {k}, stride {stride}, dilation {dil} */",
            "{ int nn, mm, lo, cc, kk;",
            f"  const float *x = {c.ref(x)}; float *y = {c.ref(y)};",
            f"  for (nn = 0; nn < {nb}; ++nn) for (mm = 0; mm < {m}; ++mm) {{",
            f"    int gbase = (mm / {per_group}) * {cg};",
            f"    for (lo = 0; lo < {lout}; ++lo) {{",
            f"      float acc = {bn}[mm];",
            f"      for (cc = 0; cc < {cg}; ++cc) for (kk = 0; kk < {k}; ++kk) {{",
            f"        int li = lo * {stride} - {pb} + kk * {dil};",
            f"        if (li >= 0 && li < {length}) acc += {wn}[(mm * {cg} + cc) * {k} + kk]"
            f" * x[(nn * {ch} + gbase + cc) * {length} + li];",
            "      }",
            f"      y[(nn * {m} + mm) * {lout} + lo] = acc;",
            "    }",
            "  }",
            "}",
        ]

    return Plan(allocs=[y], emit=emit)


# --- data movement ---------------------------------------------------------------------------


def concat(node: onnx.NodeProto, g: StaticGraph) -> Plan:
    y = node.output[0]
    out = g.shapes[y]
    axis = int(attrs(node)["axis"]) % len(out)
    outer = size(out[:axis])
    inner = size(out[axis + 1 :])

    def emit(c: Ctx) -> list[str]:
        lines = [
            f"/* Concat {node.name} axis {axis} */",
            "{ int o, j; float *dst;",
            f"  for (o = 0; o < {outer}; ++o) {{ dst = {c.ref(y)} + o * {out[axis] * inner};",
        ]
        for name in node.input:
            chunk = g.shapes[name][axis] * inner
            src = _operand(g, c, name, "K")
            lines.append(f"    for (j = 0; j < {chunk}; ++j) *dst++ = {src}[o * {chunk} + j];")
        lines += ["  }", "}"]
        return lines

    return Plan(allocs=[y], emit=emit)


MOVEMENT = {
    "Identity",
    "Dropout",
    "Reshape",
    "Flatten",
    "Squeeze",
    "Unsqueeze",
    "Transpose",
    "Gather",
    "Slice",
    "Expand",
    "Tile",
    "Split",
}


def movement(node: onnx.NodeProto, g: StaticGraph) -> Plan:
    """Pure data movement: derive, at generation time, which source element each output element is,
    by running the op on the source's element indices. Contiguous ranges become views (no code)."""
    data = node.input[0]
    if node.op_type == "Dropout" and len(node.output) > 1 and node.output[1]:
        raise ValueError(f"{node_label(node)}: the Dropout mask output is not supported")
    feeds = {data: np.arange(size(g.shapes[data]), dtype=np.float64).reshape(g.shapes[data])}
    for name in node.input[1:]:
        if not name:
            continue
        if name not in g.consts:
            raise ValueError(f"{node_label(node)}: input {name!r} must be a constant (indices/shape/axes)")
        feeds[name] = np.asarray(g.consts[name])
    outputs = [o for o in node.output if o][: 1 if node.op_type == "Dropout" else None]
    maps = eval_node(node, feeds, g.opset)
    plan = Plan()
    tables: dict[str, np.ndarray] = {}
    for name, idx in zip(outputs, maps, strict=False):
        idx = np.asarray(idx).astype(np.int64).ravel()
        if idx.size and np.array_equal(idx, np.arange(idx[0], idx[0] + idx.size)):
            plan.views[name] = (data, int(idx[0]))
        else:
            plan.allocs.append(name)
            tables[name] = idx

    def emit(c: Ctx) -> list[str]:
        lines = []
        for name, idx in tables.items():
            tn = c.index_table(idx)
            lines.append(
                f"/* {node.op_type} {node.name} */ {{ int i; for (i = 0; i < {idx.size}; ++i) "
                f"{c.ref(name)}[i] = {c.ref(data)}[{tn}[i]]; }}"
            )
        return lines

    plan.emit = emit if tables else None
    return plan


HANDLERS: dict[str, Callable[[onnx.NodeProto, StaticGraph], Plan]] = {
    **{op: unary for op in (*UNARY, "LeakyRelu", "Clip")},
    **{op: binary for op in BINARY},
    "Gemm": gemm,
    "MatMul": matmul,
    "Softmax": softmax,
    "LayerNormalization": layer_norm,
    "GRU": gru,
    "LSTM": lstm,
    "Conv": conv,
    "Concat": concat,
    **{op: movement for op in MOVEMENT},
}

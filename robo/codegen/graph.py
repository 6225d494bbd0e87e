"""Read an ONNX graph into static facts the C emitter needs: every tensor's shape, which tensors are
constants (and their values), and whether every remaining op can be generated.

Shapes and constant values come from one run of ``onnx.reference`` (the ONNX reference
implementation) on zero inputs: with fixed input shapes every tensor's shape is fixed, and anything
that does not depend on the inputs' values (weights, Shape/Constant chains) is a constant.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator

# Ops whose output depends only on input *shapes*, which are static here.
SHAPE_ONLY = {"Shape", "Size"}


@dataclass
class StaticGraph:
    model: onnx.ModelProto
    opset: int
    nodes: list[onnx.NodeProto]  # the nodes that become C, in order
    shapes: dict[str, tuple[int, ...]]
    consts: dict[str, np.ndarray]
    inputs: list[str]
    outputs: list[str]
    producer: dict[str, onnx.NodeProto] = field(default_factory=dict)


def node_label(node: onnx.NodeProto) -> str:
    return f"node {node.name or '(unnamed)'!r} (op {node.op_type})"


def _check_static_inputs(graph: onnx.GraphProto, init_names: set[str]) -> None:
    consumers: dict[str, onnx.NodeProto] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, node)
    for vi in list(graph.input) + list(graph.output):
        if vi.name in init_names:
            continue
        user = consumers.get(vi.name)
        where = f", consumed by {node_label(user)}" if user is not None else ""
        tt = vi.type.tensor_type
        if tt.elem_type != TensorProto.FLOAT:
            raise ValueError(
                f"tensor {vi.name!r}{where}: only float32 inputs/outputs are supported, "
                f"got {TensorProto.DataType.Name(tt.elem_type)}"
            )
        if not tt.HasField("shape"):
            raise ValueError(f"tensor {vi.name!r}{where} has no shape; export with fixed shapes")
        for d in tt.shape.dim:
            if not d.HasField("dim_value") or d.dim_value <= 0:
                label = d.dim_param or "unknown"
                raise ValueError(
                    f"tensor {vi.name!r}{where} has a dynamic dimension {label!r}; "
                    "the C code needs fixed shapes (export with batch 1, no dynamic axes)"
                )


def load_static_graph(model: onnx.ModelProto, supported: set[str]) -> StaticGraph:
    """Check the graph is static and generatable; raise ValueError naming the first offending node."""
    graph = model.graph
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    init = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    _check_static_inputs(graph, set(init))
    inputs = [vi.name for vi in graph.input if vi.name not in init]
    outputs = [vi.name for vi in graph.output]

    const_names = set(init)
    compute: list[onnx.NodeProto] = []
    producer: dict[str, onnx.NodeProto] = {}
    for node in graph.node:
        if node.domain not in ("", "ai.onnx"):
            raise ValueError(f"{node_label(node)}: custom domain {node.domain!r} is not supported")
        if node.op_type in ("Loop", "If", "Scan"):
            raise ValueError(
                f"{node_label(node)}: control flow is not supported; export a straight-line graph"
            )
        for o in node.output:
            producer[o] = node
        if (
            node.op_type in SHAPE_ONLY
            or node.op_type == "Constant"
            or all((not i) or i in const_names for i in node.input)
        ):
            const_names.update(o for o in node.output if o)
            continue
        if node.op_type not in supported:
            raise ValueError(
                f"{node_label(node)} is not supported by robo codegen "
                f"(supported: {', '.join(sorted(supported))})"
            )
        compute.append(node)

    feeds = {}
    for vi in graph.input:
        if vi.name in init:
            continue
        dims = tuple(d.dim_value for d in vi.type.tensor_type.shape.dim)
        feeds[vi.name] = np.zeros(dims, np.float32)
    try:
        values = ReferenceEvaluator(model).run(None, feeds, intermediate=True)
    except Exception as exc:
        raise ValueError(f"the ONNX reference implementation cannot run this graph: {exc}") from None
    shapes = {k: tuple(int(s) for s in np.shape(v)) for k, v in values.items() if k}
    consts = {k: np.asarray(values[k]) for k in const_names if k in values}
    for node in compute:
        for name in node.output:
            if name and name not in shapes:
                raise ValueError(f"{node_label(node)}: output {name!r} has no static shape")
    for name in outputs:
        if name in consts:
            raise ValueError(f"graph output {name!r} is a constant; nothing to generate")
    return StaticGraph(model, opset, compute, shapes, consts, inputs, outputs, producer)


def eval_node(node: onnx.NodeProto, feeds: dict[str, np.ndarray], opset: int) -> list[np.ndarray]:
    """Run one node through the reference implementation (used to derive index maps)."""
    vis = [
        helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(feeds[n].dtype), feeds[n].shape)
        for n in node.input
        if n
    ]
    outs = [helper.make_tensor_value_info(o, TensorProto.UNDEFINED, None) for o in node.output if o]
    g = helper.make_graph([node], "single", vis, outs)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    return ReferenceEvaluator(m).run(None, {k: v for k, v in feeds.items() if k in node.input})

"""ONNX policy + card -> C99 module: ``<name>.h``, ``<name>.c`` (the policy), ``<name>_selftest.c``
(golden sequence and self-test) and ``module.json`` (what the firmware build needs).

The generated code has static const weights, one static arena whose size and offsets are fixed at
generation time (tensors share it when their lifetimes do not overlap), no heap, no recursion, no
VLAs, and no libm call (``<math.h>`` only for INFINITY/NAN, see robo/codegen/c_literal.py).
``<name>_step`` clips observations and clamps actions as the card says; a non-finite observation
(or a non-finite result) resets the state and outputs the card's fallback action, and the call
returns 1 instead of 0. The code stays correct under -ffast-math, -Ofast and -fassociative-math:
nothing relies on float rounding or on IEEE NaN comparisons (robo/codegen/kernels.py).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx.reference import ReferenceEvaluator

from robo.codegen.c_literal import c_float, c_floats
from robo.codegen.graph import StaticGraph, load_static_graph, node_label
from robo.codegen.kernels import KERNELS_C
from robo.codegen.ops import HANDLERS, Plan, size
from robo.export.card import action_clip, check_io_names, fallback_action, load_card, obs_clip
from robo.files import write_bytes, write_text

GOLDEN_STEPS = 16
SELFTEST_TOL = 1e-5


def _array_lines(values: np.ndarray, per_line: int = 8) -> list[str]:
    flat = [c_float(v) for v in np.asarray(values, np.float32).ravel()]
    return ["    " + ", ".join(flat[i : i + per_line]) + "," for i in range(0, len(flat), per_line)]


# Up to this many inputs, a matrix-vector product keeps the whole input vector in FPU registers
# (32 on the Cortex-M4F) and unrolls the dot product: one weight load and one FMA per multiply-add.
UNROLL_MAX_COLS = 24


def _unrolled_dense(name: str, cols: int, bias: bool) -> str:
    """A dense kernel for a fixed input size; two accumulators halve the FMA dependency chain."""
    xs = ", ".join(f"x{k} = x[{k}]" for k in range(cols))
    terms0 = " ".join(f"a0 += w[{k}] * x{k};" for k in range(0, cols, 2))
    terms1 = " ".join(f"a1 += w[{k}] * x{k};" for k in range(1, cols, 2))
    params = (
        "const float *W, const float *b, const float *x, float *y, int rows"
        if bias
        else "const float *W, const float *x, float *y, int rows"
    )
    init = "b[r]" if bias else "0.0f"
    return "\n".join(
        [
            f"ROBO_INLINE void {name}({params})",
            "{",
            f"    const float {xs};",
            "    int r;",
            "    for (r = 0; r < rows; ++r) {",
            f"        const float *w = W + r * {cols};",
            f"        float a0 = {init}, a1 = 0.0f;",
            f"        {terms0}",
            f"        {terms1}" if terms1 else "",
            "        y[r] = a0 + a1;",
            "    }",
            "}",
            "",
        ]
    )


def _c_ident(name: str) -> str:
    ident = re.sub(r"\W", "_", name)
    return ident if re.match(r"[A-Za-z_]", ident) else "_" + ident


class _Emitter:
    """Holds the memory plan and the constant tables while node code is generated."""

    def __init__(self, g: StaticGraph):
        self.g = g
        self.consts: list[str] = []
        self.const_names: dict[bytes, str] = {}
        self.loc: dict[str, str] = {}  # tensor -> C pointer expression
        self.current_scratch = ""
        self.kernels: dict[str, str] = {}  # specialised dense kernels, by name

    def dense(self, w: str, b: str, x: str, y: str, rows: int, cols: int) -> str:
        """y = W x + b as one C statement; ``b`` is "0" for no bias."""
        if cols > UNROLL_MAX_COLS:
            return f"robo_dense({w}, {b}, {x}, {y}, {rows}, {cols});"
        name = f"robo_dense_k{cols}" + ("" if b != "0" else "_nb")
        if name not in self.kernels:
            self.kernels[name] = _unrolled_dense(name, cols, b != "0")
        args = f"{w}, {b}, {x}, {y}, {rows}" if b != "0" else f"{w}, {x}, {y}, {rows}"
        return f"{name}({args});"

    def ref(self, tensor: str) -> str:
        if tensor in self.g.consts:
            return self.const(self.g.consts[tensor].astype(np.float32), "K")
        return self.loc[tensor]

    def scratch(self) -> str:
        return self.current_scratch

    def const(self, array: np.ndarray, hint: str) -> str:
        array = np.ascontiguousarray(array, np.float32)
        if not np.all(np.isfinite(array)):
            raise ValueError(f"a constant ({hint}) holds non-finite values; the model is broken")
        key = hint.encode() + array.tobytes() + str(array.shape).encode()
        if key not in self.const_names:
            cname = f"{hint}{len(self.const_names)}"
            self.const_names[key] = cname
            self.consts.append(
                f"static const float {cname}[{max(array.size, 1)}] = {{ /* {list(array.shape)} */"
            )
            self.consts += _array_lines(array) if array.size else ["    0.0f,"]
            self.consts.append("};")
        return self.const_names[key]

    def index_table(self, idx: np.ndarray) -> str:
        ctype = "uint16_t" if idx.max(initial=0) < 65536 else "uint32_t"
        cname = f"IDX{len(self.const_names)}"
        self.const_names[cname.encode()] = cname
        self.consts.append(f"static const {ctype} {cname}[{idx.size}] = {{")
        vals = [str(int(v)) for v in idx]
        self.consts += ["    " + ", ".join(vals[i : i + 16]) + "," for i in range(0, len(vals), 16)]
        self.consts.append("};")
        return cname


def _plan_memory(
    g: StaticGraph, plans: list[tuple[onnx.NodeProto, Plan]], obs_name: str, state_inputs: dict[str, str]
) -> tuple[dict[str, tuple[str, int]], dict[str, int], int, dict[int, int]]:
    """Views resolved to their root tensor; arena offsets by first fit over lifetimes."""
    alias: dict[str, tuple[str, int]] = {}

    def root(t: str) -> tuple[str, int]:
        off = 0
        while t in alias:
            t, o = alias[t]
            off += o
        return t, off

    born: dict[str, int] = {obs_name: -1}
    sizes: dict[str, int] = {obs_name: size(g.shapes[obs_name])}
    last: dict[str, int] = {obs_name: -1}
    scratch_need: dict[int, int] = {}
    for k, (node, plan) in enumerate(plans):
        for t in node.input:
            if t and t not in g.consts:
                r, _ = root(t)
                last[r] = max(last.get(r, k), k)
        for out, (src, off) in plan.views.items():
            alias[out] = (src, off)
        for out in plan.allocs:
            born[out], sizes[out], last[out] = k, size(g.shapes[out]), k
        if plan.scratch:
            scratch_need[k] = plan.scratch
    end = len(plans)
    for out in g.outputs:
        r, _ = root(out)
        last[r] = end
    # Lifetimes [born, last]; scratch lives only during its node.
    intervals = [(born[t], last[t], sizes[t], t) for t in born if t not in state_inputs]
    intervals += [(k, k, n, f"#scratch{k}") for k, n in scratch_need.items()]
    placed: list[tuple[int, int, int, int]] = []  # (start, end, offset, size)
    offsets: dict[str, int] = {}
    for b, e, n, t in sorted(intervals, key=lambda iv: (-iv[2], iv[0])):
        off = 0
        for pb, pe, po, pn in sorted(placed, key=lambda p: p[2]):
            if pb <= e and b <= pe and off < po + pn and po < off + n:
                off = po + pn
        # One pass of first fit can miss an overlap behind the moved offset; repeat until stable.
        moved = True
        while moved:
            moved = False
            for pb, pe, po, pn in placed:
                if pb <= e and b <= pe and off < po + pn and po < off + n:
                    off, moved = po + pn, True
        placed.append((b, e, off, n))
        offsets[t] = off
    arena = max((o + n for _, _, o, n in placed), default=1)
    scratch_off = {k: offsets[f"#scratch{k}"] for k in scratch_need}
    return {t: root(t) for t in set(alias) | set(born) | set(state_inputs)}, offsets, arena, scratch_off


def generate_c(
    model: onnx.ModelProto,
    card: dict[str, Any],
    out_dir: str | Path,
    name: str = "policy",
    golden_steps: int = GOLDEN_STEPS,
    seed: int = 0,
) -> dict[str, Any]:
    """Write the C module for ``model`` into ``out_dir``; returns the manifest (also module.json)."""
    if Path(out_dir).exists() and not Path(out_dir).is_dir():
        raise ValueError(f"output {out_dir} is a file; pass a folder for the generated module")
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        raise ValueError(f"--name {name!r} is not a C identifier")
    g = load_static_graph(model, set(HANDLERS))
    check_io_names(card, g.inputs, g.outputs)
    obs_name, act_name = g.inputs[0], g.outputs[0]
    states = card["recurrent_state"]
    state_inputs = {s["input"]: _c_ident(s["name"]) for s in states}
    state_outputs = {s["output"]: _c_ident(s["name"]) for s in states}
    n_obs, n_act = size(g.shapes[obs_name]), size(g.shapes[act_name])
    if n_obs != card["observation"]["size"] or n_act != card["action"]["size"]:
        raise ValueError(
            f"model sizes obs {n_obs} / action {n_act} differ from the card's "
            f"{card['observation']['size']} / {card['action']['size']}"
        )
    for s in states:
        if size(g.shapes[s["input"]]) != s["size"] or size(g.shapes[s["output"]]) != s["size"]:
            raise ValueError(f"recurrent state {s['name']!r}: model size differs from the card's {s['size']}")

    plans = [(node, HANDLERS[node.op_type](node, g)) for node in g.nodes]
    roots, offsets, arena, scratch_off = _plan_memory(g, plans, obs_name, state_inputs)
    em = _Emitter(g)
    for t, (r, off) in roots.items():
        if r in state_inputs:
            em.loc[t] = f"(st->{state_inputs[r]} + {off})" if off else f"st->{state_inputs[r]}"
        elif r in offsets:
            em.loc[t] = f"(arena + {offsets[r] + off})"
        elif r in g.consts:
            pass
        else:
            raise ValueError(f"tensor {t!r} has no storage (internal error in the memory plan)")

    body: list[str] = []
    for k, (node, plan) in enumerate(plans):
        em.current_scratch = f"(arena + {scratch_off[k]})" if k in scratch_off else ""
        if plan.emit is not None:
            try:
                lines = plan.emit(em)
            except KeyError as exc:
                raise ValueError(f"{node_label(node)}: input {exc} is not available") from None
            body += ["    " + line for line in lines]

    clips = obs_clip(card)
    aclip = action_clip(card)
    fallback = np.array(fallback_action(card), np.float32)
    if fallback.size != n_act:
        raise ValueError(f"card fallback action has {fallback.size} values, the model gives {n_act}")
    up = name.upper()
    header = _header(name, up, n_obs, n_act, states, card)
    source = _source(name, up, em, body, arena, aclip, fallback, act_name, state_outputs, clips)

    golden_obs, golden_act = golden_sequence(model, card, golden_steps, seed)
    selftest = _selftest(name, up, golden_obs, golden_act, fallback)

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = {f"{name}.h": header, f"{name}.c": source, f"{name}_selftest.c": selftest}
    for fname, text in files.items():
        write_text(out / fname, text)
    onnx_src = Path(card["onnx_path"]) if "onnx_path" in card else None
    manifest = {
        "format": "robo-c-module/1",
        "name": name,
        "kind": "policy",
        "sources": [f"{name}.c", f"{name}_selftest.c"],
        "policy_sources": [f"{name}.c"],
        "header": f"{name}.h",
        "obs_size": n_obs,
        "act_size": n_act,
        "state": [{"name": _c_ident(s["name"]), "size": s["size"]} for s in states],
        "arena_floats": int(arena),
        "golden_steps": golden_steps,
        "selftest_tolerance": SELFTEST_TOL,
        "ops": sorted({n.op_type for n in g.nodes}),
    }
    if onnx_src is not None and onnx_src.is_file():
        # The module folder carries the model and card it was made from, so `robo firmware run` can
        # compare with ONNX Runtime; the card's hash still vouches for the copy.
        for src in (onnx_src, onnx_src.with_suffix(".json")):
            if src.resolve() != (out / src.name).resolve():
                write_bytes(out / src.name, src.read_bytes())
        manifest["onnx"] = onnx_src.name
    write_text(out / "module.json", json.dumps(manifest, indent=2) + "\n")
    return manifest


def generate_from_file(onnx_path: str | Path, out_dir: str | Path, name: str = "policy") -> dict[str, Any]:
    """``robo codegen c``: verify the card and hash, then generate."""
    card = load_card(onnx_path)
    try:
        model = onnx.load(card["onnx_path"])
    except Exception as exc:
        raise ValueError(f"{onnx_path}: not a readable ONNX model ({exc.__class__.__name__})") from None
    return generate_c(model, card, out_dir, name)


def reference_step_fn(model: onnx.ModelProto, card: dict[str, Any]):
    """A numpy reference of what ``<name>_step`` computes (onnx.reference), for the golden data."""
    ev = ReferenceEvaluator(model)
    in_names = [t["name"] for t in card["onnx"]["inputs"]]
    clips = obs_clip(card)
    lo = np.array([c[0] if c else -np.inf for c in clips], np.float32)
    hi = np.array([c[1] if c else np.inf for c in clips], np.float32)
    aclip = action_clip(card)
    shapes = [tuple(t["shape"]) for t in card["onnx"]["inputs"]]

    def step(obs: np.ndarray, state: list[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray]]:
        x = np.clip(np.asarray(obs, np.float32), lo, hi).reshape(shapes[0])
        feeds = [x, *[s.reshape(sh) for s, sh in zip(state, shapes[1:], strict=True)]]
        outs = ev.run(None, dict(zip(in_names, feeds, strict=True)))
        act = np.asarray(outs[0], np.float32).ravel()
        if aclip is not None:
            act = np.clip(act, *aclip)
        return act, [np.asarray(o, np.float32).ravel() for o in outs[1:]]

    return step


def golden_sequence(
    model: onnx.ModelProto, card: dict[str, Any], steps: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    step = reference_step_fn(model, card)
    obs = rng.normal(0.0, 1.0, (steps, card["observation"]["size"])).astype(np.float32)
    state = [np.zeros(s["size"], np.float32) for s in card["recurrent_state"]]
    acts = []
    for k in range(steps):
        a, state = step(obs[k], state)
        acts.append(a)
    return obs, np.array(acts, np.float32)


def _header(name: str, up: str, n_obs: int, n_act: int, states: list[dict], card: dict) -> str:
    fields = [f"    float {_c_ident(s['name'])}[{s['size']}];" for s in states] or [
        "    int unused; /* stateless */"
    ]
    obs_names = ", ".join(e["name"] for e in card["observation"]["layout"])
    act_names = ", ".join(e["name"] for e in card["action"]["layout"])
    return "\n".join(
        [
            f"/* Generated by robo codegen from {card['onnx']['file']} "
            f"(sha256 {card['onnx']['sha256'][:16]}...).",
            f"   Task {card['task']}, {card['control_rate_hz']:g} Hz. Do not edit. */",
            f"#ifndef {up}_H",
            f"#define {up}_H",
            "",
            f"#define {up}_OBS_SIZE {n_obs}",
            f"#define {up}_ACT_SIZE {n_act}",
            "",
            f"/* observation order: {obs_names} */",
            f"/* action order: {act_names} */",
            "",
            "/* Recurrent state, carried by the caller; zeros after reset. */",
            "typedef struct {",
            *fields,
            f"}} {name}_state;",
            "",
            f"void {name}_reset({name}_state *st);",
            "/* One control step. Returns 0, or 1 when the observation (or a result) was not finite:",
            "   then the state is reset and act holds the fallback action. */",
            f"int {name}_step({name}_state *st, const float obs[{up}_OBS_SIZE], float act[{up}_ACT_SIZE]);",
            "/* Runs the embedded golden sequence; 0 when every action matches within tolerance. */",
            f"int {name}_selftest(float *max_abs_error);",
            "",
            "#endif",
            "",
        ]
    )


def _source(name, up, em: _Emitter, body, arena, aclip, fallback, act_name, state_outputs, clips) -> str:
    lines = [
        f"/* Generated by robo codegen. Static memory only: arena of {arena} floats. */",
        "#include <math.h> /* INFINITY and NAN only: no libm function is called */",
        "#include <stdint.h>",
        f'#include "{name}.h"',
        KERNELS_C,
        *em.kernels.values(),
        *em.consts,
        f"static const float FALLBACK[{up}_ACT_SIZE] = {{ {c_floats(fallback)} }};",
    ]
    if aclip is not None and np.ndim(aclip[0]):
        lines += [f"static const float ACT_LO[{up}_ACT_SIZE] = {{ {c_floats(aclip[0])} }};",
                  f"static const float ACT_HI[{up}_ACT_SIZE] = {{ {c_floats(aclip[1])} }};"]
    lines += [f"static float arena[{arena}];", "", f"void {name}_reset({name}_state *st)", "{"]
    for out, field in state_outputs.items():
        n = size(em.g.shapes[out])
        lines.append(f"    {{ int i; for (i = 0; i < {n}; ++i) st->{field}[i] = 0.0f; }}")
    if not state_outputs:
        lines.append("    st->unused = 0;")
    lines += [
        "}",
        "",
        f"int {name}_step({name}_state *st, const float obs[{up}_OBS_SIZE], float act[{up}_ACT_SIZE])",
        "{",
        "    int i, bad = 0;",
        f"    float *x = {em.ref(em.g.inputs[0])};",
        f"    for (i = 0; i < {up}_OBS_SIZE; ++i) {{",
        "        float v = obs[i];",
        "        bad |= !robo_isfinite(v);",
        "        x[i] = v;",
        "    }",
        "    if (bad) goto fallback;",
    ]
    # Clipping as the card says, one loop per run of equal bounds (constants, no tables).
    k = 0
    while k < len(clips):
        j = k
        while j < len(clips) and clips[j] == clips[k]:
            j += 1
        if clips[k] is not None:
            lo_c, hi_c = c_float(clips[k][0]), c_float(clips[k][1])
            lines.append(
                f"    for (i = {k}; i < {j}; ++i) {{ if (x[i] < {lo_c}) x[i] = {lo_c}; "
                f"if (x[i] > {hi_c}) x[i] = {hi_c}; }}"
            )
        k = j
    lines += body
    act = em.ref(act_name)
    lines.append(f"    for (i = 0; i < {up}_ACT_SIZE; ++i) bad |= !robo_isfinite({act}[i]);")
    for out in state_outputs:
        lines.append(
            f"    for (i = 0; i < {size(em.g.shapes[out])}; ++i) bad |= !robo_isfinite({em.ref(out)}[i]);"
        )
    lines.append("    if (bad) goto fallback;")
    lines.append(f"    for (i = 0; i < {up}_ACT_SIZE; ++i) {{")
    lines.append(f"        float a = {act}[i];")
    if aclip is not None and np.ndim(aclip[0]):  # one [lo, hi] per output: tables
        lines += [
            "        if (a < ACT_LO[i]) a = ACT_LO[i];",
            "        if (a > ACT_HI[i]) a = ACT_HI[i];",
        ]
    elif aclip is not None:
        lines += [
            f"        if (a < {c_float(aclip[0])}) a = {c_float(aclip[0])};",
            f"        if (a > {c_float(aclip[1])}) a = {c_float(aclip[1])};",
        ]
    lines += ["        act[i] = a;", "    }"]
    for out, field in state_outputs.items():
        lines.append(f"    for (i = 0; i < {size(em.g.shapes[out])}; ++i) st->{field}[i] = {em.ref(out)}[i];")
    lines += [
        "    return 0;",
        "fallback:",
        f"    {name}_reset(st);",
        f"    for (i = 0; i < {up}_ACT_SIZE; ++i) act[i] = FALLBACK[i];",
        "    return 1;",
        "}",
        "",
    ]
    return "\n".join(lines)


def _selftest(name: str, up: str, obs: np.ndarray, act: np.ndarray, fallback: np.ndarray) -> str:
    steps = obs.shape[0]
    return "\n".join(
        [
            "/* Generated by robo codegen: golden sequence from the ONNX reference implementation. */",
            "#include <math.h> /* INFINITY and NAN only */",
            f'#include "{name}.h"',
            "",
            f"static const float SELFTEST_FALLBACK[{up}_ACT_SIZE] = "
            f"{{ {c_floats(fallback)} }};",
            f"#define GOLDEN_STEPS {steps}",
            f"static const float GOLDEN_OBS[GOLDEN_STEPS * {up}_OBS_SIZE] = {{",
            *_array_lines(obs),
            "};",
            f"static const float GOLDEN_ACT[GOLDEN_STEPS * {up}_ACT_SIZE] = {{",
            *_array_lines(act),
            "};",
            "",
            "/* Returns 0 on success; 1 when an action differs by more than the tolerance (scaled by",
            "   max(1, |expected|)); 2 when a finite step reported a non-finite input; 3 when a NaN",
            "   observation did not give the fallback action. */",
            f"int {name}_selftest(float *max_abs_error)",
            "{",
            f"    {name}_state st;",
            f"    float a[{up}_ACT_SIZE], nan_obs[{up}_OBS_SIZE], worst = 0.0f;",
            "    int k, i, rc = 0;",
            f"    {name}_reset(&st);",
            "    for (k = 0; k < GOLDEN_STEPS; ++k) {",
            f"        if ({name}_step(&st, GOLDEN_OBS + k * {up}_OBS_SIZE, a) != 0) rc = 2;",
            f"        for (i = 0; i < {up}_ACT_SIZE; ++i) {{",
            f"            float m = GOLDEN_ACT[k * {up}_ACT_SIZE + i], e = a[i] - m;",
            "            if (e < 0.0f) e = -e;",
            "            if (m < 0.0f) m = -m;",
            "            if (m < 1.0f) m = 1.0f;",
            "            if (!(e <= m * " + c_float(SELFTEST_TOL) + ") && rc == 0) rc = 1;",
            "            if (!(e <= worst)) worst = e;",
            "        }",
            "    }",
            f"    for (i = 0; i < {up}_OBS_SIZE; ++i) nan_obs[i] = GOLDEN_OBS[i];",
            "    { volatile float zero = 0.0f; nan_obs[0] = zero / zero; }",
            f"    if ({name}_step(&st, nan_obs, a) != 1 && rc == 0) rc = 3;",
            f"    for (i = 0; i < {up}_ACT_SIZE; ++i) if (a[i] != SELFTEST_FALLBACK[i] && rc == 0) rc = 3;",
            f"    {name}_reset(&st);",
            "    if (max_abs_error) *max_abs_error = worst;",
            "    return rc;",
            "}",
            "",
        ]
    )

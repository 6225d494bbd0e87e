"""``robo codegen c``: policy.onnx (+ its card) -> static C99 for microcontrollers."""

from __future__ import annotations

import argparse

from robo.cli._parsers import add_group, add_leaf

ORDER = 61

DESCRIPTION = """\
Generate dependency-free C99 from an exported policy (reads the ONNX graph and its card, not torch).

Writes <name>.h, <name>.c (static const weights, one static arena, no heap, no libm),
<name>_selftest.c (a golden input/output sequence from the ONNX reference implementation and
<name>_selftest()) and module.json for `robo firmware build`. The card's hash must match the model.

API: <name>_reset(&state); rc = <name>_step(&state, obs, act);  rc 1 = non-finite input, fallback used.

examples:
  robo codegen c out/policy.onnx -o out/policy_c
  robo codegen c out/policy.onnx -o out/fc --name raptor
"""


def register(sub: argparse._SubParsersAction) -> None:
    lang = add_group(sub, "codegen", "generate static C99 from an exported policy", "language", "languages",
                     DESCRIPTION)
    p = add_leaf(lang, "c", "C99 for microcontrollers (nn4mc style)", DESCRIPTION)
    p.add_argument("model", help="policy.onnx with policy.json beside it")
    p.add_argument("-o", "--output", required=True, help="folder for the generated module")
    p.add_argument("--name", default="policy", help="C prefix of the generated functions (default policy)")
    p.set_defaults(func=_codegen_c)


def _codegen_c(args: argparse.Namespace) -> int:
    from robo.codegen.c_emitter import generate_from_file

    m = generate_from_file(args.model, args.output, name=args.name)
    print(f"wrote {args.output}/{{{', '.join(m['sources'] + [m['header']])}}} and module.json")
    state = ", ".join(f"{s['name']}[{s['size']}]" for s in m["state"]) or "none"
    print(
        f"  obs {m['obs_size']} -> action {m['act_size']}, state {state}, "
        f"arena {m['arena_floats']} floats, ops {', '.join(m['ops'])}"
    )
    print(
        f"  next: robo firmware build {args.output} --board qemu-mps2-an386 && "
        f"robo firmware run {args.output}"
    )
    return 0

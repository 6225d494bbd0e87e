"""``robo export onnx``: a trained policy -> policy.onnx + policy.json (the policy card)."""

from __future__ import annotations

import argparse

from robo.cli._parsers import add_group, add_leaf

ORDER = 60

DESCRIPTION = """\
Export a trained policy to ONNX with its policy card (policy.json beside it).

The recurrent state becomes an explicit input/output (h_in -> h_out, and c_in -> c_out for an
LSTM). The model is checked with onnx.checker and run for --steps closed-loop steps through torch
and ONNX Runtime side by side; more than --tol max abs difference is an error. Model and card are
written into a temporary folder beside the output and moved into place only when the check passes,
so a failed export leaves an existing one exactly as it was.

examples:
  robo export onnx runs/raptor/2024-05-01_12-00 -o out/policy.onnx
  robo export onnx runs/raptor/.../policy.pt -o out/policy.onnx --steps 1000
"""


def register(sub: argparse._SubParsersAction) -> None:
    fmt = add_group(sub, "export", "export a trained policy to ONNX with its policy card", "format",
                    "formats", DESCRIPTION)
    p = add_leaf(fmt, "onnx", "ONNX + policy card", DESCRIPTION)
    p.add_argument(
        "source", metavar="RUN_OR_CHECKPOINT", help="a run folder (with policy.pt) or a checkpoint"
    )
    p.add_argument("-o", "--output", required=True, help="the .onnx file to write (card goes beside it)")
    p.add_argument("--steps", type=int, default=500, help="closed-loop steps of the equivalence check (>= 1)")
    p.add_argument("--tol", type=float, default=1e-5, help="max abs difference torch vs ONNX Runtime (>= 0)")
    p.add_argument("--seed", type=int, default=0, help="seed of the synthetic observation sequence")
    p.set_defaults(func=_export_onnx)


def _export_onnx(args: argparse.Namespace) -> int:
    import torch

    from robo.export.onnx_export import export_checkpoint

    torch.set_num_threads(1)
    card = export_checkpoint(args.source, args.output, steps=args.steps, seed=args.seed, tol=args.tol)
    eq = card["export"]["equivalence"]
    state = ", ".join(f"{s['name']}[{s['size']}]" for s in card["recurrent_state"]) or "none"
    print(f"wrote {args.output} and its card ({card['onnx']['sha256'][:12]}...)")
    print(
        f"  task {card['task']}, obs {card['observation']['size']}, action {card['action']['size']}, "
        f"recurrent state {state}"
    )
    print(
        f"  torch vs ONNX Runtime over {eq['steps']} closed-loop steps: "
        f"max abs error {eq['max_abs_error']:.3g} "
        f"(limit {eq['tolerance']:g})"
    )
    return 0

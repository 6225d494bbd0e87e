"""``robo import <source>``: bring a policy trained elsewhere into robo's format (checkpoint, ONNX, card)."""

from __future__ import annotations

import argparse

from robo.cli._parsers import add_group, add_leaf

ORDER = 30

RELEASED_DESCRIPTION = """\
Import the RAPTOR authors' released foundation policy (the `foundation-policy` package on PyPI, MIT)
as a robo policy: OUT/student.pt, OUT/policy.onnx with its card, OUT/origin.json (package, version,
file, the authors' checkpoint name). The weights are read from the installed package, never copied
into this repository. The network is RAPTOR's student (22 -> 16 ReLU -> GRU 16 -> 4); the import
checks it against the example sequence stored in the checkpoint and the export against ONNX Runtime,
and writes the folder whole or not at all.

examples:
  pip install 'robo[foundation-policy]'
  robo import raptor-released                              # -> runs/policies/raptor_released
  robo eval raptor --policy runs/policies/raptor_released/policy.onnx
  robo fly --policy runs/policies/raptor_released/policy.onnx
  robo demo --policy runs/policies/raptor_released/student.pt
  ros2 launch robo quadrotor.launch.py policy:=$PWD/runs/policies/raptor_released/policy.onnx
"""


def register(sub: argparse._SubParsersAction) -> None:
    sources = add_group(sub, "import", "import a policy trained elsewhere (the released RAPTOR policy)",
                        "source", "sources", "Convert policies trained elsewhere into robo's checkpoint, "
                        "ONNX and card, recording where they came from.")
    p = add_leaf(sources, "raptor-released", "the RAPTOR authors' foundation policy (foundation-policy)",
                 RELEASED_DESCRIPTION)
    p.add_argument("-o", "--out", default="runs/policies/raptor_released", help="output folder")
    p.add_argument("--checkpoint", default=None, metavar="FILE.h5",
                   help="an rl-tools HDF5 checkpoint (default: the one the installed package ships)")
    p.set_defaults(func=_released)


def _released(args: argparse.Namespace) -> int:
    from robo.tasks.raptor.released import import_released

    result = import_released(args.out, args.checkpoint)
    origin, card = result["origin"], result["card"]
    print(f"imported {origin['package']} {origin['package_version']} ({origin['checkpoint_name']}): "
          f"checkpoint example max abs error {origin['example_max_abs_error']:.1e}, ONNX Runtime "
          f"{card['export']['equivalence']['max_abs_error']:.1e}")
    print(f"wrote {result['out']}/student.pt, policy.onnx, policy.json, origin.json")
    return 0

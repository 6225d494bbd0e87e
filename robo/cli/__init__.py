"""The ``robo`` command: parsing and progress only; the work happens in the rooms it calls.

Each module in this package adds one top-level subcommand through ``register(subparsers)``
and sets an ``ORDER`` number for its place in ``robo --help``. Modules are found at start-up,
so a new command is a new file here and nothing else.
"""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys

from robo import __version__

# MuJoCo picks its OpenGL platform when first imported (the parser below imports the simulators): on a
# Linux machine with no display, GLFW cannot open a context, EGL renders headless. A user's choice wins.
if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
    os.environ.setdefault("MUJOCO_GL", "egl")

DESCRIPTION = """\
robo trains control policies in simulation, keeps them safe with control barrier
functions, and ships them to ROS 2 nodes (ONNX) and microcontrollers (static C).

Start here:
  robo demo                                      the whole stack in about 10 s: policy -> ONNX ->
                                                 safe flight -> Cortex-M4F in QEMU, one table
  robo sim quadrotor --preset crazyflie          fly the baseline controller, write a plot
  robo <command> --help                          every command explains its options
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="robo", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--version", action="version", version=f"robo {__version__}")
    parser.add_argument(
        "--debug", action="store_true", help="show the full traceback instead of a one-line error"
    )
    sub = parser.add_subparsers(dest="command", metavar="<command>", title="commands")
    modules = []
    for info in pkgutil.iter_modules(__path__):
        if info.name.startswith("_"):
            continue
        modules.append(importlib.import_module(f"{__name__}.{info.name}"))
    for module in sorted(modules, key=lambda m: (getattr(m, "ORDER", 100), m.__name__)):
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        # A group given without its subcommand prints that group's help.
        (getattr(args, "_group_parser", None) or parser).print_help()
        return 2
    try:
        result = args.func(args)
    except KeyboardInterrupt:
        print("robo: interrupted", file=sys.stderr)
        return 130
    except (ValueError, OSError, RuntimeError) as exc:
        # Bad input and missing tools end in one line that names the problem; --debug shows where.
        if args.debug or os.environ.get("ROBO_DEBUG"):
            raise
        print(f"robo: error: {exc}", file=sys.stderr)
        return 1
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())

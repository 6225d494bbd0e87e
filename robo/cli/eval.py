"""``robo eval <task>``: measure a trained policy the way its paper does, one subcommand per task."""

from __future__ import annotations

import argparse

from robo.cli._stages import add_stage_commands

ORDER = 25

DESCRIPTION = """\
Evaluate trained policies with the measurements of their paper. Every task takes --config FILE
(evaluation settings), --set key=value and --out FOLDER; `robo eval <task> --help` explains the task.
"""


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("eval", help="evaluate trained policies the way their papers measure them",
                            description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_stage_commands(parser, "evaluate")

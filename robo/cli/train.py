"""``robo train <task>``: training runs, one subcommand per task in the task registry (robo/tasks)."""

from __future__ import annotations

import argparse

from robo.cli._stages import add_stage_commands

ORDER = 20

DESCRIPTION = """\
Train policies in simulation. Every run writes a folder with the resolved config, checkpoints
(written atomically), learning curves and metrics.json; --resume continues an interrupted run
(under the same config: a changed key is refused and named). Every task takes --config FILE,
--set key=value, --out FOLDER and --resume; `robo train <task> --help` explains the task.
"""


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("train", help="train policies in simulation (RAPTOR, G-PAYN, ResiP, online CBFs)",
                            description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_stage_commands(parser, "train")

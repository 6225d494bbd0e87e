"""``robo bench <name>``: the speed, memory and quality benchmarks, each writing JSON."""

from __future__ import annotations

import argparse
import importlib
import pkgutil

import robo.bench
from robo.bench.common import machine_info, write_json

ORDER = 90


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "bench",
        help="measure speed and quality against a baseline in the same run; writes JSON",
        description="Benchmarks print ratios against a baseline measured in the same run and write JSON "
        "(default bench_results/<name>.json).",
    )
    parser.set_defaults(_group_parser=parser)
    names = sub_names()
    bench_sub = parser.add_subparsers(dest="bench", metavar="<benchmark>", title="benchmarks")
    for name in names:
        module = importlib.import_module(f"robo.bench.{name}")
        # Commands are spelt as the tasks are (online-cbf); the module name stays accepted.
        command = name.replace("_", "-")
        aliases = [name] if command != name else []
        p = bench_sub.add_parser(command, aliases=aliases, help=module.HELP, description=module.HELP)
        p.add_argument("--json", default=f"bench_results/{command}.json", help="where to write the results")
        module.add_arguments(p)
        p.set_defaults(func=_run(name, module))


def sub_names() -> list[str]:
    return sorted(i.name for i in pkgutil.iter_modules(robo.bench.__path__) if i.name != "common")


def _run(name, module):
    def run(args: argparse.Namespace) -> int:
        result = {"benchmark": name, "machine": machine_info(), **module.run(args)}
        path = write_json(result, args.json)
        print(f"wrote {path}")
        return 0

    return run

"""``robo bench <name>``: the speed, memory and quality benchmarks, each writing JSON."""

from __future__ import annotations

import argparse
import importlib
import pkgutil

import robo.bench
from robo.bench.common import machine_info, write_json
from robo.cli._parsers import add_group

ORDER = 90


def register(sub: argparse._SubParsersAction) -> None:
    bench_sub = add_group(sub, "bench", "measure speed and quality against a baseline in the same run; "
                          "writes JSON", "bench", "benchmarks", "Benchmarks print ratios against a baseline "
                          "measured in the same run and write JSON (default bench_results/<name>.json).",
                          metavar="benchmark")
    names = sub_names()
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
    # common and _private modules are parts of benchmarks, not benchmarks
    return sorted(i.name for i in pkgutil.iter_modules(robo.bench.__path__)
                  if i.name != "common" and not i.name.startswith("_"))


def _run(name, module):
    def run(args: argparse.Namespace) -> int:
        result = {"benchmark": name, "machine": machine_info(), **module.run(args)}
        path = write_json(result, args.json)
        print(f"wrote {path}")
        return 0

    return run

"""How every ``robo`` command group builds its parsers, so the groups look and behave alike: a group
prints its own help when called bare, descriptions keep their line breaks, and ``--config``/``--set``
read the same everywhere."""

from __future__ import annotations

import argparse

RAW = argparse.RawDescriptionHelpFormatter


def add_group(sub: argparse._SubParsersAction, name: str, help: str, dest: str, title: str,
              description: str | None = None, metavar: str | None = None) -> argparse._SubParsersAction:
    """A command group (``robo codegen``, ``robo firmware``...); returns the subparsers of its members,
    whose chosen name lands in ``args.<dest>``."""
    parser = sub.add_parser(name, help=help, description=description, formatter_class=RAW)
    parser.set_defaults(_group_parser=parser)
    return parser.add_subparsers(dest=dest, metavar=f"<{metavar or dest}>", title=title)


def add_leaf(sub: argparse._SubParsersAction, name: str, help: str, description: str | None = None,
             **kwargs) -> argparse.ArgumentParser:
    """One command of a group."""
    return sub.add_parser(name, help=help, description=description, formatter_class=RAW, **kwargs)


def add_config_options(p: argparse.ArgumentParser, config_help: str, example: str) -> None:
    """``--config FILE`` and the repeatable ``--set KEY=VALUE`` (``example``: one such override)."""
    p.add_argument("--config", default=None, help=config_help)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help=f"override a config key, e.g. --set {example} (repeatable)")


def with_shortcuts(args: argparse.Namespace, **keys: str) -> list[str]:
    """``--set`` overrides followed by the shortcut options given (attribute=config key): a shortcut
    wins over a ``--set`` of the same key because it comes later."""
    overrides = list(args.set)
    for attribute, key in keys.items():
        value = getattr(args, attribute)
        if value is not None:
            overrides.append(f"{key}={value}")
    return overrides

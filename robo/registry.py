"""The task registry that ``robo train`` and ``robo eval`` loop over.

A method is one package under ``robo/tasks/`` whose ``__init__`` lists its :class:`Task` objects in
``TASKS``, plus one line in :data:`TASK_PACKAGES`. Everything heavy is named as ``"module:attribute"``
and imported only when the task runs, so building the command line imports no method code.

Every stage gets the same options from the CLI (``--config``, ``--set``, ``--out``, ``--resume`` for
training) and the stage's own flags from ``arguments``; its ``run`` function receives the resolved
config, the parsed flags and a :class:`Context` (run folder, resume, progress), and returns the report
the CLI prints.
"""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

TASK_PACKAGES = (
    "robo.tasks.raptor",
    "robo.tasks.pendulum",
    "robo.tasks.online_cbf",
    "robo.tasks.gpayn",
    "robo.tasks.resip",
)


class Bar(Protocol):
    def update(self, n: int = 1) -> None: ...

    def set_postfix_str(self, s: str) -> None: ...

    def __enter__(self) -> Bar: ...

    def __exit__(self, *exc: Any) -> None: ...


class SilentBar:
    """The bar of a stage run without a terminal (tests, the Python API)."""

    def update(self, n: int = 1) -> None:
        pass

    def set_postfix_str(self, s: str) -> None:
        pass

    def __enter__(self) -> SilentBar:
        return self

    def __exit__(self, *exc: Any) -> None:
        pass


BarFactory = Callable[..., Bar]  # (desc, total, initial=0) -> Bar


def silent_bar(desc: str, total: int, initial: int = 0) -> Bar:
    return SilentBar()


@dataclass
class Context:
    """What the CLI hands a stage besides its config."""

    out: Path | None
    resume: bool = False
    log: Callable[[str], None] = print
    bar: BarFactory = silent_bar


@dataclass(frozen=True)
class Stage:
    run: str  # "module:function", function(config, args, ctx) -> str (the report)
    config: str  # "module:Class" of a config dataclass, or "module:function(path, overrides) -> config"
    description: str
    arguments: Callable[[argparse.ArgumentParser], None] | None = None
    out: str | None = None  # default run folder prefix (a timestamp is appended); None: the stage decides
    resumable: bool = True
    summary: str | None = None  # one line for the listing of `robo train|eval`; default: the task's


@dataclass(frozen=True)
class Task:
    name: str
    summary: str
    train: Stage | None = None
    evaluate: Stage | None = None


def tasks() -> dict[str, Task]:
    """Every registered task by name, in registry order."""
    found: dict[str, Task] = {}
    for package in TASK_PACKAGES:
        for task in importlib.import_module(package).TASKS:
            if task.name in found:
                raise RuntimeError(f"task {task.name!r} is registered twice ({package})")
            found[task.name] = task
    return found


def resolve(ref: str) -> Any:
    """``"package.module:attr"`` -> the attribute."""
    module, _, attr = ref.partition(":")
    return getattr(importlib.import_module(module), attr)


def load_stage_config(stage: Stage, path: str | None, overrides: list[str]) -> Any:
    import dataclasses

    from robo.config import load_config

    target = resolve(stage.config)
    if dataclasses.is_dataclass(target):
        return load_config(target, path, overrides)
    return target(path, overrides)

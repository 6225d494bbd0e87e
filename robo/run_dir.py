"""A training run's folder: created empty or resumed under the same config, files written atomically.

Every task opens its run folder through :meth:`RunDir.open`, so the rules are the same everywhere:

* a new run needs an empty (or absent) folder, and writes ``config.yaml`` (the resolved config) and
  ``run.json`` (what kind of run, the command, package versions) before any work starts;
* ``--resume`` needs a folder of the same kind, and refuses a config that differs from the stored one,
  naming the keys (``config.yaml`` must keep saying what trained the run); keys that change how a run
  is executed but not what it computes (threads, a Ray address) may be listed as ``may_change``; a key
  the stored config lacks (added since the run began) compares by its default, or, where that default
  has changed since, by the value the schema's ``PREDATED`` mapping says such a run used;
* a resumed run first deletes the temporary files a killed process left behind;
* JSON (strict: NaN -> null), CSV and PNG files are written atomically (:mod:`robo.files`);
* TensorBoard scalars go under ``tensorboard/<stage>`` (:meth:`RunDir.scalars`).
"""

from __future__ import annotations

import contextlib
import json
import math
import platform
import shutil
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from robo import files
from robo.config import ConfigError, dump_yaml, flatten, from_dict, read_yaml, to_dict

CONFIG = "config.yaml"
RUN_INFO = "run.json"


class RunDir:
    """``run.path / name`` for reading; ``write_json``/``write_csv``/``save_figure`` for writing."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def __truediv__(self, name: str) -> Path:
        return self.path / name

    @classmethod
    def check_resumable(cls, path: str | Path, config: Any, *, kind: str,
                        may_change: Iterable[str] = ()) -> None:
        """Raise as ``open(..., resume=True)`` would for a run ``config`` may not continue, writing
        nothing (a bench checks every run it will touch before it trains any)."""
        cls(path)._check_resume(config, kind, set(may_change))

    @classmethod
    def open(cls, path: str | Path, config: Any, *, kind: str, resume: bool,
             may_change: Iterable[str] = ()) -> RunDir:
        """Create the run folder for ``config`` or, with ``resume``, reopen it (see the module text)."""
        run = cls(path)
        if resume:
            run._check_resume(config, kind, set(may_change))
            files.remove_stale_temporaries(run.path)
        else:
            if run.path.exists() and not run.path.is_dir():
                raise OSError(f"{run.path} is a file, not a run folder")
            if run.path.exists() and any(run.path.iterdir()):
                raise OSError(f"{run.path} is not empty; pass --resume to continue it or choose another "
                              "folder")
            run.path.mkdir(parents=True, exist_ok=True)
            files.write_json(run / RUN_INFO, {"kind": kind, "command": sys.argv, "started": time.time(),
                                              "versions": _versions()})
        dump_yaml(config, run / CONFIG)  # unchanged on resume, up to execution-only keys
        return run

    def _check_resume(self, config: Any, kind: str, may_change: set[str]) -> None:
        stored = self.path / CONFIG
        if not stored.is_file():
            raise OSError(f"--resume: {self.path} holds no {kind} run (no {CONFIG})")
        info = self.path / RUN_INFO
        if info.is_file():
            found = json.loads(info.read_text()).get("kind")
            if found != kind:
                raise OSError(f"--resume: {self.path} holds a {found} run, not a {kind} run")
        # Read back through the schema, so keys added since the run began compare by their defaults...
        try:
            written = read_yaml(stored)
            old = flatten(to_dict(from_dict(type(config), written)))
        except ConfigError as exc:
            raise ValueError(f"--resume: {self.path} holds no {kind} run ({exc})") from None
        # ...unless the default changed after the key was added: then a run without it used the old one.
        present = flatten(written)
        for key, value in getattr(type(config), "PREDATED", {}).items():
            if key not in present:
                old[key] = value
        now = flatten(to_dict(config))
        changed = [k for k in sorted(old.keys() | now.keys())
                   if k not in may_change and old.get(k) != now.get(k)]
        if changed:
            listed = ", ".join(f"{k} ({old.get(k)!r} -> {now.get(k)!r})" for k in changed)
            raise ValueError(f"--resume: the config differs from the run's {stored} in {listed}; resume with "
                             f"the run's config or start a new folder")

    def write_json(self, name: str, data: Any) -> Path:
        return files.write_json(self.path / name, data)

    def write_csv(self, name: str, rows: list[dict[str, Any]], keys: list[str]) -> Path:
        return files.write_csv(self.path / name, rows, keys)

    def save_figure(self, fig: Any, name: str, dpi: int = 100) -> Path:
        return files.save_figure(fig, self.path / name, dpi)

    def scalars(self, stage: str) -> Scalars:
        """A TensorBoard scalar logger writing under ``tensorboard/<stage>`` (``tensorboard --logdir``
        on the run folder shows every stage)."""
        return Scalars(self.path / "tensorboard" / stage)


class Scalars:
    """TensorBoard scalars: ``add(tag, value, step)``; non-finite values are skipped (TensorBoard
    cannot plot them and a NaN would hide the rest of a curve). The event file is opened on the first
    value, so a stage that logs nothing leaves no folder; use it as a context manager (or ``close()``)
    to flush. Several processes may log into one folder: each writes its own event file."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self._writer: Any = None

    def add(self, tag: str, value: float, step: int) -> None:
        value = float(value)
        if not math.isfinite(value):
            return
        if self._writer is None:
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(str(self.folder))
        self._writer.add_scalar(tag, value, int(step))

    def add_all(self, values: dict[str, Any], step: int, prefix: str = "") -> None:
        """Every number in ``values`` (nested dicts become ``a/b`` tags; other values are skipped)."""
        for key, value in values.items():
            if isinstance(value, dict):
                self.add_all(value, step, f"{prefix}{key}/")
            elif isinstance(value, int | float) and not isinstance(value, bool):
                self.add(f"{prefix}{key}", value, step)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def __enter__(self) -> Scalars:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# What a run saves that took work to compute (checkpoints, recorded demonstrations, exported policies);
# TensorBoard event files count too: a run that failed after logging progress keeps the curves that
# show what went wrong.
SAVED_WORK = (".pt", ".hdf5", ".onnx")


@contextlib.contextmanager
def undo_failed_start(path: Path | None, resume: bool):
    """Around a new run: if it fails before it saved any work (:data:`SAVED_WORK`) or logged a scalar,
    delete what it wrote, so the folder is as it was (absent or empty) and the same command, corrected,
    can use it again."""
    existed = path is not None and path.exists()
    fresh = path is not None and not resume and (not existed or (path.is_dir() and not any(path.iterdir())))
    try:
        yield
    except BaseException:
        if fresh and path.is_dir() and not _holds_work(path):
            for child in (list(path.iterdir()) if existed else [path]):
                if child.is_dir():
                    shutil.rmtree(child)
                else:
                    child.unlink()
        raise


def _holds_work(folder: Path) -> bool:
    return any(f.suffix in SAVED_WORK or f.name.startswith("events.out.tfevents")
               for f in folder.rglob("*") if f.is_file())


def _versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {"python": platform.python_version()}
    for name in ("robo", "torch", "numpy", "mujoco", "onnxruntime"):
        with contextlib.suppress(md.PackageNotFoundError):
            out[name] = md.version(name)
    return out

"""Writing files so that a reader never sees half of one: temporary file in the same folder, then rename.

Every output robo writes (checkpoints, cards, metrics, CSV, plots, generated C) goes through
:func:`atomic_write`, so a kill, a full disk or an exception leaves either the old file or the new
one, never a torn one, and never a stray temporary file. Temporary files are named
``.<name>.<pid>.tmp`` so that :func:`remove_stale_temporaries` can find what a killed process left.
"""

from __future__ import annotations

import contextlib
import csv
import errno
import io
import json
import math
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

TMP_SUFFIX = ".tmp"


def temporary_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}{TMP_SUFFIX}")


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path to write; on success it replaces ``path``, on any error it is removed.

    A full disk becomes one line naming the file (libraries report it in their own words, e.g.
    PyTorch's "enforce fail at inline_container.cc ... unexpected pos")."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_path(path)
    try:
        yield tmp
        tmp.replace(path)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        if _disk_full(exc):
            error = OSError(f"disk full: no space left on the device to write {path}")
            error.errno = errno.ENOSPC  # set after: OSError(errno, text) would print "[Errno 28]" first
            raise error from exc
        raise


def atomic_write(path: str | Path, write: Callable[[IO[bytes]], Any]) -> Path:
    """``write(f)`` fills a binary file object; the bytes land at ``path`` atomically."""
    path = Path(path)
    with atomic_path(path) as tmp, tmp.open("wb") as f:
        write(f)
        f.flush()
        os.fsync(f.fileno())
    return path


def write_bytes(path: str | Path, data: bytes) -> Path:
    return atomic_write(path, lambda f: f.write(data))


def write_text(path: str | Path, text: str) -> Path:
    return write_bytes(path, text.encode())


def write_json(path: str | Path, data: Any, indent: int = 1) -> Path:
    """Strict JSON: NaN and infinities (a measurement that does not exist) are written as null."""
    text = json.dumps(finite_or_none(data), indent=indent, default=_jsonable, allow_nan=False)
    return write_text(path, text + "\n")


def write_csv(path: str | Path, rows: list[dict[str, Any]], keys: list[str]) -> Path:
    """``rows`` as CSV with the columns ``keys`` (missing values left empty, other keys ignored)."""
    buffer = io.StringIO(newline="")
    writer = csv.DictWriter(buffer, fieldnames=keys, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    return write_text(path, buffer.getvalue())


def save_figure(fig: Any, path: str | Path, dpi: int = 100) -> Path:
    """A matplotlib figure as PNG, atomically; the figure is closed afterwards."""
    import matplotlib.pyplot as plt

    try:
        return atomic_write(path, lambda f: fig.savefig(f, dpi=dpi, format="png"))
    finally:
        plt.close(fig)


def save_torch(obj: Any, path: str | Path) -> Path:
    """``torch.save`` atomically (checkpoints, policies)."""
    import torch

    return atomic_write(path, lambda f: torch.save(obj, f))


@contextlib.contextmanager
def staged_folder(folder: Path, names: list[str]) -> Iterator[Path]:
    """Write several files that must appear together (a model and its card): a temporary folder beside
    ``folder`` (same file system, so moves are renames) is yielded. When the block
    succeeds, the files ``names`` move into ``folder`` (model first, card last) or, when ``folder`` is
    new, the whole new folder appears at once; either way the temporary folder is then removed."""
    folder = folder.absolute()
    if folder.exists() and not folder.is_dir():
        raise OSError(f"{folder} is a file, not a folder to write {', '.join(names)} into")
    for name in names:  # checked first: a move that fails half-way would part a model from its card
        if (folder / name).is_dir():
            raise OSError(f"{folder / name} is a folder; {name} would replace it (move it away first)")
    new = None
    if not folder.exists():
        new = folder  # the topmost folder that does not exist yet
        while not new.parent.exists():
            new = new.parent
    root = (new.parent if new else folder) / f".stage-{os.getpid()}{TMP_SUFFIX}"
    stage = root / folder.relative_to(new) if new else root
    shutil.rmtree(root, ignore_errors=True)
    stage.mkdir(parents=True)
    try:
        yield stage
        if new:
            root.rename(new)
        else:
            for name in names:
                (stage / name).replace(folder / name)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def check_output_folder(path: str | Path | None, flag: str = "--out") -> None:
    """Refuse an output folder that cannot become one, before a command does its work."""
    if path is None:
        return
    path = Path(path)
    for part in (path, *path.parents):
        if part.exists():
            if not part.is_dir():
                where = "" if part == path else f": {part}"
                raise OSError(f"{flag} {path}{where} is a file, not a folder")
            return


def remove_stale_temporaries(folder: str | Path) -> list[Path]:
    """Delete the temporary files a killed process left below ``folder`` (``.NAME.PID.tmp``, and the
    ``NAME.tmp`` / ``.NAME.tmp.png`` of runs written by earlier versions); returns what was removed."""
    removed = []
    for tmp in Path(folder).rglob(f"*{TMP_SUFFIX}*"):
        if tmp.is_file() and (tmp.name.endswith(TMP_SUFFIX) or tmp.name.startswith(".")):
            tmp.unlink(missing_ok=True)
            removed.append(tmp)
    return removed


def finite_or_none(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): finite_or_none(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_or_none(v) for v in value]
    return value


def _jsonable(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return finite_or_none(value.tolist())
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _disk_full(exc: BaseException) -> bool:
    while exc is not None:
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        text = str(exc)
        if "No space left on device" in text or "unexpected pos" in text:
            return True
        exc = exc.__cause__ or exc.__context__
    return False

"""Checkpoint files: written atomically (temporary file + rename), read back with one-line errors."""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Any

import torch

# What PyTorch's zip writer says when a write fails part-way (the disk filled up under it).
_WRITE_FAILED = ("unexpected pos", "file write failed")


def atomic_save(obj: Any, path: str | Path) -> Path:
    """``torch.save`` to a temporary file, then rename: a crash never leaves half a checkpoint, and a
    failed write (a full disk) removes its temporary file and names the disk-full condition and the file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        torch.save(obj, tmp)
        tmp.replace(path)
    except (OSError, RuntimeError) as exc:
        tmp.unlink(missing_ok=True)
        full = getattr(exc, "errno", None) in (errno.ENOSPC, errno.EDQUOT) or any(
            s in str(exc) for s in _WRITE_FAILED)
        if full:
            error = OSError(f"disk full: no space left on the device to write {path}")
            error.errno = errno.ENOSPC
            raise error from None
        raise
    return path


def load_checkpoint(path: str | Path, *, mmap: bool = False) -> Any:
    """A file written by :func:`atomic_save` (tensors on the CPU); ``mmap`` reads tensors lazily."""
    path = Path(path)
    if not path.is_file():
        raise OSError(f"checkpoint not found: {path}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except Exception as exc:
        raise ValueError(f"{path}: not a readable checkpoint ({exc.__class__.__name__}: {exc})") from None


def remove_temporary_files(folder: str | Path) -> list[Path]:
    """Delete the temporary files a killed writer left anywhere in ``folder`` (``.NAME.PID.tmp``,
    ``NAME.tmp``, ``.NAME.tmp.png``)."""
    removed = []
    for tmp in Path(folder).rglob("*.tmp*"):
        if tmp.is_file() and (tmp.name.endswith(".tmp") or tmp.name.startswith(".")):
            tmp.unlink()
            removed.append(tmp)
    return removed

"""Checkpoint files, read back with one-line errors (they are written by :func:`robo.files.save_torch`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch


def load_checkpoint(path: str | Path, *, mmap: bool = False, format: str | None = None) -> Any:
    """A file written by :func:`robo.files.save_torch` (tensors on the CPU); ``mmap`` reads tensors lazily;
    ``format``: the dict's ``"format"`` entry must be this."""
    path = Path(path)
    if not path.is_file():
        raise OSError(f"checkpoint not found: {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except Exception as exc:
        raise ValueError(f"{path}: not a readable checkpoint ({exc.__class__.__name__}: {exc})") from None
    if format is not None and (not isinstance(state, dict) or state.get("format") != format):
        raise ValueError(f"{path}: not a {format} checkpoint")
    return state


class NonFiniteLoss(RuntimeError):
    """A loss became NaN or infinite: training stops, the last good checkpoint stays as it was."""


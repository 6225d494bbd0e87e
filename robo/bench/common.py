"""Shared pieces of the benchmarks: machine description, timing, JSON output."""

from __future__ import annotations

import math
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from robo import files


def require(args: Any, *names: str, least: float = 1, above: bool = False) -> None:
    """Refuse each option ``--name`` below ``least`` (``above``: not above it) or not finite, naming it,
    before a bench measures anything; an option left at None is skipped."""
    for name in names:
        value = getattr(args, name)
        values = value if isinstance(value, list | tuple) else [value]
        bad = [v for v in values
               if v is not None and not (math.isfinite(v) and (v > least if above else v >= least))]
        if bad:
            flag = "--" + name.replace("_", "-")
            raise ValueError(f"{flag} must be {'>' if above else '>='} {least:g}, got {bad[0]:g}")


def machine_info() -> dict[str, Any]:
    """What the numbers were measured on, stored next to them."""
    info: dict[str, Any] = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    try:
        import torch

        info["torch"] = torch.__version__
        info["torch_threads"] = torch.get_num_threads()
        if torch.cuda.is_available():
            info["cuda_device"] = torch.cuda.get_device_name(0)
    except ImportError:
        pass
    return info


def time_repeated(fn: Callable[[], Any], *, min_seconds: float = 1.0, min_calls: int = 3,
                  sync: Callable[[], None] | None = None) -> tuple[float, int]:
    """Call ``fn`` until ``min_seconds`` have passed; return (seconds per call, calls)."""
    calls = 0
    start = time.perf_counter()
    while True:
        fn()
        calls += 1
        if sync is not None:
            sync()
        elapsed = time.perf_counter() - start
        if elapsed >= min_seconds and calls >= min_calls:
            return elapsed / calls, calls


def write_json(result: dict[str, Any], path: str | Path) -> Path:
    """Write atomically so an interrupted benchmark never leaves half a file."""
    return files.write_json(path, result, indent=2)

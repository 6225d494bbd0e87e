"""Writing a run folder's small files atomically (temporary file + rename), as DESIGN.md asks."""

from __future__ import annotations

import csv
import json
import math
import os
from pathlib import Path
from typing import Any


def write_json(path: str | Path, data: Any) -> Path:
    """Strict JSON: NaN and infinities (a measurement that does not exist) are written as null."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(_finite_or_none(data), indent=1, default=_jsonable) + "\n")
    tmp.replace(path)
    return path


def write_csv(path: str | Path, rows: list[dict[str, Any]], keys: list[str]) -> Path:
    """``rows`` as CSV with the columns ``keys`` (missing values left empty, other keys ignored)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with tmp.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=keys, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    tmp.replace(path)
    return path


def _finite_or_none(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _finite_or_none(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite_or_none(v) for v in value]
    return value


def _jsonable(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return _finite_or_none(value.tolist())
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")

"""The one way a float becomes C source: a ``float`` literal that reads back as the same float32.

Finite values are written as the shortest decimal that round-trips through float32 (numpy's
``repr`` of the float32, ``"0.1f"``, ``"-3.4028235e+38f"``), so a C compiler reads back exactly
the float32 the Python side holds.

Non-finite values become the C99 ``<math.h>`` macros ``INFINITY``, ``-INFINITY`` and ``NAN``:
constant expressions, usable in static initialisers, and no libm function is linked for them.
Every generated file that holds floats therefore includes ``<math.h>``. Emitters that must not
contain a non-finite value (weights, for example) refuse it before asking for a literal.

No onnx or torch import: robo/safety's C emitter uses this module too.
"""

from __future__ import annotations

import math

import numpy as np


def c_float(value: float) -> str:
    """``value`` rounded to float32, as a C ``float`` literal (or INFINITY, -INFINITY, NAN)."""
    v = np.float32(value)
    if math.isnan(v):
        return "NAN"
    if math.isinf(v):
        return "INFINITY" if v > 0 else "-INFINITY"
    text = np.format_float_positional(v, unique=True, trim="0")
    if "e" not in text and len(text) > 14:
        text = np.format_float_scientific(v, unique=True, trim="0")
    return text + "f"


def c_floats(values: object) -> str:
    """Comma-separated literals of every value, in C (row-major) order."""
    return ", ".join(c_float(v) for v in np.asarray(values, np.float32).ravel())

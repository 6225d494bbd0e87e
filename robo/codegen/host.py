"""Compile a generated module for this computer (gcc, shared library) and call it through ctypes.

Used by the tests and benchmarks to check the very C that goes onto the microcontroller against
ONNX Runtime, and to close control loops around it in Python.
"""

from __future__ import annotations

import ctypes
import json
import shutil
import subprocess
from pathlib import Path

import numpy as np

HOST_CFLAGS = ["-std=c99", "-O2", "-Wall", "-Wextra", "-Werror", "-Wvla", "-pedantic", "-fPIC", "-shared"]


def build_host_library(
    module_dir: str | Path, extra_sources: list[str | Path] = (), cc: str = "gcc", cflags: list[str] = ()
) -> Path:
    """``module_dir/build/host/lib<name>.so`` from the module's sources (plus ``extra_sources``),
    compiled with HOST_CFLAGS followed by ``cflags``."""
    module_dir = Path(module_dir)
    manifest = json.loads((module_dir / "module.json").read_text())
    if shutil.which(cc) is None:
        raise RuntimeError(f"host C compiler {cc!r} not found (install gcc: sudo apt-get install gcc)")
    out = module_dir / "build" / "host"
    out.mkdir(parents=True, exist_ok=True)
    tag = "".join(cflags).replace("-", "_").replace("=", "_")  # one library per flag set
    lib = out / f"lib{manifest['name']}{tag}.so"
    srcs = [str(module_dir / s) for s in manifest["sources"]] + [str(s) for s in extra_sources]
    cmd = [cc, *HOST_CFLAGS, *cflags, "-I", str(module_dir), "-o", str(lib), *srcs]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"host compile of {module_dir} failed:\n{proc.stderr.strip()}")
    return lib


class HostPolicy:
    """``step(obs) -> (action, status)`` through the generated C, state carried inside."""

    def __init__(self, module_dir: str | Path, cflags: list[str] = ()):
        module_dir = Path(module_dir)
        self.manifest = json.loads((module_dir / "module.json").read_text())
        self.lib = ctypes.CDLL(str(build_host_library(module_dir, cflags=cflags)))
        name = self.manifest["name"]
        state_floats = sum(s["size"] for s in self.manifest["state"]) or 1
        self._state = (ctypes.c_float * state_floats)()
        self._step = getattr(self.lib, f"{name}_step")
        self._reset = getattr(self.lib, f"{name}_reset")
        self._selftest = getattr(self.lib, f"{name}_selftest")
        self._act = np.zeros(self.manifest["act_size"], np.float32)
        self.reset()

    def reset(self) -> None:
        self._reset(ctypes.byref(self._state))

    def step(self, obs: np.ndarray) -> tuple[np.ndarray, int]:
        obs = np.ascontiguousarray(obs, np.float32).ravel()
        if obs.size != self.manifest["obs_size"]:
            raise ValueError(
                f"observation has {obs.size} values, the module takes {self.manifest['obs_size']}"
            )
        rc = self._step(
            ctypes.byref(self._state),
            obs.ctypes.data_as(ctypes.c_void_p),
            self._act.ctypes.data_as(ctypes.c_void_p),
        )
        return self._act.copy(), int(rc)

    @property
    def state(self) -> np.ndarray:
        return np.ctypeslib.as_array(self._state).copy()

    def selftest(self) -> tuple[int, float]:
        err = ctypes.c_float(0.0)
        rc = self._selftest(ctypes.byref(err))
        return int(rc), float(err.value)

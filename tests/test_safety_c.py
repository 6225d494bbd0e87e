"""The emitted C filter, compiled with the host gcc, against the numpy filter."""

import ctypes
import shutil
import subprocess

import numpy as np
import pytest

from robo.safety import BarrierSet, Geofence, SafetyFilter, Sphere
from robo.safety.c_emitter import emit_c, write_c
from robo.safety.closed_loop import ACCEL_LOWER, ACCEL_UPPER, random_barriers

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc")
CODES = {"pass": 0, "modified": 1, "fault": -1}
F = ctypes.POINTER(ctypes.c_float)


def build(tmp_path, barriers, **kw):
    paths = write_c(emit_c(barriers, **kw), tmp_path)
    src = next(p for p in paths if p.suffix == ".c")
    lib = tmp_path / "libcbf.so"
    flags = ["-std=c99", "-O2", "-Wall", "-Wextra", "-Werror", "-Wvla", "-fPIC"]
    subprocess.run(["gcc", *flags, "-c", str(src), "-o", str(tmp_path / "cbf.o")], check=True)
    subprocess.run(["gcc", "-shared", str(tmp_path / "cbf.o"), "-o", str(lib), "-lm"], check=True)
    undefined = subprocess.run(["nm", "-u", str(tmp_path / "cbf.o")], capture_output=True, text=True).stdout
    fn = ctypes.CDLL(str(lib)).robo_cbf_filter
    fn.argtypes = [F, F, F]
    return fn, undefined


def call(fn, x, u_nom):
    x, u_nom = np.asarray(x, np.float32), np.asarray(u_nom, np.float32)
    out = np.zeros(3, np.float32)
    code = fn(x.ctypes.data_as(F), u_nom.ctypes.data_as(F), out.ctypes.data_as(F))
    return code, out


@pytest.mark.parametrize("model", ["double_integrator", "single_integrator"])
def test_c_filter_matches_numpy_filter(tmp_path, model):
    rng = np.random.default_rng(4)
    bs = random_barriers(rng)
    kw = dict(lower=ACCEL_LOWER, upper=ACCEL_UPPER, alpha1=2.0, alpha2=3.0)
    fn, undefined = build(tmp_path, bs, model=model, **kw)
    # Static memory, no heap: the only external symbol is sqrtf from libm.
    assert "malloc" not in undefined and "free" not in undefined
    ref = SafetyFilter(bs, model, **kw)
    size = 6 if model == "double_integrator" else 3
    counts = dict.fromkeys(CODES.values(), 0)
    for _ in range(800):
        x = np.concatenate([rng.uniform(-4.5, 4.5, 3), rng.normal(size=3) * 2.0])[:size].astype(np.float32)
        u_nom = (rng.normal(size=3) * 8.0).astype(np.float32)
        code, out = call(fn, x, u_nom)
        res = ref(x.astype(float), u_nom.astype(float))
        assert code == CODES[res.status], (x, u_nom, res.reason)
        np.testing.assert_allclose(out, res.u, atol=5e-4)  # single precision
        counts[code] += 1
    assert all(n > 20 for n in counts.values()), counts


def test_c_filter_bad_input_brakes(tmp_path):
    bs = BarrierSet(spheres=[Sphere((2, 0, 1), 0.5)], geofence=Geofence((-5, -5, 0), (5, 5, 4)))
    fn, _ = build(tmp_path, bs, lower=-np.ones(3), upper=np.ones(3), brake_gain=0.5)
    code, out = call(fn, [0, 0, 1, 1.0, 0, 0], [np.nan, 0, 0])
    assert code == -2 and np.allclose(out, [-0.5, 0, 0])
    code, out = call(fn, [0, 0, np.inf, 1.0, 0, 0], [0, 0, 0])
    assert code == -2 and np.all(np.isfinite(out))


def test_emitter_rejects_bad_settings():
    bs = BarrierSet(spheres=[Sphere((2, 0, 1), 0.5)])
    with pytest.raises(ValueError, match="prefix"):
        emit_c(bs, lower=-np.ones(3), upper=np.ones(3), prefix="9bad")
    with pytest.raises(ValueError, match="alpha1"):
        emit_c(bs, lower=-np.ones(3), upper=np.ones(3), alpha1=0.0)

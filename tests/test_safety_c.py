"""The emitted C filter, compiled with the host gcc, against the numpy filter."""

import ctypes
import shutil
import subprocess

import numpy as np
import pytest

from robo.safety import BarrierSet, Geofence, SafetyFilter, Separation, Sphere
from robo.safety.c_emitter import emit_c, write_c
from robo.safety.closed_loop import ACCEL_LOWER, ACCEL_UPPER, random_barriers

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc")
CODES = {"pass": 0, "modified": 1, "fault": -1}
F = ctypes.POINTER(ctypes.c_float)


def build(tmp_path, barriers, cflags=(), **kw):
    paths = write_c(emit_c(barriers, **kw), tmp_path)
    src = next(p for p in paths if p.suffix == ".c")
    lib = tmp_path / "libcbf.so"
    flags = ["-std=c99", "-O2", "-Wall", "-Wextra", "-Werror", "-Wvla", "-fPIC", *cflags]
    subprocess.run(["gcc", *flags, "-c", str(src), "-o", str(tmp_path / "cbf.o")], check=True)
    subprocess.run(["gcc", "-shared", str(tmp_path / "cbf.o"), "-o", str(lib), "-lm"], check=True)
    undefined = subprocess.run(["nm", "-u", str(tmp_path / "cbf.o")], capture_output=True, text=True).stdout
    dll = ctypes.CDLL(str(lib))
    fn = dll.robo_cbf_filter
    fn.argtypes = [F, F, F]
    fn.neighbours = dll.robo_cbf_filter_neighbours
    fn.neighbours.argtypes = [F, F, F, ctypes.c_int, F]
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


def call_neighbours(fn, x, u_nom, nb, count=None):
    x, u_nom = np.asarray(x, np.float32), np.asarray(u_nom, np.float32)
    nb = np.zeros((0, 6), np.float32) if nb is None else np.ascontiguousarray(nb, np.float32)
    out = np.zeros(3, np.float32)
    code = fn.neighbours(x.ctypes.data_as(F), u_nom.ctypes.data_as(F), nb.ctypes.data_as(F),
                         len(nb) if count is None else count, out.ctypes.data_as(F))
    return code, out


def test_c_filter_separation_matches_numpy_filter(tmp_path):
    rng = np.random.default_rng(5)
    bs = random_barriers(rng, spheres=1, cylinders=1, separation=Separation(0.6, 3))
    kw = dict(lower=ACCEL_LOWER, upper=ACCEL_UPPER, alpha1=2.0, alpha2=3.0)
    fn, _ = build(tmp_path, bs, **kw)
    ref = SafetyFilter(bs, **kw)
    near = 0
    for _ in range(600):
        x = np.concatenate([rng.uniform(-3.5, 3.5, 2), rng.uniform(0.8, 2.5, 1), rng.normal(size=3)])
        x = x.astype(np.float32)
        k = int(rng.integers(0, 4))
        nb = np.concatenate([x[:3] + rng.normal(size=(k, 3)), rng.normal(size=(k, 3))], axis=1)
        nb = nb.astype(np.float32)
        u_nom = (rng.normal(size=3) * 8.0).astype(np.float32)
        code, out = call_neighbours(fn, x, u_nom, nb)
        res = ref(x.astype(float), u_nom.astype(float), nb.astype(float))
        assert code == CODES[res.status], (x, nb, u_nom, res.reason)
        np.testing.assert_allclose(out, res.u, atol=5e-4)
        near += int(k > 0 and res.h_min < 0.5)
    assert near > 20  # neighbours close enough to matter
    # The plain entry point is the same filter with no neighbour present.
    x, u_nom = np.array([0, 0, 1.5, 1, 0, 0], np.float32), np.array([1, 0, 0], np.float32)
    assert call(fn, x, u_nom)[0] == call_neighbours(fn, x, u_nom, None)[0]


def test_c_filter_bad_input_brakes(tmp_path):
    bs = BarrierSet(spheres=[Sphere((2, 0, 1), 0.5)], geofence=Geofence((-5, -5, 0), (5, 5, 4)),
                    separation=Separation(0.5, 2))
    fn, _ = build(tmp_path, bs, lower=-np.ones(3), upper=np.ones(3), brake_gain=0.5)
    ref = SafetyFilter(bs, lower=-np.ones(3), upper=np.ones(3), brake_gain=0.5)
    x = [0, 0, 1, 1.0, 0, 0]
    code, out = call(fn, x, [np.nan, 0, 0])
    assert code == -2 and np.allclose(out, [-0.5, 0, 0])
    # A non-finite position still brakes on the (finite) velocity, like the Python filter.
    code, out = call(fn, [0, 0, np.inf, 1.0, 0, 0], [0, 0, 0])
    assert code == -2 and np.allclose(out, ref([0, 0, np.inf, 1.0, 0, 0], [0, 0, 0]).u)
    code, out = call(fn, [0, 0, 1, np.nan, 0, 0], [0, 0, 0])
    assert code == -2 and np.allclose(out, 0.0)  # velocity unknown: stop commanding
    nb = np.array([[1.0, 0, 1, 0, 0, 0], [0, 1.0, 1, 0, np.nan, 0]])
    assert call_neighbours(fn, x, [0, 0, 0], nb)[0] == -2  # non-finite neighbour
    assert call_neighbours(fn, x, [0, 0, 0], nb[:1], count=3)[0] == -2  # more than the slots
    assert call_neighbours(fn, x, [0, 0, 0], nb[:1], count=-1)[0] == -2


def test_emitter_rejects_bad_settings():
    bs = BarrierSet(spheres=[Sphere((2, 0, 1), 0.5)])
    with pytest.raises(ValueError, match="prefix"):
        emit_c(bs, lower=-np.ones(3), upper=np.ones(3), prefix="9bad")
    with pytest.raises(ValueError, match="alpha1"):
        emit_c(bs, lower=-np.ones(3), upper=np.ones(3), alpha1=0.0)

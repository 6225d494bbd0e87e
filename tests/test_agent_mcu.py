"""One agent's multi-agent HOCBF-QP as emitted C: the same answers as robo.safety.agent_qp on the host
(gcc, through ctypes), and with the GNN tuner in one Cortex-M4F image (QEMU) on a recorded swap episode."""

import ctypes
import dataclasses
import shutil
import subprocess

import numpy as np
import pytest

from robo.safety.agent_c import emit_agent_filter, emit_agent_step
from robo.safety.agent_qp import AgentFilterConfig, filter_agent

CONFIG = AgentFilterConfig()
F = ctypes.POINTER(ctypes.c_float)
HAS_ARM = shutil.which("arm-none-eabi-gcc") is not None and shutil.which("qemu-system-arm") is not None


def host_filter(tmp_path, dim, slots, obstacles, config=CONFIG):
    for name, text in emit_agent_filter(config, dim=dim, slots=slots, obstacles=obstacles).items():
        (tmp_path / name).write_text(text)
    lib = tmp_path / "agent.so"
    subprocess.run(["gcc", "-O2", "-std=c99", "-Wall", "-Wextra", "-Werror", "-shared", "-fPIC",
                    "-o", str(lib),
                    str(tmp_path / "robo_agent.c"), "-lm"], check=True)
    fn = ctypes.CDLL(str(lib)).robo_agent_filter
    fn.argtypes = [F] * 6 + [ctypes.c_int, ctypes.c_float, ctypes.c_float, F]
    return fn


def ptr(a):
    return a.ctypes.data_as(F)


def random_case(rng, dim, slots, obstacles):
    """A view with some neighbours and obstacles near the agent (some overlapping: deep in the unsafe
    set, so faults occur), a command up to the bound and gains in the tuner's range; float32 values."""
    m, o = int(rng.integers(0, slots + 1)), int(rng.integers(0, obstacles + 1))
    p = rng.uniform(-2, 2, dim)
    f32 = lambda a: np.asarray(a, np.float32).astype(float)  # noqa: E731
    return dict(p=f32(p), v=f32(rng.normal(size=dim)), u_nom=f32(rng.uniform(-2, 2, dim)),
                nbp=f32(p + rng.normal(size=(m, dim)) * 1.2), nbv=f32(rng.normal(size=(m, dim))),
                obp=f32(p + rng.normal(size=(o, dim)) * 1.5), obr=f32(rng.uniform(0.1, 0.5, o)),
                k1=float(np.float32(rng.uniform(0.25, 4))), k2=float(np.float32(rng.uniform(0.25, 4))))


def call(fn, c, dim, slots, obstacles, k1=None):
    m, o = len(c["nbp"]), len(c["obp"])
    nb = np.zeros((slots, 2 * dim), np.float32)
    nb[:m, :dim], nb[:m, dim:] = c["nbp"], c["nbv"]
    mask = (np.arange(slots) < m).astype(np.float32)
    obs = np.zeros((max(obstacles, 1), dim + 1), np.float32)
    obs[:o, :dim], obs[:o, dim] = c["obp"], c["obr"]
    u = np.zeros(dim, np.float32)
    vec = lambda a: np.asarray(a, np.float32)  # noqa: E731
    p, v, u_nom = vec(c["p"]), vec(c["v"]), vec(c["u_nom"])
    code = fn(ptr(p), ptr(v), ptr(u_nom), ptr(nb), ptr(mask), ptr(obs), o,
              c["k1"] if k1 is None else k1, c["k2"], ptr(u))
    return code, u


@pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc")
@pytest.mark.parametrize("config", [CONFIG, dataclasses.replace(CONFIG, shared_k2=2.0)],
                         ids=["own-k2", "shared-k2"])
@pytest.mark.parametrize("dim", [2, 3])
def test_emitted_agent_filter_matches_numpy_reference_on_host(tmp_path, dim, config):
    slots, obstacles = 8, 4
    fn = host_filter(tmp_path, dim, slots, obstacles, config)
    rng = np.random.default_rng(dim)
    codes, worst = [], 0.0
    for _ in range(1500):
        c = random_case(rng, dim, slots, obstacles)
        code, u = call(fn, c, dim, slots, obstacles)
        ref = filter_agent(c["p"], c["v"], c["u_nom"], c["nbp"], c["nbv"], c["k1"], c["k2"], config,
                           c["obp"], c["obr"])
        assert (code < 0) == ref.fault, (code, ref)
        worst = max(worst, float(np.abs(u - ref.u).max()))
        codes.append(code)
    assert set(codes) == {-1, 0, 1}  # pass, modified and fault (brake) all exercised
    assert worst <= 3e-3  # single precision; the worst cases sit deep inside an overlap


@pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc")
def test_bad_input_brakes(tmp_path):
    fn = host_filter(tmp_path, 2, 8, 1)
    c = random_case(np.random.default_rng(0), 2, 8, 1)
    brake = np.clip(-CONFIG.brake_gain * c["v"], -CONFIG.max_accel, CONFIG.max_accel)
    for bad in ({"k1": -1.0}, {"k1": float("nan")}, {"p": np.array([np.nan, 0.0])},
                {"nbp": np.array([[np.inf, 0.0]]), "nbv": np.zeros((1, 2))}):
        code, u = call(fn, {**c, **bad}, 2, 8, 1)
        assert code == -2, bad
        np.testing.assert_allclose(u, brake, atol=1e-6)


def test_emitter_refuses_bad_settings():
    with pytest.raises(ValueError, match="prefix"):
        emit_agent_filter(CONFIG, prefix="1x")
    with pytest.raises(ValueError, match="dim"):
        emit_agent_filter(CONFIG, dim=4)
    with pytest.raises(ValueError, match="kd"):
        emit_agent_step(CONFIG, max_speed=1.0, kp=1.0, kd=0.0)


@pytest.mark.qemu
@pytest.mark.skipif(not HAS_ARM, reason="needs arm-none-eabi-gcc and qemu-system-arm (bash .ci/setup)")
def test_gnn_and_filter_image_replays_a_swap_episode_like_python(tmp_path):
    from robo.bench.online_cbf import TUNER, mcu_step, record_swap_views
    from robo.safety.agent_mcu import AgentView

    views, settings = record_swap_views(str(TUNER), every=8)
    # Two obstacles across the swap's paths (the tuner's obstacle edges, the filter's obstacle rows) and
    # random views with neighbours close by, some overlapping (faults), as in the host test.
    settings = dataclasses.replace(settings, obstacle_p=np.array([[0.3, 0.2], [-1.0, 0.5]]),
                                   obstacle_r=np.array([0.2, 0.3]))
    rng = np.random.default_rng(5)
    for _ in range(200):
        c = random_case(rng, 2, 8, 0)
        views.append(AgentView(c["p"], c["v"], c["p"] + rng.normal(size=2) * 3, c["nbp"], c["nbv"]))
    out = mcu_step(TUNER.with_suffix(".onnx"), views, settings, tmp_path)
    report, run = out["vs_python"], out["run"]
    assert report["status_mismatches"] == 0, report
    assert report["max_abs_gain_diff"] <= 1e-4, report   # GNN: C float32 vs ONNX Runtime
    assert report["max_abs_u_diff"] <= 1e-3, report      # filter: float32 vs float64
    assert {"-1", "0", "1"} <= set(report["codes"]), report  # free, constrained and fault steps
    assert not out["uses_heap"] and out["ram_bytes"] > 0  # the tuner's static arena
    gnn, qp, step = run.instructions.T
    assert gnn.min() > 10_000 and qp.min() > 200  # real measurements, not the timing overhead
    assert qp.max() <= 10_000, run.summary()       # 8 neighbour + 2 obstacle rows + 4 bounds
    # The step is the gains plus the nominal command plus the filter.
    np.testing.assert_allclose(step, gnn + qp, rtol=0.05)

"""The batched torch filter equals the numpy filter, environment by environment."""

import numpy as np
import pytest
import torch

from robo.safety import BarrierSet, SafetyFilter, Separation, Sphere
from robo.safety.batched import FAULT_INFEASIBLE, FAULT_INPUT, MODIFIED, PASS, BatchedSafetyFilter
from robo.safety.closed_loop import ACCEL_LOWER, ACCEL_UPPER, random_barriers

torch.set_num_threads(1)
STATUS = {"pass": PASS, "modified": MODIFIED}


def _states(rng, n):
    return np.concatenate([rng.uniform(-4.5, 4.5, (n, 3)), rng.normal(size=(n, 3)) * 2.0], axis=1)


def _both_filters(rng, bs, model, n):
    """The numpy filter, the batched one with the same settings, n random states and nominal commands."""
    kw = dict(lower=ACCEL_LOWER, upper=ACCEL_UPPER, alpha1=2.0, alpha2=3.0)
    x = _states(rng, n)[:, : 6 if model == "double_integrator" else 3]
    u_nom = rng.normal(size=(n, 3)) * 8.0
    return SafetyFilter(bs, model, **kw), BatchedSafetyFilter(bs, model, dtype=torch.float64, **kw), x, u_nom


@pytest.mark.parametrize("model", ["double_integrator", "single_integrator"])
def test_batched_equals_numpy_filter(model):
    rng = np.random.default_rng(1)
    n = 400
    ref, batched, x, u_nom = _both_filters(rng, random_barriers(rng), model, n)
    u, status, h_min = batched(torch.tensor(x), torch.tensor(u_nom))
    seen = set()
    for i in range(n):
        r = ref(x[i], u_nom[i])
        expected = FAULT_INFEASIBLE if r.fault else STATUS[r.status]
        assert int(status[i]) == expected, (i, r.status, r.reason)
        np.testing.assert_allclose(u[i].numpy(), r.u, atol=1e-9)
        assert h_min[i].item() == pytest.approx(r.h_min)
        seen.add(expected)
    assert seen == {PASS, MODIFIED, FAULT_INFEASIBLE}  # the sample covers every outcome


def test_batched_float32_close_to_float64_and_bad_rows_isolated():
    rng = np.random.default_rng(2)
    bs = random_barriers(rng)
    kw = dict(lower=ACCEL_LOWER, upper=ACCEL_UPPER, alpha1=2.0)
    x = torch.tensor(_states(rng, 256))
    u_nom = torch.tensor(rng.normal(size=(256, 3)) * 8.0)
    x[3, 1] = float("nan")
    u_nom[5, 2] = float("inf")
    u64, s64, _ = BatchedSafetyFilter(bs, dtype=torch.float64, **kw)(x, u_nom)
    u32, s32, _ = BatchedSafetyFilter(bs, dtype=torch.float32, **kw)(x, u_nom)
    assert s64[3] == FAULT_INPUT and s64[5] == FAULT_INPUT
    assert torch.isfinite(u64).all() and torch.isfinite(u32).all()
    same = s64 == s32
    assert same.float().mean() > 0.97  # only round-off-close cases may flip
    np.testing.assert_allclose(u32[same].numpy(), u64[same].numpy(), atol=2e-3)


def test_per_env_gains_and_obstacles():
    rng = np.random.default_rng(3)
    bs = random_barriers(rng, spheres=1, cylinders=0)
    f = BatchedSafetyFilter(bs, lower=ACCEL_LOWER, upper=ACCEL_UPPER, dtype=torch.float64)
    x = torch.zeros(2, 6, dtype=torch.float64)
    x[:, :3] = torch.tensor([0.0, 0.0, 1.5])
    x[:, 3] = 1.0
    centers = torch.tensor([[[1.5, 0.0, 1.5]], [[-3.0, -3.0, 1.0]]], dtype=torch.float64)
    radii = torch.tensor([[0.5], [0.5]], dtype=torch.float64)
    u_nom = torch.tensor([[1.0, 0, 0], [1.0, 0, 0]], dtype=torch.float64)
    gains = torch.full((2, bs.num_rows), 1.0, dtype=torch.float64)
    u, status, _ = f(x, u_nom, alpha1=gains, centers=centers, radii=radii)
    assert status.tolist() == [MODIFIED, PASS]
    assert u[0, 0] <= -1.0 + 1e-9 and u[1, 0] == 1.0  # only env 0 has the sphere in its way
    gains[0] = -1.0
    _, status, _ = f(x, u_nom, alpha1=gains, centers=centers, radii=radii)
    assert status[0] == FAULT_INPUT


@pytest.mark.parametrize("model", ["double_integrator", "single_integrator"])
def test_batched_separation_equals_numpy_filter(model):
    rng = np.random.default_rng(6)
    bs = random_barriers(rng, spheres=1, cylinders=1, separation=Separation(0.6, 3))
    n = 300
    ref, batched, x, u_nom = _both_filters(rng, bs, model, n)
    nb = np.concatenate([x[:, None, :3] + rng.normal(size=(n, 3, 3)), rng.normal(size=(n, 3, 3))], axis=2)
    mask = rng.random((n, 3)) < 0.6
    nb[~mask] = np.nan  # what sits in an empty slot must not matter
    u, status, h_min = batched(torch.tensor(x), torch.tensor(u_nom), neighbours=torch.tensor(nb),
                               neighbour_mask=torch.tensor(mask))
    close = 0
    for i in range(n):
        r = ref(x[i], u_nom[i], nb[i][mask[i]])
        expected = FAULT_INFEASIBLE if r.fault else STATUS[r.status]
        assert int(status[i]) == expected, (i, r.status, r.reason)
        np.testing.assert_allclose(u[i].numpy(), r.u, atol=1e-9)
        assert h_min[i].item() == pytest.approx(r.h_min)
        close += int(mask[i].any() and r.status == "modified")
    assert close > 50
    with pytest.raises(ValueError, match="neighbours"):
        batched(torch.tensor(x), torch.tensor(u_nom), neighbours=torch.zeros(n, 4, 6, dtype=torch.float64))


def test_batched_bad_scene_inputs_fault_only_their_env():
    rng = np.random.default_rng(7)
    bs = BarrierSet(spheres=[Sphere((1.5, 0, 1.5), 0.5)], separation=Separation(0.5, 1))
    f = BatchedSafetyFilter(bs, lower=ACCEL_LOWER, upper=ACCEL_UPPER, dtype=torch.float64)
    x = torch.tensor(_states(rng, 5))
    x[:, 3:] = 1.0
    u_nom = torch.zeros(5, 3, dtype=torch.float64)
    radii = torch.tensor([[0.5], [-0.5], [0.5], [0.5], [0.0]], dtype=torch.float64)   # env 1, 4: radius <= 0
    centers = torch.tensor([[[1.5, 0, 1.5]]] * 5, dtype=torch.float64)
    centers[2, 0, 1] = float("inf")                                                    # env 2: inf centre
    nb = torch.zeros(5, 1, 6, dtype=torch.float64)
    nb[:, 0, :3] = 10.0
    nb[3, 0, 4] = float("nan")                                                         # env 3: nan neighbour
    u, status, _ = f(x, u_nom, centers=centers, radii=radii, neighbours=nb)
    assert status.tolist()[1:] == [FAULT_INPUT] * 4 and status[0] != FAULT_INPUT
    assert torch.isfinite(u).all()
    np.testing.assert_allclose(u[1:].numpy(), -2.0)  # brake: -brake_gain * v


def test_batched_active_set_equals_enumeration_on_random_qps():
    from robo.safety.batched import _combos, solve_batched, solve_batched_active_set
    from robo.safety.problems import random_qp

    rng = np.random.default_rng(8)
    probs = [random_qp(rng, 8, feasible=bool(rng.random() < 0.8)) for _ in range(600)]
    A = torch.tensor(np.array([p[0] for p in probs]))
    b = torch.tensor(np.array([p[1] for p in probs]))
    u_nom = torch.tensor(np.array([p[4] for p in probs]))
    # One box for the batch: the problems' own bounds differ, so use a common one.
    lo, hi = torch.full((3,), -4.0, dtype=torch.float64), torch.full((3,), 4.0, dtype=torch.float64)
    u1, s1 = solve_batched_active_set(A, b, lo, hi, u_nom, slack_weight=1e4, tol=1e-9)
    u2, s2 = solve_batched(A, b, lo, hi, u_nom, slack_weight=1e4, levels=_combos(8, 3), tol=1e-9)
    assert torch.equal(s1, s2)
    ok = s1 != FAULT_INFEASIBLE
    assert ok.sum() > 200 and (~ok).sum() > 50
    torch.testing.assert_close(u1[ok], u2[ok], atol=1e-9, rtol=0)


def test_batched_solver_setting_is_checked():
    bs = random_barriers(np.random.default_rng(0))
    with pytest.raises(ValueError, match="solver"):
        BatchedSafetyFilter(bs, lower=ACCEL_LOWER, upper=ACCEL_UPPER, solver="magic")

"""Issue 14: generated C compiled with value-unsafe float flags still computes the policy and the
safety filter. gcc switches -fassociative-math off (with a warning) unless signed zeros and
trapping math are off too, so it is tested with both, as -ffast-math sets it."""

import numpy as np
import pytest
from test_codegen_c import compare_with_ort, student  # noqa: F401 (fixture)
from test_safety_c import CODES, build, call

from robo.codegen.host import HostPolicy
from robo.safety import SafetyFilter
from robo.safety.closed_loop import ACCEL_LOWER, ACCEL_UPPER, random_barriers

FLAGS = {
    "fast-math": ["-ffast-math"],
    "Ofast": ["-Ofast"],
    "associative-math": ["-fassociative-math", "-fno-signed-zeros", "-fno-trapping-math"],
}


@pytest.mark.parametrize("flags", FLAGS.values(), ids=FLAGS.keys())
def test_policy_under_unsafe_float_flags_matches_onnxruntime(student, flags):  # noqa: F811
    # The sequence holds a NaN observation: the fallback must still be taken.
    assert compare_with_ort(student, student / "policy.onnx", steps=200, cflags=flags) <= 1e-5
    rc, err = HostPolicy(student, cflags=flags).selftest()
    assert rc == 0 and err <= 1e-5


@pytest.mark.parametrize("flags", FLAGS.values(), ids=FLAGS.keys())
def test_safety_filter_under_unsafe_float_flags(tmp_path, flags):
    rng = np.random.default_rng(4)
    barriers = random_barriers(rng)
    kw = dict(lower=ACCEL_LOWER, upper=ACCEL_UPPER, alpha1=2.0, alpha2=3.0)
    fn, _ = build(tmp_path, barriers, cflags=flags, **kw)
    ref = SafetyFilter(barriers, **kw)
    for _ in range(200):
        x = np.concatenate([rng.uniform(-4.5, 4.5, 3), rng.normal(size=3) * 2.0]).astype(np.float32)
        u_nom = (rng.normal(size=3) * 8.0).astype(np.float32)
        code, out = call(fn, x, u_nom)
        res = ref(x.astype(float), u_nom.astype(float))
        assert code == CODES[res.status]
        np.testing.assert_allclose(out, res.u, atol=5e-4)
    x = np.array([0.0, 0.0, 1.0, 1.0, 0.0, 0.0])
    for bad_x, bad_u in [(np.r_[np.nan, x[1:]], np.zeros(3)), (x, np.array([0.0, np.inf, 0.0]))]:
        code, out = call(fn, bad_x, bad_u)
        assert code == -2 and np.all(np.isfinite(out))

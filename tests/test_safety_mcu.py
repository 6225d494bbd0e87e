"""The emitted C filter on the emulated Cortex-M4F (QEMU mps2-an386): same answers as the Python
filter, instructions per solve within the target, no heap. CI has the toolchain and QEMU."""

import shutil

import numpy as np
import pytest

from robo.codegen.firmware import build, firmware_dir, run_qemu
from robo.safety import BarrierSet, SafetyFilter, Separation
from robo.safety.closed_loop import ACCEL_LOWER, ACCEL_UPPER, random_barriers
from robo.safety.mcu import assemble_app, compare, parse_run, random_cases

pytestmark = [
    pytest.mark.qemu,
    pytest.mark.skipif(shutil.which("arm-none-eabi-gcc") is None or shutil.which("qemu-system-arm") is None,
                       reason="needs arm-none-eabi-gcc and qemu-system-arm (bash .ci/setup)"),
]
SETTINGS = dict(lower=ACCEL_LOWER, upper=ACCEL_UPPER, alpha1=2.0, alpha2=2.0)
INSTRUCTION_TARGET = 10_000  # per solve, 3 inputs and up to 8 barrier rows (issue 5)


def run_on_target(tmp_path, barriers, cases, model="double_integrator"):
    app = assemble_app(tmp_path / "app", barriers, cases, driver_dir=firmware_dir() / "apps" / "cbf",
                       model=model, **SETTINGS)
    info = build(app, "qemu-mps2-an386")
    q = run_qemu(app, timeout=120)
    assert q["exit_code"] == 0, q["output"][-2000:]
    # The calibration loop (known length) agrees with the -icount arithmetic.
    assert q["ticks_per_instruction"] == pytest.approx(q["ticks_per_instruction_nominal"], rel=0.01)
    return info, parse_run(q["output"], len(cases), q["ticks_per_instruction"])


@pytest.mark.parametrize("model", ["double_integrator", "single_integrator"])
def test_filter_on_cortex_m4f_matches_python_within_the_instruction_target(tmp_path, model):
    rng = np.random.default_rng(11)
    bs = random_barriers(rng, spheres=1, cylinders=1)  # 2 obstacles + 6 fence planes: 8 barrier rows
    cases = random_cases(rng, bs, 240)
    if model == "single_integrator":
        cases = [(np.asarray(x)[:3], u, nb) for x, u, nb in cases]
        # 5 m outside the fence: returning needs 2 * 5 m/s > the 8 m/s bound, so infeasible.
        cases[9] = (np.array([bs.geofence.upper[0] + 5.0, 0.0, 1.0]), cases[9][1], None)
    info, run = run_on_target(tmp_path, bs, cases, model)
    fp = info["footprint"]
    assert not fp["uses_heap"] and "sqrtf" not in fp["undefined_symbols"]  # no libm either
    assert fp["ram_bytes"] == 0  # static const tables and the stack only
    report = compare(run, SafetyFilter(bs, model, **SETTINGS), cases)
    assert report["status_mismatches"] == 0, report
    assert report["max_abs_diff_vs_python"] <= 5e-4  # single precision on the target
    # Every outcome is exercised: pass, modified, infeasible and bad input.
    assert set(report["codes"]) == {"-2", "-1", "0", "1"}, report["codes"]
    assert run.instructions[run.codes >= 0].min() > 200  # a real measurement, not the timing overhead
    assert run.instructions.max() <= INSTRUCTION_TARGET, run.summary()


def test_separation_from_neighbours_on_cortex_m4f(tmp_path):
    rng = np.random.default_rng(12)
    base = random_barriers(rng, spheres=1, cylinders=1)
    bs = BarrierSet(spheres=base.spheres, cylinders=base.cylinders, geofence=base.geofence,
                    separation=Separation(0.5, 3))
    cases = random_cases(rng, bs, 160)
    _, run = run_on_target(tmp_path, bs, cases)
    report = compare(run, SafetyFilter(bs, **SETTINGS), cases)
    assert report["status_mismatches"] == 0, report
    assert report["max_abs_diff_vs_python"] <= 5e-4
    assert run.instructions.max() <= INSTRUCTION_TARGET + 3_000  # 11 barrier rows, over the 8-row target

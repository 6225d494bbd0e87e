"""Generated C checked against ONNX Runtime: a firmware run of a policy module, step by step.

``robo firmware run``, the demo and ``robo bench codegen`` all judge a QEMU run by this one function.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from robo.codegen.firmware import read_manifest, sequence
from robo.runtime import OnnxPolicy


def check_policy_run(module: str | Path, result: dict, tol: float) -> dict:
    """Compare a QEMU run of a policy module with ONNX Runtime; raise on any failure."""
    module = Path(module)
    if result.get("selftest_rc", -1) != 0:
        why = {
            1: "an action differs from the golden sequence",
            2: "a finite observation was reported non-finite",
            3: "a NaN observation did not give the fallback action",
        }.get(result.get("selftest_rc"), "no result")
        raise RuntimeError(
            f"self-test failed on the target (rc={result.get('selftest_rc')}: {why}; "
            f"QEMU exit {result['exit_code']})"
        )
    manifest = read_manifest(module)
    if "onnx" not in manifest:
        raise ValueError(f"{module}/module.json names no ONNX model to compare with")
    info = result["build"]
    obs = sequence(manifest["obs_size"], info["steps"], info["seed"])
    ref_act, ref_status = OnnxPolicy(module / manifest["onnx"]).rollout(obs)
    acts = result["actions"]
    if acts.shape != ref_act.shape:
        raise RuntimeError(
            f"the target printed {acts.shape[0]} steps, expected {ref_act.shape[0]} "
            f"(QEMU exit {result['exit_code']})"
        )
    err = float(np.abs(acts.astype(np.float64) - ref_act).max())
    result["max_abs_error_vs_onnxruntime"] = err
    result["status_matches"] = bool(np.array_equal(result["status"], ref_status))
    if not err <= tol or not result["status_matches"]:
        raise RuntimeError(
            f"target differs from ONNX Runtime: max abs error {err:.3g} (limit {tol:g}), "
            f"status {'matches' if result['status_matches'] else 'differs'}"
        )
    return result

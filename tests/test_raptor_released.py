"""The RAPTOR authors' released policy, imported into robo's format (needs the foundation-policy extra,
which .ci/setup installs)."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from robo.cli import main
from robo.tasks.raptor import released

h5py = pytest.importorskip("h5py")
pytest.importorskip("foundation_policy")


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    out = tmp_path_factory.mktemp("released") / "policy"
    assert main(["import", "raptor-released", "-o", str(out)]) == 0
    return out


def test_import_reproduces_the_checkpoints_example_and_exports(imported):
    import json

    origin = json.loads((imported / "origin.json").read_text())
    assert origin["package"] == "foundation-policy" and origin["example_max_abs_error"] < 1e-5
    card = json.loads((imported / "policy.json").read_text())
    assert card["export"]["equivalence"]["max_abs_error"] < 1e-5
    assert sorted(p.name for p in imported.iterdir()) == ["origin.json", "policy.json", "policy.onnx",
                                                          "student.pt"]


def test_the_imported_onnx_flies_through_the_runtime(imported, tmp_path):
    # Two held-out quadrotors and the x500 figure-eight: enough to see it fly, not a quality figure.
    argv = ["eval", "raptor", "--policy", str(imported / "policy.onnx"), "--set", "vehicles=2",
            "--set", "presets=[x500]", "--set", "preset_episodes=2", "--set", "figure8_periods=[10.0]",
            "--out", str(tmp_path)]
    assert main(argv) == 0
    metrics = __import__("json").loads((tmp_path / "metrics.json").read_text())
    assert metrics["presets"]["x500"]["figure8_10s_rmse_m"] < 0.15


def _copy_with(src, dst, edit):
    shutil.copyfile(src, dst)
    with h5py.File(dst, "r+") as f:
        edit(f)
    return dst


def test_bad_checkpoints_are_one_line_and_write_nothing(imported, tmp_path, capsys):
    before = {p.name: p.read_bytes() for p in imported.iterdir()}
    source = released.packaged_checkpoint()
    junk = tmp_path / "junk.h5"
    junk.write_bytes(b"not hdf5 at all")

    def wider(f):
        del f["actor/layers/2/weights/parameters"]
        f["actor/layers/2/weights/parameters"] = np.zeros((8, 16), np.float32)

    def perturbed(f):
        f["actor/layers/1/weights_hidden/parameters"][0, 0] += 0.5

    cases = {
        tmp_path / "missing.h5": "released checkpoint not found",
        junk: "not a readable released RAPTOR checkpoint",
        _copy_with(source, tmp_path / "wider.h5", wider): "output.weight has shape (8, 16)",
        _copy_with(source, tmp_path / "perturbed.h5", perturbed): "misses the checkpoint's own example",
    }
    for path, message in cases.items():
        assert main(["import", "raptor-released", "-o", str(imported), "--checkpoint", str(path)]) == 1
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, err
    assert {p.name: p.read_bytes() for p in imported.iterdir()} == before
    assert sorted(p.name for p in imported.parent.iterdir()) == [imported.name]


@pytest.mark.qemu
def test_the_imported_policy_goes_through_the_demo_fly_c_and_qemu(imported, tmp_path):
    """The same path as the committed student: export, a filtered flight, C, the Cortex-M4F in QEMU."""
    import json

    assert main(["demo", "--policy", str(imported / "student.pt"), "--duration", "2",
                 "--out", str(tmp_path)]) == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    stages = {s["stage"]: s["measured"] for s in summary["stages"]}
    assert stages["export"]["max_abs_error"] < 1e-5
    assert not stages["fly"]["collision"]
    run = stages["firmware run"]
    assert run["max_abs_error_vs_onnxruntime"] < 1e-5 and run["status_matches"]

"""robo eval raptor gives the same numbers for the same policy and seed, whatever the thread count."""

from __future__ import annotations

import math
from pathlib import Path

import torch

from robo.runtime import DEFAULT_POLICY
from robo.tasks.raptor.evaluation import EvalConfig, evaluate, load_controller

SMALL = EvalConfig(vehicles=3, presets=("x500",), preset_episodes=2, figure8_periods=())


def _same(a, b) -> bool:
    """Counts and rates exactly; errors to float32 summation order (threads change it, not the episodes)."""
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or math.isclose(a, b, rel_tol=1e-5)
    return a == b


def test_the_same_policy_and_seed_give_the_same_metrics_on_one_or_two_threads():
    controller = load_controller(Path(DEFAULT_POLICY).with_name("student.pt"))
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = evaluate(controller, SMALL)["metrics"]
        torch.set_num_threads(2)
        two = evaluate(controller, SMALL)["metrics"]
    finally:
        torch.set_num_threads(threads)
    assert _same(one, two)
    assert one["held_out"]["episodes"] == 3 and one["presets"]["x500"]["episodes"] == 2


def test_compared_policies_of_one_folder_each_get_their_own_column(tmp_path):
    import json
    import shutil

    from robo.cli import main

    student = Path(DEFAULT_POLICY).with_name("student.pt")
    folder = tmp_path / "run"
    folder.mkdir()
    for name in ("best.pt", "last.pt"):
        shutil.copy(student, folder / name)
    out = tmp_path / "eval"
    argv = ["eval", "raptor", "--policy", str(folder / "best.pt"), "--compare", str(folder / "last.pt"),
            "--compare", str(folder / "last.pt"), "--compare", "baseline", "--out", str(out),
            "--set", "vehicles=2", "--set", "presets=[x500]", "--set", "preset_episodes=1",
            "--set", "figure8_periods=[]"]
    assert main(argv) == 0
    results = json.loads((out / "comparison.json").read_text())
    # Before, every policy of the folder was labelled "run" and only one of them was kept.
    assert list(results) == ["run", str(folder / "last.pt"), f"{folder / 'last.pt'} (2)", "baseline"]
    # The same weights on the same episodes: the same numbers in every column of theirs.
    assert results["run"] == results[str(folder / "last.pt")] == results[f"{folder / 'last.pt'} (2)"]

"""python -m robo.tasks.resip.pair: two runs' policies paired on the same seeded episodes."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from robo.stats import mcnemar_exact_p
from robo.tasks.resip.pair import pair


def _run(folder, seed, base, trained):
    folder.mkdir()
    kinds = lambda wins: [{"kind": "success" if w else "jammed", "steps": 100} for w in wins]  # noqa: E731
    (folder / "eval_episodes.json").write_text(json.dumps({"eval_seed": seed, "base": kinds(base),
                                                           "ResiP": kinds(trained)}))
    return folder


def test_pairs_the_trained_policies_episode_by_episode(tmp_path):
    a = _run(tmp_path / "a", 1000, [0, 0, 1, 1], [1, 0, 1, 0])
    b = _run(tmp_path / "b", 1000, [0, 0, 1, 1], [1, 1, 1, 1])
    r = pair(a, b)
    assert (r["a"]["success_rate"], r["b"]["success_rate"]) == (0.5, 1.0)
    assert (r["only_a_succeeds"], r["only_b_succeeds"]) == (0, 2)
    assert r["mcnemar_exact_p"] == mcnemar_exact_p(0, 2)
    same = pair(a, b, policy="base")
    assert (same["only_a_succeeds"], same["only_b_succeeds"], same["mcnemar_exact_p"]) == (0, 0, 1.0)


def test_runs_evaluated_on_other_episodes_are_refused(tmp_path):
    a = _run(tmp_path / "a", 1000, [0, 1], [1, 1])
    b = _run(tmp_path / "b", 2000, [0, 1], [1, 1])
    with pytest.raises(ValueError, match="different episodes"):
        pair(a, b)
    with pytest.raises(ValueError, match="no policy 'MLP'"):
        pair(a, a, policy="MLP")


def test_a_run_without_outcomes_is_one_line_and_exit_1(tmp_path):
    a = _run(tmp_path / "a", 1000, [0], [1])
    (tmp_path / "empty").mkdir()
    out = subprocess.run([sys.executable, "-m", "robo.tasks.resip.pair", str(a), str(tmp_path / "empty")],
                         capture_output=True, text=True)
    assert out.returncode == 1
    assert out.stderr.strip().splitlines() == [
        f"pair: error: {tmp_path / 'empty'}: no eval_episodes.json (evaluate it with `robo train "
        "resip|mlp-ppo ... --resume`)"]

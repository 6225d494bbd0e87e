"""`robo bench resip --parts table`: trains what its runs folder lacks, reuses what it holds, and refuses
a run of another config before anything trains (tiny bases and a handful of episodes, one cell)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

TINY = """task: peg_2mm
demo_episodes: 3
threads: 1
diffusion:
  down_dims: [8, 16]
  step_embed_dim: 8
  groups: 4
  batch_size: 16
  warmup_steps: 2
  gradient_steps: {steps}
"""


def bench(tmp: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "robo.cli", "bench", "resip", "--parts", "table", "--cells", "peg_2mm:low",
         "--rl-cells", "", "--episodes", "2", "--runs", str(tmp / "runs"),
         "--dp-config", str(tmp / "dp.yaml"), "--mlp-config", str(tmp / "mlp.yaml"),
         "--json", str(tmp / "table.json"), *extra],
        capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("resip_table")
    (tmp / "dp.yaml").write_text(TINY.format(steps=4))
    (tmp / "mlp.yaml").write_text(TINY.format(steps=4) + "policy: mlp\nmlp_hidden: [16]\n")
    first = bench(tmp)
    assert first.returncode == 0, first.stderr[-2000:]
    return tmp, first


def test_the_table_trains_evaluates_and_plots_each_stage(table):
    tmp, _ = table
    result = json.loads((tmp / "table.json").read_text())
    [row] = result["table"]
    assert (row["task"], row["level"]) == ("peg_2mm", "low")
    assert 0.0 <= row["expert"]["success"] <= 1.0
    for stage in ("dp", "mlp"):
        assert row[stage]["episodes"] == 2 and 0.0 <= row[stage]["success_rate"] <= 1.0
        assert (tmp / "runs" / f"{stage}_peg_2mm_low" / "policy.pt").is_file()
    assert row["dp"]["ddim_steps"] == 16 and row["mlp"]["ddim_steps"] is None
    assert (tmp / "runs" / "demos" / "peg_2mm_low.hdf5").is_file()
    assert Path(result["table_plot"]).stat().st_size > 1000


def test_a_second_run_reuses_runs_and_evaluations(table):
    tmp, _ = table
    kept = {p: p.stat().st_mtime_ns for p in (tmp / "runs").rglob("*") if p.is_file() and p.suffix != ".png"}
    again = bench(tmp)
    assert again.returncode == 0, again.stderr[-2000:]
    changed = [p for p, t in kept.items() if p.stat().st_mtime_ns != t]  # the check writes nothing
    assert not changed, changed
    first = json.loads((tmp / "table.json").read_text())["table"][0]
    assert first["dp"]["successes"] == json.loads(
        (tmp / "runs" / "dp_peg_2mm_low" / "eval_dp_ddim16" / "metrics.json").read_text())["successes"]


def test_a_run_of_another_config_is_refused_before_anything_trains(table):
    tmp, _ = table
    (tmp / "dp.yaml").write_text(TINY.format(steps=5))
    before = {p: p.read_bytes() for p in (tmp / "runs").rglob("*") if p.is_file()}
    try:
        refused = bench(tmp)
    finally:
        (tmp / "dp.yaml").write_text(TINY.format(steps=4))
    assert refused.returncode != 0
    last = refused.stderr.strip().splitlines()[-1]
    assert "dp_peg_2mm_low" in last and "diffusion.gradient_steps" in last, last
    assert before == {p: p.read_bytes() for p in (tmp / "runs").rglob("*") if p.is_file()}


def test_set_reaches_the_stage_config(table):
    """``--set dp.KEY=VALUE`` changes the base's config, so the finished base run no longer matches."""
    tmp, _ = table
    before = {p: p.read_bytes() for p in (tmp / "runs").rglob("*") if p.is_file()}
    refused = bench(tmp, "--set", "peg_2mm:dp.diffusion.gradient_steps=5")
    assert refused.returncode != 0
    last = refused.stderr.strip().splitlines()[-1]
    assert "dp_peg_2mm_low" in last and "diffusion.gradient_steps" in last, last
    assert before == {p: p.read_bytes() for p in (tmp / "runs").rglob("*") if p.is_file()}
    # scoped to another task, it leaves this cell's runs as they are
    assert bench(tmp, "--set", "peg_0.2mm:dp.diffusion.gradient_steps=5").returncode == 0


@pytest.mark.parametrize("flag, value, named", [
    ("--set", "rl.gamma=1", "rl.gamma"), ("--set", "dp.no_such_key=1", "no_such_key"),
    ("--cells", "peg_3mm:low", "peg_3mm:low"), ("--rl-cells", "peg_2mm:med", "peg_2mm:med"),
    ("--parts", "table,speed", "--parts"), ("--steps", "0", "--steps"), ("--threads", "0", "--threads")])
def test_bad_arguments_get_one_line_naming_them(table, flag, value, named):
    tmp, _ = table
    out = bench(tmp, flag, value)
    assert out.returncode != 0
    assert named in out.stderr.strip().splitlines()[-1]

"""``robo bench gpayn`` is resumable and keeps budgets equal: a finished run under --runs is evaluated,
not retrained; an unfinished one resumes; one trained with another config is refused before anything
trains, naming the key, and left as it was, as is one whose demonstrations the grasp planner would no
longer make; G-PAYN is judged against each controller on paired episodes (real MuJoCo, SAC and ONNX
Runtime, tiny networks)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from robo.cli import main

torch.set_num_threads(1)
TINY = ["demo_transitions=64", "demo_envs=4", "eval_episodes=2", "env.episode_steps=200",
        "sac.actor_hidden=[16]", "sac.critic_hidden=[16]", "sac.batch_size=16", "runner.envs_per_member=4",
        "runner.log_interval=16", "runner.select_interval=32", "runner.checkpoint_interval=32"]


def bench(tmp_path, *extra: str) -> int:
    args = ["bench", "gpayn", "--json", str(tmp_path / "bench.json"), "--runs", str(tmp_path / "runs"),
            "--objects", "cylinder_thin", "--algos", "gpayn", "--steps", "32", "--episodes", "2",
            "--envs", "2", "--demo-transitions", "32"]
    for item in TINY:
        args += ["--set", item]
    return main(args + list(extra))


def test_bench_trains_once_then_reuses_resumes_and_refuses_another_config(tmp_path, capsys, monkeypatch):
    run = tmp_path / "runs" / "cylinder_thin_gpayn"
    assert bench(tmp_path) == 0
    first = json.loads((tmp_path / "bench.json").read_text())
    cell = first["table"][0]["gpayn"]
    assert cell["run"] == "trained" and cell["episodes"] == 2 and first["steps_per_run"] == 32
    assert first["table"][0]["scripted"]["success"] == 1.0 and first["eval_seed"] == 1000
    versus = first["table"][0]["gpayn_vs"]["scripted"]  # 2 paired episodes can never tell two apart
    assert versus["verdict"] == "not distinguishable" and 0.0 < versus["mcnemar_exact_p"] <= 1.0
    assert versus["only_gpayn_succeeds"] + versus["only_other_succeeds"] <= 2
    assert cell["eval_cpu_seconds"] > 0 and cell["success"] == cell["won"].count("1") / len(cell["won"])
    assert len(cell["won"]) == 2
    assert "vs scripted" in capsys.readouterr().out
    assert json.loads((run / "metrics.json").read_text())["env_steps"] == 32

    checkpoint = (run / "checkpoint.pt").stat().st_mtime_ns
    assert bench(tmp_path) == 0  # finished: evaluated again on the same episodes, not retrained
    again = json.loads((tmp_path / "bench.json").read_text())["table"][0]["gpayn"]
    assert again["run"] == "reused" and (run / "checkpoint.pt").stat().st_mtime_ns == checkpoint
    assert {k: again[k] for k in ("success", "drop_rate")} == {k: cell[k] for k in ("success", "drop_rate")}

    demos = (run / "demonstrations.pt").stat().st_mtime_ns
    # As a run killed after its last checkpoint, or between its metrics and its export, leaves it.
    for unfinished in ("metrics.json", "policy.onnx"):
        (run / unfinished).unlink()
        assert bench(tmp_path) == 0
        resumed = json.loads((tmp_path / "bench.json").read_text())["table"][0]["gpayn"]
        assert resumed["run"] == "resumed" and (run / "demonstrations.pt").stat().st_mtime_ns == demos
        metrics = json.loads((run / "metrics.json").read_text())
        assert metrics["session_started_at_step"] == 32 and metrics["env_steps"] == 32  # nothing lost

    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    capsys.readouterr()
    assert bench(tmp_path, "--set", "gpayn_bc_weight=1.0") == 1  # an unequal config: refused
    err = capsys.readouterr().err
    assert "cylinder_thin_gpayn" in err and "gpayn_bc_weight (5.0 -> 1.0)" in err
    assert len(err.splitlines()) == 1
    assert bench(tmp_path, "--steps", "64") == 1  # an unequal budget: refused too
    assert "runner.steps (32 -> 64)" in capsys.readouterr().err
    # The planner moves its grasps: the run's demonstrations no longer start where the bench's would.
    monkeypatch.setattr("sim.hand.grasp.GRASP_OFFSET", np.array([0.11, 0.01, -0.04]))
    assert bench(tmp_path) == 1
    err = capsys.readouterr().err
    assert "cylinder_thin_gpayn" in err and "grasp planner" in err and len(err.splitlines()) == 1
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()} == before


def test_paired_verdict_is_the_exact_mcnemar_test_on_the_discordant_episodes():
    from robo.bench.gpayn import paired_verdict

    gpayn = np.array([True] * 12 + [False] * 8)
    other = np.array([False] * 10 + [True] * 2 + [False] * 8)  # only G-PAYN wins 10, only the other 0
    above = paired_verdict(gpayn, other)
    assert above["verdict"] == "above" and above["mcnemar_exact_p"] == pytest.approx(2 / 2**10)
    assert paired_verdict(other, gpayn)["verdict"] == "below"
    assert paired_verdict(gpayn[:5], other[:5])["verdict"] == "not distinguishable"  # 5-0: p 0.0625

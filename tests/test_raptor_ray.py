"""RAPTOR teacher groups on a real local Ray: the same teachers as the sequential run, failures, resume."""

from __future__ import annotations

import json
import socket
import sys
from pathlib import Path

import pytest
import torch
from interrupts import interrupt_after

from robo.cli import main
from robo.config import load_config

pytest.importorskip("sim.quadrotor", reason="needs the quadrotor simulator in sim/quadrotor",
                    exc_type=ImportError)

from robo.tasks.raptor.teachers import RaptorTeachersConfig, train_teachers
from sim.quadrotor import sample_fleet, save_fleet

torch.set_num_threads(1)  # the Ray tasks run with one thread too, so the numbers can match exactly

# 4 teachers in 2 groups of 2; the threshold accepts one teacher of each group (q1, q2) part-way and
# rejects the other at the 300-step budget, so both endings are compared. Untrained teachers never
# pass a deterministic evaluation, so acceptance here rests on the training episodes alone.
TINY = [
    "teachers=4", "group_size=2", "sac.actor_hidden=[16,16]", "sac.critic_hidden=[32,32]",
    "sac.batch_size=16", "sac.learning_starts=40", "sac.buffer_size=1000", "train.steps=300",
    "train.log_interval=20", "train.checkpoint_interval=40", "train.acceptance.window=2",
    "train.acceptance.episode_length=40", "train.acceptance.evaluate=false",
]
NAMES = ["q0", "q1", "q2", "q3"]
CONFIGS = Path(__file__).resolve().parents[1] / "configs"
# Timing differs between runs; everything else in a teacher's record must not.
TIMING = {"core_seconds"}


def tiny(*extra: str) -> RaptorTeachersConfig:
    return load_config(RaptorTeachersConfig, None, [*TINY, *extra])


def set_args(items: list[str]) -> list[str]:
    return [arg for item in items for arg in ("--set", item)]


@pytest.fixture
def fleet(tmp_path):
    return save_fleet(sample_fleet(4, seed=3), tmp_path / "fleet.json")


def records(run) -> dict[str, dict]:
    out = {}
    for name in NAMES:
        r = json.loads((run / "teachers" / name / "result.json").read_text())
        out[name] = {k: v for k, v in r.items() if k not in TIMING}
    return out


def test_ray_trains_the_same_teachers_as_the_sequential_run(tmp_path, fleet, capsys) -> None:
    pytest.importorskip("ray", reason="needs the ray extra: pip install 'robo[ray]'")
    steps: list[int] = []
    seq = train_teachers(tiny(), fleet, tmp_path / "seq", progress=steps.append, log=lambda s: None)
    assert seq["accepted_names"] == ["q1", "q2"]

    # Through the CLI, --ray-address without a value: a local Ray is started and stopped again.
    argv = ["train", "raptor-teachers", "--fleet", str(fleet), "--out", str(tmp_path / "ray"),
            "--ray-address", *set_args(TINY)]
    assert main(argv) == 0
    out = capsys.readouterr()
    assert "a local Ray: 1 node(s)" in out.out + out.err
    assert "2/4 teachers accepted" in out.out and "summed over groups" in out.out
    import ray

    assert not ray.is_initialized()  # the Ray this command started is gone

    seq_dir, ray_dir = tmp_path / "seq", tmp_path / "ray"
    metrics = json.loads((ray_dir / "metrics.json").read_text())
    assert metrics["ray_address"] == "local" and metrics["threads"] == 1
    for key in ("teachers", "accepted", "accepted_names", "rejected", "mean_steps_accepted"):
        assert metrics[key] == seq[key], key
    assert records(ray_dir) == records(seq_dir)
    for name in NAMES:
        for file in ("actor.pt", "curve.csv"):
            assert (ray_dir / "teachers" / name / file).is_file()
        # One thread, fixed seeds: the Ray workers compute bit for bit what this process did.
        a = torch.load(seq_dir / "teachers" / name / "actor.pt", weights_only=True)["state_dict"]
        b = torch.load(ray_dir / "teachers" / name / "actor.pt", weights_only=True)["state_dict"]
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
        assert ((ray_dir / "teachers" / name / "curve.csv").read_text()
                == (seq_dir / "teachers" / name / "curve.csv").read_text())
    assert sorted(p.name for p in (ray_dir / "groups").iterdir()) == ["group_0000.json", "group_0001.json"]
    assert (ray_dir / "learning_curves.png").stat().st_size > 0


def test_a_failing_group_is_named_and_the_others_are_kept_then_resume_finishes(tmp_path, fleet) -> None:
    ray = pytest.importorskip("ray", reason="needs the ray extra: pip install 'robo[ray]'")
    run = tmp_path / "run"
    cfg = tiny("train.acceptance.episode_length=1000")  # nobody accepted: every teacher runs 300 steps
    with pytest.raises(KeyboardInterrupt):
        train_teachers(cfg, fleet, run, progress=interrupt_after(100), log=lambda s: None)
    # Saved on the interruption: the run loses only the step in progress.
    assert torch.load(run / "groups" / "group_0000.pt", weights_only=True)["step"] == 100
    # Group 1's checkpoint belongs to another fleet, so its task fails when it tries to resume it.
    torch.save({"fleet_sha256": "0" * 64}, run / "groups" / "group_0001.pt")

    cfg.ray_address = "local"
    ray.init(address="local", num_cpus=2, include_dashboard=False)
    try:  # both runs below use this Ray session (train_teachers leaves a caller's Ray running)
        messages: list[str] = []
        steps: list[int] = []
        with pytest.raises(RuntimeError, match=r"1 of 2 teacher groups failed on Ray: group 1 \(q2, q3\): "
                                               r"ValueError: .*another fleet") as err:
            train_teachers(cfg, fleet, run, resume=True, progress=steps.append, log=messages.append)
        assert "\n" not in str(err.value) and str(run) in str(err.value)
        assert "group 0: resumed at env step 100" in messages  # relayed from the worker
        assert sum(steps) == 300 - 100  # group 0 continued where its checkpoint was
        assert (run / "groups" / "group_0000.json").is_file() and not (run / "metrics.json").exists()
        for name in ("q0", "q1"):
            assert (run / "teachers" / name / "actor.pt").is_file()

        (run / "groups" / "group_0001.pt").unlink()
        messages.clear()
        metrics = train_teachers(cfg, fleet, run, resume=True, log=messages.append)
        assert ray.is_initialized()
        assert not any(m.startswith("group 0") for m in messages)  # done groups are skipped
        assert metrics["teachers"] == 4 and metrics["accepted"] == 0
        assert [r["steps"] for r in metrics["rejected"]] == [300] * 4
    finally:
        ray.shutdown()
    curve = (run / "teachers" / "q0" / "curve.csv").read_text().splitlines()
    assert [int(float(line.split(",")[0])) for line in curve[1:]] == list(range(20, 301, 20))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("task", ["raptor-teachers", "raptor"])
def test_an_address_where_nothing_listens_fails_fast_naming_it(tmp_path, fleet, capsys, task) -> None:
    pytest.importorskip("ray", reason="needs the ray extra: pip install 'robo[ray]'")
    address = f"127.0.0.1:{_free_port()}"
    argv = ["train", task, "--out", str(tmp_path / "out"), "--ray-address", address]
    if task == "raptor-teachers":
        argv += ["--fleet", str(fleet), *set_args(TINY)]
    else:  # the pipeline samples its fleet, then fails when stage 1 connects
        argv += ["--config", str(CONFIGS / "raptor_quick.yaml"),
                 *set_args(["fleet.size=4", "teachers.teachers=2"])]
    assert main(argv) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("robo: error: Ray address") and address in err[-1]
    assert "nothing answers" in err[-1]
    if task == "raptor-teachers":
        assert not (tmp_path / "out").exists()  # refused before a run folder was made


def test_without_ray_installed_the_flag_says_how_to_get_it(tmp_path, fleet, capsys, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray now raises ImportError
    argv = ["train", "raptor-teachers", "--fleet", str(fleet), "--teachers", "2",
            "--out", str(tmp_path / "out"), "--ray-address"]
    assert main(argv) == 1
    err = capsys.readouterr().err.strip().splitlines()[-1]  # the lines before it are the progress bar
    assert err == "robo: error: --ray-address needs Ray, which is not installed: pip install 'robo[ray]'"
    assert not (tmp_path / "out").exists()

"""RAPTOR teacher fleet: groups, acceptance/rejection, kept checkpoints and curves, resume, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from interrupts import interrupt_after
from test_sac import SMALL, make_pendulums

from robo.cli import main
from robo.config import load_config
from robo.nets.policy import load_policy
from robo.rl.off_policy_runner import OffPolicyRunner, RunnerConfig

# Reported as a skip (never a pass) while the quadrotor simulator is not importable.
pytest.importorskip("sim.quadrotor", reason="needs the quadrotor simulator in sim/quadrotor",
                    exc_type=ImportError)

from robo.tasks.raptor.commands import teachers_config
from robo.tasks.raptor.pipeline import RaptorConfig
from robo.tasks.raptor.teachers import (
    Acceptance,
    AcceptanceConfig,
    RaptorTeachersConfig,
    load_teachers,
    read_curve,
    resumed_steps,
    run_metrics,
    summarise,
    train_teachers,
)
from sim.quadrotor import sample_fleet, save_fleet

torch.set_num_threads(1)

TINY = [
    "group_size=2", "sac.actor_hidden=[16,16]", "sac.critic_hidden=[32,32]", "sac.batch_size=16",
    "sac.learning_starts=40", "sac.buffer_size=1000", "train.steps=120", "train.log_interval=20",
    "train.checkpoint_interval=40",
]


def tiny(tmp_path, *extra: str, teachers: int = 3) -> RaptorTeachersConfig:
    return load_config(RaptorTeachersConfig, None, [*TINY, f"teachers={teachers}", *extra])


@pytest.fixture
def fleet(tmp_path):
    return save_fleet(sample_fleet(4, seed=3), tmp_path / "fleet.json")


def test_unreachable_threshold_rejects_every_teacher_and_keeps_its_files(tmp_path, fleet) -> None:
    cfg = tiny(tmp_path, "train.acceptance.episode_length=1000", "train.acceptance.window=1")
    run = tmp_path / "run"
    metrics = train_teachers(cfg, fleet, run, log=lambda s: None)
    assert metrics["teachers"] == 3 and metrics["accepted"] == 0
    assert [r["name"] for r in metrics["rejected"]] == ["q0", "q1", "q2"]
    for r in metrics["rejected"]:
        assert r["steps"] == 120 and 0 < r["mean_length"] < 1000
    for name in ("q0", "q1", "q2"):
        policy, meta = load_policy(run / "teachers" / name / "actor.pt")
        assert meta["origin"]["teacher"] == name and meta["origin"]["record"]["accepted"] is False
        assert policy(torch.zeros(1, 26)).shape == (1, 4)
        curve = read_curve(run / "teachers" / name / "curve.csv")
        assert [p["step"] for p in curve] == [20, 40, 60, 80, 100, 120]
    assert (run / "learning_curves.png").stat().st_size > 0
    assert json.loads((run / "metrics.json").read_text())["rejected"] == metrics["rejected"]
    assert not list((run / "groups").glob("*.pt"))  # finished groups leave only their records

    # The distillation stage labels with all teachers at once, tanh(mean) of each.
    names, stacked = load_teachers(run, accepted_only=False)
    assert names == ["q0", "q1", "q2"]
    obs = torch.randn(3, 5, 26)
    labels = stacked.deterministic(obs)
    for k, name in enumerate(names):
        policy, _ = load_policy(run / "teachers" / name / "actor.pt")
        torch.testing.assert_close(labels[k], policy(obs[k]), atol=1e-6, rtol=1e-6)
    with pytest.raises(ValueError, match="no teachers"):
        load_teachers(run)  # none was accepted
    # A teacher file from another fleet is refused.
    (run / "fleet.json").write_text((run / "fleet.json").read_text().replace("q0", "z0"))
    with pytest.raises(ValueError, match="another fleet"):
        load_teachers(run, ["q1"])


def test_teachers_stop_at_the_threshold(tmp_path, fleet) -> None:
    cfg = tiny(tmp_path, "train.acceptance.episode_length=1", "train.acceptance.window=1",
               "train.steps=100000")
    metrics = train_teachers(cfg, fleet, tmp_path / "run", log=lambda s: None)
    assert metrics["accepted"] == 3 and metrics["rejected"] == []
    # Accepted at the first check after one counted episode, far below the budget.
    assert metrics["mean_steps_accepted"] < 2000
    assert metrics["core_minutes_per_accepted_teacher"] > 0


def test_interrupted_run_resumes_without_losing_progress(tmp_path, fleet) -> None:
    cfg = tiny(tmp_path, "train.acceptance.episode_length=1000", "train.acceptance.window=1", teachers=2)
    run = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        train_teachers(cfg, fleet, run, progress=interrupt_after(100), log=lambda s: None)
    checkpoint = torch.load(run / "groups" / "group_0000.pt", weights_only=True)
    assert checkpoint["step"] == 100  # saved on the interruption: only the step in progress is lost
    assert resumed_steps(cfg, run) == 100  # where the resumed progress bar starts
    with pytest.raises(OSError, match="not empty"):
        train_teachers(cfg, fleet, run, log=lambda s: None)
    # A killed writer's temporary files are cleared by the resume.
    leftovers = [run / "groups" / ".group_0000.pt.999.tmp", run / "config.yaml.tmp"]
    for tmp in leftovers:
        tmp.write_bytes(b"half a file")
    messages = []
    metrics = train_teachers(cfg, fleet, run, resume=True, log=messages.append)
    assert "resumed at env step 100" in messages[0]
    assert not any(p.exists() for p in leftovers) and not list(run.rglob("*.tmp*"))
    assert metrics["teachers"] == 2
    curve = read_curve(run / "teachers" / "q0" / "curve.csv")
    assert [p["step"] for p in curve] == [20, 40, 60, 80, 100, 120]  # nothing lost, nothing repeated
    # Core-minutes are CPU time, the interrupted part included, shared by the group's members.
    group = json.loads((run / "groups" / "group_0000.json").read_text())
    assert group["cpu_seconds"] > checkpoint["cpu_seconds"] > 0
    assert metrics["core_minutes_total"] == pytest.approx(group["cpu_seconds"] / 60)
    assert [r["core_seconds"] for r in group["records"]] == [pytest.approx(group["cpu_seconds"] / 2)] * 2


def test_bad_fleets_are_refused(tmp_path, fleet) -> None:
    with pytest.raises(ValueError, match=r"has 4 quadrotors.*5 teachers"):
        train_teachers(tiny(tmp_path, teachers=5), fleet, tmp_path / "a", log=lambda s: None)
    cfg = tiny(tmp_path, "train.acceptance.episode_length=1000", teachers=1)
    train_teachers(cfg, fleet, tmp_path / "b", log=lambda s: None)
    other = save_fleet(sample_fleet(4, seed=4), tmp_path / "other.json")
    with pytest.raises(ValueError, match="not the fleet this run was started with"):
        train_teachers(cfg, other, tmp_path / "b", resume=True, log=lambda s: None)
    with pytest.raises(ValueError, match="observation"):
        load_config(RaptorTeachersConfig, None, ["env.observation=student"])
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "metrics.json").write_text('{"success": 1.0}')
    with pytest.raises(ValueError, match="not a raptor-teachers run"):
        run_metrics(tmp_path / "c")


def test_overriding_one_key_keeps_the_other_teacher_defaults() -> None:
    cfg = load_config(RaptorTeachersConfig, None, ["train.steps=5000", "train.acceptance.window=3"])
    assert cfg.train.steps == 5000 and cfg.train.acceptance.window == 3
    assert cfg.train.acceptance.episode_length == 490.0 and cfg.train.log_interval == 5000
    assert cfg.sac.batch_size == 128 and cfg.env.observation == "teacher"


def test_a_pipeline_configs_teachers_section_is_a_teacher_config() -> None:
    """robo train raptor-teachers and robo bench raptor read configs/raptor_small.yaml's teachers: with
    --set keys of the teacher config, as the student stage reads its student: section."""
    cfg = teachers_config("configs/raptor_small.yaml", ["sac.batch_size=64"])
    pipeline = load_config(RaptorConfig, "configs/raptor_small.yaml").teachers
    assert cfg.sac.batch_size == 64 and cfg.sac.critic_hidden == pipeline.sac.critic_hidden
    assert cfg.train == pipeline.train and cfg.env == pipeline.env
    with pytest.raises(ValueError, match="unknown config key"):
        teachers_config("configs/raptor_small.yaml", ["sac.critic_hiden=[8]"])


def test_cli_trains_and_lists_rejected_teachers(tmp_path, fleet, capsys) -> None:
    argv = ["train", "raptor-teachers", "--fleet", str(fleet), "--teachers", "2",
            "--out", str(tmp_path / "r")]
    for item in [*TINY, "train.acceptance.episode_length=1000"]:
        argv += ["--set", item]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "0/2 teachers accepted" in out and "q0" in out and "q1" in out
    assert main([*argv[:2], "--fleet", str(tmp_path / "missing.json"), "--out", str(tmp_path / "x")]) == 1
    assert "fleet file not found" in capsys.readouterr().err


def test_deterministic_check_is_kept_in_the_curve_and_in_the_rejected_list(tmp_path, fleet) -> None:
    # Threshold 1: every training window passes, so the deterministic check runs at the first point.
    cfg = tiny(tmp_path, "train.acceptance.episode_length=1", "train.acceptance.window=1",
               "train.acceptance.evaluate=true", teachers=2)
    run = tmp_path / "run"
    metrics = train_teachers(cfg, fleet, run, log=lambda s: None)
    assert metrics["accepted"] == 2
    for name in ("q0", "q1"):
        point = read_curve(run / "teachers" / name / "curve.csv")[-1]
        assert point["eval_length"] >= 1 and "eval_return" in point

    records = {0: {"id": 0, "name": "q0", "accepted": False, "steps": 120, "mean_length": 500.0,
                   "mean_return": 10.0, "episodes": 10, "eval_length": 300.0, "eval_return": -50.0},
               1: {"id": 1, "name": "q1", "accepted": False, "steps": 120, "mean_length": 90.0,
                   "mean_return": -90.0, "episodes": 10}}
    rejected = summarise(records, 1.0, 1.0, 1, cfg)["rejected"]
    assert rejected[0]["eval_length"] == 300.0 and rejected[0]["eval_return"] == -50.0
    assert "eval_length" not in rejected[1]


def test_resume_with_a_changed_config_is_refused_naming_the_keys(tmp_path, fleet) -> None:
    cfg = tiny(tmp_path, "train.acceptance.episode_length=1000", teachers=1)
    run = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        train_teachers(cfg, fleet, run, progress=interrupt_after(30), log=lambda s: None)
    stored = (run / "config.yaml").read_text()
    changed = tiny(tmp_path, "train.acceptance.episode_length=1000", "sac.batch_size=32", "train.steps=200",
                   teachers=1)
    with pytest.raises(ValueError, match=r"config differs .* in sac\.batch_size \(16 -> 32\), train\.steps"):
        train_teachers(changed, fleet, run, resume=True, log=lambda s: None)
    assert (run / "config.yaml").read_text() == stored  # still says what trained the run
    # Where the run trains may change: threads and a Ray address are not part of what it trains.
    same = tiny(tmp_path, "train.acceptance.episode_length=1000", "threads=1", teachers=1)
    assert train_teachers(same, fleet, run, resume=True, log=lambda s: None)["teachers"] == 1


# ----- RAPTOR's acceptance as the off-policy runner's should_finish, on pendulums --------------------

def accepting_runner(ids, make_env, accept: AcceptanceConfig, envs: int = 1, **kwargs) -> OffPolicyRunner:
    train = RunnerConfig(steps=10_000, envs_per_member=envs)
    return OffPolicyRunner(ids, make_env, SMALL, train, window=accept.window,
                           should_finish=Acceptance(accept), **kwargs)


def member_actor_view(runner: OffPolicyRunner, k: int) -> list[torch.Tensor]:
    return [p.detach()[k].clone() for p in runner.group.actor.parameters()]


def test_acceptance_finishes_exactly_the_members_above_threshold() -> None:
    finished = {}

    def on_finish(i, record, actor):
        finished[i] = (record, actor)

    accept = AcceptanceConfig(episode_return=-500.0, window=2)
    trainer = accepting_runner([0, 1, 2, 3], make_pendulums, accept, on_finish=on_finish)
    trainer.replay.add(torch.zeros(4, 3), torch.zeros(4, 1), torch.zeros(4), torch.zeros(4, 3),
                       torch.zeros(4, dtype=torch.bool))
    trainer.update()
    keep = {k: member_actor_view(trainer, k) for k in range(4)}
    trainer.window_return[:, :2] = torch.tensor([[-100.0, -200.0], [-900.0, -800.0], [-400.0, -450.0],
                                                 [-100.0, -1000.0]])
    trainer.episodes[:] = torch.tensor([2, 2, 2, 1])  # member 3 has not finished enough episodes
    trainer.log_and_finish()
    assert sorted(finished) == [0, 2]
    assert all(r["accepted"] for r, _ in finished.values())
    assert finished[2][0]["mean_return"] == pytest.approx(-425.0)
    x = torch.randn(6, 3)
    torch.testing.assert_close(finished[0][1](x), actor_from_view(keep[0], x))
    # compacted: the group now holds members 1 and 3, unchanged
    assert trainer.ids == [1, 3] and trainer.group.members == 2 and trainer.env.num_envs == 2
    assert trainer.replay.members == 2
    for j, k in enumerate((1, 3)):
        assert all(torch.equal(a, b) for a, b in zip(keep[k], member_actor_view(trainer, j), strict=True))


def actor_from_view(view: list[torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """Run an actor from its raw member slices (weights [in, out], biases [1, out])."""
    for i in range(0, 6, 2):  # 3 layers x (weight, bias) of the SMALL actor
        x = x @ view[i] + view[i + 1][0]
        if i < 4:
            x = torch.relu(x)
    return x


def test_evaluation_confirms_or_refuses_what_the_training_episodes_say() -> None:
    """Members whose training episodes pass are flown deterministically before they are accepted."""

    def trainer_with_passing_window(threshold: float) -> OffPolicyRunner:
        accept = AcceptanceConfig(episode_return=threshold, window=2, evaluate=True)
        trainer = accepting_runner([0, 1], lambda ids: make_pendulums([i for i in ids for _ in range(2)]),
                                   accept, envs=2)
        trainer.window_return[:, :2] = torch.tensor([[-10.0, -20.0], [-10.0, 0.0]])
        trainer.episodes[:] = torch.tensor([2, 1])  # member 1 has not finished enough episodes
        return trainer

    # An untrained actor cannot hold the pendulum up: its deterministic return is far below -100.
    strict = trainer_with_passing_window(-100.0)
    strict.log_and_finish()
    assert strict.finished == {} and strict.group.members == 2
    point = strict.curves[0][-1]
    assert point["eval_length"] == 200.0 and point["eval_return"] < -100.0
    assert "eval_return" not in strict.curves[1][-1]  # its training episodes failed: not flown

    lenient = trainer_with_passing_window(-1e9)
    lenient.log_and_finish()
    assert list(lenient.finished) == [0] and lenient.finished[0]["accepted"]
    assert lenient.finished[0]["eval_length"] == 200.0


def test_precision_scores_success_then_median_final_error_and_a_crash_counts_as_infinite() -> None:
    from robo.rl.off_policy_runner import Episodes
    from robo.tasks.raptor.teachers import Precision

    # Member 0 (inactive) is not flown; member 1: errors 0.05, 0.2, crash; member 2: 0.05, 0.06, 0.3.
    errors = torch.tensor([[0.05, 0.2, 0.01], [0.05, 0.06, 0.3]])
    final_obs = torch.zeros(2, 3, 26)
    final_obs[..., 2] = errors  # the z component of p - p_ref
    terminated = torch.tensor([[False, False, True], [False, False, False]])
    episodes = Episodes(torch.tensor([[10.0, 20, 30], [1, 2, 3]]), torch.tensor([[500.0, 500, 7], [500] * 3]),
                        terminated, final_obs)
    active = torch.tensor([False, True, True])
    score, values = Precision(lambda ids: None, radius=0.1)(active, lambda mask, make_env: episodes)
    assert values["success"][1:].tolist() == pytest.approx([1 / 3, 2 / 3])
    assert values["final_error"][1:].tolist() == pytest.approx([0.2, 0.06])  # medians, crash = inf
    assert values["length"][1:].tolist() == pytest.approx([1007 / 3, 500.0])
    assert torch.isnan(values["success"][0]) and score[0].tolist() == [-float("inf")] * 3
    assert score[1].tolist() == pytest.approx([1 / 3, -0.2, 20.0])
    assert score[2, 0] > score[1, 0]  # more successes win before the median is compared


def test_judged_episodes_are_each_teachers_own_whatever_its_group(fleet) -> None:
    from robo.tasks.raptor.teachers import OwnEpisodes
    from sim.quadrotor import QuadrotorEnvConfig, load_fleet

    vehicles, _ = load_fleet(fleet)
    cfg = QuadrotorEnvConfig(observation="teacher")
    both = OwnEpisodes(vehicles, [0, 2], 4, cfg, "cpu").reset()[0]
    alone = OwnEpisodes(vehicles, [2], 4, cfg, "cpu").reset(seed=123)[0]
    assert torch.equal(both[4:], alone) and not torch.equal(both[:4], alone)


def test_each_teacher_hands_on_its_best_judged_snapshot_and_can_be_required_precise(tmp_path, fleet) -> None:
    cfg = tiny(tmp_path, "train.select_interval=40", "train.select_episodes=4", "train.acceptance.window=1",
               "train.acceptance.episode_length=1", "train.acceptance.final_error=0.001", teachers=2)
    run = tmp_path / "run"
    metrics = train_teachers(cfg, fleet, run, log=lambda s: None)
    assert metrics["accepted"] == 0  # length passes at once, a 1 mm median final error does not
    assert {r["name"] for r in metrics["rejected"]} == {"q0", "q1"}
    assert all(r["best_step"] in (40, 80, 120) for r in metrics["rejected"])
    assert [s["name"] for s in metrics["snapshots"]] == ["q0", "q1"]
    for name in ("q0", "q1"):
        result = json.loads((run / "teachers" / name / "result.json").read_text())
        judged = [p for p in read_curve(run / "teachers" / name / "curve.csv") if "select_success" in p]
        assert [p["step"] for p in judged] == [40, 80, 120]
        best = next(p for p in judged if p["step"] == result["best_step"])
        assert result["best_success"] == best["select_success"]
        assert result["best_length"] == best["select_length"]
        _, meta = load_policy(run / "teachers" / name / "actor.pt")
        assert meta["origin"]["record"]["best_step"] == result["best_step"]


def test_precision_acceptance_needs_judged_snapshots() -> None:
    with pytest.raises(ValueError, match=r"final_error needs train\.select_interval"):
        load_config(RaptorTeachersConfig, None, ["train.acceptance.final_error=0.1"])
    with pytest.raises(ValueError, match="select_episodes"):
        load_config(RaptorTeachersConfig, None, ["train.select_episodes=0"])


def _tiny_precision_bench(tmp_path, *flags: str) -> tuple[list[str], Path]:
    """``robo bench raptor --precision`` on the crazyflie and x500 with tiny teachers and 200 steps:
    (argv ending in ``flags``, then ``--json OUT``; OUT)."""
    config = tmp_path / "teachers.yaml"
    config.write_text("sac: {actor_hidden: [16, 16], critic_hidden: [32, 32], batch_size: 16, "
                      "learning_starts: 40, buffer_size: 1000}\n"
                      "train: {envs_per_member: 2, update_interval: 2}\n")
    out = tmp_path / "bench.json"
    return ["bench", "raptor", "--skip-throughput", "--skip-updates", "--precision", "--config", str(config),
            "--vehicles-precision", "crazyflie,x500", "--steps", "200", "--select-interval", "100",
            "--select-episodes", "2", *flags, "--json", str(out)], out


def test_bench_measures_steps_to_precision_and_names_bad_vehicles(tmp_path, capsys) -> None:
    argv, out = _tiny_precision_bench(tmp_path, "--update-interval", "4",
                                      "--set", "sac.critic_hidden=[24,24]")
    assert main(argv) == 0
    result = json.loads(out.read_text())["precision"]
    assert (result["update_interval"], result["envs_per_teacher"]) == (4, 2)  # the flag over the config's 2
    assert result["sac"]["critic_hidden"] == [24, 24] and result["sac"]["batch_size"] == 16  # --set over it
    rows = result["results"]
    assert [r["vehicle"] for r in rows] == ["crazyflie", "x500"]
    for r in rows:
        # Either precise at a judged step, or the budget ran out with the best snapshot reported.
        assert (r["precise"] and r["steps"] in (100, 200)) or (not r["precise"] and r["steps"] == 200)
        assert r["best_step"] in (100, 200) and r["core_seconds"] > 0
    assert "steps to precision" in capsys.readouterr().out
    assert main([*argv[:8], "nowhere", *argv[9:]]) == 1
    assert "unknown preset 'nowhere'" in capsys.readouterr().err
    written = out.read_bytes()
    assert main([*argv[:-2], "--set", "sac.critic_hiden=[8]", *argv[-2:]]) == 1
    assert "unknown config key 'sac.critic_hiden'" in capsys.readouterr().err
    assert out.read_bytes() == written  # a refused run leaves the last results as they were


def test_bench_flies_each_judged_snapshot_through_the_figure_eights_beside_a_compared_policy(
        tmp_path, capsys) -> None:
    argv, out = _tiny_precision_bench(tmp_path, "--figure8", "--train-past-precision",
                                      "--compare", "baseline")
    assert main(argv) == 0
    result = json.loads(out.read_text())["precision"]
    # Every teacher trains the whole budget, and each judged snapshot has both periods flown.
    assert [r["steps"] for r in result["results"]] == [200, 200]
    for name in ("crazyflie", "x500"):
        rows = result["figure8"][name]
        assert [r["step"] for r in rows] == [100, 200]
        assert all(set(r) == {"step", "figure8_10s_rmse_m", "figure8_5.5s_rmse_m"} for r in rows)
        # The geometric controller with the true model tracks both periods (a NaN would be a crash).
        baseline = result["figure8_compared"]["baseline"][name]
        assert 0.0 < baseline["figure8_10s_rmse_m"] < baseline["figure8_5.5s_rmse_m"] < 1.0
    printed = capsys.readouterr().out
    assert "figure-eight RMSE" in printed and "baseline" in printed
    for flag in ("--figure8", "--train-past-precision"):
        assert main(["bench", "raptor", "--skip-throughput", flag]) == 1
        assert "belong to --precision" in capsys.readouterr().err
    assert main([*argv[:-6], "--compare", "baseline"]) == 1
    assert "add --figure8" in capsys.readouterr().err
    assert main([*argv[:-4], "--compare", str(tmp_path / "missing.onnx")]) == 1
    assert "missing.onnx" in capsys.readouterr().err

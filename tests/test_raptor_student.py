"""RAPTOR distillation: DAgger data, masked BPTT, loss going down, resume, NaN stop, fleet checks, CLI."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from test_tensorboard import read_scalars

from robo.cli import main
from robo.config import load_config
from robo.files import save_torch
from robo.nets.policy import load_policy, raptor_student
from robo.rl.checkpoint import NonFiniteLoss
from robo.rl.distill import Sequences, collect, fit, imitation_loss, sequence_loss
from robo.tasks.raptor.pipeline import (
    RaptorConfig,
    StudentConfig,
    holdout_vehicles,
    prepare_fleet,
    train_student,
)
from robo.tasks.raptor.teachers import RaptorTeachersConfig, load_teacher_runs, load_teachers, train_teachers
from sim.quadrotor import QuadrotorEnv, QuadrotorEnvConfig, load_fleet, sample_fleet, save_fleet

torch.set_num_threads(1)

TEACHERS = [
    "teachers=2", "group_size=2", "sac.actor_hidden=[16,16]", "sac.critic_hidden=[32,32]",
    "sac.batch_size=16", "sac.learning_starts=40", "sac.buffer_size=1000", "train.steps=200",
    "train.log_interval=20", "train.checkpoint_interval=40", "train.acceptance.episode_length=1",
    "train.acceptance.window=1",
]
STUDENT = [
    "teacher_epochs=1", "episodes_per_teacher=3", "batch_size=4", "offset_episodes=2", "holdout=6",
    "eval_interval=2", "env.episode_steps=40", "lr=3e-3",
]


def train_tiny_teachers(root, *extra: str, fleet_seed: int = 5, thrust_curves: str = "crazyflie"):
    """Two tiny teachers on a 3-vehicle fleet in ``root/teachers`` (``extra``: config overrides)."""
    fleet = save_fleet(sample_fleet(3, seed=fleet_seed, thrust_curves=thrust_curves), root / "fleet.json")
    train_teachers(load_config(RaptorTeachersConfig, None, [*TEACHERS, *extra]), fleet, root / "teachers",
                   log=lambda s: None)
    return root / "teachers"


@pytest.fixture(scope="module")
def teacher_run(tmp_path_factory):
    return train_tiny_teachers(tmp_path_factory.mktemp("raptor"))


def student_config(*extra: str) -> StudentConfig:
    return load_config(StudentConfig, None, [*STUDENT, *extra])


class FixedTeacher(torch.nn.Module):
    """A fixed random tanh-linear map of the 26-value observation: labels a student can learn."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(26, 4)
        with torch.no_grad():
            self.linear.weight.mul_(0.5)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.linear(obs))


def env(n: int = 12, seed: int = 0, steps: int = 30) -> QuadrotorEnv:
    cfg = QuadrotorEnvConfig(observation="teacher", auto_reset=False, episode_steps=steps)
    return QuadrotorEnv(sample_fleet(n, seed=1), cfg, seed=seed)


def test_collect_masks_rows_from_their_termination_on() -> None:
    torch.manual_seed(0)
    def motors_off(obs: torch.Tensor) -> torch.Tensor:  # every row falls and ends
        return -torch.ones(obs.shape[0], 4)

    data = collect(env(steps=200), 200, motors_off, lambda obs: obs[:, :22], None)
    assert data.inputs.shape == (12, 200, 22) and data.targets.shape == (12, 200, 4)
    ended = data.mask[:, -1] == 0
    assert ended.all(), "falling with the motors off must terminate within 2 s"
    for row in range(12):
        alive = int(data.mask[row].sum())
        assert torch.all(data.mask[row, :alive] == 1) and torch.all(data.mask[row, alive:] == 0)
        assert torch.all(data.inputs[row, alive:] == 0) and torch.all(data.targets[row, alive:] == 0)
        assert torch.all(data.targets[row, :alive] == -1)


def test_student_flies_when_given_and_its_actions_reach_the_plant() -> None:
    student = raptor_student()
    data = collect(env(), 5, lambda obs: torch.zeros(obs.shape[0], 4), lambda obs: obs[:, :22], student)
    # The observation's previous-action slots hold what was flown: the student's outputs, not the labels.
    outputs, _ = student.forward_sequence(data.inputs[:, :4])
    flown = data.inputs[:, 1:5, 18:22]
    assert torch.allclose(flown, outputs.clamp(-1, 1), atol=1e-5)
    assert not torch.allclose(flown, torch.zeros_like(flown))


def test_masked_steps_do_not_change_the_loss_or_its_gradient() -> None:
    student = raptor_student()
    x, y = torch.randn(3, 20, 22), torch.randn(3, 20, 4)
    mask = torch.ones(3, 20)
    mask[0, 12:] = 0
    y2 = y.clone()
    y2[0, 12:] = 100.0
    grads = []
    for targets in (y, y2):
        student.zero_grad()
        loss = sequence_loss(student, x, targets, mask)
        loss.backward()
        grads.append(torch.cat([p.grad.flatten() for p in student.parameters()]))
    assert torch.allclose(sequence_loss(student, x, y, mask), sequence_loss(student, x, y2, mask))
    assert torch.allclose(grads[0], grads[1])
    y3 = y.clone()
    y3[0, 5] += 1.0  # an alive step does count
    assert not torch.allclose(sequence_loss(student, x, y, mask), sequence_loss(student, x, y3, mask))


def test_dagger_epochs_reduce_the_imitation_loss_on_fresh_data() -> None:
    torch.manual_seed(0)
    teacher = FixedTeacher()
    student = raptor_student()
    optimizer = torch.optim.Adam(student.parameters(), lr=1e-2)
    generator = torch.Generator().manual_seed(0)

    def data(seed: int, flies: bool) -> Sequences:
        return collect(env(seed=seed), 30, teacher, lambda obs: obs[:, :22], student if flies else None)

    before = imitation_loss(student, data(99, False))
    for epoch in range(30):
        fit(student, optimizer, data(epoch, epoch >= 3), 4, generator)
    after = imitation_loss(student, data(99, False))
    assert after < 0.3 * before, (before, after)


def test_non_finite_loss_stops_without_touching_the_weights() -> None:
    student = raptor_student()
    before = [p.clone() for p in student.parameters()]
    bad = Sequences(torch.randn(2, 10, 22), torch.full((2, 10, 4), float("nan")), torch.ones(2, 10))
    with pytest.raises(NonFiniteLoss, match="imitation loss is nan"):
        fit(student, torch.optim.Adam(student.parameters()), bad, 2, torch.Generator())
    assert all(torch.equal(a, b) for a, b in zip(before, student.parameters(), strict=True))


def test_train_student_writes_the_run_and_resume_matches_an_uninterrupted_run(teacher_run, tmp_path) -> None:
    whole = train_student(student_config("epochs=4"), teacher_run, tmp_path / "whole", log=lambda s: None)
    train_student(student_config("epochs=2"), teacher_run, tmp_path / "split", log=lambda s: None)
    split = train_student(student_config("epochs=4"), teacher_run, tmp_path / "split", resume=True,
                          log=lambda s: None)
    assert whole["epochs"] == split["epochs"] == 4
    a, _ = load_policy(tmp_path / "whole" / "student_last.pt")
    b, meta = load_policy(tmp_path / "split" / "student_last.pt")
    for p, q in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(p, q)
    assert meta["run"]["epoch"] == 4 and meta["run"]["teacher_run"] == str(teacher_run)
    history = (tmp_path / "split" / "history.csv").read_text().splitlines()
    assert [line.split(",")[0] for line in history[1:]] == ["1", "2", "3", "4"]
    assert [line.split(",")[1] for line in history[1:]] == ["teachers", "student", "student", "student"]
    assert (tmp_path / "split" / "student_best.pt").is_file()
    assert (tmp_path / "split" / "learning_curves.png").stat().st_size > 0
    offsets = json.loads((tmp_path / "split" / "offsets.json").read_text())
    accepted = json.loads((teacher_run / "metrics.json").read_text())["accepted_names"]
    assert offsets["teachers"] == accepted and all(len(o) == 3 for o in offsets["offsets"])
    stored = json.loads((tmp_path / "split" / "metrics.json").read_text())
    assert stored["best"]["epoch"] in (2, 4) and 0.0 <= stored["best"]["success_rate"] <= 1.0


def test_nan_from_a_teacher_stops_training_and_keeps_the_last_good_checkpoint(teacher_run, tmp_path) -> None:
    import shutil

    teachers = tmp_path / "teachers"
    shutil.copytree(teacher_run, teachers)
    out = tmp_path / "student"
    train_student(student_config("epochs=1"), teachers, out, log=lambda s: None)
    good = (out / "checkpoint.pt").read_bytes()
    for name in json.loads((teachers / "metrics.json").read_text())["accepted_names"]:
        actor_file = teachers / "teachers" / name / "actor.pt"
        payload = torch.load(actor_file, weights_only=True)
        for value in payload["state_dict"].values():
            value.fill_(float("nan"))
        save_torch(payload, actor_file)
    with pytest.raises(NonFiniteLoss):
        train_student(student_config("epochs=3"), teachers, out, resume=True, log=lambda s: None)
    assert (out / "checkpoint.pt").read_bytes() == good


def test_a_student_run_is_not_overwritten_and_a_foreign_fleet_is_refused(teacher_run, tmp_path) -> None:
    out = tmp_path / "student"
    train_student(student_config("epochs=1"), teacher_run, out, log=lambda s: None)
    with pytest.raises(OSError, match="not empty"):
        train_student(student_config("epochs=1"), teacher_run, out, log=lambda s: None)
    fleet = tmp_path / "fleet.json"
    prepare_fleet(load_config(RaptorConfig, None, ["fleet.size=3", "fleet.seed=1"]).fleet, fleet)
    with pytest.raises(ValueError, match="does not match the config's fleet"):
        prepare_fleet(load_config(RaptorConfig, None, ["fleet.size=3", "fleet.seed=2"]).fleet, fleet)
    with pytest.raises(ValueError, match="order coverage"):  # the same vehicles in another order
        prepare_fleet(load_config(RaptorConfig, None, ["fleet.size=3", "fleet.seed=1",
                                                       "fleet.order=coverage"]).fleet, fleet)
    with pytest.raises(ValueError, match="thrust curves varied"):  # the same draws, other thrust curves
        prepare_fleet(load_config(RaptorConfig, None, ["fleet.size=3", "fleet.seed=1",
                                                       "fleet.thrust_curves=varied"]).fleet, fleet)
    with pytest.raises(ValueError, match=r"fleet\.order must be one of sampled, coverage"):
        load_config(RaptorConfig, None, ["fleet.order=best"])
    with pytest.raises(ValueError, match=r"fleet\.thrust_curves must be one of crazyflie, varied"):
        load_config(RaptorConfig, None, ["fleet.thrust_curves=linear"])


def test_all_teachers_distils_the_rejected_ones_too(teacher_run, tmp_path) -> None:
    run = tmp_path / "teachers"
    shutil.copytree(teacher_run, run)
    metrics = json.loads((run / "metrics.json").read_text())
    first, *others = metrics["accepted_names"]
    assert others, "the fixture needs two teachers or more"
    metrics["accepted_names"] = [first]
    metrics["rejected"] = [{"name": n} for n in others]
    (run / "metrics.json").write_text(json.dumps(metrics))
    for which, names in (("accepted", [first]), ("all", sorted([first, *others]))):
        train_student(student_config("epochs=1", f"teachers={which}"), run, tmp_path / which,
                      log=lambda s: None)
        assert json.loads((tmp_path / which / "offsets.json").read_text())["teachers"] == names


def test_teacher_runs_on_other_fleets_are_joined_into_one_teacher_set(teacher_run, tmp_path, capsys) -> None:
    varied = train_tiny_teachers(tmp_path / "varied", fleet_seed=6, thrust_curves="varied")
    joined = load_teacher_runs([teacher_run, varied], accepted_only=True)
    first, first_teachers = load_teachers(teacher_run)
    second, second_teachers = load_teachers(varied)
    label = teacher_run.parent.name
    assert joined.names == [f"{label}/{n}" for n in first] + [f"varied/{n}" for n in second]
    fleets = [{p.name: p for p in load_fleet(r / "fleet.json")[0]} for r in (teacher_run, varied)]
    assert joined.vehicles == [fleets[0][n] for n in first] + [fleets[1][n] for n in second]
    # Each joined teacher labels exactly as in its own run.
    obs = torch.randn(len(first) + len(second), 5, 26)
    expected = torch.cat((first_teachers.deterministic(obs[:len(first)]),
                          second_teachers.deterministic(obs[len(first):])))
    assert torch.equal(joined.teachers.deterministic(obs), expected)
    assert joined.digest != load_teacher_runs([teacher_run], accepted_only=True).digest

    out = tmp_path / "student"
    sets = [a for s in [*STUDENT, "epochs=1"] for a in ("--set", s)]
    assert main(["train", "raptor-student", "--teachers", str(teacher_run), str(varied), "--out", str(out),
                 *sets]) == 0
    assert json.loads((out / "offsets.json").read_text())["teachers"] == joined.names
    _, meta = load_policy(out / "student_best.pt")
    assert meta["run"]["teacher_run"] == [str(teacher_run), str(varied)]
    # The same run twice is refused before anything is written.
    capsys.readouterr()
    twice = tmp_path / "twice"
    assert main(["train", "raptor-student", "--teachers", str(varied), str(varied), "--out", str(twice),
                 *sets]) != 0
    assert "a teacher run is given twice" in capsys.readouterr().err
    assert not twice.exists()

    # Held-out vehicles from the teachers' own fleets: each fleet's vehicle that is not a teacher.
    spare = [next(p for p in fleet.values() if p not in joined.vehicles) for fleet in fleets]
    config = student_config("holdout=2", "holdout_from=teachers")
    assert holdout_vehicles(config, joined) == spare
    with pytest.raises(ValueError, match=r"student\.holdout: 2 held-out vehicles wanted from .*has 1 that"):
        holdout_vehicles(student_config("holdout=3", "holdout_from=teachers"), joined)
    with pytest.raises(ValueError, match=r"student\.holdout_from must be 'paper' or 'teachers'"):
        student_config("holdout_from=fleet")


def test_teacher_runs_of_other_observations_are_not_joined(teacher_run, tmp_path) -> None:
    forced = train_tiny_teachers(tmp_path / "force", "env.observation=teacher_force", fleet_seed=6)
    with pytest.raises(ValueError, match="teachers take different observations"):
        load_teacher_runs([teacher_run, forced], accepted_only=True)


def test_student_config_errors_name_the_key() -> None:
    with pytest.raises(ValueError, match=r"student\.teachers must be 'accepted' or 'all'"):
        student_config("teachers=best")
    with pytest.raises(ValueError, match=r"student\.epochs must be > 0"):
        student_config("epochs=0")
    with pytest.raises(ValueError, match="auto_reset"):
        student_config("env.auto_reset=true")
    for bad in ("lr_final=0", "lr_final=1.0"):  # above lr (3e-3) too
        with pytest.raises(ValueError, match=r"student\.lr_final must be in \(0, lr = 0\.003\]"):
            student_config(bad)


def test_a_cosine_learning_rate_runs_from_lr_to_lr_final_over_the_epochs(teacher_run, tmp_path) -> None:
    config = student_config("epochs=3", "lr_final=3e-4")
    assert [config.epoch_lr(e) for e in (1, 2, 3)] == pytest.approx([3e-3, 1.65e-3, 3e-4])
    assert student_config("epochs=3").epoch_lr(3) == 3e-3  # no lr_final: constant
    train_student(config, teacher_run, tmp_path / "run", log=lambda s: None)
    rows = (tmp_path / "run" / "history.csv").read_text().splitlines()
    column = rows[0].split(",").index("lr")
    assert [float(r.split(",")[column]) for r in rows[1:]] == pytest.approx([3e-3, 1.65e-3, 3e-4])
    saved = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=False)
    assert saved["optimizer"]["param_groups"][0]["lr"] == pytest.approx(3e-4)  # what the last epoch used


def test_cli_trains_a_student_and_evaluates_it(teacher_run, tmp_path, capsys) -> None:
    out = tmp_path / "student"
    sets = [a for s in [*STUDENT, "epochs=2"] for a in ("--set", s)]
    assert main(["train", "raptor-student", "--teachers", str(teacher_run), "--out", str(out), *sets]) == 0
    assert "held-out success" in capsys.readouterr().out
    evaluation = ["--set", "vehicles=8", "--set", "preset_episodes=2", "--set", "presets=[crazyflie]",
                  "--set", "figure8_periods=[5.5]", "--out", str(tmp_path / "eval")]
    assert main(["eval", "raptor", "--policy", str(out / "student_best.pt"), *evaluation]) == 0
    printed = capsys.readouterr().out
    assert "crazyflie" in printed and "held-out" in printed and "R^2" in printed
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert metrics["held_out"]["episodes"] == 8 and "crazyflie" in metrics["presets"]
    assert (tmp_path / "eval" / "figure8_tracks.png").stat().st_size > 0


def test_cli_bad_policy_is_a_one_line_error(tmp_path, capsys) -> None:
    assert main(["eval", "raptor", "--policy", str(tmp_path / "missing.pt")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no such file" in err[0]
    junk = tmp_path / "junk.pt"
    junk.write_text("not a checkpoint")
    assert main(["eval", "raptor", "--policy", str(junk)]) == 1
    assert "not a readable policy checkpoint" in capsys.readouterr().err


@pytest.mark.parametrize("path", ["configs/raptor.yaml", "configs/raptor_quick.yaml",
                                  "configs/raptor_small.yaml"])
def test_shipped_pipeline_configs_load(path) -> None:
    config = load_config(RaptorConfig, path)
    assert config.teachers.env.observation in ("teacher", "teacher_force")
    assert not config.student.env.auto_reset
    assert config.teachers.teachers <= config.fleet.size


def test_the_default_students_config_is_the_joined_recipe_its_readme_gives() -> None:
    """robo/policies/raptor_default/config.yaml is the resolved config of the student run its README
    gives: every teacher of two runs, the best epoch picked on the runs' own held-out vehicles, a
    cosine learning rate."""
    config = load_config(StudentConfig, "robo/policies/raptor_default/config.yaml")
    assert (config.teachers, config.holdout_from, config.episodes_per_teacher) == ("all", "teachers", 16)
    assert (config.lr, config.lr_final, config.threads, config.seed) == (1e-3, 1e-4, 1, 1)
    _, meta = load_policy("robo/policies/raptor_default/student.pt")
    assert [Path(r).parent.name for r in meta["run"]["teacher_run"]] == ["small_c128", "small_c128_varied"]
    readme = Path("robo/policies/raptor_default/README.md").read_text()
    assert "--teachers runs/small_c128/teachers runs/small_c128_varied/teachers" in " ".join(readme.split())


def test_the_whole_pipeline_runs_resumes_and_exports(tmp_path, capsys) -> None:
    sets = ["fleet.size=3", "fleet.seed=4", *(f"teachers.{s}" for s in TEACHERS),
            *(f"student.{s}" for s in [*STUDENT, "epochs=2"]),
            "eval.vehicles=6", "eval.preset_episodes=2", "eval.presets=[x500]", "eval.figure8_periods=[10]"]
    args = ["train", "raptor", "--out", str(tmp_path / "run"), *(a for s in sets for a in ("--set", s))]
    assert main(args) == 0
    run = tmp_path / "run"
    for name in ("fleet.json", "teachers/metrics.json", "student/student_best.pt", "eval/metrics.json",
                 "eval/teachers_eval.json", "policy.onnx", "policy.json"):
        assert (run / name).is_file(), name
    card = json.loads((run / "policy.json").read_text())
    assert card["observation"]["size"] == 22 and card["control_rate_hz"] == 100.0
    metrics = json.loads((run / "eval" / "metrics.json").read_text())
    logged = read_scalars(run / "tensorboard" / "eval")
    x500 = metrics["presets"]["x500"]["success_rate"]
    assert logged["eval/presets/x500/success_rate"] == [(0, pytest.approx(x500))]
    assert "x500" in capsys.readouterr().out
    onnx_before = (run / "policy.onnx").read_bytes()
    assert main([*args, "--resume"]) == 0  # finished stages are kept, not redone
    assert (run / "policy.onnx").read_bytes() == onnx_before
    assert main(args) == 1  # a finished run is never overwritten without --resume
    assert "not empty" in capsys.readouterr().err


def test_the_paper_scale_config_runs_end_to_end_at_toy_sizes(tmp_path) -> None:
    """configs/raptor.yaml (for a GPU) with only its sizes cut: every stage runs on its settings."""
    sets = ["fleet.size=3", *(f"teachers.{s}" for s in TEACHERS), "teachers.train.select_interval=100",
            "teachers.train.select_episodes=2", *(f"student.{s}" for s in [*STUDENT, "epochs=2"]),
            "eval.vehicles=6", "eval.preset_episodes=2", "eval.presets=[x500]", "eval.figure8_periods=[10]"]
    run = tmp_path / "run"
    assert main(["train", "raptor", "--config", "configs/raptor.yaml", "--out", str(run),
                 *(a for s in sets for a in ("--set", s))]) == 0
    config = load_config(RaptorConfig, run / "config.yaml")
    assert (config.teachers.env.observation, config.teachers.sac.policy_frequency) == ("teacher_force", 2)
    assert (config.student.teachers, config.student.lr_final) == ("all", 1e-4)
    assert json.loads((run / "teachers" / "metrics.json").read_text())["teachers"] == 2
    assert json.loads((run / "policy.json").read_text())["observation"]["size"] == 22


def test_onnx_and_torch_students_fly_the_same_recovery_episodes() -> None:
    import numpy as np

    from robo.tasks.raptor import evaluation as ev
    from sim.quadrotor import preset

    cfg = ev.EvalConfig(vehicles=0, presets=())
    runs = [ev.recovery(ev.load_controller(f"robo/policies/raptor_default/{name}"), [preset("x500")], cfg,
                        episodes=4, seed=1, probe_steps=(250, 300)) for name in ("policy.onnx", "student.pt")]
    assert np.array_equal(runs[0]["length"], runs[1]["length"])
    assert np.abs(runs[0]["hidden"] - runs[1]["hidden"]).max() < 1e-3


def test_teacher_evaluation_flies_each_teacher_on_its_own_quadrotor(teacher_run) -> None:
    from robo.tasks.raptor.evaluation import (
        EvalConfig,
        Teacher,
        evaluate_teachers,
        recovery,
        summarise_recovery,
    )
    from robo.tasks.raptor.teachers import load_teachers
    from sim.quadrotor import load_fleet

    config = load_config(EvalConfig, None, ["vehicles=0", "env.episode_steps=60"])
    rows = evaluate_teachers(teacher_run, config, episodes=4)
    assert [r["name"] for r in rows] == ["q0", "q1"] and all(r["accepted"] for r in rows)
    fleet = {p.name: p for p in load_fleet(teacher_run / "fleet.json")[0]}
    singles = [load_teachers(teacher_run, [r["name"]])[1] for r in rows]

    def one_by_one(obs: torch.Tensor) -> torch.Tensor:  # rows are teacher-major, 4 episodes each
        return torch.cat([a.deterministic(obs[4 * i: 4 * i + 4][None])[0] for i, a in enumerate(singles)])

    # The stacked actors give each teacher's rows what that teacher alone gives them.
    result = recovery(Teacher(one_by_one), [fleet[r["name"]] for r in rows], config, episodes=4,
                      seed=config.seed)
    for i, row in enumerate(rows):
        mine = summarise_recovery({k: v[4 * i: 4 * i + 4] for k, v in result.items()
                                   if k in ("success", "length", "final_error")})
        assert row["mean_episode_length"] == pytest.approx(mine["mean_episode_length"])
        assert row["success_rate"] == mine["success_rate"]
        assert row["thrust_to_weight"] == pytest.approx(fleet[row["name"]].thrust_to_weight())
    # Flown again without the external force: with no force in the first place, the same numbers.
    assert all(0.0 <= r["no_force_success_rate"] <= 1.0 for r in rows)
    calm = load_config(EvalConfig, None, ["vehicles=0", "env.episode_steps=60", "env.disturbance=false"])
    for row in evaluate_teachers(teacher_run, calm, episodes=4):
        assert row["no_force_success_rate"] == row["success_rate"]
        assert row["no_force_median_final_error_m"] == pytest.approx(row["median_final_error_m"], nan_ok=True)

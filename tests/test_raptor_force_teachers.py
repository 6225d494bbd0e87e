"""Force-aware RAPTOR teachers: the 29-value observation, teachers trained on it, and their student."""

from __future__ import annotations

import pytest
import torch
from test_raptor_student import train_tiny_teachers

from robo.config import load_config
from robo.nets.policy import load_policy
from robo.tasks.raptor.evaluation import EvalConfig, evaluate_teachers
from robo.tasks.raptor.pipeline import StudentConfig, train_student
from robo.tasks.raptor.teachers import RaptorTeachersConfig, load_teachers
from sim.quadrotor import QuadrotorEnv, QuadrotorEnvConfig, sample_fleet
from sim.quadrotor.observation import LAYOUTS, STUDENT, TEACHER, TEACHER_FORCE, layout_named
from sim.quadrotor.params import GRAVITY

torch.set_num_threads(1)



def test_the_force_aware_observation_is_the_teachers_plus_the_force_per_weight() -> None:
    fleet = sample_fleet(6, seed=3)
    envs = {layout: QuadrotorEnv(fleet, QuadrotorEnvConfig(observation=layout), seed=4)
            for layout in ("teacher", "teacher_force")}
    action = torch.zeros(6, 4)
    for step in range(3):
        obs = {layout: env.observe() if step == 0 else env.step(action)[0] for layout, env in envs.items()}
        assert obs["teacher_force"].shape == (6, TEACHER_FORCE.size) and TEACHER_FORCE.size == 29
        assert torch.equal(obs["teacher_force"][:, TEACHER_FORCE.part(TEACHER)], obs["teacher"])
    env = envs["teacher_force"]
    weight = torch.tensor([p.mass * GRAVITY for p in fleet])[:, None]
    force = env.s.external_force.t() / weight
    assert force.abs().max() > 1e-3, "sampled vehicles carry a random external force"
    assert torch.allclose(obs["teacher_force"][:, TEACHER_FORCE.slice("force")], force)
    assert env.observe(teacher=False).shape == (6, STUDENT.size)


def test_layouts_are_named_by_their_observation_names() -> None:
    for key, layout in LAYOUTS.items():
        assert layout_named(layout.names) == key
    with pytest.raises(ValueError, match="27-value observation that is none of the quadrotor layouts"):
        layout_named([*TEACHER.names, "extra"])
    with pytest.raises(ValueError, match="observation must be one of student, teacher, teacher_force"):
        QuadrotorEnvConfig(observation="oracle")
    with pytest.raises(ValueError, match=r"env.observation must be teacher .* not student"):
        load_config(RaptorTeachersConfig, None, ["env.observation=student"])


@pytest.fixture(scope="module")
def force_run(tmp_path_factory):
    return train_tiny_teachers(tmp_path_factory.mktemp("force"), "env.observation=teacher_force")


def test_force_aware_teachers_say_so_and_are_labelled_with_the_force(force_run) -> None:
    names, teachers = load_teachers(force_run, accepted_only=False)
    assert teachers.layout == "teacher_force" and len(names) == 2
    _, meta = load_policy(force_run / "teachers" / names[0] / "actor.pt")
    assert [e["name"] for e in meta["observation"]] == TEACHER_FORCE.names
    obs = torch.zeros(2, 5, TEACHER_FORCE.size)
    pushed = obs.clone()
    pushed[..., TEACHER_FORCE.slice("force")] = 0.5
    # The actors read the force: the same state with and without it gets different actions.
    assert not torch.allclose(teachers.deterministic(obs), teachers.deterministic(pushed))


def test_teachers_of_different_observations_are_not_stacked(force_run, tmp_path) -> None:
    import shutil

    run = tmp_path / "mixed"
    shutil.copytree(force_run, run)
    names = sorted(p.name for p in (run / "teachers").iterdir())
    path = run / "teachers" / names[0] / "actor.pt"
    saved = torch.load(path, weights_only=False)
    saved["meta"]["observation"] = saved["meta"]["observation"][: TEACHER.size]
    torch.save(saved, path)
    with pytest.raises(ValueError, match="teachers take different observations"):
        load_teachers(run, accepted_only=False)


def test_a_student_distils_force_aware_teachers_from_its_22_values(force_run, tmp_path) -> None:
    config = load_config(StudentConfig, None, [
        "teachers=all", "epochs=2", "teacher_epochs=1", "episodes_per_teacher=2", "batch_size=4",
        "offset_episodes=2", "holdout=4", "eval_interval=1", "env.episode_steps=30"])
    result = train_student(config, force_run, tmp_path / "student", log=lambda s: None)
    student, meta = load_policy(tmp_path / "student" / "student_best.pt")
    assert student.arch["obs_dim"] == STUDENT.size
    assert [e["name"] for e in meta["observation"]] == STUDENT.names
    assert result["epochs"] == 2


def test_force_aware_teachers_are_evaluated_on_their_own_observation(force_run) -> None:
    env = QuadrotorEnvConfig(observation="teacher", reference="hold", auto_reset=False, episode_steps=20)
    config = EvalConfig(vehicles=0, presets=(), env=env)
    rows = evaluate_teachers(force_run, config, episodes=2)
    assert len(rows) == 2 and all(0 <= r["success_rate"] <= 1 for r in rows)
    # Flown with the force and without it: the force-aware actors got a zero force the second time.
    names, _ = load_teachers(force_run, accepted_only=False)
    assert [r["name"] for r in rows] == names
    assert all(r["episodes"] == 2 for r in rows)


def test_teachers_and_a_compared_controller_fly_the_figure_eights_on_each_teachers_vehicle(force_run) -> None:
    from robo.tasks.raptor.evaluation import Baseline, teachers_table

    env = QuadrotorEnvConfig(observation="teacher", reference="hold", auto_reset=False, episode_steps=20)
    config = EvalConfig(vehicles=0, presets=(), env=env, figure8_periods=(8.0,), figure8_scale=0.5,
                        figure8_ramp=0.5)
    rows = evaluate_teachers(force_run, config, episodes=2, others={"baseline": Baseline()})
    for r in rows:
        assert "figure8_8s_rmse_m" in r  # the teacher's own flight (NaN if the tiny teacher crashed)
        # The geometric controller tracks: well within the 0.40 m RMS of the reference about its centre.
        assert 0.0 < r["others"]["baseline"]["figure8_8s_rmse_m"] < 0.2
    lines = teachers_table(rows).splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("figure-eight RMSE"))
    assert lines[header + 1].split() == ["teacher", "teacher", "8s", "baseline", "8s"]
    body = lines[header + 2: header + 2 + len(rows)]
    assert [line.split()[0] for line in body] == [r["name"] for r in rows]
    assert lines[-1].startswith("median over the teachers' vehicles: teacher 8s ")
    baseline = sorted(r["others"]["baseline"]["figure8_8s_rmse_m"] for r in rows)
    assert lines[-1].endswith(f"; baseline 8s {(baseline[0] + baseline[1]) / 2:.3f} (0 crashed)")


def test_the_teachers_table_ends_with_the_medians_over_teachers() -> None:
    from robo.tasks.raptor.evaluation import teachers_table

    rows = [{"name": f"q{i}", "mass_kg": 1.0, "thrust_to_weight": 3.0, "disturbance_sigma_n": 0.5,
             "accepted": False, "success_rate": 0.0, "mean_episode_length": 500.0,
             "median_final_error_m": err, "no_force_success_rate": 0.0, "no_force_median_final_error_m": calm}
            for i, (err, calm) in enumerate([(0.05, 0.04), (0.3, 0.08), (0.2, 0.2)])]
    summary = teachers_table(rows).splitlines()[-2]
    assert summary == ("over the 3 teachers: median final error 0.200 m with the force, 0.080 m without; "
                       "within 0.1 m: 1 with, 2 without")

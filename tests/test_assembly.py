"""sim.assembly: the Panda peg-in-hole benchmark (real MuJoCo, robosuite's meshes)."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from sim.assembly import AssemblyConfig, AssemblyEnv, ScriptedExpert, demos
from sim.assembly.config import preset
from sim.assembly.env import OBSERVATION_LAYOUT as L
from sim.assembly.expert import human_like


def run_expert(env: AssemblyEnv, expert: ScriptedExpert, steps: int):
    obs, _ = env.reset()
    ends = []
    for _ in range(steps):
        obs, reward, terminated, truncated, info = env.step(expert.act(obs))
        done = (terminated | truncated).numpy()
        final = info["final_observation"]
        ends += [(bool(terminated[i]), float(reward[i]), final[i]) for i in np.flatnonzero(done)]
        expert.reset(np.flatnonzero(done))
    return ends


def test_scene_loads_and_steps_with_the_arm_holding_still():
    env = AssemblyEnv(1, AssemblyConfig(), seed=3)
    obs, _ = env.reset()
    assert obs.shape == (1, L.size) and torch.isfinite(obs).all()
    assert env.model.nu == 9 and env.model.opt.integrator == 3  # 7 arm servos + 2 fingers, implicitfast
    tip0 = obs[0, L.slice("tip_pos")].clone()
    hold = env.hold_action()
    for _ in range(20):
        obs, *_ = env.step(hold)
    # gravity compensation and servos: a zero action keeps the tip within a millimetre
    assert torch.linalg.norm(obs[0, L.slice("tip_pos")] - tip0) < 1e-3
    # the hole's top centre sits hole_depth above the table, inside the randomisation box
    hole = obs[0, L.slice("hole_pos")]
    assert abs(hole[2] - 0.04) < 1e-6 and hole[:2].abs().max() <= 0.05


def test_actions_move_the_tip_in_their_direction():
    env = AssemblyEnv(1, AssemblyConfig(), seed=0)
    obs, _ = env.reset()
    tip0 = obs[0, L.slice("tip_pos")].clone()
    target = env.hold_action()
    target[0, 0] += 0.015  # an absolute pose 15 mm along x
    for _ in range(15):
        obs, *_ = env.step(target)
    moved = obs[0, L.slice("tip_pos")] - tip0
    assert abs(moved[0] - 0.015) < 5e-4 and abs(moved[1]) < 5e-4 and abs(moved[2]) < 5e-4


def test_batched_rows_equal_single_environments():
    cfg = AssemblyConfig(episode_steps=8)
    batch = AssemblyEnv(3, cfg, seed=5)
    singles = [AssemblyEnv(1, cfg, seed=5, row_offset=i) for i in range(3)]
    obs_b, _ = batch.reset()
    for single in singles:
        single.reset()
    noise = np.random.default_rng(0).uniform(-0.02, 0.02, (12, 3, 10)).astype(np.float32)
    actions = batch.hold_action()[None] + torch.from_numpy(noise)
    assert not torch.equal(obs_b[0], obs_b[1])  # rows draw different holes
    for t in range(12):  # crosses one autoreset at step 8
        obs_b, _, _, trunc_b, info_b = batch.step(actions[t])
        for i, single in enumerate(singles):
            obs, _, _, trunc, info = single.step(actions[t, i : i + 1])
            assert torch.equal(obs[0], obs_b[i]) and torch.equal(trunc[0], trunc_b[i])
            assert torch.equal(info["final_observation"][0], info_b["final_observation"][i])
    assert batch.steps.tolist() == [4, 4, 4]


@pytest.mark.parametrize("task", ["peg_2mm", "peg_0.2mm"])
def test_expert_inserts_with_zero_noise(task):
    # IK on the commanded configuration with a velocity lead: the tip does not swing out of a 0.2 mm gap
    cfg = preset(task)
    env = AssemblyEnv(2, cfg, seed=11)
    ends = run_expert(env, ScriptedExpert(2, cfg), 130)
    assert len(ends) >= 2 and all(success for success, _, _ in ends)
    for _, reward, final in ends:
        assert reward == 1.0
        assert final[L.slice("tip_in_hole")][2] <= -cfg.success_depth  # the final row is the inserted state


def test_success_needs_depth_inside_the_hole_and_time_runs_out():
    cfg = AssemblyConfig(episode_steps=5)
    env = AssemblyEnv(1, cfg, seed=2)
    env.reset()
    assert not env.success()[0]  # starts 15 cm above the table
    # the tip beside the hole at insertion depth is not inside it
    data = env.data[0]
    env.hole_pos[0, :2] += 0.05
    assert not env.success()[0]
    for _ in range(5):
        _, reward, terminated, truncated, _ = env.step(env.hold_action())
    assert truncated[0] and not terminated[0] and reward[0] == 0.0
    assert env.steps[0] == 0 and data is env.data[0]  # reset in the same step


def test_a_non_finite_state_resets_that_environment_and_is_counted(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # MuJoCo writes its warning log (MUJOCO_LOG.TXT) into the working folder
    env = AssemblyEnv(2, AssemblyConfig(), seed=4)
    obs, _ = env.reset()
    env.data[1].qvel[:] = np.nan
    obs2, _, terminated, truncated, info = env.step(env.hold_action())
    assert truncated.tolist() == [False, True] and not terminated.any()
    assert info["unstable_resets"] == 1 and torch.isfinite(obs2).all()
    assert torch.equal(info["final_observation"][1], obs[1])  # the last finite observation


def test_human_like_expert_corrects_a_jam_and_inserts():
    cfg = preset("peg_2mm", randomness="low")
    env = AssemblyEnv(4, cfg, seed=3)
    expert = ScriptedExpert(4, cfg, aim_noise=0.002, tremor=0.001, pauses=True, seed=0)
    episodes = demos.record(env, expert, 4)
    assert expert.corrections >= 1  # a 2 mm aim error jams on the wall; it lifts and aims again
    assert sum(e.success for e in episodes) >= 3


def test_demonstrations_round_trip_and_refuse_another_layout(tmp_path):
    import h5py

    cfg = preset("peg_2mm")
    env = AssemblyEnv(2, cfg, seed=1)
    episodes = demos.record(env, human_like(2, cfg, seed=1), episodes=3)
    path = demos.save(tmp_path / "peg.hdf5", episodes, env, "peg_2mm", {"aim_noise": 0.001})
    back, attrs = demos.load(path, task="peg_2mm")
    assert len(back) == 3 and attrs["env_config"] == dataclasses.asdict(cfg)
    for a, b in zip(episodes, back, strict=True):
        np.testing.assert_array_equal(a.obs, b.obs)
        np.testing.assert_array_equal(a.action, b.action)
        assert a.success == b.success and a.action.shape[1] == 10
    assert not list(tmp_path.glob("*.tmp"))
    with pytest.raises(ValueError, match=r"task 'peg_2mm', expected 'peg_0\.2mm'"):
        demos.load(path, task="peg_0.2mm")
    with h5py.File(path, "r+") as f:
        f["data"].attrs["action"] = json.dumps(["dx", "dy", "dz", "dyaw", "gripper"])
    with pytest.raises(ValueError, match=r"action layout differs: 'dx' where 'pos\.x'") as err:
        demos.load(path)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(("kwargs", "key"), [
    ({"clearance": 0.0}, "clearance"), ({"clearance": -1e-3}, "clearance"), ({"task": "nut_on_bolt"}, "task"),
    ({"episode_steps": 0}, "episode_steps"), ({"randomness": "high"}, "randomness")])
def test_bad_config_names_the_key(kwargs, key):
    with pytest.raises(ValueError, match=f"^{key}: ") as err:
        AssemblyConfig(**kwargs)
    assert "\n" not in str(err.value)

"""The hand scene and environment: real MuJoCo with robosuite's Inspire hand (the ``hand`` extra)."""

import mujoco
import numpy as np
import pytest
import torch

from sim.hand.demonstrator import Demonstrator
from sim.hand.env import LAYOUT, HandEnv, HandEnvConfig
from sim.hand.grasp import PRE_GRASP_BACK, fit_box, grasps, rotation
from sim.hand.scene import OBJECTS, SUBSTEPS, build_model


def test_scene_loads_and_steps():
    env = HandEnv(2, HandEnvConfig(object="can"))
    assert env.model.opt.timestep == 0.005 and SUBSTEPS == 5
    assert env.model.opt.integrator == mujoco.mjtIntegrator.mjINT_IMPLICITFAST
    assert env.model.nu == 18 and len(OBJECTS) >= 5
    obs, _ = env.reset(seed=0)
    assert obs.shape == (2, LAYOUT.size)
    obs, reward, terminated, truncated, _ = env.step(torch.zeros(2, env.action_size))
    assert torch.isfinite(obs).all() and reward.shape == (2,) and not (terminated | truncated).any()
    # The object rests on the table, where the layout says its centre is.
    assert abs(obs[0, LAYOUT.slice("object")][2].item() - env.object_centre(0)[2]) < 1e-6


def test_batched_equals_sequential():
    config = HandEnvConfig(object="box_tall")
    batched = HandEnv(2, config, seed=3)
    batched.reset(seed=3)
    rows = [HandEnv(1, config, seed=3) for _ in range(2)]
    for row in rows:
        row.reset(seed=3)
    rows[1].reset()  # its second draw is the batched env's row 1
    actions = torch.rand((15, 2, batched.action_size), generator=torch.Generator().manual_seed(0)) * 2 - 1
    for a in actions:
        got = batched.step(a)
        for k, row in enumerate(rows):
            want = row.step(a[k:k + 1])
            assert torch.equal(got[0][k], want[0][0]) and torch.equal(got[1][k], want[1][0])


def test_unknown_object_lists_choices():
    with pytest.raises(ValueError, match=r"unknown object 'mug'.*choices: box_tall"):
        build_model("mug")


def test_grasp_poses_from_fitted_box():
    model = build_model("box_wide")
    box = fit_box(model, model.body("object/object").id)
    np.testing.assert_allclose(box.half, OBJECTS["box_wide"].size, atol=1e-9)
    for grasp in grasps(box, np.array([0.0, 0.0, 0.45]), 0.3):
        backs = [np.linalg.norm(pre[:3] - grasp.pose[:3]) for pre in grasp.pre_grasp]
        np.testing.assert_allclose(backs, PRE_GRASP_BACK, atol=1e-9)
    top = next(g for g in grasps(box, np.zeros(3), 0.0) if g.kind == "top")
    assert top.pre_grasp[0][2] > top.pose[2]  # the top grasp comes from above


def test_demonstrator_touches_and_lifts_with_success_reward():
    env = HandEnv(2, HandEnvConfig(object="box_tall", episode_steps=600), seed=0)
    demo = Demonstrator(env)
    env.reset(seed=0)
    assert env.touch.sum() == 0
    touched = np.zeros(2, bool)
    for _ in range(600):
        obs, reward, terminated, _, info = env.step(demo.act())
        touched |= env.touch.sum(1) >= 2
        if terminated.any():
            break
    assert touched.all(), "the closed fingers should touch the object with at least 2 fingertips"
    ended = int(torch.nonzero(terminated)[0])
    assert info["success"][ended] and reward[ended] >= 1.0
    obj = LAYOUT.slice("object")
    lifted = info["final_observation"][ended, obj][2] - obs[ended, obj][2]
    assert lifted > 0.09  # the final observation is the lifted object, the returned one a fresh episode
    assert obs[ended, LAYOUT.slice("touch")].sum() == 0


def test_unstable_state_resets_and_is_counted(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # MuJoCo writes its warning log (MUJOCO_LOG.TXT) into the working folder
    env = HandEnv(2, HandEnvConfig(object="cylinder_thin"))
    env.reset(seed=0)
    env.data[1].qvel[:] = np.nan
    obs, _, terminated, truncated, info = env.step(torch.zeros(2, env.action_size))
    assert env.unstable_resets == 1 and info["unstable"].tolist() == [False, True]
    assert truncated[1] and not terminated[1] and torch.isfinite(obs).all()


def test_an_episode_may_start_at_the_planned_pre_grasp():
    env = HandEnv(2, HandEnvConfig(object="bottle", start="pre_grasp", grasp="side"), seed=1)
    obs, _ = env.reset(seed=1)
    for i in range(2):
        assert env.grasp[i].kind == "side"
        wrist = obs[i, LAYOUT.slice("wrist")].numpy()
        np.testing.assert_allclose(wrist, env.grasp[i].pre_grasp[1], atol=1e-6)
    with pytest.raises(ValueError, match=r"unknown start 'air' \(choices: home, pre_grasp\)"):
        HandEnvConfig(start="air")


def test_reward_scale_multiplies_every_reward():
    def rewards(scale: float) -> torch.Tensor:
        env = HandEnv(2, HandEnvConfig(object="box_tall", start="pre_grasp", reward_scale=scale), seed=2)
        demo = Demonstrator(env)
        env.reset(seed=2)
        return torch.stack([env.step(demo.act())[1] for _ in range(130)])

    paper, scaled = rewards(1.0), rewards(0.01)
    assert paper.abs().max() > 0.5  # touches and the lift were rewarded
    torch.testing.assert_close(scaled, paper * 0.01)
    with pytest.raises(ValueError, match="reward_scale must be > 0"):
        HandEnvConfig(reward_scale=0.0)


def test_an_oblong_top_is_grasped_across_its_narrow_width_whatever_its_yaw():
    model = build_model("box_wide")  # half-sides 25 x 35 mm: it repeats every 180 deg, not every 90
    box = fit_box(model, model.body("object/object").id)
    for yaw in (0.0, 0.4, np.pi / 2, 2.0, -np.pi):
        top = next(g for g in grasps(box, np.zeros(3), yaw) if g.kind == "top")
        fingers = rotation(*top.pose[3:]) @ np.array([1.0, 0.0, 0.0])
        box_x = rotation(yaw, 0.0, 0.0) @ np.array([1.0, 0.0, 0.0])  # the body's shorter side
        assert abs(fingers @ box_x) == pytest.approx(1.0)
    # Turned the way the old 90-deg rule grasped along its long side, the script now lifts it.
    env = HandEnv(2, HandEnvConfig(object="box_wide", yaw_range=0.0, start="pre_grasp", episode_steps=300))
    demo = Demonstrator(env)
    env.reset(seed=0)
    success, ended = np.zeros(2, bool), np.zeros(2, bool)
    for _ in range(300):
        _, _, terminated, truncated, info = env.step(demo.act())
        success |= info["success"].numpy() & ~ended
        ended |= (terminated | truncated).numpy()
        if ended.all():
            break
    assert success.all()

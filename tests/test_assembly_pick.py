"""sim.assembly's two-stage task, pick_insert: grasp the standing peg, lift it, insert it (real MuJoCo)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sim.assembly import AssemblyEnv, demos
from sim.assembly.config import PART_AT, RANDOMNESS, preset
from sim.assembly.env import OBSERVATION_LAYOUT, PICK_LAYOUT
from sim.assembly.expert import PickInsertExpert, human_like

P = PICK_LAYOUT


@pytest.mark.parametrize("level", ["low", "med"])
def test_the_peg_stands_free_in_its_spread_and_the_gripper_starts_open(level):
    env = AssemblyEnv(4, preset("pick_peg_2mm", randomness=level), seed=7)
    obs, _ = env.reset()
    assert obs.shape == (4, P.size) and P.names[:OBSERVATION_LAYOUT.size] == OBSERVATION_LAYOUT.names
    foot = obs[:, P.slice("peg_pos")].numpy()
    spread = RANDOMNESS[level][0]
    assert np.abs(foot[:, :2] - PART_AT).max() <= spread + 1e-6 and np.abs(foot[:, 2]).max() < 1e-3
    assert (obs[:, P.slice("gripper")] > 0.07).all()  # both fingers open, 4 cm each
    for _ in range(10):  # holding still, the peg stays where it stands
        obs, *_ = env.step(torch.cat([env.hold_action()[:, :9], torch.ones(4, 1)], dim=1))
    assert np.abs(obs[:, P.slice("peg_pos")].numpy() - foot).max() < 1e-3


def test_success_is_the_pegs_foot_in_the_hole_not_the_hands_point():
    # The open hand pushes its controlled point into the hole (the fingers do not meet the walls) and
    # leaves the peg standing: the hand's point is deep in the hole, and that is no success.
    env = AssemblyEnv(1, preset("pick_peg_2mm", randomness="low"), seed=3)
    obs, _ = env.reset()
    action = torch.cat([env.hold_action()[:, :9], torch.ones(1, 1)], dim=1)
    hole = obs[0, P.slice("hole_pos")].clone()
    successes = 0
    for k in range(120):
        depth = min(k, 100) / 100
        action[0, :3] = torch.tensor([hole[0], hole[1], hole[2] + 0.06 - depth * 0.1])
        obs, _, terminated, *_ = env.step(action)
        successes += int(terminated[0])
    assert env.tip_in_hole()[0, 2] < -env.config.success_depth  # the hand's point is in
    assert successes == 0  # the peg's foot still stands on the table, far from the hole:
    assert obs[0, P.slice("peg_in_hole")][:2].abs().max() > 0.1


def test_the_two_stage_expert_grasps_lifts_and_inserts():
    env = AssemblyEnv(4, preset("pick_peg_2mm", randomness="med"), seed=11)
    expert = human_like(4, env.config, seed=12)
    assert isinstance(expert, PickInsertExpert)
    episodes = demos.record(env, expert, 4)
    assert sum(e.success for e in episodes) >= 3
    lifted = [e for e in episodes if e.success]
    for e in lifted:  # the peg left the table on its way: its foot rose above the hole's walls
        assert e.obs[:, P.slice("peg_pos")][:, 2].max() > 0.05
        assert e.obs[0, P.slice("gripper")][0] > 0.07 and e.obs[-1, P.slice("gripper")][0] < 0.025


def test_pick_demonstrations_keep_their_layout_on_disk(tmp_path):
    env = AssemblyEnv(2, preset("pick_peg_2mm", randomness="low"), seed=1)
    episodes = demos.record(env, human_like(2, env.config, seed=2), 2)
    path = demos.save(tmp_path / "pick.hdf5", episodes, env, "pick_peg_2mm", {"seed": 2})
    loaded, attrs = demos.load(path, task="pick_peg_2mm")
    assert attrs["env_config"]["task"] == "pick_insert"
    assert [e.obs.shape[1] for e in loaded] == [P.size, P.size]
    np.testing.assert_array_equal(loaded[0].obs, episodes[0].obs)
    with pytest.raises(ValueError, match="task 'pick_peg_2mm', expected 'peg_2mm'"):
        demos.load(path, task="peg_2mm")

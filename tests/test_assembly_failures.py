"""sim.assembly.failures: why an insertion episode failed, from its final observation (real MuJoCo)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sim.assembly import AssemblyEnv, ScriptedExpert, ik
from sim.assembly.config import preset
from sim.assembly.env import OBSERVATION_LAYOUT as L
from sim.assembly.env import PICK_LAYOUT, wrap_quarter
from sim.assembly.failures import KINDS, classify, tally


def observation(x: float, y: float, z: float, yaw: float = 0.0) -> np.ndarray:
    obs = np.zeros(L.size)
    obs[L.slice("tip_in_hole")] = [x, y, z]
    obs[L.slice("yaw_error")] = yaw
    return obs


def test_each_kind_follows_from_the_geometry():
    cfg = preset("peg_2mm")  # 20 mm peg, 2 mm clearance: the centre may be off by up to 1 mm
    rows = [observation(0, 0, -0.035),  # success (flagged)
            observation(0, 0, 0.0),  # unstable (flagged)
            observation(0.0002, 0, -0.01),  # jammed: 10 mm in, short of the 30 mm success depth
            observation(0.04, 0.0, -0.02),  # 20 mm down beside the hole
            observation(0.003, -0.001, 0.0005),  # on the rim, 3 mm off: lateral miss
            observation(0.0005, 0, 0.0, yaw=0.1),  # centred but turned 5.7 degrees: a corner on the rim
            observation(0.0005, 0, 0.002),  # fits, at the opening, not in
            observation(0.0005, 0, 0.02),  # fits, 20 mm above: time ran out on the way down
            observation(0.02, 0.01, 0.08)]  # above and off the hole
    succeeded = np.array([True] + [False] * 8)
    unstable = np.array([False, True] + [False] * 7)
    ended = classify(np.stack(rows), succeeded, cfg, unstable)
    assert [o.kind for o in ended] == ["success", "unstable", "jammed", "beside_hole", "lateral_miss",
                                       "yaw_miss", "lined_up", "lined_up_above", "never_reached"]
    assert ended[4].lateral_mm == pytest.approx(3.0) and ended[4].overhang_mm == pytest.approx(2.0)
    assert ended[5].yaw_deg == pytest.approx(np.degrees(0.1)) and ended[5].overhang_mm > 0
    # the same 0.5 mm offset that fits 2 mm of clearance rests on the rim at 0.2 mm
    assert classify(rows[6][None], [False], preset("peg_0.2mm"))[0].kind == "lateral_miss"
    arrival = np.full((9, 3), np.nan)
    arrival[4] = [0.0025, 0.0, 0.0]  # the lateral miss came down 2.5 mm off
    arrival[6] = [0.0, -0.0005, 0.0]
    counts = tally(classify(np.stack(rows), succeeded, cfg, unstable, arrival))
    assert [counts[k] for k in KINDS] == [1, 1, 0, 1, 1, 1, 1, 1, 1, 1]
    assert counts["lateral_miss_arrival_mm"]["median"] == pytest.approx(2.5)
    assert counts["failed_arrival_mm"]["episodes"] == 2 and counts["failed_arrival_mm"]["max"] == 2.5
    with pytest.raises(ValueError, match="final_obs: 16 values per row"):
        classify(np.zeros((1, L.size - 1)), [False], cfg)


def test_a_free_peg_far_from_the_hand_is_not_held():
    cfg = preset("pick_peg_2mm")
    obs = np.zeros((2, PICK_LAYOUT.size))
    obs[:, PICK_LAYOUT.slice("hole_yaw")] = obs[:, PICK_LAYOUT.slice("peg_yaw")] = [1.0, 0.0]
    obs[:, PICK_LAYOUT.slice("peg_in_hole")] = [0.0, -0.15, -0.04]  # on the table where it started
    obs[1, PICK_LAYOUT.slice("peg_from_tip")] = [0.0, 0.0, -0.1]  # 10 cm below the hand
    assert [o.kind for o in classify(obs, [False, False], cfg)] == ["beside_hole", "not_held"]


def aligned_target(env: AssemblyEnv, offset: tuple[float, float], height: float) -> torch.Tensor:
    """The action that puts the tip ``offset`` (m, hole frame) beside the hole's centre and ``height``
    above its opening, the peg turned to the hole's yaw (the nearest of the square's four)."""
    yaw_now = ik.yaw_of(env.data[0].site_xmat[env.ids.tip_site].reshape(3, 3))
    heading = yaw_now - wrap_quarter(yaw_now - env.hole_yaw[0])
    c, s = np.cos(env.hole_yaw[0]), np.sin(env.hole_yaw[0])
    x, y = offset
    act = env.hold_action()
    act[0, :3] = torch.tensor(env.hole_pos[0] + [c * x - s * y, s * x + c * y, height])
    act[0, 3:9] = torch.tensor(ik.rotation_to_6d(ik.down_at_yaw(heading)))
    return act


def test_a_peg_pressed_beside_the_hole_is_a_lateral_miss_of_its_aim_error():
    env = AssemblyEnv(1, preset("peg_2mm", randomness="low"), seed=2)
    obs, _ = env.reset()
    # line up 3 mm off the centre, come down 0.5 mm a step (a sudden step swings the tip sideways), press
    heights = [0.03] * 60 + list(np.arange(0.03, -0.002, -0.0005)) + [-0.002] * 30
    for height in heights:
        obs, _, terminated, truncated, info = env.step(aligned_target(env, (0.003, 0.0), height))
        assert not (terminated | truncated).any()
    ended = classify(obs.numpy(), [False], env.config, info["unstable"].numpy(),
                     info["final_arrival"].numpy())[0]
    assert ended.kind == "lateral_miss" and -1.0 < ended.height_mm < 3.0 and abs(ended.yaw_deg) < 1.0
    assert ended.arrival_mm == pytest.approx(3.0, abs=0.3)  # where it came down: the aim error
    assert ended.lateral_mm > ended.arrival_mm  # pressed on the rim, it slid outwards


class Expert:
    """The scripted expert as a batched policy (``__call__`` and ``reset``), as play expects."""

    def __init__(self, num_envs: int, config) -> None:
        self.expert = ScriptedExpert(num_envs, config)

    def __call__(self, obs: torch.Tensor) -> torch.Tensor:
        return self.expert.act(obs)

    def reset(self, rows=None) -> None:
        self.expert.reset(np.arange(len(self.expert.fresh)) if rows is None else np.asarray(rows))


def test_played_episodes_end_as_they_are_counted():
    from robo.tasks.resip.episodes import play_outcomes

    cfg = preset("peg_2mm", randomness="low", episode_steps=150)
    ended = play_outcomes(AssemblyEnv(2, cfg, seed=7), Expert(2, cfg), 2)
    assert len(ended) == 4 and any(o.success for o in ended)
    assert all(o.steps < 150 if o.success else o.steps == 150 for o in ended)  # failures: the time limit
    assert tally(ended)["success_steps"]["max"] == max(o.steps for o in ended if o.success)
    assert ended == play_outcomes(AssemblyEnv(2, cfg, seed=7), Expert(2, cfg), 2)  # seeded: the same episodes
    short = preset("peg_2mm", randomness="low", episode_steps=10)  # cut off long before the hole
    cut = play_outcomes(AssemblyEnv(2, short, seed=7), Expert(2, short), 1)
    assert {o.kind for o in cut} == {"never_reached"} and {o.steps for o in cut} == {10}

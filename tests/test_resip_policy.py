"""The shipped ResiP policy (robo/policies/resip_peg_2mm): its card and ONNX graph load through the runtime
and drive the real 2 mm insertion scene; its eval file holds the base-vs-ResiP comparison."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from robo.runtime.policy import OnnxPolicy
from sim.assembly.config import AssemblyConfig
from sim.assembly.env import AssemblyEnv

SHIPPED = Path(__file__).resolve().parents[1] / "robo" / "policies" / "resip_peg_2mm"


def test_the_shipped_policy_steers_the_tip_from_its_chunk_queue():
    policy = OnnxPolicy(SHIPPED / "policy.onnx")  # refuses a card whose sha256 does not match
    assert policy.task == "peg_2mm" and policy.card["chunking"]["ddim_steps"] == 8
    descents = []
    for noise_seed in range(3):  # one episode's DDIM noise may lead it to lift and re-approach
        policy.reset()
        env = AssemblyEnv(1, AssemblyConfig(clearance=0.002, randomness="low"), seed=1000)
        obs = env.reset()[0][0].numpy()
        rng = np.random.default_rng(noise_seed)
        start = float(obs[14])  # tip_in_hole.z: the tip's height above the opening
        for t in range(48):
            step = policy.step(obs, auxiliary={"noise": rng.standard_normal((1, 16, 10)).astype(np.float32)})
            assert not step.fallback  # (clamped may be set: a 6D-rotation entry of 1 + 1e-7)
            # the queue refills every 8 calls: 7 actions left after a refill, one fewer each call after
            assert int(policy.state[1][0, 0]) == 7 - t % 8
            # a target near the tip, not noise (a fresh chunk may aim ~6 cm down: round 6's graph too)
            assert np.linalg.norm(step.action[:3] - obs[:3]) < 0.08
            obs = env.step(step.action[None].astype(np.float32))[0][0].numpy()
        descents.append(start - float(obs[14]))
    assert sum(d > 0.02 for d in descents) >= 2, descents  # it descends towards the hole


def test_the_eval_file_compares_base_and_resip_on_the_same_episodes():
    result = json.loads((SHIPPED / "eval.json").read_text())
    assert result["episodes"] == sum(s["episodes"] for s in result["sets"]) >= 200
    assert result["ddim_steps"] == 8
    assert result["resip_success_rate"] > result["base_success_rate"]
    # the totals are the sets' episode-weighted rates and summed discordant pairs, not typed-in figures
    for key in ("base_success_rate", "resip_success_rate"):
        weighted = sum(st[key] * st["episodes"] for st in result["sets"]) / result["episodes"]
        assert abs(result[key] - weighted) < 1e-9, key
    for key in ("only_resip_succeeds", "only_base_succeeds"):
        assert result[key] == sum(st[key] for st in result["sets"]), key
    # and each set's rates differ by exactly its discordant pairs
    for st in result["sets"]:
        diff = (st["only_resip_succeeds"] - st["only_base_succeeds"]) / st["episodes"]
        assert abs(st["resip_success_rate"] - st["base_success_rate"] - diff) < 1e-9

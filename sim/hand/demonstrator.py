"""The scripted demonstrator (G-PAYN's): from a grasp pose, go to the pre-grasps (10 then 5 cm back),
approach the grasp over 50 steps, close the fingers by a linear ramp, then lift 2 mm per step.

It emits the environment's own actions in [-1, 1] (deltas of the commanded targets), so its
transitions go straight into a replay buffer's demonstration partition.
"""

from __future__ import annotations

import numpy as np
import torch

from sim.hand.env import FINGER_STEP, WRIST_STEP, HandEnv
from sim.hand.grasp import GRASP_KINDS, Grasp, plan_grasp

APPROACH_STEPS = 50
LIFT_STEP = 0.002  # m per step


class Demonstrator:
    def __init__(self, env: HandEnv, kind: str = "auto", close_steps: int = 60):
        if kind not in GRASP_KINDS:
            raise ValueError(f"unknown grasp kind {kind!r} (choices: {', '.join(GRASP_KINDS)})")
        self.env, self.kind, self.close_steps = env, kind, close_steps
        self.plan: list[Grasp | None] = [None] * env.num_envs
        self.phase_step = np.zeros(env.num_envs, dtype=np.int64)
        self.phase = np.zeros(env.num_envs, dtype=np.int64)

    def _grasp(self, i: int) -> Grasp:
        position, yaw = self.env.object_pose(i)
        return plan_grasp(self.env.box, position, yaw, self.kind)

    def act(self) -> torch.Tensor:
        """One action per environment; a fresh episode (step 0) plans its grasp anew, or takes the
        environment's own plan when the episode starts at its pre-grasp (``start: pre_grasp``)."""
        env = self.env
        out = np.zeros((env.num_envs, env.action_size))
        for i in range(env.num_envs):
            if env.steps[i] == 0:
                at_pre_grasp = env.config.start == "pre_grasp"
                self.plan[i] = env.grasp[i] if at_pre_grasp else self._grasp(i)
                self.phase[i], self.phase_step[i] = (2 if at_pre_grasp else 0), 0
            out[i] = self._act_one(i, self.plan[i])
        return torch.as_tensor(out, dtype=torch.float32)

    def _act_one(self, i: int, grasp: Grasp) -> np.ndarray:
        target = self.env.target[i]
        wrist, fingers = target[:6].copy(), target[6:].copy()
        lo, hi = self.env.finger_range[:, 0], self.env.finger_range[:, 1]
        phase, k = self.phase[i], self.phase_step[i]
        if phase < 2:  # to the 10 cm then the 5 cm pre-grasp, at full speed
            wrist = grasp.pre_grasp[phase]
            if np.all(np.abs(wrist - target[:6]) < WRIST_STEP * 0.5):
                self.phase[i], self.phase_step[i] = phase + 1, 0
        elif phase == 2:  # approach over APPROACH_STEPS steps
            start = grasp.pre_grasp[1]
            wrist = start + (grasp.pose - start) * min(k + 1, APPROACH_STEPS) / APPROACH_STEPS
            if k + 1 >= APPROACH_STEPS:
                self.phase[i], self.phase_step[i] = 3, 0
        elif phase == 3:  # close every finger by a linear ramp
            fingers = lo + (hi - lo) * min(k + 1, self.close_steps) / self.close_steps
            if k + 1 >= self.close_steps:
                self.phase[i], self.phase_step[i] = 4, 0
        else:  # lift, fingers closed
            wrist[2] += LIFT_STEP
            fingers = hi
        self.phase_step[i] += 1
        action = np.concatenate([(wrist - target[:6]) / WRIST_STEP, (fingers - target[6:]) / FINGER_STEP])
        return np.clip(action, -1.0, 1.0)

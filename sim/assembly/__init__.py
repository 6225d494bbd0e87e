"""Precise assembly in MuJoCo: robosuite's Panda arm and gripper (loaded from the installed package),
a square peg fixed in the gripper (``peg_insertion``) or standing free on the table to be grasped first
(``pick_insert``), a four-box hole of configurable clearance on a table.

:mod:`sim.assembly.scene` composes the model with ``MjSpec``; :mod:`sim.assembly.env` is the batched
environment (end-effector deltas through damped least-squares IK, VecEnv contract);
:mod:`sim.assembly.expert` the scripted experts (one stage and two); :mod:`sim.assembly.demos` their
demonstrations on disk; :mod:`sim.assembly.failures` why an episode failed (jammed, lateral miss, ...).
"""

from sim.assembly.config import TASKS, AssemblyConfig
from sim.assembly.env import ACTION_NAMES, OBSERVATION_LAYOUT, AssemblyEnv
from sim.assembly.expert import PickInsertExpert, ScriptedExpert

__all__ = ["ACTION_NAMES", "OBSERVATION_LAYOUT", "TASKS", "AssemblyConfig", "AssemblyEnv", "PickInsertExpert",
           "ScriptedExpert"]

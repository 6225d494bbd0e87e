"""The Panda arm and gripper MJCF that robosuite ships (:mod:`sim.assets`)."""

from __future__ import annotations

from pathlib import Path

from sim.assets import robosuite_asset


def panda_arm_xml() -> Path:
    return robosuite_asset("robots/panda/robot.xml")


def panda_gripper_xml() -> Path:
    return robosuite_asset("grippers/panda_gripper.xml")

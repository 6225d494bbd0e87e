"""Where robosuite's Panda arm and gripper MJCF lie, found without importing robosuite (its import pulls
in numba, OpenCV and a controller stack this benchmark does not use)."""

from __future__ import annotations

import importlib.util
from pathlib import Path


def robosuite_assets() -> Path:
    """``robosuite/models/assets`` of the installed package."""
    spec = importlib.util.find_spec("robosuite")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("robosuite is not installed (the Panda arm and gripper come from it): "
                           "pip install --no-deps robosuite==1.5.2 (bash .ci/setup does)")
    assets = Path(next(iter(spec.submodule_search_locations))) / "models" / "assets"
    for rel in ("robots/panda/robot.xml", "grippers/panda_gripper.xml"):
        if not (assets / rel).is_file():
            raise RuntimeError(f"robosuite at {assets.parent.parent} has no {rel} (robosuite>=1.5 expected)")
    return assets


def panda_arm_xml() -> Path:
    return robosuite_assets() / "robots" / "panda" / "robot.xml"


def panda_gripper_xml() -> Path:
    return robosuite_assets() / "grippers" / "panda_gripper.xml"

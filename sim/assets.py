"""Robot and object assets that install from the package registry, located without importing their
packages: robosuite's MJCF and meshes (its import pulls in numba, OpenCV and a controller stack robo
does not use, and its dependencies would downgrade numpy, hence `pip install --no-deps`)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROBOSUITE_HINT = "pip install --no-deps robosuite==1.5.2 (bash .ci/setup does)"


def robosuite_asset(relative: str) -> Path:
    """``robosuite/models/assets/<relative>`` of the installed package; one line if it is not there."""
    spec = importlib.util.find_spec("robosuite")
    if spec is None or not spec.submodule_search_locations:
        raise OSError(f"robosuite's models are needed for {relative}: {ROBOSUITE_HINT}")
    path = Path(next(iter(spec.submodule_search_locations))) / "models" / "assets" / relative
    if not path.is_file():
        raise OSError(f"robosuite at {path.parents[len(Path(relative).parts) + 1]} has no {relative} "
                      f"(robosuite 1.5.2 expected)")
    return path

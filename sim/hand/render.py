"""One frame of a hand environment as an RGB array (``mujoco.Renderer``; headless machines need
MUJOCO_GL=egl or osmesa set before mujoco is imported, which the ``robo`` command does)."""

from __future__ import annotations

import mujoco
import numpy as np

from sim.hand.env import HandEnv


def render_frame(env: HandEnv, index: int = 0, width: int = 480, height: int = 360) -> np.ndarray:
    """RGB image [height, width, 3] of environment ``index``, looking at the table from the front-left."""
    camera = mujoco.MjvCamera()
    camera.lookat[:] = env.object_centre(index)
    camera.distance, camera.azimuth, camera.elevation = 0.6, -135.0, -25.0
    try:
        renderer = mujoco.Renderer(env.model, height, width)
    except Exception as err:  # no OpenGL context: MuJoCo names the backend that failed
        raise RuntimeError(f"cannot render (no OpenGL context; try MUJOCO_GL=egl or osmesa): {err}") from err
    with renderer:
        hide_sites = mujoco.MjvOption()
        hide_sites.sitegroup[:] = 0  # robosuite's frame markers
        renderer.update_scene(env.data[index], camera, hide_sites)
        return renderer.render()


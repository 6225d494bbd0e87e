"""Frames of an assembly environment (``mujoco.Renderer``; headless machines need MUJOCO_GL=egl or
osmesa set before mujoco is imported)."""

from __future__ import annotations

import mujoco
import numpy as np

from sim.assembly.config import PART_AT
from sim.assembly.env import AssemblyEnv


class FrameCamera:
    """RGB frames ``[height, width, 3]`` of one environment, looking at its hole from the front-left (in
    ``pick_insert`` from further back, at the hole and the standing peg both)."""

    def __init__(self, env: AssemblyEnv, width: int = 240, height: int = 180):
        try:
            self.renderer = mujoco.Renderer(env.model, height, width)
        except Exception as err:  # no OpenGL context: MuJoCo names the backend that failed
            raise RuntimeError(f"cannot render (no OpenGL context; try MUJOCO_GL=egl or osmesa): "
                               f"{err}") from err
        self.env = env
        self.options = mujoco.MjvOption()
        self.options.sitegroup[:] = 0  # robosuite's frame markers

    def __call__(self, index: int = 0) -> np.ndarray:
        camera = mujoco.MjvCamera()
        camera.lookat[:] = self.env.hole_pos[index] + [0.0, 0.0, 0.06]
        camera.distance, camera.azimuth, camera.elevation = 0.55, -135.0, -25.0
        if self.env.pick:
            camera.lookat[:2] = (self.env.hole_pos[index, :2] + PART_AT) / 2
            camera.distance, camera.azimuth = 0.75, -160.0
        self.renderer.update_scene(self.env.data[index], camera, self.options)
        return self.renderer.render()

    def close(self) -> None:
        self.renderer.close()

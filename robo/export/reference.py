"""What a generated ``<name>_step`` must compute, with ONNX Runtime: the card's observation
clipping and action clamping, the state carried, and for a non-finite observation (or result) the
fallback action with the state reset. Tests, benchmarks and ``robo firmware run`` compare against it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from robo.export.card import action_clip, fallback_action, load_card, obs_clip


class OrtPolicy:
    def __init__(self, onnx_path: str | Path, card: dict[str, Any] | None = None):
        self.card = card if card is not None else load_card(onnx_path)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        self.session = ort.InferenceSession(
            str(self.card["onnx_path"]), opts, providers=["CPUExecutionProvider"]
        )
        self.inputs = [t["name"] for t in self.card["onnx"]["inputs"]]
        self.shapes = [tuple(t["shape"]) for t in self.card["onnx"]["inputs"]]
        clips = obs_clip(self.card)
        self.lo = np.array([c[0] if c else -np.inf for c in clips], np.float32)
        self.hi = np.array([c[1] if c else np.inf for c in clips], np.float32)
        self.aclip = action_clip(self.card)
        self.fallback = np.array(fallback_action(self.card), np.float32)
        self.reset()

    def reset(self) -> None:
        self.state = [np.zeros(sh, np.float32) for sh in self.shapes[1:]]

    def step(self, obs: np.ndarray) -> tuple[np.ndarray, int]:
        obs = np.asarray(obs, np.float32).ravel()
        if not np.all(np.isfinite(obs)):
            self.reset()
            return self.fallback.copy(), 1
        x = np.clip(obs, self.lo, self.hi).reshape(self.shapes[0])
        act, *state = self.session.run(None, dict(zip(self.inputs, [x, *self.state], strict=True)))
        act = np.asarray(act, np.float32).ravel()
        if not (np.all(np.isfinite(act)) and all(np.all(np.isfinite(s)) for s in state)):
            self.reset()
            return self.fallback.copy(), 1
        self.state = state
        return (np.clip(act, *self.aclip) if self.aclip else act), 0

    def rollout(self, obs_seq: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        self.reset()
        acts, status = zip(*(self.step(o) for o in obs_seq), strict=True)
        return np.array(acts, np.float32), np.array(status, np.int32)

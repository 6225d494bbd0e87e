"""An exported policy under ONNX Runtime: card checked, one thread, recurrent state carried.

The model and its card (``policy.json``) must agree: the sha256 of the file, the graph's input and
output names, shapes and element type. Anything else is refused with a one-line ValueError/OSError.

The recurrent state advances at the card's control rate. Called faster (a 500 Hz odometry stream for a
100 Hz policy), every call still computes a fresh action from the newest observation, but from the
state committed at the last control tick, and only a call at or after the next tick commits the new
state and the "previous action" the observation feeds back. So the network sees the time step it was
trained with, whatever the caller's rate.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from robo.export.card import action_clip, check_io_names, load_card


@dataclass(frozen=True)
class PolicyStep:
    action: np.ndarray  # clamped to the card's action clip, float64
    advanced: bool      # True when this call committed the recurrent state (a control tick)


def _session(onnx_path: str) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    # A control loop calls the model once per tick: threads that spin between calls only steal CPU.
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.add_session_config_entry("session.inter_op.allow_spinning", "0")
    try:
        return ort.InferenceSession(onnx_path, opts, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own exception types for a broken file
        raise ValueError(f"{onnx_path}: ONNX Runtime cannot load it ({str(exc).splitlines()[0]})") from None


def _check_tensors(card: dict[str, Any], sess: ort.InferenceSession) -> None:
    check_io_names(card, [i.name for i in sess.get_inputs()], [o.name for o in sess.get_outputs()])
    pairs = ((card["onnx"]["inputs"], sess.get_inputs()), (card["onnx"]["outputs"], sess.get_outputs()))
    for want, got in pairs:
        for w, g in zip(want, got, strict=True):
            if g.type != "tensor(float)":
                raise ValueError(f"model tensor {g.name!r} is {g.type}, the runtime feeds float32")
            if [d if isinstance(d, int) else None for d in g.shape] != list(w["shape"]):
                raise ValueError(f"model tensor {g.name!r} has shape {g.shape}, its card says {w['shape']}")
    obs_in, act_out = card["onnx"]["inputs"][0], card["onnx"]["outputs"][0]
    if obs_in["shape"] != [1, card["observation"]["size"]]:
        raise ValueError(f"card: observation size {card['observation']['size']} "
                         f"but input shape {obs_in['shape']}")
    if act_out["shape"] != [1, card["action"]["size"]]:
        raise ValueError(f"card: action size {card['action']['size']} but output shape {act_out['shape']}")
    names_in = [s["input"] for s in card["recurrent_state"]]
    if names_in != [t["name"] for t in card["onnx"]["inputs"][1:]]:
        raise ValueError(f"card: recurrent state inputs {names_in} are not the model's other inputs")


class OnnxPolicy:
    """``step(obs, t)`` -> clamped action; carries the recurrent state between calls."""

    def __init__(self, path: str | Path) -> None:
        self.card = load_card(path)  # refuses a missing card or a model whose sha256 differs
        self.sha256: str = self.card["onnx"]["sha256"]
        self.path = Path(self.card["onnx_path"])
        self.session = _session(self.card["onnx_path"])
        _check_tensors(self.card, self.session)
        rate = float(self.card["control_rate_hz"])
        if not np.isfinite(rate) or rate <= 0:
            raise ValueError(f"card: control_rate_hz must be positive, got {rate}")
        self.rate_hz = rate
        self.period = 1.0 / rate
        self.obs_size = int(self.card["observation"]["size"])
        self.act_size = int(self.card["action"]["size"])
        self.observation_names = [e["name"] for e in self.card["observation"]["layout"]]
        clip = action_clip(self.card)
        self.clip = clip if clip is not None else (-np.inf, np.inf)
        self._obs_name = self.card["onnx"]["inputs"][0]["name"]
        self._state_names = [s["input"] for s in self.card["recurrent_state"]]
        self._state_sizes = [int(s["size"]) for s in self.card["recurrent_state"]]
        self.reset()
        self.step(np.zeros(self.obs_size, np.float32))  # warm up once (allocations, first-run kernels)
        self.reset()
        self.inference_seconds = self._time_one()

    def reset(self, prev_action: np.ndarray | None = None) -> None:
        """Zero the recurrent state; ``prev_action`` is what the observation feeds back first."""
        self.state = [np.zeros((1, n), np.float32) for n in self._state_sizes]
        self.last_action = (np.zeros(self.act_size) if prev_action is None
                            else np.clip(np.asarray(prev_action, np.float64), *self.clip))
        self._next_tick: float | None = None

    def _run(self, obs: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
        feeds = {self._obs_name: obs.reshape(1, -1)}
        feeds.update(zip(self._state_names, self.state, strict=True))
        action, *state = self.session.run(None, feeds)
        return action[0].astype(np.float64), state

    def step(self, obs: np.ndarray, t: float | None = None) -> PolicyStep:
        """Act on ``obs`` (float32 [obs_size]) at time ``t`` (s; None: every call is a control tick)."""
        obs = np.asarray(obs, np.float32).reshape(-1)
        if obs.size != self.obs_size:
            raise ValueError(f"observation has {obs.size} values, the policy takes {self.obs_size}")
        if not np.all(np.isfinite(obs)):
            bad = int(np.flatnonzero(~np.isfinite(obs))[0])
            raise ValueError(f"non-finite observation value at index {bad}")
        action, state = self._run(obs)
        if not np.all(np.isfinite(action)):
            raise RuntimeError("the policy produced a non-finite action")
        action = np.clip(action, *self.clip)
        advanced = self._tick(t)
        if advanced:
            self.state = state
            self.last_action = action
        return PolicyStep(action, advanced)

    def _tick(self, t: float | None) -> bool:
        if t is None:
            return True
        if self._next_tick is None or t >= self._next_tick - 0.5 * self.period:
            # A fixed grid of ticks; a caller that fell behind by more than a period re-syncs.
            nxt = (t if self._next_tick is None else self._next_tick) + self.period
            self._next_tick = nxt if nxt > t else t + self.period
            return True
        return False

    def _time_one(self, calls: int = 20) -> float:
        obs = np.zeros(self.obs_size, np.float32)
        start = time.perf_counter()
        for _ in range(calls):
            self._run(obs)
        return (time.perf_counter() - start) / calls

"""The one ONNX Runtime wrapper: every consumer (robo eval, robo fly, the ROS nodes, export's check,
the firmware comparison) runs an exported policy through :class:`OnnxPolicy`.

The model and its card (``policy.json``) must agree: the sha256 of the file, the graph's input and
output names, shapes and element type. Anything else is refused with a one-line ValueError/OSError.
Each card input has a role (:func:`robo.export.card.input_roles`): one ``observation`` (clipped to the
card's observation clips), the ``recurrent_state`` the wrapper carries, and ``auxiliary`` inputs the
caller passes by name (a neighbour tensor, an action-chunk queue). The action is clamped to the card's
clip; a non-finite observation or result gives the card's fallback action and resets the state, as the
generated C does.

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

from robo.export.card import (
    AUXILIARY,
    OBSERVATION,
    RECURRENT_STATE,
    action_clip,
    check_io_names,
    fallback_action,
    input_roles,
    load_card,
    obs_clip,
)


@dataclass(frozen=True)
class PolicyStep:
    action: np.ndarray  # clamped to the card's action clip, float64
    advanced: bool      # True when this call committed the recurrent state (a control tick)
    fallback: bool = False  # the observation or the result was not finite: the card's fallback action
    clamped: bool = False   # the model's action was outside the card's clip (a corrupt model)


def open_session(onnx_path: str | Path) -> ort.InferenceSession:
    """One-threaded CPU session; a file ONNX Runtime cannot read is a one-line ValueError."""
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    # A control loop calls the model once per tick: threads that spin between calls only steal CPU.
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.add_session_config_entry("session.inter_op.allow_spinning", "0")
    try:
        return ort.InferenceSession(str(onnx_path), opts, providers=["CPUExecutionProvider"])
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
    roles = input_roles(card)
    obs_in = [t for t, r in zip(card["onnx"]["inputs"], roles, strict=True) if r == OBSERVATION]
    if len(obs_in) != 1:
        raise ValueError(f"card: {len(obs_in)} inputs have the role {OBSERVATION!r}, the runtime needs one")
    act_out = card["onnx"]["outputs"][0]
    if obs_in[0]["shape"] != [1, card["observation"]["size"]]:
        raise ValueError(f"card: observation size {card['observation']['size']} "
                         f"but input shape {obs_in[0]['shape']}")
    if act_out["shape"] != [1, card["action"]["size"]]:
        raise ValueError(f"card: action size {card['action']['size']} but output shape {act_out['shape']}")
    names_in = [s["input"] for s in card["recurrent_state"]]
    state_in = [t["name"] for t, r in zip(card["onnx"]["inputs"], roles, strict=True) if r == RECURRENT_STATE]
    if names_in != state_in:
        raise ValueError(f"card: recurrent state inputs {names_in} are not the state inputs {state_in}")


class OnnxPolicy:
    """``step(obs, t)`` -> clamped action; carries the recurrent state between calls."""

    def __init__(self, path: str | Path) -> None:
        self.card = load_card(path)  # refuses a missing card or a model whose sha256 differs
        self.sha256: str = self.card["onnx"]["sha256"]
        self.path = Path(self.card["onnx_path"])
        self.session = open_session(self.path)
        _check_tensors(self.card, self.session)
        rate = float(self.card["control_rate_hz"])
        if not np.isfinite(rate) or rate <= 0:
            raise ValueError(f"card: control_rate_hz must be positive, got {rate}")
        self.rate_hz = rate
        self.period = 1.0 / rate
        self.task: str = self.card["task"]
        self.obs_size = int(self.card["observation"]["size"])
        self.act_size = int(self.card["action"]["size"])
        self.observation_names = [e["name"] for e in self.card["observation"]["layout"]]
        clips = obs_clip(self.card)
        self.obs_lo = np.array([c[0] if c else -np.inf for c in clips], np.float32)
        self.obs_hi = np.array([c[1] if c else np.inf for c in clips], np.float32)
        clip = action_clip(self.card)
        self.clip = clip if clip is not None else (-np.inf, np.inf)
        self.fallback = np.asarray(fallback_action(self.card), np.float64)
        inputs = self.card["onnx"]["inputs"]
        roles = input_roles(self.card)
        self._obs_name = next(t["name"] for t, r in zip(inputs, roles, strict=True) if r == OBSERVATION)
        self.auxiliary = {t["name"]: tuple(t["shape"]) for t, r in zip(inputs, roles, strict=True)
                          if r == AUXILIARY}
        self._state_names = [s["input"] for s in self.card["recurrent_state"]]
        self._state_sizes = [int(s["size"]) for s in self.card["recurrent_state"]]
        self.reset()
        warm_aux = {name: np.zeros(shape, np.float32) for name, shape in self.auxiliary.items()}
        self.step(np.zeros(self.obs_size, np.float32), auxiliary=warm_aux)  # allocations, first kernels
        self.reset()
        self.inference_seconds = self._time_one(warm_aux)

    def reset(self, prev_action: np.ndarray | None = None) -> None:
        """Zero the recurrent state; ``prev_action`` is what the observation feeds back first."""
        self.state = [np.zeros((1, n), np.float32) for n in self._state_sizes]
        self.last_action = (np.zeros(self.act_size) if prev_action is None
                            else np.clip(np.asarray(prev_action, np.float64), *self.clip))
        self._next_tick: float | None = None

    def _feeds(self, obs: np.ndarray, auxiliary: dict[str, Any] | None) -> dict[str, np.ndarray]:
        feeds = {self._obs_name: np.clip(obs, self.obs_lo, self.obs_hi).reshape(1, -1)}
        feeds.update(zip(self._state_names, self.state, strict=True))
        given = auxiliary or {}
        for name, shape in self.auxiliary.items():
            if name not in given:
                raise ValueError(f"the policy's auxiliary input {name!r} {list(shape)} needs a value")
            value = np.asarray(given[name], np.float32)
            if value.size != int(np.prod(shape)):
                raise ValueError(f"auxiliary input {name!r} has {value.size} values, the model takes "
                                 f"{list(shape)}")
            feeds[name] = value.reshape(shape)
        unknown = sorted(set(given) - set(self.auxiliary))
        if unknown:
            raise ValueError(f"the policy has no auxiliary input {unknown[0]!r} "
                             f"(its auxiliary inputs: {sorted(self.auxiliary) or 'none'})")
        return feeds

    def _run(self, feeds: dict[str, np.ndarray]) -> tuple[np.ndarray, list[np.ndarray]]:
        action, *state = self.session.run(None, feeds)
        return action[0].astype(np.float64), state

    def step(self, obs: np.ndarray, t: float | None = None,
             auxiliary: dict[str, Any] | None = None) -> PolicyStep:
        """Act on ``obs`` (float32 [obs_size]) at time ``t`` (s; None: every call is a control tick);
        ``auxiliary`` holds a value for each auxiliary input of the card, by name."""
        obs = np.asarray(obs, np.float32).reshape(-1)
        if obs.size != self.obs_size:
            raise ValueError(f"observation has {obs.size} values, the policy takes {self.obs_size}")
        feeds = self._feeds(obs, auxiliary)
        advanced = self._tick(t)
        if np.all(np.isfinite(obs)):
            action, state = self._run(feeds)
            if np.all(np.isfinite(action)) and all(np.all(np.isfinite(s)) for s in state):
                clamped = bool(np.any((action < self.clip[0]) | (action > self.clip[1])))
                action = np.clip(action, *self.clip)
                if advanced:
                    self.state = state
                    self.last_action = action
                return PolicyStep(action, advanced, clamped=clamped)
        # Nothing finite to act on: the card's fallback, and a state that starts over.
        self.state = [np.zeros_like(s) for s in self.state]
        if advanced:
            self.last_action = self.fallback.copy()
        return PolicyStep(self.fallback.copy(), advanced, fallback=True)

    def rollout(self, obs_seq: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Actions (float32) and fallback flags (1 = fallback) of a sequence from a fresh state, one
        control tick per observation: what a generated ``<name>_step`` must reproduce."""
        self.reset()
        steps = [self.step(o) for o in obs_seq]
        return (np.array([s.action for s in steps], np.float32),
                np.array([int(s.fallback) for s in steps], np.int32))

    def _tick(self, t: float | None) -> bool:
        if t is None:
            return True
        if self._next_tick is None or t >= self._next_tick - 0.5 * self.period:
            # A fixed grid of ticks; a caller that fell behind by more than a period re-syncs.
            nxt = (t if self._next_tick is None else self._next_tick) + self.period
            self._next_tick = nxt if nxt > t else t + self.period
            return True
        return False

    def _time_one(self, auxiliary: dict[str, np.ndarray], calls: int = 20) -> float:
        feeds = self._feeds(np.zeros(self.obs_size, np.float32), auxiliary)
        start = time.perf_counter()
        for _ in range(calls):
            self._run(feeds)
        return (time.perf_counter() - start) / calls

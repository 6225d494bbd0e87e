"""Export a trained policy to ONNX with its card, and prove ONNX Runtime computes the same thing.

The exported graph has a fixed batch of 1 and every recurrent state as an explicit input and output
(``h_in``/``h_out``, and ``c_in``/``c_out`` for an LSTM), so ONNX Runtime, ROS nodes and the generated
C carry the state the same way. The model is checked with ``onnx.checker`` and run for 500
closed-loop steps through torch and ONNX Runtime side by side, each carrying its own state; more than
``tol`` max abs difference in any action or state is an error.

Nothing half-done is ever visible: model and card are written into a temporary sibling folder,
checked there, and only then moved into place. A failed export leaves an existing export exactly as
it was, and a new folder holds either a complete export or nothing.
"""

from __future__ import annotations

import io
import math
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import torch
from torch import nn

from robo import __version__
from robo.export.card import (
    CARD_FORMAT,
    OBSERVATION,
    RECURRENT_STATE,
    action_clip,
    card_path_for,
    sha256_file,
    write_card,
)
from robo.files import staged_folder
from robo.nets.policy import load_policy
from robo.runtime.policy import open_session

OPSET = 17
OBS_INPUT = "obs"
ACTION_OUTPUT = "action"


class _Exportable(nn.Module):
    """Flat tensors in, flat tensors out: (obs, *state) -> (action, *state)."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, obs: torch.Tensor, *state: torch.Tensor):
        if not getattr(self.net, "recurrent", False):
            return self.net(obs)
        action, new = self.net(obs, tuple(state))
        return (action, *new)


def find_checkpoint(source: str | Path) -> Path:
    """A checkpoint file as given, or in a run folder ``policy.pt`` / ``checkpoints/policy.pt``."""
    source = Path(source)
    if source.is_file():
        return source
    if source.is_dir():
        for candidate in (source / "policy.pt", source / "checkpoints" / "policy.pt"):
            if candidate.is_file():
                return candidate
        raise OSError(
            f"{source}: no policy.pt in the run folder or its checkpoints/ "
            "(training saves one with robo.nets.policy.save_policy)"
        )
    raise OSError(f"no such run folder or checkpoint: {source}")


def build_card(
    net: nn.Module, meta: dict[str, Any], onnx_file: Path, checkpoint: str | None
) -> dict[str, Any]:
    obs_dim, act_dim = net.arch["obs_dim"], net.arch["act_dim"]
    obs_layout = meta.get("observation") or [
        {"name": f"obs[{i}]", "unit": "1", "clip": None} for i in range(obs_dim)
    ]
    act_layout = meta.get("action") or [{"name": f"act[{i}]", "unit": "1"} for i in range(act_dim)]
    if len(obs_layout) != obs_dim:
        raise ValueError(
            f"meta observation layout has {len(obs_layout)} entries, the network takes {obs_dim}"
        )
    if len(act_layout) != act_dim:
        raise ValueError(f"meta action layout has {len(act_layout)} entries, the network gives {act_dim}")
    state = []
    inputs = [{"name": OBS_INPUT, "shape": [1, obs_dim], "role": OBSERVATION}]
    outputs = [{"name": ACTION_OUTPUT, "shape": [1, act_dim]}]
    for s in getattr(net, "state_names", ()) if getattr(net, "recurrent", False) else ():
        size = net.hidden_size
        state.append({"name": s, "size": size, "input": f"{s}_in", "output": f"{s}_out", "initial": "zeros"})
        inputs.append({"name": f"{s}_in", "shape": [1, size], "role": RECURRENT_STATE})
        outputs.append({"name": f"{s}_out", "shape": [1, size]})
    return {
        "format": CARD_FORMAT,
        "task": meta.get("task", "generic"),
        "observation": {"size": obs_dim, "layout": obs_layout},
        "action": {
            "size": act_dim,
            "layout": act_layout,
            "clip": meta.get("action_clip", [-1.0, 1.0]),
            "mapping": meta.get("action_mapping", "raw"),
            "fallback": meta.get("fallback_action"),
        },
        "control_rate_hz": float(meta.get("control_rate_hz", 100.0)),
        "recurrent_state": state,
        "onnx": {
            "file": onnx_file.name,
            "sha256": sha256_file(onnx_file),
            "opset": OPSET,
            "inputs": inputs,
            "outputs": outputs,
        },
        "training": {
            "run": meta.get("run"),
            "checkpoint": checkpoint,
            "config": meta.get("config"),
            "arch": net.arch,
            **({"origin": meta["origin"]} if "origin" in meta else {}),
        },
        "export": {"robo_version": __version__, "torch": torch.__version__, "onnx": onnx.__version__},
    }


def with_io(card: dict[str, Any], io: dict[str, Any] | None) -> dict[str, Any]:
    """The card with its ``io`` block: the ROS topics and message types a policy node reads and writes.
    ``io`` from the meta where given, else the defaults of the card's task runtime (none for a task
    that has no runtime adapter, such as the pendulum)."""
    from robo.export.card import io_block
    from robo.runtime.adapter import ADAPTERS, adapter_for

    if io is None and card["task"] in ADAPTERS:
        io = io_block(adapter_for(card).topics)
    return card if io is None else {**card, "io": io}


def export_onnx(
    net: nn.Module,
    meta: dict[str, Any],
    out: str | Path,
    *,
    checkpoint: str | None = None,
    steps: int = 500,
    seed: int = 0,
    tol: float = 1e-5,
) -> dict[str, Any]:
    """Write ``out`` (ONNX) and its card beside it; returns the card (with the equivalence result)."""
    out = Path(out)
    if out.suffix != ".onnx":
        raise ValueError(f"output {out} must end in .onnx (the card goes beside it as .json)")
    if steps < 1:
        raise ValueError(f"--steps must be >= 1, got {steps} (a check over {steps} steps checks nothing)")
    if not (math.isfinite(tol) and tol >= 0):
        raise ValueError(f"--tol must be a finite number >= 0, got {tol:g}")
    net = net.eval().float()
    model = _to_onnx(net, meta)
    with staged_folder(out.parent, [out.name, card_path_for(out).name]) as stage:
        staged = stage / out.name
        onnx.save(model, staged)
        card = with_io(build_card(net, meta, staged, checkpoint), meta.get("io"))
        err = compare_rollout(net, staged, card, steps=steps, seed=seed)
        card["export"]["equivalence"] = {
            "steps": steps,
            "seed": seed,
            "max_abs_error": err,
            "tolerance": tol,
            "against": f"onnxruntime {ort.__version__}",
        }
        if not err <= tol:
            raise RuntimeError(f"ONNX Runtime differs from torch by {err:.3g} over {steps} steps "
                               f"(> {tol:g}); nothing written")
        write_card(card, card_path_for(staged))
    return card


def _to_onnx(net: nn.Module, meta: dict[str, Any]) -> onnx.ModelProto:
    recurrent = getattr(net, "recurrent", False)
    state0 = net.initial_state(1) if recurrent else ()
    in_names = [OBS_INPUT] + [f"{s}_in" for s in (net.state_names if recurrent else ())]
    out_names = [ACTION_OUTPUT] + [f"{s}_out" for s in (net.state_names if recurrent else ())]
    buf = io.BytesIO()
    with warnings.catch_warnings():
        # The TorchScript exporter is the one that needs no onnxscript and emits native GRU/LSTM ops;
        # batch is fixed to 1, so its batch-size warning does not apply.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            _Exportable(net),
            (torch.zeros(1, net.arch["obs_dim"]), *state0),
            buf,
            input_names=in_names,
            output_names=out_names,
            opset_version=OPSET,
            dynamo=False,
            do_constant_folding=True,
        )
    model = onnx.load_from_string(buf.getvalue())
    model.producer_name = "robo"
    model.doc_string = f"robo policy for task {meta.get('task', 'generic')}"
    onnx.checker.check_model(model, full_check=True)
    return model


def export_checkpoint(source: str | Path, out: str | Path, **kwargs: Any) -> dict[str, Any]:
    """``robo export onnx``: a run folder or checkpoint -> ONNX + card."""
    ckpt = find_checkpoint(source)
    net, meta = load_policy(ckpt)
    return export_onnx(net, meta, out, checkpoint=str(ckpt), **kwargs)


def synthetic_observations(card: dict[str, Any], steps: int, seed: int) -> np.ndarray:
    """A seeded, smooth-ish random observation sequence within the card's clipping (float32)."""
    rng = np.random.default_rng(seed)
    n = card["observation"]["size"]
    walk = np.cumsum(rng.normal(0.0, 0.15, (steps, n)), axis=0)
    obs = (0.5 * np.sin(walk) + rng.normal(0.0, 0.5, (steps, n))).astype(np.float32)
    for i, entry in enumerate(card["observation"]["layout"]):
        if entry.get("clip"):
            obs[:, i] = np.clip(obs[:, i], *entry["clip"])
    return obs


def _feedback_slots(card: dict[str, Any]) -> list[int]:
    """Observation indices that hold the previous action (closed loop), if the layout names them."""
    return [i for i, e in enumerate(card["observation"]["layout"]) if e["name"].startswith("prev_action")]


def compare_rollout(
    net: nn.Module, onnx_file: Path, card: dict[str, Any], steps: int = 500, seed: int = 0
) -> float:
    """Max abs difference of actions and states, torch vs ONNX Runtime, over a closed-loop rollout.

    The previous action is fed back into the observation (where the layout has it), each side from
    its own output, so a drift in the carried state would show up and compound.
    """
    sess = open_session(onnx_file)
    obs_seq = synthetic_observations(card, steps, seed)
    slots = _feedback_slots(card)
    lo, hi = action_clip(card) or (-np.inf, np.inf)
    recurrent = bool(card["recurrent_state"])
    state_t = net.initial_state(1) if recurrent else ()
    state_o = [np.zeros((1, s["size"]), np.float32) for s in card["recurrent_state"]]
    in_names = [t["name"] for t in card["onnx"]["inputs"]]
    prev_t = prev_o = np.zeros(card["action"]["size"], np.float32)
    worst = 0.0
    with torch.no_grad():
        for k in range(steps):
            obs_t, obs_o = obs_seq[k].copy(), obs_seq[k].copy()
            if slots and len(slots) == len(prev_t):
                obs_t[slots], obs_o[slots] = prev_t, prev_o
            if recurrent:
                act_t, state_t = net(torch.from_numpy(obs_t)[None], state_t)
            else:
                act_t = net(torch.from_numpy(obs_t)[None])
            feeds = dict(zip(in_names, [obs_o[None], *state_o], strict=True))
            act_o, *state_o = sess.run(None, feeds)
            # a NaN difference would compare False and pass the check; a non-finite policy is refused
            for side, values in (("torch", [act_t.numpy(), *(st.numpy() for st in state_t)]),
                                 ("ONNX Runtime", [act_o, *state_o])):
                if not all(np.isfinite(v).all() for v in values):
                    raise ValueError(f"the policy's {side} output is not finite at step {k} of the "
                                     "equivalence check (NaN or inf weights?); nothing written")
            worst = max(worst, float(np.max(np.abs(act_t.numpy() - act_o))))
            for st, so in zip(state_t, state_o, strict=True):
                worst = max(worst, float(np.max(np.abs(st.numpy() - so))))
            prev_t = np.clip(act_t.numpy()[0], lo, hi).astype(np.float32)
            prev_o = np.clip(act_o[0], lo, hi).astype(np.float32)
    return worst

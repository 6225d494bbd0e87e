"""The policy card (``policy.json`` next to ``policy.onnx``): what a model expects and produces.

Standard library only, so every consumer (runtime, ROS node, codegen, firmware) can read it
without torch. :func:`load_card` refuses a card whose ONNX file is missing or whose sha256 does
not match; :func:`check_io_names` refuses a model whose inputs/outputs differ from the card's.
Each ONNX input carries a ``role`` (:data:`ROLES`); :func:`write_card` writes strict JSON.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

from robo.files import write_json

CARD_FORMAT = "robo-policy-card/1"
REQUIRED = (
    "format",
    "task",
    "observation",
    "action",
    "control_rate_hz",
    "recurrent_state",
    "onnx",
    "training",
)

# What an ONNX input is to a runtime: the observation it builds, the recurrent state it carries from one
# call to the next, or an auxiliary tensor the caller supplies by name (neighbours, an action queue).
OBSERVATION, RECURRENT_STATE, AUXILIARY = "observation", "recurrent_state", "auxiliary"
ROLES = (OBSERVATION, RECURRENT_STATE, AUXILIARY)


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def card_path_for(path: str | Path) -> Path:
    """``policy.onnx`` -> ``policy.json`` beside it; a ``.json`` path is returned as is."""
    path = Path(path)
    return path if path.suffix == ".json" else path.with_suffix(".json")


def write_card(card: dict[str, Any], path: str | Path) -> Path:
    """Write the card atomically, as strict JSON (NaN and infinities become null)."""
    return write_json(path, card, indent=2)


def load_card(path: str | Path, verify: bool = True) -> dict[str, Any]:
    """Read the card for ``path`` (the .onnx or the .json) and check it against its ONNX file.

    The returned dict gains ``"onnx_path"``: the model file the card vouches for.
    Raises ValueError/OSError with a one-line reason when anything does not match.
    """
    if Path(path).is_dir():
        raise ValueError(f"{path} is a folder; pass the policy's .onnx file (its card beside it)")
    if Path(path).suffix not in (".onnx", ".json"):
        raise ValueError(f"{path}: expected an exported policy (.onnx, its card beside it)")
    if Path(path).suffix == ".onnx" and not Path(path).is_file():
        raise OSError(f"no such file: {path}")
    card_file = card_path_for(path)
    if not card_file.is_file():
        raise OSError(f"policy card not found: {card_file} (write one with `robo export onnx`)")
    try:
        card = json.loads(card_file.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{card_file}: not valid JSON ({exc})") from None
    if not isinstance(card, dict) or card.get("format") != CARD_FORMAT:
        raise ValueError(f"{card_file}: not a policy card (expected format {CARD_FORMAT!r})")
    missing = [k for k in REQUIRED if k not in card]
    if missing:
        raise ValueError(f"{card_file}: policy card lacks {missing[0]!r}")
    onnx_path = Path(path) if Path(path).suffix == ".onnx" else card_file.parent / card["onnx"]["file"]
    if not onnx_path.is_file():
        raise OSError(f"{card_file}: its model {onnx_path} does not exist")
    if verify:
        digest = sha256_file(onnx_path)
        if digest != card["onnx"]["sha256"]:
            raise ValueError(
                f"{onnx_path}: sha256 {digest[:16]}... does not match its card {card_file} "
                f"({card['onnx']['sha256'][:16]}...); the model was changed after export - export it again"
            )
    card["onnx_path"] = str(onnx_path)
    return card


def check_io_names(card: dict[str, Any], inputs: list[str], outputs: list[str]) -> None:
    """Refuse a model whose graph inputs/outputs are not the ones the card names, in order."""
    want_in = [t["name"] for t in card["onnx"]["inputs"]]
    want_out = [t["name"] for t in card["onnx"]["outputs"]]
    if list(inputs) != want_in or list(outputs) != want_out:
        raise ValueError(
            f"model inputs {list(inputs)} / outputs {list(outputs)} do not match the card's "
            f"{want_in} / {want_out}"
        )


def input_roles(card: dict[str, Any]) -> list[str]:
    """The role of each ONNX input, in order. A card written before roles existed: the first input is
    the observation, the others the recurrent state."""
    roles = [t.get("role") or (OBSERVATION if i == 0 else RECURRENT_STATE)
             for i, t in enumerate(card["onnx"]["inputs"])]
    unknown = [r for r in roles if r not in ROLES]
    if unknown:
        raise ValueError(f"card: input role {unknown[0]!r} is not one of {', '.join(ROLES)}")
    return roles


def obs_clip(card: dict[str, Any]) -> list[tuple[float, float] | None]:
    """Per observation value: (lo, hi) or None."""
    return [tuple(e["clip"]) if e.get("clip") else None for e in card["observation"]["layout"]]


Clip = tuple[float, float] | tuple[np.ndarray, np.ndarray]


def action_clip(card: dict[str, Any]) -> Clip | None:
    """The card's action clip as (lo, hi): two numbers (``[lo, hi]``, every output) or two arrays of the
    action size (``[[lo, hi], ...]``, one pair per output, e.g. gains and an angle), so ``np.clip(a,
    *clip)`` applies either."""
    clip = card["action"].get("clip")
    if not clip:
        return None
    if isinstance(clip[0], list):
        size = int(card["action"]["size"])
        if len(clip) != size or any(len(pair) != 2 for pair in clip):
            raise ValueError(f"card: action.clip has {len(clip)} [lo, hi] pairs for {size} outputs")
        pairs = np.asarray(clip, dtype=np.float64)
        return pairs[:, 0], pairs[:, 1]
    return float(clip[0]), float(clip[1])


def fallback_action(card: dict[str, Any]) -> list[float]:
    """What to output for a non-finite observation: the card's fallback, else the clip midpoint, else 0."""
    fb = card["action"].get("fallback")
    if fb is not None:
        return [float(v) for v in fb]
    clip = action_clip(card)
    mid = 0.0 if clip is None else 0.5 * (clip[0] + clip[1])
    return np.broadcast_to(np.asarray(mid, np.float64), int(card["action"]["size"])).tolist()


def card_io(card: dict[str, Any], defaults: dict[str, tuple[str, str]]) -> dict[str, tuple[str, str]]:
    """The ROS topics and message types a policy node reads and writes, by role: the card's optional
    ``io`` block (``{"inputs": {role: {"topic", "type"}}, "outputs": {"command": {...}}}``) over the
    task's ``defaults`` (role -> (topic, type); a card without the block gets them all). A card may
    rename a topic, never change a role's message type: the task's runtime converts that one type."""
    io = card.get("io")
    if io is None:
        return dict(defaults)
    if not isinstance(io, dict) or set(io) - {"inputs", "outputs"}:
        raise ValueError("card: 'io' must hold 'inputs' and/or 'outputs'")
    out = dict(defaults)
    for direction in ("inputs", "outputs"):
        for role, entry in (io.get(direction) or {}).items():
            if role not in defaults or (role == "command") != (direction == "outputs"):
                known = ", ".join(r for r in defaults if (r == "command") == (direction == "outputs"))
                raise ValueError(f"card: io {direction} role {role!r} is not one of the task's ({known})")
            topic, msg_type = entry.get("topic"), entry.get("type", defaults[role][1])
            if not isinstance(topic, str) or not topic:
                raise ValueError(f"card: io {direction}.{role}.topic must be a topic name, got {topic!r}")
            if msg_type != defaults[role][1]:
                raise ValueError(f"card: io {direction}.{role} is {msg_type}, the task's runtime reads and "
                                 f"writes {defaults[role][1]}")
            out[role] = (topic, msg_type)
    return out


def io_block(topics: dict[str, tuple[str, str]]) -> dict[str, Any]:
    """Role -> (topic, type) as a card's ``io`` block (the ``command`` role is the output)."""
    entry = {role: {"topic": t, "type": m} for role, (t, m) in topics.items()}
    return {"inputs": {r: e for r, e in entry.items() if r != "command"},
            "outputs": {r: e for r, e in entry.items() if r == "command"}}

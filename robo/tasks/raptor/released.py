"""The RAPTOR authors' released foundation policy as a robo policy (checkpoint, ONNX, card).

The weights ship in the ``foundation-policy`` package (MIT, rl-tools HDF5 checkpoint); they are read
from the installed package, never committed. Its network is exactly ``raptor_student()``: Dense(22->16,
ReLU), GRU(16) with PyTorch's gate order (r, z, n) and a zero initial state, Dense(16->4, identity),
so the import is a copy of tensors. The checkpoint carries an example input/output sequence; the
imported network must reproduce it, which is what catches a corrupt file or another architecture.

The output is written whole or not at all (:func:`robo.files.staged_folder`): nothing reaches the
folder unless every check, the export's equivalence check included, has passed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

PACKAGE = "foundation-policy"
INSTALL_HINT = "pip install 'robo[foundation-policy]'"
LAYERS = "Dense(22->16, RELU), GRU(16), Dense(16->4, IDENTITY)"
EXAMPLE_TOLERANCE = 1e-5


def packaged_checkpoint() -> Path:
    """The HDF5 file inside the installed ``foundation-policy`` package."""
    try:
        import importlib.resources as resources

        root = resources.files("foundation_policy")
    except ModuleNotFoundError:
        raise RuntimeError(f"the released RAPTOR policy needs the {PACKAGE} package: "
                           f"{INSTALL_HINT}") from None
    path = Path(str(root.joinpath("blob", "checkpoint.h5")))
    if not path.is_file():
        raise OSError(f"{PACKAGE} is installed but holds no checkpoint at {path}; reinstall it")
    return path


def read_checkpoint(path: Path) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray, dict[str, Any]]:
    """The actor's tensors by torch name, the example input/output, and the checkpoint's attributes."""
    try:
        import h5py
    except ModuleNotFoundError:
        raise RuntimeError(f"reading the released checkpoint needs h5py: {INSTALL_HINT}") from None
    try:
        with h5py.File(path, "r") as f:
            layers = f["actor"]["layers"]
            kinds = [layers[str(i)].attrs.get("type") for i in range(len(layers))]
            acts = [layers[str(i)].attrs.get("activation_function") for i in (0, len(layers) - 1)]
            if kinds != ["dense", "gru", "dense"] or list(acts) != ["RELU", "IDENTITY"]:
                raise ValueError(f"{path}: the released actor is {kinds} with activations {acts}, "
                                 f"not {LAYERS}")

            def p(*keys: str) -> np.ndarray:
                node = layers
                for key in keys:
                    node = node[key]
                return np.asarray(node["parameters"][()], dtype=np.float32)

            tensors = {
                "input.weight": p("0", "weights"), "input.bias": p("0", "biases").reshape(-1),
                "rnn.weight_ih_l0": p("1", "weights_input"), "rnn.weight_hh_l0": p("1", "weights_hidden"),
                "rnn.bias_ih_l0": p("1", "biases_input"), "rnn.bias_hh_l0": p("1", "biases_hidden"),
                "output.weight": p("2", "weights"), "output.bias": p("2", "biases").reshape(-1),
            }
            initial = p("1", "initial_hidden_state")
            example_in = np.asarray(f["example"]["input"][()], dtype=np.float32)
            example_out = np.asarray(f["example"]["output"][()], dtype=np.float32)
            attrs = {"checkpoint_name": str(f["actor"].attrs.get("checkpoint_name", "")),
                     "meta": str(f["actor"].attrs.get("meta", ""))}
    except (OSError, KeyError) as exc:
        raise ValueError(f"{path}: not a readable released RAPTOR checkpoint ({exc})") from None
    if np.any(initial != 0):
        raise ValueError(f"{path}: the GRU's initial state is not zero; {LAYERS} with zero state expected")
    return tensors, example_in, example_out, attrs


def build_student(tensors: dict[str, np.ndarray], path: Path) -> torch.nn.Module:
    from robo.nets.policy import raptor_student

    net = raptor_student()
    state = net.state_dict()
    for name, value in tensors.items():
        if tuple(state[name].shape) != value.shape:
            raise ValueError(f"{path}: {name} has shape {value.shape}, {LAYERS} needs "
                             f"{tuple(state[name].shape)}")
    net.load_state_dict({k: torch.from_numpy(v) for k, v in tensors.items()})
    return net.eval()


def example_error(net: torch.nn.Module, example_in: np.ndarray, example_out: np.ndarray) -> float:
    """Max abs difference on the checkpoint's own example ([T, B, 22] -> [T, B, 4])."""
    with torch.no_grad():
        obs = torch.from_numpy(example_in).transpose(0, 1)  # [B, T, 22]
        action, _ = net.forward_sequence(obs)
    return float(np.abs(action.transpose(0, 1).numpy() - example_out).max())


def import_released(out: str | Path, checkpoint: str | Path | None = None) -> dict[str, Any]:
    """Convert the released checkpoint into ``out``/student.pt + policy.onnx + policy.json."""
    from robo.export.onnx_export import export_checkpoint
    from robo.files import staged_folder, write_json
    from robo.nets.policy import save_policy
    from sim.quadrotor.observation import quadrotor_student_meta

    source = Path(checkpoint) if checkpoint is not None else packaged_checkpoint()
    if not source.is_file():
        raise OSError(f"released checkpoint not found: {source}")
    tensors, example_in, example_out, attrs = read_checkpoint(source)
    net = build_student(tensors, source)
    err = example_error(net, example_in, example_out)
    if not err <= EXAMPLE_TOLERANCE:
        raise ValueError(f"{source}: the imported network misses the checkpoint's own example by {err:.3g} "
                         f"(> {EXAMPLE_TOLERANCE:g}); the file is corrupt or not {LAYERS}")
    origin = {"source": "released", "package": PACKAGE, "package_version": _version(), "file": str(source),
              "checkpoint_name": attrs["checkpoint_name"], "authors_meta": attrs["meta"],
              "example_max_abs_error": err, "license": "MIT (foundation-policy)"}
    out = Path(out)
    with staged_folder(out, ["student.pt", "policy.onnx", "policy.json", "origin.json"]) as staging:
        save_policy(staging / "student.pt", net, quadrotor_student_meta(
            run={"package": PACKAGE, "version": _version(), "checkpoint_name": attrs["checkpoint_name"]},
            origin={"source": "released", "package": PACKAGE}))
        card = export_checkpoint(staging / "student.pt", staging / "policy.onnx")
        write_json(staging / "origin.json", origin)
    return {"out": out, "origin": origin, "card": card}


def _version() -> str:
    import importlib.metadata as md

    try:
        return md.version(PACKAGE)
    except md.PackageNotFoundError:
        return "unknown"

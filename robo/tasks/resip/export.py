"""ResiP as ONE ONNX graph: the diffusion base's chunk queue, its DDIM steps (unrolled) and the residual.

    python -m robo.tasks.resip.export runs/resip/peg_2mm out/resip.onnx     # + out/resip.json (card)

``robo train resip`` writes it into its run folder (resip.onnx, resip.json) when it ends.

Inputs and outputs (batch 1)::

    obs       [1, 17]        the raw observation (sim.assembly LAYOUTS[task]: 17 for the peg tasks)
    noise     [1, 16, 10]    N(0, 1); the caller draws a fresh one every call (auxiliary); the DDIM start is
                             noise_scale times it (the run's base_noise_scale; the card says it)
    queue_in  [1, 8 x 10]    the base's queued actions (recurrent state, zeros at the start)
    left_in   [1, 1]         how many of them are still to execute (recurrent state, 0 at the start)
    action    [1, 10]        base action + scale x residual, in environment units
    queue_out, left_out      the state for the next call

When ``left_in`` is 0 the graph's chunk (DDIM from ``noise``, the fixed steps of the base run's DDIM
schedule unrolled, decoded with the observation) refills the queue; otherwise the queue is kept. ONNX
has no cheap conditional in the exporter used here (TorchScript), so the chunk is computed on every
call and selected with ``Where``: a call costs a whole DDIM sampling (the card says so). The
equivalence test runs this graph in ONNX Runtime beside :class:`robo.tasks.resip.train_resip.ResiPActor`
(diffusers' DDIM, the chunk queue, the residual) on the same episode and noise.
"""

from __future__ import annotations

import argparse
import io
import warnings
from pathlib import Path
from typing import Any

import onnx
import torch
from torch import nn

from robo.export.card import AUXILIARY, CARD_FORMAT, OBSERVATION, RECURRENT_STATE, card_path_for, write_card
from robo.export.onnx_export import OPSET
from robo.files import staged_folder
from robo.nets.diffusion import DiffusionPolicy
from robo.tasks.resip.base import Base, load_base
from sim.assembly.env import ACTION_NAMES, LAYOUTS

INPUTS = ("obs", "noise", "queue_in", "left_in")
OUTPUTS = ("action", "queue_out", "left_out")


def ddim_constants(steps: int, train_steps: int, beta_schedule: str) -> list[tuple[int, float, float]]:
    """(timestep, alpha-bar at it, alpha-bar at the next one) of diffusers' DDIM schedule, in order."""
    from diffusers import DDIMScheduler

    from robo.rl.diffusion_bc import ddpm_scheduler

    scheduler = DDIMScheduler.from_config(ddpm_scheduler(train_steps, beta_schedule).config)
    scheduler.set_timesteps(steps)
    alphas, last = scheduler.alphas_cumprod, float(scheduler.final_alpha_cumprod)
    out = []
    for t in scheduler.timesteps.tolist():
        prev = t - train_steps // steps
        out.append((t, float(alphas[t]), float(alphas[prev]) if prev >= 0 else last))
    return out


class ResiPGraph(nn.Module):
    """``(obs, noise, queue, left) -> (action, queue, left)``: see the module docstring."""

    def __init__(self, policy: DiffusionPolicy, residual: nn.Module, scale: float, ddim_steps: int,
                 action_horizon: int, train_steps: int, beta_schedule: str,
                 channels: list[int] | None = None, noise_scale: float = 1.0):
        super().__init__()
        self.policy, self.residual, self.scale, self.horizon = policy, residual, scale, action_horizon
        self.noise_scale = noise_scale
        self.schedule = ddim_constants(ddim_steps, train_steps, beta_schedule)
        self.act_dim = policy.arch["act_dim"]
        self.channels = channels
        if channels is not None:  # the residual corrects these channels only: [k] -> [act_dim] as a MatMul
            self.register_buffer("spread", torch.eye(self.act_dim)[channels])

    def chunk(self, obs: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """DDIM (eta 0, epsilon prediction, x0 clipped to [-1, 1] as diffusers' ``clip_sample``)."""
        cond, x = self.policy.normalize_obs(obs), noise * self.noise_scale
        for t, alpha, alpha_prev in self.schedule:
            eps = self.policy(x, torch.full((1,), t, dtype=torch.long), cond)
            x0 = ((x - (1 - alpha) ** 0.5 * eps) / alpha**0.5).clamp(-1, 1)
            x = alpha_prev**0.5 * x0 + (1 - alpha_prev) ** 0.5 * eps
        return self.policy.decode_chunk(x.clamp(-1, 1), obs)[:, : self.horizon]

    def forward(self, obs: torch.Tensor, noise: torch.Tensor, queue: torch.Tensor, left: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        refill = left <= 0.5
        queue = torch.where(refill, self.chunk(obs, noise).reshape(1, -1), queue)
        left = torch.where(refill, torch.full_like(left, self.horizon), left)
        index = (self.horizon - left).long()  # [1, 1]: the queue's current action
        base = queue.reshape(1, self.horizon, self.act_dim).gather(
            1, index[:, :, None].expand(1, 1, self.act_dim))[:, 0]
        base_n = self.policy.normalize_actions(base)
        residual = self.residual(torch.cat([self.policy.normalize_obs(obs), base_n], dim=-1)).clamp(-1, 1)
        if self.channels is not None:
            residual = residual @ self.spread
        return self.policy.unnormalize_actions(base_n + self.scale * residual), queue, left - 1


def graph_of_run(run: str | Path) -> tuple[ResiPGraph, Base, dict[str, Any]]:
    """The graph of a ``robo train resip`` run (its residual.pt and the base it names), base, meta."""
    from robo.nets.policy import load_policy
    from robo.tasks.resip.train_resip import RESIDUAL, channel_indices

    path = Path(run) / RESIDUAL
    residual, meta = load_policy(path)  # names the missing file if there is none
    config = meta["config"]
    base = load_base(config["base"])
    diffusion = base.meta["config"]["diffusion"]
    steps = config["base_ddim_steps"] or diffusion["rl_ddim_steps"]
    graph = ResiPGraph(base.policy, residual.eval(), config["residual_scale"], steps,
                       diffusion["action_horizon"], diffusion["train_diffusion_steps"],
                       diffusion["beta_schedule"], channel_indices(config.get("residual_channels", [])),
                       config.get("base_noise_scale", 1.0))  # runs before the option started from N(0, 1)
    return graph.eval(), base, meta


def card(graph: ResiPGraph, base: Base, meta: dict[str, Any], onnx_file: Path) -> dict[str, Any]:
    from robo.export.card import sha256_file

    arch = base.policy.arch
    obs_dim, act_dim, horizon = arch["obs_dim"], arch["act_dim"], graph.horizon
    shapes = {"obs": [1, obs_dim], "noise": [1, arch["pred_horizon"], act_dim],
              "queue_in": [1, horizon * act_dim], "left_in": [1, 1]}
    roles = {"obs": OBSERVATION, "noise": AUXILIARY, "queue_in": RECURRENT_STATE, "left_in": RECURRENT_STATE}
    return {
        "format": CARD_FORMAT, "task": base.task,
        "observation": {"size": obs_dim, "layout": LAYOUTS[base.env_config().task].card_entries()},
        "action": {"size": act_dim, "layout": [{"name": n, "unit": "m" if n.startswith("pos") else "1"}
                                               for n in ACTION_NAMES],
                   "clip": [-1.0, 1.0], "mapping": "absolute tip pose (sim.assembly AssemblyEnv)",
                   "fallback": None},
        "control_rate_hz": 50.0,
        "recurrent_state": [
            {"name": "queue", "size": horizon * act_dim, "input": "queue_in", "output": "queue_out",
             "initial": "zeros"},
            {"name": "left", "size": 1, "input": "left_in", "output": "left_out", "initial": "zeros"}],
        "auxiliary": {"noise": "standard normal, drawn fresh by the caller every call; used if left_in is 0, "
                               f"scaled by {graph.noise_scale:g} as DDIM's start"},
        "chunking": {"pred_horizon": arch["pred_horizon"], "action_horizon": horizon,
                     "ddim_steps": len(graph.schedule), "ddim_timesteps": [t for t, _, _ in graph.schedule],
                     "noise_scale": graph.noise_scale,
                     "note": "every call computes a chunk; it replaces the queue only when left_in is 0"},
        "residual": {"scale": graph.scale, "clip": [-1.0, 1.0],
                     "channels": [ACTION_NAMES[c] for c in graph.channels or range(act_dim)]},
        "onnx": {"file": onnx_file.name, "sha256": sha256_file(onnx_file), "opset": OPSET,
                 "inputs": [{"name": n, "shape": shapes[n], "role": roles[n]} for n in INPUTS],
                 "outputs": [{"name": "action", "shape": [1, act_dim]},
                             {"name": "queue_out", "shape": shapes["queue_in"]},
                             {"name": "left_out", "shape": [1, 1]}]},
        "training": {"run": meta.get("run"), "base": str(base.run), "config": meta.get("config")},
    }


def to_onnx(graph: ResiPGraph) -> onnx.ModelProto:
    arch = graph.policy.arch
    example = (torch.zeros(1, arch["obs_dim"]), torch.zeros(1, arch["pred_horizon"], arch["act_dim"]),
               torch.zeros(1, graph.horizon * arch["act_dim"]), torch.zeros(1, 1))
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # batch fixed to 1: the exporter's batch-size warning does not apply
        torch.onnx.export(graph, example, buf, input_names=list(INPUTS), output_names=list(OUTPUTS),
                          opset_version=OPSET, dynamo=False, do_constant_folding=True)
    model = onnx.load_from_string(buf.getvalue())
    model.producer_name = "robo"
    onnx.checker.check_model(model, full_check=True)
    return model


def export(run: str | Path, out: str | Path) -> dict[str, Any]:
    """Write ``out`` (.onnx) and its card; nothing is written if the export fails."""
    out = Path(out)
    if out.suffix != ".onnx":
        raise ValueError(f"output {out} must end in .onnx (the card goes beside it as .json)")
    graph, base, meta = graph_of_run(run)
    model = to_onnx(graph)
    with staged_folder(out.parent, [out.name, card_path_for(out).name]) as stage:
        onnx.save(model, stage / out.name)
        written = card(graph, base, meta, stage / out.name)
        write_card(written, card_path_for(stage / out.name))
    return written


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="ResiP (base + residual) as one ONNX graph with its card")
    p.add_argument("run", help="a `robo train resip` run folder")
    p.add_argument("out", help="the .onnx file to write (the card goes beside it)")
    args = p.parse_args(argv)
    exported = export(args.run, args.out)
    print(f"{args.out}: {exported['chunking']['ddim_steps']} DDIM steps unrolled, chunks of "
          f"{exported['chunking']['action_horizon']}")


if __name__ == "__main__":
    main()

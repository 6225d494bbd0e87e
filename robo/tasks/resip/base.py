"""The frozen diffusion base from a ``robo train dp`` run: what the residual (next stage) builds on.

    base = load_base("runs/dp/peg_2mm")            # policy.pt: U-Net + normalisation bounds + meta
    act = base.actor(num_envs=64)                  # DDIM 4, chunks of 8 (the run's rl settings)
    action = act(obs)                              # [N, 10]: each row's current single base action
    act.reset(done_rows)                           # rows whose episodes restart drop their queue
    obs_n = base.policy.normalize_obs(obs)         # the residual's input is (obs_n, action)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from robo.nets.chunking import MLPChunkPolicy
from robo.nets.diffusion import DiffusionPolicy
from robo.rl.diffusion_bc import ChunkedPolicy, DDIMSampler, RegressionSampler
from sim.assembly.config import AssemblyConfig

POLICY = "policy.pt"
BASE_KINDS = (DiffusionPolicy, MLPChunkPolicy)  # what `robo train dp` trains (policy: diffusion | mlp)


@dataclass
class Base:
    policy: DiffusionPolicy | MLPChunkPolicy
    meta: dict[str, Any]
    run: Path

    @property
    def task(self) -> str:
        return self.meta["task"]

    def env_config(self, **overrides: Any) -> AssemblyConfig:
        """The environment the base was trained for (its demonstrations' config), with overrides."""
        return AssemblyConfig(**{**self.meta["config"]["env"], **overrides})

    def ddim_steps(self, steps: int | None = None) -> int:
        """``steps`` (None or 0: the base's RL setting), refused above its diffusion training steps."""
        diffusion = self.meta["config"]["diffusion"]
        steps = steps or diffusion["rl_ddim_steps"]
        if not 1 <= steps <= diffusion["train_diffusion_steps"]:
            raise ValueError(f"DDIM steps {steps}: the base {self.run} takes 1 to its "
                             f"{diffusion['train_diffusion_steps']} diffusion training steps")
        return steps

    def actor(self, num_envs: int, ddim_steps: int | None = None, action_horizon: int | None = None,
              seed: int = 0, noise_scale: float = 1.0) -> ChunkedPolicy:
        """Each environment's current single action (chunk queue; defaults: the RL settings, DDIM 4;
        an MLP-BC base predicts its chunks directly; ``noise_scale``: of DDIM's start noise)."""
        diffusion = self.meta["config"]["diffusion"]
        horizon = action_horizon or diffusion["action_horizon"]
        if horizon > self.policy.arch["pred_horizon"]:
            raise ValueError(f"action_horizon: {horizon} exceeds the base's prediction horizon "
                             f"{self.policy.arch['pred_horizon']}")
        if isinstance(self.policy, MLPChunkPolicy):
            return ChunkedPolicy(RegressionSampler(self.policy), num_envs, horizon, seed)
        sampler = DDIMSampler(self.policy, self.ddim_steps(ddim_steps),
                              diffusion["train_diffusion_steps"], diffusion["beta_schedule"], noise_scale)
        return ChunkedPolicy(sampler, num_envs, horizon, seed)


def load_base(run: str | Path, kinds: tuple[type, ...] = (DiffusionPolicy,)) -> Base:
    """The base of a ``robo train dp`` run folder (or its ``policy.pt``); refuses one without
    normalisation statistics or of a kind not in ``kinds`` (default: diffusion only; the MLP-BC
    baseline is :class:`MLPChunkPolicy`), naming what is wrong."""
    from robo.nets.policy import load_policy

    path = Path(run)
    path = path / POLICY if path.is_dir() else path
    if not path.is_file():
        raise OSError(f"base {run}: no {POLICY} (is it a finished `robo train dp` run?)")
    policy, meta = load_policy(path)
    if not isinstance(policy, kinds):
        wanted = " or ".join(k.kind for k in kinds)
        raise ValueError(f"base {path}: a {policy.arch['kind']!r} policy, not a {wanted} base")
    if not float(policy.fitted):
        raise ValueError(f"base {path}: normalisation statistics are missing (obs/act bounds never fitted)")
    if "task" not in meta or "env" not in meta.get("config", {}):
        raise ValueError(f"base {path}: meta has no task or environment config (not from robo train dp)")
    policy.eval().requires_grad_(False)
    return Base(policy, meta, path.parent)

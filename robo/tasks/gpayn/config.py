"""``robo train gpayn``'s config: the object, the algorithm (G-PAYN, SAC from scratch, OERLD), the hand
environment, the demonstrations and SAC; defaults are the paper's settings (configs/gpayn.yaml)."""

from __future__ import annotations

from dataclasses import dataclass, field

from robo.rl.off_policy_runner import RunnerConfig
from robo.rl.sac import SACConfig
from sim.hand.env import HandEnvConfig

ALGOS = ("gpayn", "sac", "oerld")


def _sac() -> SACConfig:
    # Ceola et al.: lr 3e-4, batch 256, gamma 0.99, tau 0.005, automatic entropy, 2 x 1024 MLPs.
    return SACConfig(buffer_size=1_000_000, batch_size=256, gamma=0.99, tau=0.005, actor_lr=3e-4,
                     critic_lr=3e-4, alpha_lr=3e-4, initial_alpha=1.0, target_entropy=-18.0,
                     learning_starts=10_000, actor_hidden=(1024, 1024), critic_hidden=(1024, 1024))


def _runner() -> RunnerConfig:
    # One SAC update per 10 environment steps (the paper's).
    return RunnerConfig(steps=1_000_000, log_interval=10_000, checkpoint_interval=50_000, envs_per_member=1,
                        update_interval=10, select_interval=50_000)


@dataclass
class GPAYNTrainConfig:
    seed: int = 0
    algo: str = "gpayn"  # gpayn: SAC on one FIFO that starts full of demonstrations; sac; oerld
    members: int = 1  # K seeds trained at once (seed, seed + 1, ...)
    threads: int = 1  # torch CPU threads; may change on --resume
    # The object is env.object (--object); the paper starts every episode at the planner's pre-grasp.
    env: HandEnvConfig = field(default_factory=lambda: HandEnvConfig(start="pre_grasp"))
    demo_transitions: int = 1_000_000  # scripted demonstrator transitions, failed demonstrations kept
    demo_envs: int = 16  # environments the demonstrator runs at once
    # Gaussian noise (standard deviation, action units) on the demonstrator's executed actions, so the
    # critic sees actions around the demonstrated ones, not one action per state (0: the paper's).
    demo_action_noise: float = 0.0
    # gpayn: 0 is the paper's single FIFO that starts full of demonstrations; a share > 0 keeps them in a
    # partition FIFO never overwrites and draws that share of every batch from it (RLPD's 0.5).
    gpayn_demo_fraction: float = 0.0
    # gpayn: weight of a behaviour-cloning term on the partition's rows, Q-filtered unless
    # sac.bc_q_filter is false (OERLD's always is); > 0 makes G-PAYN OERLD-like. 0: the paper's (none).
    gpayn_bc_weight: float = 0.0
    oerld_demo_rows: int = 32  # OERLD: demonstration rows added to each batch of sac.batch_size agent rows
    oerld_bc_weight: float = 1.0  # OERLD: weight of the Q-filtered behaviour-cloning term
    # SAC updates on the buffer of demonstrations before the first environment step (gpayn only):
    # 0 is the paper's; a warm start lets a short run begin from a critic that has seen the grasps.
    pretrain_updates: int = 0
    eval_episodes: int = 10  # deterministic episodes per member at every runner.select_interval
    sac: SACConfig = field(default_factory=_sac)
    runner: RunnerConfig = field(default_factory=_runner)

    def __post_init__(self) -> None:
        if self.algo not in ALGOS:
            raise ValueError(f"unknown algo {self.algo!r} (choices: {', '.join(ALGOS)})")
        for name in ("members", "threads", "demo_transitions", "demo_envs", "oerld_demo_rows",
                     "eval_episodes"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if self.pretrain_updates < 0:
            raise ValueError(f"pretrain_updates must be >= 0, got {self.pretrain_updates}")
        if self.demo_action_noise < 0:
            raise ValueError(f"demo_action_noise must be >= 0, got {self.demo_action_noise}")
        if not 0.0 <= self.gpayn_demo_fraction < 1.0:
            raise ValueError(f"gpayn_demo_fraction must be in [0, 1), got {self.gpayn_demo_fraction}")
        if self.gpayn_bc_weight < 0 or (self.gpayn_bc_weight and not self.gpayn_demo_fraction):
            raise ValueError(f"gpayn_bc_weight must be >= 0 and needs gpayn_demo_fraction > 0 (the "
                             f"demonstration rows it clones), got {self.gpayn_bc_weight}")
        if self.gpayn_demo_fraction and self.pretrain_updates:
            raise ValueError("pretrain_updates needs gpayn_demo_fraction = 0: with a partition the batches "
                             "need agent rows, and there are none before the first step")
        if self.oerld_bc_weight < 0:
            raise ValueError(f"oerld_bc_weight must be >= 0, got {self.oerld_bc_weight}")
        if self.runner.select_interval <= 0:
            raise ValueError("runner.select_interval must be > 0: it is when success is measured")
        if self.runner.demo_fraction or self.sac.bc_weight:
            raise ValueError("runner.demo_fraction and sac.bc_weight follow from algo (set oerld_demo_rows, "
                             "oerld_bc_weight)")

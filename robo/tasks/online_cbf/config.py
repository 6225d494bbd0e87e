"""The settings of ``robo train online-cbf`` and ``robo eval online-cbf`` (configs/online_cbf*.yaml)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, ClassVar

from robo.nets.gnn import output_range, unsquash_gains
from robo.rl.on_policy_runner import OnPolicyConfig
from robo.rl.ppo import PPOConfig
from robo.safety.batched_multi_agent import MultiAgentFilterConfig
from sim.swarm import SCENARIOS, SwarmConfig
from sim.swarm.nominal import check_tilt


@dataclass
class FilterSettings:
    margin: float = 0.05         # m added to every contact distance
    slack_weight: float = 1e4    # a barrier multiplier above it is a fault
    brake_gain: float = 10.0     # 1/s, the fault command: clamp(-brake_gain * v, +-max_accel)
    # Every agent's k2 under a tuner (None: its own). Two agents whose gains disagree can void their pair
    # condition (README, "gains that disagree"); one k2 for all keeps it valid for any k1. Fixed gains
    # are one pair for every agent, valid by themselves, and run with their own k2.
    shared_k2: float | None = 4.0


@dataclass
class GridSettings:
    k1: list[float] = field(default_factory=lambda: [1.0, 2.0, 4.0])
    k2: list[float] = field(default_factory=lambda: [1.0, 2.0, 4.0])
    tilt: list[float] = field(default_factory=list)  # rad, also search the turn (empty: the config's)
    episodes: int = 20           # per grid point
    seed: int = 10_000           # the search's episodes, apart from the evaluation's


@dataclass
class RewardWeights:
    progress: float = 2.0        # per metre an agent moved toward its goal
    time: float = 0.01           # per step an agent is away from its goal
    success: float = 5.0         # to every agent of an episode whose agents all arrive without collision
    deadlock: float = 5.0        # once, when an agent becomes deadlocked
    slack: float = 0.05          # per step an agent's QP needs slack (a fault: it brakes)
    collision: float = 10.0      # per contact onset an agent is part of
    team: float = 0.0            # share of the episode's mean reward in each agent's (1: all the team's)


def _tuner_ppo() -> PPOConfig:
    return PPOConfig(learning_rate=3e-4, desired_kl=0.01, num_epochs=4, num_minibatches=4,
                     entropy_coef=0.001, gamma=0.99, lam=0.95)


def _tuner_runner() -> OnPolicyConfig:
    return OnPolicyConfig(iterations=300, num_steps=64, init_std=0.5, checkpoint_interval=10)


@dataclass
class TrainSettings:
    scenarios: list[str] = field(default_factory=lambda: ["swap", "corridor"])  # env e plays e % len
    envs: int = 32               # episodes stepped together; every agent of each is one PPO sample
    neighbours: int = 8          # edge slots of the GNN (nearest first; the card's max neighbours)
    hidden: int = 64
    k_min: float = 0.25          # the gains' range (both k1 and k2), 1/s
    k_max: float = 4.0
    tilt_range: list[float] | None = None  # rad: the tuner also sets each agent's right-hand-rule turn
    init_gains: list[float] | None = None  # (k1, k2) the untrained tuner starts at (default: mid-range)
    per_neighbour: bool = False  # also a (k1, k2) per edge slot, for that neighbour's barrier row
    imitate: list[float] | None = None  # [low, high]: first imitate the yield rule (warm_start.py)
    imitate_steps: int = 1200    # steps of the training environment under the rule (the demonstrations)
    imitate_epochs: int = 40     # passes of the actor and critic over them (5 left the corridor jammed)
    episode_time: float = 30.0   # s, the training episodes' horizon
    seed: int = 1_000_000        # training scenarios, apart from evaluation (0) and grid search (10000)
    reward: RewardWeights = field(default_factory=RewardWeights)
    ppo: PPOConfig = field(default_factory=_tuner_ppo)
    runner: OnPolicyConfig = field(default_factory=_tuner_runner)


@dataclass
class OnlineCbfConfig:
    # What a run whose config.yaml lacks a key used, where that key's default changed after it was added
    # (robo.run_dir): runs begun before filter.shared_k2 existed gave each agent its own k2.
    PREDATED: ClassVar[dict[str, Any]] = {"filter.shared_k2": None}

    scenario: str = "swap"
    agents: int = 8
    episodes: int = 100
    seed: int = 0
    spacing: float = 0.8         # m between neighbouring starts
    jitter: float = 0.05         # m, uniform perturbation of the starts
    obstacles: int = 4           # random obstacles of the "obstacles" scenario
    kp: float = 1.0              # nominal controller: desired velocity kp / kd * goal offset
    kd: float = 2.0              # 1/s, velocity tracking gain
    tilt: float = 0.4            # rad, nominal's right-hand rule (sim.swarm.nominal), for every controller
    threads: int = 1             # torch CPU threads
    swarm: SwarmConfig = field(default_factory=SwarmConfig)
    filter: FilterSettings = field(default_factory=FilterSettings)
    grid: GridSettings = field(default_factory=GridSettings)
    train: TrainSettings = field(default_factory=TrainSettings)

    def __post_init__(self) -> None:
        if self.scenario not in SCENARIOS:
            raise ValueError(f"scenario: unknown {self.scenario!r} (known: {', '.join(SCENARIOS)})")
        for name in ("agents", "episodes", "threads"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.agents < 2:
            raise ValueError(f"agents must be >= 2, got {self.agents}")
        for name in ("kp", "kd"):
            if not (math.isfinite(getattr(self, name)) and getattr(self, name) > 0):
                raise ValueError(f"{name} must be finite and > 0, got {getattr(self, name)}")
        if not (math.isfinite(self.spacing) and self.spacing > 0):
            raise ValueError(f"spacing must be finite and > 0, got {self.spacing}")
        if not (math.isfinite(self.jitter) and self.jitter >= 0):
            raise ValueError(f"jitter must be finite and >= 0, got {self.jitter}")
        if self.obstacles < 0:
            raise ValueError(f"obstacles must be >= 0, got {self.obstacles}")
        check_tilt(self.tilt)
        self.filter_config()  # the filter's own checks (margin >= 0, slack_weight > 0, ...), before any run
        if self.grid.episodes < 1:
            raise ValueError(f"grid.episodes must be >= 1, got {self.grid.episodes}")
        if not self.grid.k1 or not self.grid.k2 or min(self.grid.k1 + self.grid.k2) <= 0:
            raise ValueError("grid: k1 and k2 must be non-empty lists of positive gains")
        for x in self.grid.tilt:
            check_tilt(x)
        t = self.train
        unknown = [name for name in t.scenarios if name not in SCENARIOS]
        if not t.scenarios or unknown:
            raise ValueError(f"train.scenarios: need some of {', '.join(SCENARIOS)}, got {t.scenarios}")
        for name in ("envs", "neighbours", "hidden"):
            if getattr(t, name) < 1:
                raise ValueError(f"train.{name} must be >= 1, got {getattr(t, name)}")
        if not (math.isfinite(t.k_min) and math.isfinite(t.k_max) and 0 < t.k_min < t.k_max):
            raise ValueError(f"train: need 0 < k_min < k_max, got {t.k_min}, {t.k_max}")
        if t.tilt_range is not None:
            if len(t.tilt_range) != 2 or not t.tilt_range[0] < t.tilt_range[1]:
                raise ValueError(f"train.tilt_range: need [low, high] with low < high, got {t.tilt_range}")
            for x in t.tilt_range:
                check_tilt(x)
        if t.init_gains is not None:
            if len(t.init_gains) != 2:
                raise ValueError(f"train.init_gains: need [k1, k2], got {t.init_gains}")
            try:
                unsquash_gains(t.init_gains, *output_range(t.k_min, t.k_max, None))
            except ValueError as e:
                raise ValueError(f"train.init_gains: {e}") from None
        if not 0.0 <= t.reward.team <= 1.0:
            raise ValueError(f"train.reward.team must be in [0, 1], got {t.reward.team}")
        if t.imitate is not None:
            if not t.per_neighbour or t.tilt_range is not None:
                raise ValueError("train.imitate: the yield rule sets per-neighbour gains only: needs "
                                 "train.per_neighbour=true and no train.tilt_range")
            if len(t.imitate) != 2 or not t.imitate[0] < t.imitate[1]:
                raise ValueError(f"train.imitate: need [low, high] gains with low < high, got {t.imitate}")
            try:
                unsquash_gains(t.imitate, *output_range(t.k_min, t.k_max, None))
            except ValueError as e:
                raise ValueError(f"train.imitate: {e}") from None
            for name in ("imitate_steps", "imitate_epochs"):
                if getattr(t, name) < 1:
                    raise ValueError(f"train.{name} must be >= 1, got {getattr(t, name)}")
        if not (math.isfinite(t.episode_time) and t.episode_time > 0):
            raise ValueError(f"train.episode_time must be finite and > 0, got {t.episode_time}")

    def grid_points(self) -> int:
        return len(self.grid.k1) * len(self.grid.k2) * max(1, len(self.grid.tilt))

    def filter_config(self, *, uniform_gains: bool = False) -> MultiAgentFilterConfig:
        """The batched filter's settings; ``uniform_gains`` (one fixed pair for every agent) leaves each
        agent its k2: such pairs never disagree, and the grid searches k2 too."""
        s = self.swarm
        return MultiAgentFilterConfig(agent_radius=s.agent_radius, sensing_radius=s.sensing_radius,
                                      max_accel=s.max_accel, margin=self.filter.margin,
                                      slack_weight=self.filter.slack_weight,
                                      brake_gain=self.filter.brake_gain,
                                      shared_k2=None if uniform_gains else self.filter.shared_k2)

"""The settings of ``robo eval online-cbf`` (configs/online_cbf.yaml)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from robo.safety.batched_multi_agent import MultiAgentFilterConfig
from sim.swarm import SCENARIOS, SwarmConfig


@dataclass
class FilterSettings:
    margin: float = 0.05         # m added to every contact distance
    slack_weight: float = 1e4    # a barrier multiplier above it is a fault
    brake_gain: float = 10.0     # 1/s, the fault command: clamp(-brake_gain * v, +-max_accel)


@dataclass
class GridSettings:
    k1: list[float] = field(default_factory=lambda: [1.0, 2.0, 4.0])
    k2: list[float] = field(default_factory=lambda: [1.0, 2.0, 4.0])
    episodes: int = 20           # per grid point
    seed: int = 10_000           # the search's episodes, apart from the evaluation's


@dataclass
class OnlineCbfConfig:
    scenario: str = "swap"
    agents: int = 8
    episodes: int = 100
    seed: int = 0
    spacing: float = 0.8         # m between neighbouring starts
    jitter: float = 0.05         # m, uniform perturbation of the starts
    obstacles: int = 4           # random obstacles of the "obstacles" scenario
    kp: float = 1.0              # nominal controller: desired velocity kp / kd * goal offset
    kd: float = 2.0              # 1/s, velocity tracking gain
    threads: int = 1             # torch CPU threads
    swarm: SwarmConfig = field(default_factory=SwarmConfig)
    filter: FilterSettings = field(default_factory=FilterSettings)
    grid: GridSettings = field(default_factory=GridSettings)

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
        if not self.grid.k1 or not self.grid.k2 or min(self.grid.k1 + self.grid.k2) <= 0:
            raise ValueError("grid: k1 and k2 must be non-empty lists of positive gains")

    def filter_config(self) -> MultiAgentFilterConfig:
        s = self.swarm
        return MultiAgentFilterConfig(agent_radius=s.agent_radius, sensing_radius=s.sensing_radius,
                                      max_accel=s.max_accel, margin=self.filter.margin,
                                      slack_weight=self.filter.slack_weight,
                                      brake_gain=self.filter.brake_gain)

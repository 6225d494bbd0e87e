"""placeholder"""
from dataclasses import dataclass


@dataclass
class GPAYNEvalConfig:
    episodes: int = 20

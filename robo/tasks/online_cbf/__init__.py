"""Online CBFs (Gao, Yang, Prorok 2023): decentralised multi-agent navigation behind a CBF filter.

Phase 1: the swarm environment (``sim.swarm``), the decentralised filter
(``robo.safety.batched_multi_agent``) and its baselines, evaluated by ``robo eval online-cbf``: the
nominal controller without a filter, fixed gains, or fixed gains chosen by exhaustive grid search.
The GNN tuner and its training come next (a train stage is added then).
"""

import argparse

from robo.registry import Stage, Task

EVAL_DESCRIPTION = """\
Run seeded episodes of one scenario (swap, crossing, corridor, obstacles) and measure success (every
agent at its goal, no collision), collisions (contact onsets), the minimum distance between two
agents' centres, the deadlock rate, the makespan of successful episodes and the QP fault rate (a
fault needs slack: the agent brakes). The controller is the nominal PD-to-goal one without a filter
(--nominal), the filter with fixed gains (--gains K1,K2), or the filter with the gains an exhaustive
grid search picks on separate episodes (--grid; the grid and its episodes are in the config).
Writes metrics.json and trajectories.png (the first episode) into --out.

examples:
  robo eval online-cbf --scenario swap --agents 8 --episodes 100 --nominal
  robo eval online-cbf --scenario corridor --agents 8 --gains 2,2
  robo eval online-cbf --config configs/online_cbf.yaml --scenario crossing --grid
"""


def eval_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--scenario", choices=("swap", "crossing", "corridor", "obstacles"),
                   help="scenario (default: the config's)")
    p.add_argument("--agents", type=int, metavar="N", help="agents per episode (default: the config's)")
    p.add_argument("--episodes", type=int, metavar="E", help="episodes (default: the config's)")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--gains", metavar="K1,K2", help="the filter with these fixed HOCBF gains")
    which.add_argument("--grid", action="store_true", help="the filter with the grid-searched best gains")
    which.add_argument("--nominal", action="store_true", help="the nominal controller, no filter")


TASKS = [
    Task("online-cbf", "decentralised CBF filter for multi-agent navigation: baselines (GNN tuner: phase 2)",
         evaluate=Stage("robo.tasks.online_cbf.evaluate:evaluate",
                        "robo.tasks.online_cbf.config:OnlineCbfConfig", EVAL_DESCRIPTION, eval_arguments,
                        out="runs/online_cbf/eval", resumable=False)),
]

"""Online CBFs (Gao, Yang, Prorok 2023): decentralised multi-agent navigation behind a CBF filter.

The swarm environment (``sim.swarm``), the decentralised filter (``robo.safety.batched_multi_agent``),
its baselines (the nominal controller without a filter, fixed gains, fixed gains chosen by exhaustive
grid search) and the tuner: a GNN (``robo.nets.gnn``) that sets each agent's gains online, trained by
PPO with parameter sharing (``robo train online-cbf``) and evaluated beside the baselines
(``robo eval online-cbf --policy``).
"""

import argparse

from robo.registry import Stage, Task

TRAIN_DESCRIPTION = """\
Train the GNN gain tuner with PPO, every agent of every episode one sample (parameter sharing): the
action is the agent's HOCBF gains (k1, k2), Gaussian in a pre-squash space, mapped by a scaled sigmoid
into [train.k_min, train.k_max] (behind filter.shared_k2, 4 by default, the filter replaces every k2 by
that one, so the k2 output is unused: see robo eval online-cbf --help); the reward is progress, time,
success, deadlock, slack and collisions (train.reward; train.reward.team=1 gives every agent its
episode's mean, so an agent that gives way does not pay for it). Episode e plays
train.scenarios[e % len]. A per-neighbour tuner (train.per_neighbour=true) can start from
demonstrations: with train.imitate=[LOW, HIGH] the run first rolls the yield rule (robo eval
online-cbf --gains-yield LOW,HIGH) and fits the actor to its gains and the critic to its returns, once,
then PPO goes on from there (imitation.json in the run folder).
Writes into the run folder: checkpoint.pt (--resume continues it), TensorBoard scalars,
learning_curve.csv/.png, metrics.json, policy.pt and its ONNX export policy.onnx + policy.json (the
card: max neighbours, gain range, the filter it was trained behind).

examples:
  robo train online-cbf --config configs/online_cbf_quick.yaml --out runs/online_cbf/quick
  robo train online-cbf --config configs/online_cbf.yaml --out runs/online_cbf/a --resume
  robo train online-cbf --config configs/online_cbf_quick.yaml --set tilt=0 --set train.per_neighbour=true \\
      --set "train.imitate=[0.35, 3.9]" --set train.reward.team=1 --set train.reward.deadlock=50 \\
      --set train.runner.init_std=0.3 --set train.envs=32 --set train.runner.iterations=200
"""

EVAL_DESCRIPTION = """\
Run seeded episodes of one scenario (swap, crossing, corridor, obstacles) and measure success (every
agent at its goal, no collision), collisions (contact onsets), the minimum distance between two
agents' centres, the deadlock rate, the makespan of successful episodes and the QP fault rate (a
fault needs slack: the agent brakes). Every controller starts from the nominal PD-to-goal command,
whose goal error is turned clockwise by the config's tilt (a right-hand rule: agents meeting head-on
keep right; --set tilt=0 for the plain PD). The controller is that nominal one without a filter
(--nominal), the filter with fixed gains (--gains K1,K2), the filter with the gains an exhaustive
grid search picks on separate episodes (--grid; the grid and its episodes are in the config), the
filter with the gains a trained tuner sets online (--policy policy.onnx through ONNX Runtime, or
policy.pt through torch), with statistics of the gains it chose, a fixed per-neighbour schedule
(--gains-by-side LEFT,RIGHT: by the side of the agent's way to its goal a neighbour is on), the yield
rule (--gains-yield LOW,HIGH: an agent heading +x holds neighbours coming toward -x to LOW, every other
row to HIGH, so one direction gives way; what train.imitate starts PPO from), or a
stress test of the shared pair condition (--gains-mixed LO,HI: each agent holds one of two gains in
range, so pairs disagree, as a corrupt tuner's could). Under every controller that sets gains per
agent or per neighbour (a tuner, --gains-by-side, --gains-yield, --gains-mixed) each agent's k2 is
the config's filter.shared_k2, 4 by default: gains that disagree within a pair then keep its condition valid
(--set filter.shared_k2=null gives each agent its own k2; a tuner is run only behind the k2 it was
trained with). Fixed gains are one pair for all agents and keep their k2.
Writes metrics.json and trajectories.png (the first episode) into --out.

examples:
  robo eval online-cbf --scenario swap --agents 8 --episodes 100 --nominal
  robo eval online-cbf --scenario corridor --agents 8 --gains 2,2
  robo eval online-cbf --config configs/online_cbf.yaml --scenario crossing --grid
  robo eval online-cbf --scenario corridor --policy runs/online_cbf/quick/policy.onnx
  robo eval online-cbf --scenario corridor --set tilt=0 --gains-yield 0.35,3.9
  robo eval online-cbf --scenario corridor --agents 16 --gains-mixed 0.25,4 --set filter.shared_k2=null
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
    which.add_argument("--gains-mixed", metavar="LO,HI",
                       help="stress test: each agent holds gains LO or HI (seeded), pairs that disagree")
    which.add_argument("--gains-by-side", metavar="LEFT,RIGHT",
                       help="fixed per-neighbour gains: LEFT for neighbours left of the way to the goal")
    which.add_argument("--gains-yield", metavar="LOW,HIGH",
                       help="the yield rule: agents heading +x hold neighbours moving -x to LOW, else HIGH")
    which.add_argument("--policy", metavar="P", help="the filter with a trained tuner's gains (.onnx or .pt)")


TASKS = [
    Task("online-cbf", "decentralised CBF filter for multi-agent navigation, gains tuned online by a GNN",
         train=Stage("robo.tasks.online_cbf.train:train", "robo.tasks.online_cbf.config:OnlineCbfConfig",
                     TRAIN_DESCRIPTION, out="runs/online_cbf"),
         evaluate=Stage("robo.tasks.online_cbf.evaluate:evaluate",
                        "robo.tasks.online_cbf.config:OnlineCbfConfig", EVAL_DESCRIPTION, eval_arguments,
                        out="runs/online_cbf/eval", resumable=False,
                        summary="success, collisions, deadlocks and makespan of a scenario: no filter, fixed,"
                                " grid-searched or GNN-tuned gains")),
]

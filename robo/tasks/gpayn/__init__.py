"""G-PAYN ("A Grasp Pose is All You Need", Ceola et al., IROS 2023): SAC whose replay buffer starts full
of a scripted demonstrator's grasps, against SAC from scratch and OERLD, on robosuite's Inspire hand
(``sim.hand``). Nothing here imports torch: the stages are imported only when they run."""

import argparse

from robo.registry import Stage, Task

TRAIN_DESCRIPTION = """\
Train G-PAYN (SAC on a replay buffer that starts full of scripted grasps), SAC from scratch or OERLD
(a separate demonstration buffer and Q-filtered behaviour cloning) on one object of sim.hand. Writes
into the run folder: demonstrations.pt (generated first, reused on --resume), checkpoint.pt,
tensorboard/, learning_curve.csv/.png (success rate of deterministic episodes), metrics.json,
policy_<member>.pt and the best member as policy.pt + policy.onnx + policy.json (the card).

examples:
  robo train gpayn --config configs/gpayn_quick.yaml --object box_tall --algo gpayn --out runs/gpayn/a
  robo train gpayn --config configs/gpayn_quick.yaml --out runs/gpayn/a --resume
  robo train gpayn --object bottle --algo oerld --set members=2      # the paper's settings, 2 seeds
"""

EVAL_DESCRIPTION = """\
Success rate, median time to lift and drop rate of a grasping policy (policy.onnx through ONNX Runtime
or policy.pt through torch) on seeded episodes, beside the scripted demonstrator on the same episodes;
a PNG strip of the policy's first episode; with --runs, one learning-curve plot of every run given
(e.g. G-PAYN, SAC and OERLD on one object). Writes eval_<name>_<onnx or pt>/ next to the policy.

examples:
  robo eval gpayn --policy runs/gpayn/a/policy.onnx
  robo eval gpayn --policy runs/gpayn/a/policy.onnx --runs runs/gpayn/a runs/gpayn/b runs/gpayn/c
"""


def train_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--object", default=None, help="object to grasp (config key env.object)")
    p.add_argument("--algo", default=None, help="gpayn, sac or oerld (config key algo)")


def eval_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--policy", required=True, metavar="P", help="policy.onnx (with its card) or policy.pt")
    p.add_argument("--object", default=None, help="object (default: the one the policy was trained on)")
    p.add_argument("--runs", nargs="*", default=[], metavar="RUN",
                   help="training run folders whose learning curves go into one plot")
    p.add_argument("--no-strip", action="store_true", help="skip the PNG strip (needs OpenGL)")


TASKS = [
    Task("gpayn", "G-PAYN, SAC and OERLD grasping with the Inspire hand (sim.hand)",
         train=Stage("robo.tasks.gpayn.train:train", "robo.tasks.gpayn.config:GPAYNTrainConfig",
                     TRAIN_DESCRIPTION, train_arguments, out="runs/gpayn"),
         evaluate=Stage("robo.tasks.gpayn.evaluate:evaluate", "robo.tasks.gpayn.evaluate:GPAYNEvalConfig",
                        EVAL_DESCRIPTION, eval_arguments, resumable=False,
                        summary="success, time to lift and drop rate of a grasping policy; runs' curves")),
]

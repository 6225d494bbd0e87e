"""Pendulum swing-up with PPO: the smallest task, and the template a new method copies.

A task is this package (``TASKS`` below, a train stage in ``train``, an eval stage in ``evaluate``)
plus one line in ``robo.registry.TASK_PACKAGES``. Nothing here imports torch: the stages are
named as ``"module:function"`` and imported only when they run.
"""

import argparse

from robo.registry import Stage, Task

TRAIN_DESCRIPTION = """\
Train PPO on the batched pendulum swing-up (sim.pendulum, Gymnasium's Pendulum-v1 dynamics and
reward, 200-step episodes). Writes into the run folder: checkpoint.pt (the whole training state,
every runner.checkpoint_interval iterations), learning_curve.csv/.png, metrics.json, policy.pt (the
deterministic actor, observation normalisation included) and its ONNX export policy.onnx + policy.json.

examples:
  robo train pendulum --config configs/pendulum.yaml --out runs/pendulum/a     # about 30 s on 2 cores
  robo train pendulum --out runs/pendulum/a --set runner.iterations=120 --resume
"""

EVAL_DESCRIPTION = """\
Mean return of a pendulum policy (policy.onnx through ONNX Runtime, or policy.pt through torch) over
the same seeded episodes, beside a uniformly random policy on those episodes. Writes
eval_<name>_<onnx or pt>/metrics.json next to the policy (or into --out).

examples:
  robo eval pendulum --policy runs/pendulum/a/policy.onnx
  robo eval pendulum --policy runs/pendulum/a/policy.pt --set episodes=500
"""


def eval_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--policy", required=True, metavar="P", help="policy.onnx (with its card) or policy.pt")


TASKS = [
    Task("pendulum", "PPO on the batched pendulum swing-up (the smallest task; a template)",
         train=Stage("robo.tasks.pendulum.train:train", "robo.tasks.pendulum.train:PendulumTrainConfig",
                     TRAIN_DESCRIPTION, out="runs/pendulum"),
         evaluate=Stage("robo.tasks.pendulum.evaluate:evaluate",
                        "robo.tasks.pendulum.evaluate:PendulumEvalConfig", EVAL_DESCRIPTION, eval_arguments,
                        resumable=False, summary="mean return of a pendulum policy over seeded episodes")),
]

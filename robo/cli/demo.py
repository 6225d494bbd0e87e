"""``robo demo``: the end-to-end demo on the embedded default (policy -> ONNX -> safe flight -> MCU)."""

from __future__ import annotations

import argparse

ORDER = 5

DESCRIPTION = """\
The whole stack in one command, on this CPU, in well under 10 minutes (about 10 s without --train):

  1. policy          the committed RAPTOR student (robo/policies/raptor_default/student.pt),
                     or with --train the quick RAPTOR config trained first (about 13 min on 2 cores)
  2. export          ONNX + policy card; torch vs ONNX Runtime over 500 closed-loop steps
  3. fly             the exported model flies a figure-eight in the simulator behind the CBF safety
                     filter, around an obstacle on the path: tracking RMSE, clearance, interventions
  4. codegen         static C99 from the ONNX model (no heap, no libm)
  5. firmware build  arm-none-eabi-gcc for the Cortex-M4F: the policy's flash and RAM
  6. firmware run    QEMU: self-test, outputs vs ONNX Runtime, instructions per inference

Prints one summary table and writes OUT/summary.json, OUT/policy.onnx (+ policy.json),
OUT/flight/ (flight.png, trajectory.csv, metrics.json) and OUT/firmware/ (C sources, build/).
A failing stage ends the demo with one line naming the stage and exit status 1.

examples:
  robo demo                                          committed student, results in runs/demo
  robo demo --train                                  train configs/raptor_quick.yaml first (resumes)
  robo demo --train --train-set teachers.threads=1 --train-set student.threads=1
  robo demo --policy runs/raptor/a/student/student_best.pt --preset fs-base
  robo demo --duration 5 --no-firmware --out /tmp/demo   no ARM toolchain on this machine
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="end-to-end demo: policy -> ONNX -> safe flight -> Cortex-M4F (QEMU)",
                       description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-o", "--out", default="runs/demo", help="output folder (default runs/demo)")
    p.add_argument("--train", action="store_true",
                   help="train the RAPTOR pipeline first (into OUT/train, resumed when run again) and "
                   "use its student")
    p.add_argument("--train-config", default=None, metavar="YAML",
                   help="the pipeline config for --train (default configs/raptor_quick.yaml)")
    p.add_argument("--train-set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a key of the training config, e.g. student.epochs=50 (repeatable)")
    p.add_argument("--policy", default="", metavar="CHECKPOINT",
                   help="a student checkpoint (.pt, robo.nets.policy format) instead of the committed one; "
                   "the demo exports it (an exported .onnx flies with `robo fly --policy`)")
    p.add_argument("--preset", default="x500", help="simulated vehicle (default x500)")
    p.add_argument("--duration", type=float, default=10.0, help="seconds of figure-eight (default 10)")
    p.add_argument("--obstacle", action="append", default=[], metavar="X,Y,Z,R",
                   help="sphere obstacle in metres, repeatable (default 1,0,1,0.15: on the path)")
    p.add_argument("--board", default="qemu-mps2-an386", choices=["qemu-mps2-an386", "stm32f405"],
                   help="firmware target; both run in QEMU (default qemu-mps2-an386)")
    p.add_argument("--no-firmware", action="store_true",
                   help="stop after the flight (machines without the ARM toolchain and QEMU)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import torch
    from tqdm import tqdm

    from robo.tasks.demo import DemoConfig, run_demo, table
    from robo.tasks.fly import parse_obstacle
    from sim.quadrotor import preset

    torch.set_num_threads(1)  # the demo's torch work is tiny; leave the other core to QEMU and the OS
    cfg = DemoConfig(out=args.out, policy=args.policy, train=args.train, train_overrides=list(args.train_set),
                     preset=args.preset, duration=args.duration, firmware=not args.no_firmware,
                     board=args.board)
    if args.train_config:
        cfg.train_config = args.train_config
    if args.obstacle:
        cfg.obstacles = [parse_obstacle(o) for o in args.obstacle]
    preset(cfg.preset)  # an unknown preset fails before anything runs
    def bar(desc: str, total: int, initial: int = 0) -> tqdm:
        return tqdm(total=total, initial=initial, desc=f"      {desc}", unit_scale=True, leave=False)

    summary = run_demo(cfg, log=tqdm.write, bar=bar)
    print()
    print(table(summary))
    print(f"\nwrote {cfg.out}/summary.json, policy.onnx, flight/flight.png, "
          + ("firmware/" if cfg.firmware else "(no firmware)"))
    return 0

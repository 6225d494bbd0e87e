"""``robo firmware build | run | flash``: the generated C on an emulated or real Cortex-M4F."""

from __future__ import annotations

import argparse
import json
import math

from robo.cli._parsers import add_group, add_leaf

ORDER = 62

DESCRIPTION = """\
Cross-compile a generated module with arm-none-eabi-gcc, run it in QEMU, or flash a real board.

  build  compiles MODULE (a `robo codegen c` output folder) with the board support in firmware/
         into MODULE/build/<board>/; reports the policy's own flash and RAM (no libc/start-up)
  run    boots the build in QEMU (semihosting, -icount): self-test, the seeded observation
         sequence compared with ONNX Runtime, instructions per step
  flash  writes the build to a real STM32F405 with pyocd, openocd or dfu-util

examples:
  robo firmware build out/policy_c --board qemu-mps2-an386
  robo firmware run out/policy_c
  robo firmware build out/policy_c --board stm32f405
  robo firmware flash out/policy_c --board stm32f405 --probe openocd --dry-run
"""


def register(sub: argparse._SubParsersAction) -> None:
    cmd = add_group(sub, "firmware", "build, run (QEMU) or flash generated C", "action", "actions",
                    DESCRIPTION)
    from robo.codegen.firmware import BOARDS, PROBES

    b = add_leaf(cmd, "build", "cross-compile a module for a board", DESCRIPTION)
    b.add_argument("module", help="folder written by `robo codegen c` (with module.json)")
    b.add_argument("--board", choices=list(BOARDS), default="qemu-mps2-an386")
    b.add_argument("--steps", type=int, default=500, help="observation steps the harness runs and times")
    b.add_argument("--seed", type=int, default=0, help="seed of the observation sequence")
    b.add_argument("--opt", default="-O2",
                   help="compiler optimisation flags, written --opt=-O3 (default -O2); only -flags pass")
    b.set_defaults(func=_build)

    r = add_leaf(cmd, "run", "boot the build in QEMU and check it against ONNX Runtime", DESCRIPTION)
    r.add_argument("module")
    r.add_argument("--board", choices=list(BOARDS), default=None, help="default: the latest build")
    r.add_argument("--tol", type=float, default=1e-5, help="max abs error vs ONNX Runtime")
    r.add_argument("--timeout", type=float, default=120.0, help="seconds before QEMU is stopped")
    r.add_argument("--json", help="also write the results here")
    r.set_defaults(func=_run)

    f = add_leaf(cmd, "flash", "flash a real board", DESCRIPTION)
    f.add_argument("module")
    f.add_argument("--board", choices=[n for n in BOARDS if not n.startswith("qemu")], default="stm32f405")
    f.add_argument("--probe", choices=list(PROBES), required=True)
    f.add_argument("--dry-run", action="store_true", help="print the exact command, touch nothing")
    f.set_defaults(func=_flash)


def _print_footprint(fp: dict | None) -> None:
    if not fp:
        return
    s = fp["sections"]
    print(
        f"  policy flash {fp['flash_bytes']} B (code {s['text']} + const {s['rodata']} + data {s['data']}), "
        f"RAM {fp['ram_bytes']} B (static {s['data'] + s['bss']} + state {fp['state_bytes']}), "
        f"largest stack frame {fp['max_stack_frame_bytes']} B"
    )
    print(
        f"  heap: {'USES ' + ', '.join(fp['heap_symbols']) if fp['uses_heap'] else 'none'}; "
        f"external symbols: {', '.join(fp['undefined_symbols']) or 'none'}"
    )


def _build(args: argparse.Namespace) -> int:
    from robo.codegen.firmware import build

    info = build(args.module, args.board, steps=args.steps, seed=args.seed, opt=args.opt)
    img = info["image"]
    print(f"built {info['elf']} for {info['board']}")
    print(
        f"  whole image (with libc, start-up, harness): flash {img['text'] + img['rodata'] + img['data']} B, "
        f"RAM {img['data'] + img['bss']} B"
    )
    _print_footprint(info["footprint"])
    return 0


def _run(args: argparse.Namespace) -> int:
    from robo.codegen.firmware import run_qemu
    from robo.codegen.verify import check_policy_run

    # checked before QEMU boots: a NaN limit would pass every comparison, a bad timeout waits forever
    if not (math.isfinite(args.tol) and args.tol >= 0):
        raise ValueError(f"--tol must be a finite number >= 0, got {args.tol:g}")
    if not (math.isfinite(args.timeout) and args.timeout > 0):
        raise ValueError(f"--timeout must be a finite number of seconds > 0, got {args.timeout:g}")
    result = run_qemu(args.module, args.board, timeout=args.timeout)
    info = result["build"]
    if info["kind"] == "app":
        print(result["output"], end="")
        print(f"exit status {result['exit_code']}")
        if result["exit_code"] != 0:
            raise RuntimeError(f"the firmware exited with status {result['exit_code']}")
        return 0
    check_policy_run(args.module, result, args.tol)
    print(f"QEMU {info['board']}: self-test passed (max abs error {result['selftest_max_abs_error']:.3g})")
    print(
        f"  {info['steps']} steps vs ONNX Runtime: "
        f"max abs error {result['max_abs_error_vs_onnxruntime']:.3g} "
        f"(limit {args.tol:g}), non-finite handling matches"
    )
    nominal = result["ticks_per_instruction_nominal"]
    print(
        f"  {result['instructions_per_step']:.0f} instructions per step (SysTick under -icount; "
        f"calibration {result['ticks_per_instruction']:.4f} ticks/instruction, nominal {nominal:.4f})"
    )
    _print_footprint(info["footprint"])
    if args.json:
        from robo.bench.common import write_json

        keep = {k: v for k, v in result.items() if k not in ("actions", "status", "output")}
        write_json(json.loads(json.dumps(keep, default=str)), args.json)
    return 0


def _flash(args: argparse.Namespace) -> int:
    import shlex

    from robo.codegen.firmware import flash

    cmd = flash(args.module, args.board, args.probe, dry_run=args.dry_run)
    print(("would run: " if args.dry_run else "flashed with: ") + shlex.join(cmd))
    return 0

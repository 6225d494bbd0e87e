"""``robo sim <vehicle>``: fly a simulated vehicle with the baseline controller and record it."""

from __future__ import annotations

import argparse
from pathlib import Path

from tqdm import tqdm

from robo.cli._parsers import add_config_options, add_group, add_leaf, with_shortcuts
from robo.config import dump_yaml, load_config
from robo.files import check_output_folder, write_json

ORDER = 10

EXAMPLES = """\
examples:
  robo sim quadrotor --preset crazyflie                      10 s figure-eight, plot + CSV
  robo sim quadrotor --preset x500 --set env.reference=hold --set duration=5
  robo sim quadrotor --config configs/sim_quadrotor.yaml --set env.figure8_period=5.5
"""


def register(sub: argparse._SubParsersAction) -> None:
    vehicles = add_group(sub, "sim", "fly a simulated vehicle with the baseline controller", "vehicle",
                         "vehicles")
    quad = add_leaf(vehicles, "quadrotor", "a quadrotor preset with the geometric baseline controller",
                    "Fly a quadrotor preset (crazyflie, x500, arpl, fs-base, flightmare) with the geometric "
                    "baseline controller on a reference (figure8, hold, langevin); writes trajectory.csv, "
                    "trajectory.png, metrics.json and the resolved config.yaml.", epilog=EXAMPLES)
    add_config_options(quad, "YAML config (default: the built-in defaults, as in configs/sim_quadrotor.yaml)",
                       "duration=5")
    quad.add_argument("--preset", help="vehicle preset (shortcut for --set preset=NAME)")
    quad.add_argument("--reference", choices=["figure8", "hold", "langevin"],
                      help="reference (shortcut for --set env.reference=NAME)")
    quad.add_argument("-o", "--out", default="runs/sim", help="output folder (default runs/sim)")
    quad.set_defaults(func=run_quadrotor)


def run_quadrotor(args: argparse.Namespace) -> int:
    from robo.tasks.baseline_flight import BaselineFlightConfig, fly, plot, write_csv

    overrides = with_shortcuts(args, preset="preset", reference="env.reference")
    cfg = load_config(BaselineFlightConfig, args.config, overrides)
    from sim.quadrotor import preset

    preset(cfg.preset)  # an unknown preset fails before anything is written
    check_output_folder(args.out, "-o")
    steps = round(cfg.duration / cfg.env.dt)
    with tqdm(total=steps, desc=f"flying {cfg.preset}", unit="step") as bar:
        result = fly(cfg, bar.update)
    out = Path(args.out) / f"quadrotor_{cfg.preset}_{cfg.env.reference}"
    out.mkdir(parents=True, exist_ok=True)
    dump_yaml(cfg, out / "config.yaml")
    write_csv(result["rows"], out / "trajectory.csv")
    plot(result["rows"], f"{cfg.preset}, baseline controller, {cfg.env.reference}", out / "trajectory.png")
    metrics = result["metrics"]
    write_json(out / "metrics.json", metrics, indent=2)
    for key, value in metrics.items():
        print(f"  {key:28s} {value:.4f}" if isinstance(value, float) else f"  {key:28s} {value}")
    print(f"wrote {out}/trajectory.png, trajectory.csv, metrics.json, config.yaml")
    return 0

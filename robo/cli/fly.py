"""``robo fly``: fly an exported policy (ONNX + card) behind the safety filter in the simulator, no ROS."""

from __future__ import annotations

import argparse

from tqdm import tqdm

from robo.cli._parsers import add_config_options, with_shortcuts
from robo.config import dump_yaml, load_config
from robo.files import check_output_folder

ORDER = 40

EXAMPLES = """\
examples:
  robo fly                                                   default policy, x500, 10 s figure-eight
  robo fly --policy runs/raptor/a/policy.onnx --preset x500 --trajectory figure8 --obstacle 1,0,1,0.15
  robo fly --no-filter --trajectory hold --set duration=5
  robo fly --config my_fly.yaml --set tracker.kp=5 --set safety.alpha1=3
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "fly", help="fly an exported policy with the safety filter in the simulator (no ROS)",
        description="Run the deployment runtime (ONNX Runtime policy, card checked, recurrent state; "
        "setpoint -> CBF safety filter -> policy -> motors) in-process against the simulator. Writes "
        "flight.png, trajectory.csv, metrics.json and config.yaml.",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--policy", help="policy.onnx with its policy.json beside it "
                   "(default: the committed RAPTOR student, robo/policies/raptor_default)")
    p.add_argument("--preset", help="simulated vehicle: crazyflie, x500, arpl, fs-base, flightmare "
                   "(default x500)")
    p.add_argument("--trajectory", choices=["figure8", "hold", "waypoints"], help="setpoint trajectory")
    p.add_argument("--obstacle", action="append", default=[], metavar="X,Y,Z,R",
                   help="sphere obstacle in metres (repeatable); the filter keeps the vehicle out of it")
    p.add_argument("--no-filter", action="store_true", help="fly without the safety filter")
    add_config_options(p, "YAML config (keys of robo.tasks.fly.FlyConfig)", "duration=5")
    p.add_argument("-o", "--out", default="runs/fly", help="output folder (default runs/fly)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from robo.tasks.fly import FlyConfig, build_controller, fly, parse_obstacle, write_flight
    from sim.quadrotor import preset

    overrides = with_shortcuts(args, policy="policy", preset="preset", trajectory="trajectory.kind")
    if args.no_filter:
        overrides.append("filter=false")
    cfg = load_config(FlyConfig, args.config, overrides)
    cfg.obstacles = [*cfg.obstacles, *(parse_obstacle(o) for o in args.obstacle)]
    FlyConfig.__post_init__(cfg)
    preset(cfg.preset)  # an unknown preset fails before anything runs
    check_output_folder(args.out, "-o")
    controller = build_controller(cfg)  # a policy that cannot run fails before anything is shown
    steps = round(cfg.duration * controller.policy.rate_hz)
    with tqdm(total=steps, desc=f"flying {cfg.preset}", unit="step") as bar:
        result = fly(cfg, bar.update, controller)
    out = write_flight(result, args.out)
    dump_yaml(cfg, out / "config.yaml")
    m = result["metrics"]
    for key in ("completed", "tracking_rmse_m", "max_tracking_error_m", "min_obstacle_clearance_m",
                "collision", "filter_stats", "loop_latency_us"):
        print(f"  {key:26s} {m[key]}")
    print(f"wrote {out}/flight.png, trajectory.csv, metrics.json, config.yaml")
    if not m["completed"]:
        raise RuntimeError(f"the flight failed: {m['crash']} (see {out}/flight.png)")
    if m["collision"]:
        raise RuntimeError(f"the flight hit an obstacle (clearance {m['min_obstacle_clearance_m']:.3f} m; "
                           f"see {out}/flight.png)")
    return 0

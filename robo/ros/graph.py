"""``graph``: several robo nodes in one process, spun by one SingleThreadedExecutor.

    graph safety_filter policy --ros-args --params-file configs/ros_quadrotor.yaml

Messages between nodes of one process still go through the middleware, but no process boundary and
no second Python interpreter competes for the CPU: two Python processes in series drop odometry
messages at 500 Hz on two busy cores, one process far fewer (``robo bench ros`` measures both). Each
node keeps its name, so the params file's ``/**/<node>`` sections apply unchanged; a remapping for
one node only is written ``-r <node>:<from>:=<to>``.
"""

from __future__ import annotations

import sys

from rclpy.utilities import remove_ros_args

from robo.ros.common import main_for

NODES = ("quadrotor_sim", "trajectory", "safety_filter", "policy")


def factories(names: list[str]) -> list:
    """The node classes for ``names`` (a subset of NODES, in any order; the order they start in)."""
    from robo.ros.filter_node import SafetyFilterNode
    from robo.ros.policy_node import PolicyNode
    from robo.ros.sim_node import QuadrotorSim
    from robo.ros.trajectory_node import TrajectoryNode

    classes = {"quadrotor_sim": QuadrotorSim, "trajectory": TrajectoryNode, "safety_filter": SafetyFilterNode,
               "policy": PolicyNode}
    unknown = [n for n in names if n not in classes]
    if unknown or not names or len(set(names)) != len(names):
        raise ValueError(f"graph: expected distinct node names from {', '.join(NODES)}, got {names}")
    return [classes[n] for n in names]


def main(args: list[str] | None = None) -> int:
    argv = sys.argv if args is None else args
    try:
        # launch passes the names as one argument or several
        classes = factories([n for a in remove_ros_args(argv)[1:] for n in a.split()])
    except ValueError as exc:
        print(f"graph: error: {exc}", file=sys.stderr)
        return 1
    return main_for(classes, argv)


if __name__ == "__main__":
    raise SystemExit(main())

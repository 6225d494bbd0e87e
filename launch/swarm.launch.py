"""ros2 launch robo swarm.launch.py agents:=N: a swarm of N agents, each with its own CBF safety layer.

    ros2 launch robo swarm.launch.py                       # 4 agents swapping places on a circle
    ros2 launch robo swarm.launch.py agents:=8 radius:=3.0
    ros2 launch robo swarm.launch.py policy:=/path/to/tuner/policy.onnx

Agent i lives in namespace /agent<i>: its vehicle ``swarm_sim`` (a double integrator behind a
position/velocity tracker, publishing ``odom``, taking ``setpoint/pose`` + ``setpoint/twist``) and its
``swarm_filter`` (the GNN gain tuner + its own HOCBF-QP over the neighbours it hears within the
sensing radius; neighbours are found on the graph as /agent*/odom). By default both run in one
process per agent (``swarm_agent``); separate:=true starts them as two processes.

Scenario ``swap``: the agents start on a circle of ``radius`` m at altitude ``altitude`` m and each goes
to the antipodal point, so all meet in the middle. The angles carry a small fixed irregularity, as
the training scenarios' jitter, so the meeting is not exactly symmetric.
"""

import math
import os
import runpy

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

JITTER = 0.05  # m along the circle, the training scenarios' jitter


def swap_positions(agents: int, radius: float, altitude: float) -> list[tuple[list[float], list[float]]]:
    """(start, goal) of each agent of the swap scenario."""
    out = []
    for i in range(agents):
        angle = 2 * math.pi * i / agents + JITTER * math.sin(2.0 + 3.0 * i) / radius
        start = [radius * math.cos(angle), radius * math.sin(angle), altitude]
        out.append((start, [-start[0], -start[1], altitude]))
    return out


# Every agent ends the launch when it exits (a swarm with an agent gone is not safe), non-zero when
# it failed: the quadrotor launch file's handler.
end_launch = runpy.run_path(os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                         "quadrotor.launch.py"))["end_launch"]


def agent_nodes(context) -> list:
    agents = int(LaunchConfiguration("agents").perform(context))
    if agents < 2:
        raise RuntimeError(f"agents:={agents}: a swarm needs at least 2 agents")
    scenario = LaunchConfiguration("scenario").perform(context)
    if scenario != "swap":
        raise RuntimeError(f"scenario:={scenario}: only 'swap' is defined")
    radius = float(LaunchConfiguration("radius").perform(context))
    altitude = float(LaunchConfiguration("altitude").perform(context))
    params_file = LaunchConfiguration("params_file").perform(context)
    policy = LaunchConfiguration("policy").perform(context)
    separate = LaunchConfiguration("separate").perform(context) == "true"
    nodes = []
    for i, (start, goal) in enumerate(swap_positions(agents, radius, altitude)):
        ns = f"agent{i}"
        filter_params = {"goal": goal, "agents": agents, "policy": policy}
        sim_params = {"initial_position": start}
        if separate:
            nodes += [Node(package="robo", executable="swarm_sim", name="swarm_sim", namespace=ns,
                           parameters=[params_file, sim_params], on_exit=end_launch, output="screen"),
                      Node(package="robo", executable="swarm_filter", name="swarm_filter", namespace=ns,
                           parameters=[params_file, filter_params], on_exit=end_launch, output="screen")]
        else:
            # No name: it would rename both nodes of the process.
            nodes.append(Node(package="robo", executable="swarm_agent", namespace=ns,
                              parameters=[params_file, {**filter_params, **sim_params}],
                              on_exit=end_launch, output="screen"))
    return nodes


def generate_launch_description() -> LaunchDescription:
    share = get_package_share_directory("robo")
    args = [
        DeclareLaunchArgument("agents", default_value="4", description="number of agents (>= 2)"),
        DeclareLaunchArgument("scenario", default_value="swap", choices=["swap"],
                              description="swap: a circle, every agent to the antipodal point"),
        DeclareLaunchArgument("radius", default_value="2.0", description="m, the circle's radius"),
        DeclareLaunchArgument("altitude", default_value="1.0", description="m, every agent's altitude"),
        DeclareLaunchArgument("policy", default_value="",
                              description="the gain tuner policy.onnx with its card; '' = the committed "
                              "robo/policies/online_cbf_gnn"),
        DeclareLaunchArgument("params_file", default_value=os.path.join(share, "config", "ros_swarm.yaml"),
                              description="ROS parameters of the swarm nodes (configs/ros_swarm.yaml)"),
        DeclareLaunchArgument("separate", default_value="false", choices=["true", "false"],
                              description="vehicle and filter of each agent as two processes"),
    ]
    return LaunchDescription([*args, OpaqueFunction(function=agent_nodes)])

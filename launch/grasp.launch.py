"""ros2 launch robo grasp.launch.py: a policy grasping an object with the simulated hand.

    ros2 launch robo grasp.launch.py object:=box_tall     # the committed G-PAYN policy, robo/policies
    ros2 launch robo grasp.launch.py object:=can policy:=/path/to/policy.onnx
    ros2 launch robo grasp.launch.py object:=box_tall policy:=... use_sim_time:=true   # lockstep

Nodes (each a process): hand_sim (the MuJoCo hand scene of sim.hand with the object) and policy (the
one policy node; the card's task, gpayn, makes it read the hand's joint states, wrist and object poses
and touch flags, and publish hand/command). hand_sim builds the scene the policy was trained in from its
card (start pose, grasp, object placement); object:= and start:= override it. An unknown object stops
hand_sim with the list of objects, and the launch exits non-zero; so does a policy that cannot start.
With use_sim_time:=true both nodes run on the simulator's /clock and, by default, in lockstep: the
simulator steps only when the command answering its last state has arrived, so a slow machine runs
slower, never differently.
"""

import os
import runpy

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue

# The quadrotor graph's exit handling, from the launch file beside this one: any node that exits ends
# the launch, and one that failed makes `ros2 launch` exit non-zero.
# The committed G-PAYN policy (robo/policies/gpayn_box_tall), installed into the package's share folder.
DEFAULT_POLICY = ("policies", "gpayn_box_tall", "policy.onnx")
end_launch = runpy.run_path(os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                         "quadrotor.launch.py"))["end_launch"]


def generate_launch_description() -> LaunchDescription:
    share = get_package_share_directory("robo")
    use_sim_time = LaunchConfiguration("use_sim_time")
    namespace = LaunchConfiguration("namespace")
    params_file = LaunchConfiguration("params_file")
    args = [
        DeclareLaunchArgument("object", default_value="",
                              description="the object on the table: box_tall, box_wide, cylinder_thin, "
                              "cylinder_wide, can, bottle, lemon (hand_sim checks it); '' = the one the "
                              "policy was trained on"),
        DeclareLaunchArgument("start", default_value="", description="where the hand starts: home or "
                              "pre_grasp; '' = as the policy was trained"),
        DeclareLaunchArgument("policy", default_value=os.path.join(share, *DEFAULT_POLICY),
                              description="a hand policy's policy.onnx (card task gpayn) with its "
                              "policy.json beside it; default: the committed G-PAYN policy"),
        DeclareLaunchArgument("seed", default_value="0", description="the object's random start pose"),
        DeclareLaunchArgument("namespace", default_value="", description="namespace for both nodes"),
        DeclareLaunchArgument("params_file", default_value=os.path.join(share, "config", "ros_grasp.yaml"),
                              description="ROS parameters of the nodes (configs/ros_grasp.yaml)"),
        DeclareLaunchArgument("use_sim_time", default_value="false", choices=["true", "false"],
                              description="both nodes on simulated time from /clock, which hand_sim "
                              "publishes"),
        DeclareLaunchArgument("lockstep", default_value=use_sim_time, choices=["true", "false"],
                              description="hand_sim steps when the command for its last state has arrived "
                              "(needs use_sim_time; default: use_sim_time)"),
    ]
    sim_time = {"use_sim_time": use_sim_time}
    as_str = {n: ParameterValue(LaunchConfiguration(n), value_type=str)
              for n in ("object", "start", "policy")}
    nodes = [
        Node(package="robo", executable="hand_sim", name="hand_sim", namespace=namespace,
             parameters=[params_file, {"object": as_str["object"], "start": as_str["start"],
                                       "policy": as_str["policy"],
                                       "seed": ParameterValue(LaunchConfiguration("seed"), value_type=int),
                                       "publish_clock": use_sim_time,
                                       "lockstep": LaunchConfiguration("lockstep")}],
             on_exit=end_launch, output="screen"),
        Node(package="robo", executable="policy", name="policy", namespace=namespace,
             parameters=[params_file, {"policy": as_str["policy"]}, sim_time],
             on_exit=end_launch, output="screen"),
    ]
    return LaunchDescription(args + nodes)

"""ros2 launch robo quadrotor.launch.py: a safety-filtered, policy-flown quadrotor.

    ros2 launch robo quadrotor.launch.py                              # simulator, filter on, x500
    ros2 launch robo quadrotor.launch.py filter:=false trajectory:=hold
    ros2 launch robo quadrotor.launch.py use_sim_time:=true   # every node on the simulator's /clock, lockstep
    ros2 launch robo quadrotor.launch.py vehicle:=real odom_topic:=/mavros/local_position/odom \
        motor_topic:=/my_bridge/motors namespace:=uav1 policy:=/path/to/policy.onnx

Nodes (each a process): quadrotor_sim (vehicle:=sim only), trajectory, safety_filter (filter:=true
only) and policy. With the filter the trajectory publishes reference/*, the filter answers each
odometry message with setpoint/*, and the policy runs on those; without it the trajectory publishes
setpoint/* and the policy runs on each odometry message. With use_sim_time:=true every node runs on
ROS time from /clock (timers, staleness, stamps), which quadrotor_sim then publishes (vehicle:=sim), or
an external simulator does (vehicle:=real against e.g. a software-in-the-loop autopilot). lockstep
(default: on with use_sim_time) makes quadrotor_sim step only when the command answering its last
odometry has arrived, so a slow machine runs slower, never differently.
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction, Shutdown
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration, PythonExpression
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue


def end_launch(event, context):
    """OnProcessExit of every node: without any one of them nothing flies safely, so the launch ends;
    a node that failed (bad parameter, model or card) makes ``ros2 launch`` exit non-zero."""
    reason = f"{event.action.name} exited with status {event.returncode}"
    actions = [Shutdown(reason=reason)]
    if event.returncode != 0 and not context.is_shutdown:
        # ros2 launch exits 1 only when an action raises; the nodes' own exit codes are not passed on.
        actions.append(OpaqueFunction(function=lambda context: _fail(reason)))
    return actions


def _fail(reason: str) -> None:
    raise RuntimeError(reason)


def generate_launch_description() -> LaunchDescription:
    share = get_package_share_directory("robo")
    (policy, preset, vehicle, use_filter, namespace, params_file, odom_topic, motor_topic, trajectory,
     use_sim_time, composed, lockstep) = (
        LaunchConfiguration(name) for name in ("policy", "preset", "vehicle", "filter", "namespace",
                                               "params_file", "odom_topic", "motor_topic", "trajectory",
                                               "use_sim_time", "composed", "lockstep"))

    filter_on = PythonExpression(["'", use_filter, "'.lower() in ('true', '1', 'yes')"])
    separate = PythonExpression(["'", composed, "' != 'true'"])
    is_sim = PythonExpression(["'", vehicle, "' == 'sim' and '", composed, "' != 'true'"])
    filter_separate = PythonExpression(["'", use_filter, "'.lower() in ('true', '1', 'yes') and '", composed,
                                        "' != 'true'"])
    # composed:=true: one process, one executor, the nodes of this graph named as arguments.
    graph_nodes = PythonExpression(["' '.join(n for n, on in (('quadrotor_sim', '", vehicle, "' == 'sim'), "
                                    "('trajectory', True), ('safety_filter', '", use_filter,
                                    "'.lower() in ('true', '1', 'yes')), ('policy', True)) if on)"])
    # With the filter, the trajectory's setpoints are the filter's reference.
    reference = PythonExpression(["'reference' if '", use_filter, "'.lower() in ('true', '1', 'yes') "
                                  "else 'setpoint'"])
    trigger = PythonExpression(["'setpoint' if '", use_filter, "'.lower() in ('true', '1', 'yes') "
                                "else 'odometry'"])

    args = [
        # '' lets the policy node resolve the committed student itself: the Python running `ros2 launch`
        # (e.g. /usr/bin/python3 of /opt/ros/jazzy) need not be able to import robo; the nodes do.
        DeclareLaunchArgument("policy", default_value="",
                              description="policy.onnx with its policy.json card beside it; '' = the "
                              "committed RAPTOR student (robo/policies/raptor_default in the robo package)"),
        DeclareLaunchArgument("preset", default_value="x500",
                              description="simulated vehicle: crazyflie, x500, arpl, fs-base, flightmare"),
        DeclareLaunchArgument("vehicle", default_value="sim", choices=["sim", "real"],
                              description="sim: start quadrotor_sim; real: use odom_topic/motor_topic of "
                              "your vehicle bridge"),
        DeclareLaunchArgument("filter", default_value="true", choices=["true", "false"],
                              description="CBF safety filter between the trajectory and the policy"),
        DeclareLaunchArgument("namespace", default_value="", description="namespace for every node"),
        DeclareLaunchArgument("params_file",
                              default_value=os.path.join(share, "config", "ros_quadrotor.yaml"),
                              description="ROS parameters of the nodes (configs/ros_quadrotor.yaml)"),
        DeclareLaunchArgument("odom_topic", default_value="odom",
                              description="nav_msgs/Odometry of the vehicle (twist in the body frame)"),
        DeclareLaunchArgument("motor_topic", default_value="motor_command",
                              description="std_msgs/Float32MultiArray: motor setpoints FR, BR, BL, FL "
                              "in [0, 1]"),
        DeclareLaunchArgument("trajectory", default_value="figure8", choices=["hold", "figure8", "waypoints"],
                              description="setpoints the trajectory node publishes"),
        DeclareLaunchArgument("use_sim_time", default_value="false", choices=["true", "false"],
                              description="every node on simulated time from /clock, which quadrotor_sim "
                              "publishes (real_time_factor in the params file sets its pace)"),
        DeclareLaunchArgument("lockstep", default_value=use_sim_time, choices=["true", "false"],
                              description="quadrotor_sim steps when the command for its last odometry has "
                              "arrived (needs use_sim_time; default: use_sim_time)"),
        DeclareLaunchArgument("composed", default_value="false", choices=["true", "false"],
                              description="every node in one process (the graph executable, one executor): "
                              "fewer dropped messages on a busy machine"),
    ]
    sim_time = {"use_sim_time": use_sim_time}
    nodes = [
        Node(package="robo", executable="quadrotor_sim", name="quadrotor_sim", namespace=namespace,
             parameters=[params_file, {"preset": ParameterValue(preset, value_type=str),
                                      "publish_clock": use_sim_time, "lockstep": lockstep}, sim_time],
             remappings=[("odom", odom_topic), ("motor_command", motor_topic)],
             condition=IfCondition(is_sim), on_exit=end_launch, output="screen"),
        Node(package="robo", executable="trajectory", name="trajectory", namespace=namespace,
             parameters=[params_file, {"kind": trajectory}, sim_time],
             remappings=[("setpoint/pose", [reference, "/pose"]), ("setpoint/twist", [reference, "/twist"]),
                         ("odom", odom_topic)],
             condition=IfCondition(separate), on_exit=end_launch, output="screen"),
        Node(package="robo", executable="safety_filter", name="safety_filter", namespace=namespace,
             parameters=[params_file, sim_time], remappings=[("odom", odom_topic)],
             condition=IfCondition(filter_separate), on_exit=end_launch, output="screen"),
        Node(package="robo", executable="policy", name="policy", namespace=namespace,
             parameters=[params_file, {"policy": ParameterValue(policy, value_type=str), "trigger": trigger,
                                      "use_filter_status": filter_on}, sim_time],
             remappings=[("odom", odom_topic), ("motor_command", motor_topic)],
             condition=IfCondition(separate), on_exit=end_launch, output="screen"),
        Node(package="robo", executable="graph", namespace=namespace, arguments=[graph_nodes],
             parameters=[params_file, {"preset": ParameterValue(preset, value_type=str),
                                      "publish_clock": use_sim_time, "lockstep": lockstep,
                                      "kind": trajectory,
                                      "policy": ParameterValue(policy, value_type=str), "trigger": trigger,
                                      "use_filter_status": filter_on}, sim_time],
             # A remapping for one node of the process: <node>:<from>:=<to>.
             remappings=[("odom", odom_topic), ("motor_command", motor_topic),
                         ("trajectory:setpoint/pose", [reference, "/pose"]),
                         ("trajectory:setpoint/twist", [reference, "/twist"])],
             condition=IfCondition(composed), on_exit=end_launch, output="screen"),
    ]
    return LaunchDescription(args + nodes)

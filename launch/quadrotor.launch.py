"""ros2 launch robo quadrotor.launch.py: a safety-filtered, policy-flown quadrotor.

    ros2 launch robo quadrotor.launch.py                              # simulator, filter on, x500
    ros2 launch robo quadrotor.launch.py filter:=false trajectory:=hold
    ros2 launch robo quadrotor.launch.py use_sim_time:=true   # every node on the simulator's /clock
    ros2 launch robo quadrotor.launch.py vehicle:=real odom_topic:=/mavros/local_position/odom \
        motor_topic:=/my_bridge/motors namespace:=uav1 policy:=/path/to/policy.onnx

Nodes (each a process): quadrotor_sim (vehicle:=sim only), trajectory, safety_filter (filter:=true
only) and policy. With the filter the trajectory publishes reference/*, the filter answers each
odometry message with setpoint/*, and the policy runs on those; without it the trajectory publishes
setpoint/* and the policy runs on each odometry message. With use_sim_time:=true every node runs on
ROS time from /clock (timers, staleness, stamps), which quadrotor_sim then publishes (vehicle:=sim), or
an external simulator does (vehicle:=real against e.g. a software-in-the-loop autopilot).
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, Shutdown
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration, PythonExpression
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue


def generate_launch_description() -> LaunchDescription:
    share = get_package_share_directory("robo")
    policy = LaunchConfiguration("policy")
    preset = LaunchConfiguration("preset")
    vehicle = LaunchConfiguration("vehicle")
    use_filter = LaunchConfiguration("filter")
    namespace = LaunchConfiguration("namespace")
    params_file = LaunchConfiguration("params_file")
    odom_topic = LaunchConfiguration("odom_topic")
    motor_topic = LaunchConfiguration("motor_topic")
    trajectory = LaunchConfiguration("trajectory")
    use_sim_time = LaunchConfiguration("use_sim_time")

    filter_on = PythonExpression(["'", use_filter, "'.lower() in ('true', '1', 'yes')"])
    is_sim = PythonExpression(["'", vehicle, "' == 'sim'"])
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
    ]
    sim_time = {"use_sim_time": use_sim_time}
    nodes = [
        Node(package="robo", executable="quadrotor_sim", name="quadrotor_sim", namespace=namespace,
             parameters=[params_file, {"preset": ParameterValue(preset, value_type=str),
                                      "publish_clock": use_sim_time}, sim_time],
             remappings=[("odom", odom_topic), ("motor_command", motor_topic)],
             condition=IfCondition(is_sim), output="screen"),
        Node(package="robo", executable="trajectory", name="trajectory", namespace=namespace,
             parameters=[params_file, {"kind": trajectory}, sim_time],
             remappings=[("setpoint/pose", [reference, "/pose"]), ("setpoint/twist", [reference, "/twist"]),
                         ("odom", odom_topic)],
             output="screen"),
        Node(package="robo", executable="safety_filter", name="safety_filter", namespace=namespace,
             parameters=[params_file, sim_time], remappings=[("odom", odom_topic)],
             condition=IfCondition(filter_on), output="screen"),
        Node(package="robo", executable="policy", name="policy", namespace=namespace,
             parameters=[params_file, {"policy": ParameterValue(policy, value_type=str), "trigger": trigger,
                                      "use_filter_status": filter_on}, sim_time],
             remappings=[("odom", odom_topic), ("motor_command", motor_topic)],
             # Without the policy nothing flies: a policy that cannot start (bad model file or card)
             # ends the launch instead of leaving the simulator and filter running on their own.
             on_exit=Shutdown(reason="the policy node exited"), output="screen"),
    ]
    return LaunchDescription(args + nodes)

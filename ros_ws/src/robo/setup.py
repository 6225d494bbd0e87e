"""The ROS 2 package ``robo``: console scripts calling robo.ros, the launch files and the ROS params.

The launch file and the parameter files live at the repository root (launch/, configs/) and are
installed from there into share/robo/launch and share/robo/config.
"""

import os

from setuptools import setup

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.normpath(os.path.join(HERE, "..", "..", ".."))


def repo_file(*parts: str) -> str:
    # setuptools wants data files relative to this setup.py.
    return os.path.relpath(os.path.join(REPO, *parts), HERE)


setup(
    name="robo_ros",  # not "robo": that is the Python package the nodes import
    version="0.1.0",
    packages=[],
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/robo"]),
        ("share/robo", ["package.xml"]),
        ("share/robo/launch", [repo_file("launch", "quadrotor.launch.py"),
                               repo_file("launch", "grasp.launch.py"),
                               repo_file("launch", "swarm.launch.py")]),
        ("share/robo/config", [repo_file("configs", "ros_quadrotor.yaml"),
                               repo_file("configs", "ros_grasp.yaml"),
                               repo_file("configs", "ros_swarm.yaml"),
                               repo_file("configs", "safety.yaml")]),
        ("share/robo/policies/gpayn_box_tall", [repo_file("robo", "policies", "gpayn_box_tall", name)
                                                for name in ("policy.onnx", "policy.json")]),
    ],
    install_requires=["setuptools"],
    zip_safe=True,
    maintainer="robo developers",
    maintainer_email="robo@example.com",
    description="robo's ROS 2 nodes and launch file (the code is in the robo Python package, robo.ros)",
    license="Apache-2.0",
    entry_points={
        "console_scripts": [
            "quadrotor_sim = robo.ros.sim_node:main",
            "hand_sim = robo.ros.hand_sim_node:main",
            "policy = robo.ros.policy_node:main",
            "safety_filter = robo.ros.filter_node:main",
            "trajectory = robo.ros.trajectory_node:main",
            "graph = robo.ros.graph:main",
            "swarm_sim = robo.ros.swarm_sim_node:main",
            "swarm_filter = robo.ros.swarm_filter_node:main",
            "swarm_agent = robo.ros.swarm_agent:main",
        ],
    },
)

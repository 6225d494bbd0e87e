"""The ROS 2 package and its files agree with each other: package.xml, setup.py entry points, the
launch file, and configs/ros_quadrotor.yaml against the parameters each node declares (names and
types: ROS refuses an integer for a double parameter)."""

import ast
import re
from pathlib import Path

import pytest
import yaml

from robo.ros import (
    filter_node,
    hand_loop,
    hand_sim_node,
    policy_node,
    quadrotor_loop,
    sim_node,
    swarm_filter_node,
    swarm_sim_node,
    trajectory_node,
)
from robo.ros.processes import EXECUTABLES, GRASP_PARAMS_FILE, PARAMS_FILE, SWARM_PARAMS_FILE

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "ros_ws" / "src" / "robo"
NODES = {"quadrotor_sim": sim_node.PARAMS, "safety_filter": filter_node.PARAMS,
         "policy": policy_node.COMMON_PARAMS + quadrotor_loop.QUADROTOR_PARAMS,
         "trajectory": trajectory_node.PARAMS}
GRASP_NODES = {"hand_sim": hand_sim_node.PARAMS, "policy": policy_node.COMMON_PARAMS + hand_loop.HAND_PARAMS}
SWARM_NODES = {"swarm_sim": swarm_sim_node.PARAMS, "swarm_filter": swarm_filter_node.PARAMS}
SWARM_EXECUTABLES = {"swarm_sim", "swarm_filter", "swarm_agent"}  # started by swarm.launch.py


def test_package_files_and_entry_points():
    xml = (PKG / "package.xml").read_text()
    assert "<name>robo</name>" in xml and "<build_type>ament_python</build_type>" in xml
    assert (PKG / "resource" / "robo").is_file()
    setup = (PKG / "setup.py").read_text()
    scripts = dict(re.findall(r'"(\w+) = (robo\.ros\.\w+):main"', setup))
    assert scripts == EXECUTABLES
    for rel in re.findall(r'repo_file\("(\w+)", "([\w.]+)"\)', setup):
        assert (ROOT / rel[0] / rel[1]).is_file(), rel
    assert "install_scripts=$base/lib/robo" in (PKG / "setup.cfg").read_text()


def test_launch_file_starts_the_package_executables_with_the_documented_arguments():
    tree = ast.parse((ROOT / "launch" / "quadrotor.launch.py").read_text())
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", "") in
             ("Node", "DeclareLaunchArgument")]
    kw = [{k.arg: k.value for k in c.keywords} for c in calls if c.func.id == "Node"]
    quadrotor_executables = set(EXECUTABLES) - {"hand_sim"} - SWARM_EXECUTABLES
    assert sorted(ast.literal_eval(k["executable"]) for k in kw) == sorted(quadrotor_executables)
    assert all(ast.literal_eval(k["package"]) == "robo" for k in kw)
    args = {ast.literal_eval(c.args[0]) for c in calls if c.func.id == "DeclareLaunchArgument"}
    assert {"policy", "preset", "vehicle", "filter", "namespace", "params_file", "use_sim_time"} <= args
    policy_node_kw = next(k for k in kw if ast.literal_eval(k["executable"]) == "policy")
    assert "on_exit" in policy_node_kw  # a policy that cannot start ends the launch


def test_swarm_launch_file_starts_the_swarm_executables():
    tree = ast.parse((ROOT / "launch" / "swarm.launch.py").read_text())
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", "") == "Node"]
    kw = [{k.arg: k.value for k in c.keywords} for c in calls]
    assert {ast.literal_eval(k["executable"]) for k in kw} == SWARM_EXECUTABLES
    assert all(ast.literal_eval(k["package"]) == "robo" and "on_exit" in k for k in kw)


@pytest.mark.parametrize("name", ["quadrotor.launch.py", "grasp.launch.py", "swarm.launch.py"])
def test_launch_file_imports_only_the_launch_api(name):
    # `ros2 launch` runs the file with the system Python of /opt/ros/jazzy, which cannot import robo.
    tree = ast.parse((ROOT / "launch" / name).read_text())
    modules = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    modules |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    roots = {m.split(".")[0] for m in modules}
    assert roots <= {"os", "math", "runpy", "launch", "launch_ros", "ament_index_python"}, roots


@pytest.mark.parametrize(("params_file", "nodes"), [(PARAMS_FILE, NODES), (GRASP_PARAMS_FILE, GRASP_NODES),
                                                    (SWARM_PARAMS_FILE, SWARM_NODES)])
def test_params_file_matches_the_declared_parameters(params_file, nodes):
    data = yaml.safe_load(params_file.read_text())
    for key, section in data.items():
        node = key.split("/")[-1]
        declared = {p.name: p for p in nodes[node]}
        for name, value in section["ros__parameters"].items():
            assert name in declared, f"{key}: {name} is not a parameter of {node}"
            default = declared[name].default
            assert type(value) is type(default) or (isinstance(default, list) and isinstance(value, list)), \
                f"{key}.{name}: {value!r} has another type than the declared {default!r}"
            assert declared[name].validate(value) == "", declared[name].validate(value)


@pytest.mark.ros
def test_colcon_build_installs_an_ament_package_whose_executables_run(tmp_path):
    import os
    import subprocess
    import sys

    colcon = Path(sys.executable).parent / "colcon"  # from the ros extra (colcon-common-extensions)
    out = subprocess.run([str(colcon), "--log-base", str(tmp_path / "log"), "build",
                          "--base-paths", str(ROOT / "ros_ws" / "src"), "--build-base",
                          str(tmp_path / "build"), "--install-base", str(tmp_path / "install")],
                         capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    prefix = tmp_path / "install" / "robo"
    for rel in ("share/ament_index/resource_index/packages/robo", "share/robo/package.xml",
                "share/robo/launch/quadrotor.launch.py", "share/robo/config/ros_quadrotor.yaml",
                "share/robo/launch/grasp.launch.py", "share/robo/config/ros_grasp.yaml",
                "share/robo/launch/swarm.launch.py", "share/robo/config/ros_swarm.yaml",
                *(f"lib/robo/{exe}" for exe in EXECUTABLES)):
        assert (prefix / rel).is_file(), rel
    site = next(prefix.glob("lib/python3*/site-packages"))
    env = {**os.environ, "AMENT_PREFIX_PATH": str(prefix), "PYTHONPATH": str(site)}
    code = "from ament_index_python.packages import get_package_share_directory as g; print(g('robo'))"
    share = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert Path(share.stdout.strip()) == prefix / "share" / "robo"
    # The installed console script is the node: a bad parameter stops it with one line naming it.
    run = subprocess.run([str(prefix / "lib/robo/policy"), "--ros-args", "-p", "hold_timeout:=-1.0"],
                         env=env, capture_output=True, text=True, timeout=60)
    assert run.returncode == 1 and "hold_timeout" in run.stderr

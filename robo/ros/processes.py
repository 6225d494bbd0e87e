"""Start robo nodes as processes exactly as ``launch_ros.actions.Node`` does, for tests and benchmarks
on machines without the launch packages.

launch_ros runs ``<prefix>/lib/robo/<executable> --ros-args -r __node:=<name> -r __ns:=<namespace>
--params-file <file> ... -r <from>:=<to> ...``, writing a dict of parameters to a temporary params file
first. :func:`node_command` builds the same command line; the executable is the colcon-installed
console script when one is given, else ``python -m robo.ros.<module>`` (what that script calls).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

# Console script name -> module (the same table as ros_ws/src/robo/setup.py's entry points).
EXECUTABLES = {
    "quadrotor_sim": "robo.ros.sim_node",
    "hand_sim": "robo.ros.hand_sim_node",
    "policy": "robo.ros.policy_node",
    "safety_filter": "robo.ros.filter_node",
    "trajectory": "robo.ros.trajectory_node",
    "graph": "robo.ros.graph",  # several of the above in one process: arguments name them
    "swarm_sim": "robo.ros.swarm_sim_node",
    "swarm_filter": "robo.ros.swarm_filter_node",
    "swarm_agent": "robo.ros.swarm_agent",  # swarm_filter + swarm_sim in one process
}
REPO = Path(__file__).resolve().parents[2]
PARAMS_FILE = REPO / "configs" / "ros_quadrotor.yaml"
GRASP_PARAMS_FILE = REPO / "configs" / "ros_grasp.yaml"
SWARM_PARAMS_FILE = REPO / "configs" / "ros_swarm.yaml"


def node_command(executable: str, *, name: str | None = None, namespace: str = "",
                 params_files: Sequence[str | Path] = (), parameters: Mapping[str, Any] | None = None,
                 remappings: Sequence[tuple[str, str]] = (), install_prefix: str | Path | None = None,
                 tmp_dir: str | Path | None = None, arguments: Sequence[str] = ()) -> list[str]:
    if executable not in EXECUTABLES:
        raise ValueError(f"unknown robo node {executable!r} (known: {', '.join(EXECUTABLES)})")
    if install_prefix is not None:
        cmd = [str(Path(install_prefix) / "lib" / "robo" / executable)]
    else:
        cmd = [sys.executable, "-m", EXECUTABLES[executable]]
    cmd += [*arguments, "--ros-args"]
    if name:
        cmd += ["-r", f"__node:={name}"]
    if namespace:
        cmd += ["-r", f"__ns:={namespace if namespace.startswith('/') else '/' + namespace}"]
    for f in params_files:
        cmd += ["--params-file", str(f)]
    if parameters:
        # launch_ros writes dict parameters to a temporary file under the node's full name.
        fd, path = tempfile.mkstemp(prefix="robo_params_", suffix=".yaml", dir=tmp_dir)
        with os.fdopen(fd, "w") as f:
            yaml.safe_dump({"/**": {"ros__parameters": dict(parameters)}}, f)
        cmd += ["--params-file", path]
    for src, dst in remappings:
        cmd += ["-r", f"{src}:={dst}"]
    return cmd


def ros_env(domain_id: int | None = None) -> dict[str, str]:
    """The environment for a node process: localhost discovery, an isolated domain, unbuffered logs."""
    env = dict(os.environ)
    env.setdefault("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp")
    env["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    env["PYTHONUNBUFFERED"] = "1"
    env["RCUTILS_LOGGING_BUFFERED_STREAM"] = "0"
    if domain_id is not None:
        env["ROS_DOMAIN_ID"] = str(domain_id)
    return env


def start_node(executable: str, log: str | Path, domain_id: int | None = None,
               **kwargs: Any) -> subprocess.Popen:
    """Start one node process; stdout and stderr go to ``log``."""
    out = open(log, "w")  # noqa: SIM115 - the process owns it until it exits
    return subprocess.Popen(node_command(executable, **kwargs), stdout=out, stderr=subprocess.STDOUT,
                            env=ros_env(domain_id), cwd=REPO)


def stop_nodes(procs: Sequence[subprocess.Popen]) -> None:
    """SIGINT (a clean node shutdown) to every node still running, then wait; kill what hangs."""
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
    for proc in procs:
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

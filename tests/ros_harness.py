"""A ROS graph for integration tests: node processes started as the launch file starts them
(robo.ros.processes.node_command), plus an in-test rclpy node in its own context and DDS domain."""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import QoSProfile

from robo.ros.processes import PARAMS_FILE, start_node

_domains = itertools.count((os.getpid() % 50) * 4 + 20)


class Graph:
    def __init__(self, tmp_path: Path) -> None:
        self.tmp = tmp_path
        self.domain = next(_domains) % 200 + 1
        os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
        self.context = rclpy.Context()
        rclpy.init(context=self.context, domain_id=self.domain)
        self.node = rclpy.create_node(f"robo_test_{self.domain}", context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.procs: dict[str, subprocess.Popen] = {}
        self.diagnostics: list[Any] = []
        self.node.create_subscription(DiagnosticArray, "/diagnostics",
                                      lambda m: self.diagnostics.extend(m.status), QoSProfile(depth=50))

    def start(self, executable: str, name: str | None = None, **kwargs: Any) -> subprocess.Popen:
        name = name or executable
        kwargs.setdefault("params_files", [PARAMS_FILE])
        proc = start_node(executable, self.tmp / f"{name}.log", self.domain, tmp_dir=self.tmp, **kwargs)
        self.procs[name] = proc
        return proc

    def log(self, name: str) -> str:
        return (self.tmp / f"{name}.log").read_text()

    def spin_until(self, cond: Callable[[], bool], timeout: float, what: str) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            self.executor.spin_once(timeout_sec=0.02)
            if cond():
                return
        logs = {n: self.log(n)[-1500:] for n in self.procs}
        raise AssertionError(f"timed out after {timeout} s waiting for {what}; node logs: {logs}")

    def spin_for(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.executor.spin_once(timeout_sec=0.02)

    def statuses(self, node_name: str) -> list[Any]:
        return [s for s in self.diagnostics if s.name.endswith(node_name)]

    def close(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
        for proc in self.procs.values():
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.executor.shutdown()
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)


class Recorded:
    """Any launch class: keeps its arguments."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.args, self.kwargs = args, kwargs


def load_launch_file(monkeypatch: Any, tmp_path: Path, name: str) -> dict[str, Any]:
    """Run launch/<name> against stand-ins of the launch API that record what it builds (the launch
    packages have no wheel here); ``get_package_share_directory`` answers ``tmp_path``."""
    import runpy
    import sys
    import types

    names = {"launch": ["LaunchDescription"],
             "launch.actions": ["DeclareLaunchArgument", "OpaqueFunction", "Shutdown"],
             "launch.conditions": ["IfCondition"],
             "launch.substitutions": ["LaunchConfiguration", "PythonExpression"],
             "launch_ros": [], "launch_ros.actions": ["Node"],
             "launch_ros.parameter_descriptions": ["ParameterValue"],
             "ament_index_python": [], "ament_index_python.packages": []}
    for module, classes in names.items():
        m = types.ModuleType(module)
        for c in classes:
            setattr(m, c, type(c, (Recorded,), {}))
        monkeypatch.setitem(sys.modules, module, m)
    sys.modules["ament_index_python.packages"].get_package_share_directory = lambda pkg: str(tmp_path)
    return runpy.run_path(str(Path(__file__).resolve().parents[1] / "launch" / name))

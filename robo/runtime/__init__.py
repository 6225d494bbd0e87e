"""The deployment runtime: the one ONNX Runtime wrapper (inputs by role, recurrent state), per-task
adapters chosen by the card's task (quadrotor, hand), the safety-filtered control loop, trajectories and
the watchdog's logic. numpy + onnxruntime + robo.safety only (no torch, no rclpy)."""

from pathlib import Path

from robo.runtime.adapter import ADAPTERS, TaskAdapter, adapter_for
from robo.runtime.controller import Controller, ControlOutput
from robo.runtime.hand import HandState
from robo.runtime.policy import OnnxPolicy, PolicyStep
from robo.runtime.quadrotor import VehicleState, action_to_motors, build_observation, rotation_matrix
from robo.runtime.trajectory import Trajectory, TrajectoryConfig
from robo.runtime.watchdog import Verdict, Watchdog, WatchdogConfig
from robo.safety.setpoint import Setpoint

# The committed default RAPTOR student, found beside the installed package (not the working directory).
DEFAULT_POLICY = str(Path(__file__).resolve().parent.parent / "policies" / "raptor_default" / "policy.onnx")

__all__ = [
    "ADAPTERS", "DEFAULT_POLICY", "ControlOutput", "Controller", "HandState", "OnnxPolicy", "PolicyStep",
    "Setpoint", "TaskAdapter", "Trajectory", "TrajectoryConfig", "VehicleState", "Verdict", "Watchdog",
    "WatchdogConfig", "action_to_motors", "adapter_for", "build_observation", "rotation_matrix",
]

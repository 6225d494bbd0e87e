"""The deployment runtime: ONNX Runtime policy with recurrent state, the safety-filtered control loop,
trajectories and the watchdog's logic. numpy + onnxruntime + robo.safety only (no torch, no rclpy)."""

from pathlib import Path

from robo.runtime.controller import Controller, ControlOutput, action_to_motors
from robo.runtime.observation import Setpoint, VehicleState, build_observation, rotation_matrix
from robo.runtime.policy import OnnxPolicy, PolicyStep
from robo.runtime.trajectory import Trajectory, TrajectoryConfig
from robo.runtime.watchdog import Verdict, Watchdog, WatchdogConfig

# The committed default RAPTOR student, found beside the installed package (not the working directory).
DEFAULT_POLICY = str(Path(__file__).resolve().parent.parent / "policies" / "raptor_default" / "policy.onnx")

__all__ = [
    "DEFAULT_POLICY", "ControlOutput", "Controller", "OnnxPolicy", "PolicyStep", "Setpoint", "Trajectory",
    "TrajectoryConfig", "VehicleState", "Verdict", "Watchdog", "WatchdogConfig", "action_to_motors",
    "build_observation", "rotation_matrix",
]

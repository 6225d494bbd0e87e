"""``hand_sim``: the MuJoCo hand scene of :mod:`sim.hand` (Inspire hand on a 6-DoF wrist, a table, one
object; numpy and MuJoCo only, no torch in this process) as a hand with its driver, at the
environment's 40 Hz control rate (5 substeps of 5 ms).

Every step publishes, all stamped with the step's time (the topics of :mod:`robo.runtime.hand`):
``hand/joint_states`` (sensor_msgs/JointState: the 12 finger actuators' joints, the hand's actuator
order), ``hand/wrist_pose`` and ``object/pose`` (geometry_msgs/PoseStamped, world: the wrist, and the
object's centre with its orientation) and ``hand/touch`` (std_msgs/Float32MultiArray: fingertip touch
flags, thumb first). It takes ``hand/command`` (std_msgs/Float32MultiArray, the policy's 18 actions in
[-1, 1]) and, as the training environment does, adds each command once to the actuator targets (wrist
2 mm / 0.01 rad, fingers 0.2 rad at full scale) clamped to their ranges. A step without a new command
adds nothing: the position servos hold their targets. ``/diagnostics`` says how high the object is.

The simulated clock (``publish_clock``) and ``lockstep``: :mod:`robo.ros.lockstep`. A non-finite state
or a MuJoCo warning resets the scene (logged and counted, as the environment does).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from builtin_interfaces.msg import Time
from geometry_msgs.msg import PoseStamped
from sensor_msgs.msg import JointState
from std_msgs.msg import Float32MultiArray

from robo.config import from_dict
from robo.export.card import load_card
from robo.ros.common import CONTROL_QOS, OK, Param, QosWatch, declare, diagnostic, main_for
from robo.ros.convert import TOUCH_LABEL, joint_state_msg, pose_msg, stamped_array
from robo.ros.lockstep import CLOCK_PARAMS, SteppedSim
from robo.runtime.hand import COMMAND, FIELD_ROLES, ypr_to_quaternion
from sim.hand.env import START_POSES, HandEnvConfig
from sim.hand.scene import OBJECTS


def _object(value: Any) -> str:
    if value == "" or value in OBJECTS:
        return ""
    return f"unknown object {value!r} (choices: {', '.join(OBJECTS)})"


def _start(value: Any) -> str:
    if value == "" or value in START_POSES:
        return ""
    return f"unknown start {value!r} (choices: {', '.join(START_POSES)})"


PARAMS = [
    Param("policy", "", "a hand policy's policy.onnx: the scene is its card's training environment (start "
          "pose, grasp, object and its placement), so the policy meets what it was trained on",
          read_only=True),
    Param("object", "", "the object on the table (sim.hand.scene.OBJECTS); '': the policy card's, else "
          "box_tall", read_only=True, check=_object),
    Param("start", "", "where the hand starts: home or pre_grasp (the planned grasp's); '': the policy "
          "card's, else home", read_only=True, check=_start),
    Param("seed", 0, "seed of the object's random start position and yaw", 0, 2**31 - 1, read_only=True),
    Param("frame_id", "world", "frame of the poses", read_only=True),
    Param("diagnostics_rate_hz", 1.0, "diagnostics messages per second", 0.1, 100.0, read_only=True),
    *CLOCK_PARAMS,
]
TOPICS = {role: topic for role, topic, _ in FIELD_ROLES.values()}


def scene_config(policy: str, object_name: str, start: str) -> HandEnvConfig:
    """The scene: the training environment ``policy``'s card records (sim.hand's defaults where it
    records none), with the object and start pose given here over it, and no episode end (the scene
    runs until stopped)."""
    env: dict[str, Any] = {}
    if policy:
        env = dict((load_card(policy, verify=False)["training"].get("config") or {}).get("env") or {})
    env.update({k: v for k, v in (("object", object_name), ("start", start)) if v})
    return from_dict(HandEnvConfig, {**env, "episode_steps": 2**62})


class HandSim(SteppedSim):
    def __init__(self) -> None:
        super().__init__("hand_sim")
        v = declare(self, PARAMS, self._apply_clock)
        self.frame = v["frame_id"]
        # MuJoCo loads here, inside main_for, where Ctrl-C during start-up ends the node quietly.
        from sim.hand.env import HandEnv
        from sim.hand.scene import SUBSTEPS, TIMESTEP

        config = scene_config(v["policy"], v["object"], v["start"])
        self.env = HandEnv(1, config, seed=v["seed"])
        # The environment's torch-free core, one scene (its reset() and step() return torch tensors).
        self.env._reset_one(0)
        model = self.env.model
        self.joint_names = [model.joint(j).name for j in model.actuator_trnid[6:, 0]]
        self.command = np.zeros(self.env.action_size)
        self.commands = 0
        self.resets = 0
        self.success = False
        self.qos = QosWatch(self)
        self.pubs = {role: self.create_publisher(JointState if role == "joints" else
                                                 Float32MultiArray if role == "touch" else PoseStamped,
                                                 topic, CONTROL_QOS, event_callbacks=self.qos.pub(topic))
                     for role, topic in TOPICS.items()}
        self.create_subscription(Float32MultiArray, COMMAND[0], self._on_command, CONTROL_QOS,
                                 event_callbacks=self.qos.sub(COMMAND[0]))
        self.create_timer(1.0 / v["diagnostics_rate_hz"], self._publish_diagnostics)
        self.start_clock(v, TIMESTEP * SUBSTEPS)
        self.get_logger().info(f"simulating the hand with {config.object!r} from {config.start} at "
                               f"{1 / self.dt:g} Hz "
                               f"({self.clock_text}); targets held until the first command")

    def _on_command(self, msg: Float32MultiArray) -> None:
        data = np.asarray(msg.data, dtype=np.float64)
        if data.shape != (self.env.action_size,) or not np.all(np.isfinite(data)):
            self.get_logger().error(f"{COMMAND[0]} with {data.size} values or a non-finite one ignored "
                                    f"(expected {self.env.action_size} in [-1, 1])",
                                    throttle_duration_sec=1.0)
            return
        if not self.accept_command(msg):
            return
        self.command = data
        self.commands += 1
        self.started = True

    def advance(self) -> None:
        env = self.env
        _, _, _, success, unstable = env._step_one(0, np.clip(self.command, -1.0, 1.0))
        self.command = np.zeros(env.action_size)  # each command moves the targets once
        self.success |= bool(success)
        if unstable:
            self.resets += 1
            self.get_logger().error("simulation unstable (MuJoCo warning or non-finite state): scene reset")
            env._reset_one(0)

    def publish_state(self, stamp: Time) -> None:
        env, d = self.env, self.env.data[0]
        wrist = d.qpos[env.wrist_qpos]
        obj = d.qpos[env.object_qpos:env.object_qpos + 7]
        # Object first and joints last: a reader that waits for a complete step mostly has it then.
        self.pubs["object"].publish(pose_msg(env.object_centre(0), obj[3:], stamp, self.frame))
        self.pubs["wrist"].publish(pose_msg(wrist[:3], ypr_to_quaternion(*wrist[3:]), stamp, self.frame))
        self.pubs["touch"].publish(stamped_array(env.touch[0], TOUCH_LABEL, stamp))
        self.pubs["joints"].publish(joint_state_msg(self.joint_names, d.qpos[env.finger_qpos], stamp))

    def _publish_diagnostics(self) -> None:
        env = self.env
        self.diag_pub.publish(diagnostic(self, OK, "simulating", {
            "object_height_m": f"{env.object_centre(0)[2] - env.start_z[0]:.4f}",
            "touching": int(env.touch[0].sum()),
            "lifted_10cm": self.success,
            "steps": self.steps,
            "commands": self.commands,
            "unstable_resets": self.resets,
        }))


def main(args: list[str] | None = None) -> int:
    return main_for(HandSim, args)


if __name__ == "__main__":
    raise SystemExit(main())

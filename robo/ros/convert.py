"""ROS messages <-> runtime types. Frames: world (FLU, z up) and base_link (FLU body), as REP 103.

nav_msgs/Odometry carries the pose in ``header.frame_id`` (world) and the twist in ``child_frame_id``
(base_link): linear velocity is converted between the body and world frames here, explicitly.
ROS quaternions are (x, y, z, w); the runtime's are (w, x, y, z).
"""

from __future__ import annotations

import numpy as np
from geometry_msgs.msg import PoseStamped, TwistStamped
from nav_msgs.msg import Odometry
from sensor_msgs.msg import JointState
from std_msgs.msg import Float32MultiArray, Header, MultiArrayDimension, MultiArrayLayout

from robo.runtime.quadrotor import Setpoint, VehicleState, rotation_matrix

MOTOR_LABEL = "motors FR,BR,BL,FL [0,1]"


def stamp_seconds(msg_stamp) -> float:
    return msg_stamp.sec + msg_stamp.nanosec * 1e-9


def odometry_to_state(msg: Odometry) -> VehicleState:
    """Odometry -> state; the quaternion is normalised (a non-finite or zero one gives NaNs)."""
    o = msg.pose.pose.orientation
    q = np.array([o.w, o.x, o.y, o.z], dtype=np.float64)
    n = float(np.linalg.norm(q))
    q = q / n if np.isfinite(n) and n > 1e-6 else np.full(4, np.nan)
    p = msg.pose.pose.position
    v_body = msg.twist.twist.linear
    w = msg.twist.twist.angular
    v_world = rotation_matrix(q) @ np.array([v_body.x, v_body.y, v_body.z]) if np.all(np.isfinite(q)) \
        else np.full(3, np.nan)
    return VehicleState(np.array([p.x, p.y, p.z]), q, v_world, np.array([w.x, w.y, w.z]))


def state_to_odometry(x: np.ndarray, stamp, frame: str = "world", child: str = "base_link") -> Odometry:
    """Simulator state (p, q wxyz, v world, omega body) -> Odometry (twist in the body frame)."""
    msg = Odometry()
    msg.header.stamp = stamp
    msg.header.frame_id = frame
    msg.child_frame_id = child
    pose = msg.pose.pose
    pose.position.x, pose.position.y, pose.position.z = (float(v) for v in x[0:3])
    q = pose.orientation
    q.w, q.x, q.y, q.z = (float(v) for v in x[3:7])
    v_body = rotation_matrix(x[3:7]).T @ np.asarray(x[7:10], dtype=np.float64)
    tw = msg.twist.twist
    tw.linear.x, tw.linear.y, tw.linear.z = (float(v) for v in v_body)
    tw.angular.x, tw.angular.y, tw.angular.z = (float(v) for v in x[10:13])
    return msg


def setpoint_msgs(sp: Setpoint, stamp, frame: str = "world") -> tuple[PoseStamped, TwistStamped]:
    pose, twist = PoseStamped(), TwistStamped()
    for m in (pose, twist):
        m.header.stamp = stamp
        m.header.frame_id = frame
    pose.pose.position.x, pose.pose.position.y, pose.pose.position.z = (float(v) for v in sp.position)
    pose.pose.orientation.w = 1.0
    twist.twist.linear.x, twist.twist.linear.y, twist.twist.linear.z = (float(v) for v in sp.velocity)
    return pose, twist


def pose_position(msg: PoseStamped) -> np.ndarray:
    p = msg.pose.position
    return np.array([p.x, p.y, p.z], dtype=np.float64)


def twist_velocity(msg: TwistStamped) -> np.ndarray:
    v = msg.twist.linear
    return np.array([v.x, v.y, v.z], dtype=np.float64)


STAMP_LABEL = "odometry_stamp "


def stamped_array(values: np.ndarray, label: str, state_stamp=None) -> Float32MultiArray:
    """A command as a flat float array whose layout says what it is (``label``).

    ``state_stamp``: the stamp of the state (odometry) the command answers, carried as a second layout
    dimension of size 1 (the shape stays n x 1, so readers of the values are unaffected); a lockstep
    simulator matches each command to its step by it.
    """
    dims = [MultiArrayDimension(label=label, size=len(values), stride=len(values))]
    if state_stamp is not None:
        dims.append(MultiArrayDimension(label=f"{STAMP_LABEL}{state_stamp.sec} {state_stamp.nanosec}",
                                        size=1, stride=1))
    return Float32MultiArray(layout=MultiArrayLayout(dim=dims), data=[float(v) for v in values])


def motor_msg(motors: np.ndarray, odometry_stamp=None) -> Float32MultiArray:
    """Four motor setpoints in [0, 1], order FR, BR, BL, FL; 0 = motor stopped; stamped as
    :func:`stamped_array`."""
    return stamped_array(motors, MOTOR_LABEL, odometry_stamp)


def answered_stamp(msg: Float32MultiArray) -> tuple[int, int] | None:
    """(sec, nanosec) of the state (odometry) a command answers, None when it does not say."""
    for dim in msg.layout.dim:
        if dim.label.startswith(STAMP_LABEL):
            sec, nanosec = dim.label[len(STAMP_LABEL):].split()
            return int(sec), int(nanosec)
    return None


# ----- the hand (robo.runtime.hand) ---------------------------------------------------------------
HAND_COMMAND_LABEL = "hand action: the card's action layout, target deltas in [-1, 1]"
TOUCH_LABEL = "touch: fingertip flags, thumb first"


def joint_state_msg(names: list[str], positions: np.ndarray, stamp) -> JointState:
    return JointState(header=Header(stamp=stamp), name=list(names), position=[float(v) for v in positions])


def joint_positions(msg: JointState) -> np.ndarray:
    return np.asarray(msg.position, dtype=np.float64)


def pose_msg(position: np.ndarray, quaternion: np.ndarray, stamp, frame: str = "world") -> PoseStamped:
    """A pose from a position and a (w, x, y, z) quaternion."""
    msg = PoseStamped(header=Header(stamp=stamp, frame_id=frame))
    p, q = msg.pose.position, msg.pose.orientation
    p.x, p.y, p.z = (float(v) for v in position)
    q.w, q.x, q.y, q.z = (float(v) for v in quaternion)
    return msg


def pose_quaternion(msg: PoseStamped) -> np.ndarray:
    """(w, x, y, z)."""
    q = msg.pose.orientation
    return np.array([q.w, q.x, q.y, q.z], dtype=np.float64)

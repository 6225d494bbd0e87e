"""The hand's runtime adapter and the card's io block (no ROS, no torch)."""

import json

import numpy as np
import pytest
from policy_standins import copy_default

from robo.export.card import card_io
from robo.runtime import HandState, adapter_for
from robo.runtime.hand import quaternion_to_ypr, ypr_to_quaternion
from sim.hand.env import LAYOUT


def _hand_card(layout=None) -> dict:
    entries = layout if layout is not None else LAYOUT.card_entries()
    return {"task": "gpayn", "observation": {"size": len(entries), "layout": entries},
            "action": {"size": 18}}


def test_the_hand_adapter_builds_the_layout_and_subscribes_only_what_it_needs():
    adapter = adapter_for(_hand_card())
    assert adapter.topics == {"joints": ("hand/joint_states", "sensor_msgs/msg/JointState"),
                              "touch": ("hand/touch", "std_msgs/msg/Float32MultiArray"),
                              "wrist": ("hand/wrist_pose", "geometry_msgs/msg/PoseStamped"),
                              "object": ("object/pose", "geometry_msgs/msg/PoseStamped"),
                              "command": ("hand/command", "std_msgs/msg/Float32MultiArray")}
    values = {"finger_pos": np.arange(12.0), "touch": np.ones(5), "wrist": np.arange(6.0) + 20,
              "object": np.arange(3.0) + 30}
    obs = adapter.observe(HandState(values), None, np.zeros(18))
    np.testing.assert_array_equal(obs, np.concatenate(list(values.values())).astype(np.float32))
    np.testing.assert_array_equal(adapter.command(np.array([2.0, -3.0, 0.5])), [1.0, -1.0, 0.5])
    no_touch = [e for e in LAYOUT.card_entries() if not e["name"].startswith("touch")]
    assert "touch" not in adapter_for(_hand_card(no_touch)).topics
    with pytest.raises(ValueError, match="hand runtime cannot build observation field 'camera'"):
        adapter_for(_hand_card([*LAYOUT.card_entries(), {"name": "camera.x", "unit": "1", "clip": None}]))


def test_wrist_angles_survive_the_quaternion():
    for ypr in ([0.3, -0.2, 1.5707963], [-3.0, 1.2, -0.4], [0.0, 0.0, 0.0]):
        np.testing.assert_allclose(quaternion_to_ypr(ypr_to_quaternion(*ypr)), ypr, atol=1e-12)


def test_the_cards_io_block_renames_topics_and_refuses_another_type(tmp_path):
    card = json.loads(copy_default(tmp_path).with_suffix(".json").read_text())
    assert adapter_for(card).topics["state"] == ("odom", "nav_msgs/msg/Odometry")  # an old card: defaults
    card["io"] = {"inputs": {"state": {"topic": "/mavros/odom"}},
                  "outputs": {"command": {"topic": "motors", "type": "std_msgs/msg/Float32MultiArray"}}}
    topics = adapter_for(card).topics
    assert topics["state"] == ("/mavros/odom", "nav_msgs/msg/Odometry") and topics["command"][0] == "motors"
    defaults = {"state": ("odom", "nav_msgs/msg/Odometry"), "command": ("m", "std_msgs/msg/Float32")}
    with pytest.raises(ValueError, match="the task's runtime reads and writes nav_msgs/msg/Odometry"):
        card_io({"io": {"inputs": {"state": {"topic": "odom", "type": "geometry_msgs/msg/PoseStamped"}}}},
                defaults)
    with pytest.raises(ValueError, match="role 'camera' is not one of the task's"):
        card_io({"io": {"inputs": {"camera": {"topic": "cam"}}}}, defaults)
    with pytest.raises(ValueError, match="role 'command' is not one of the task's"):
        card_io({"io": {"inputs": {"command": {"topic": "x"}}}}, defaults)

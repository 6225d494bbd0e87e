"""The grasping graph over real DDS: hand_sim (sim.hand's MuJoCo scene) and the one policy node serving a
hand policy card (task gpayn), each its own process, as launch/grasp.launch.py starts them.

The wiring tests drive the hand with a small MLP exported here through robo/export with task gpayn and
sim/hand's observation layout: a real ONNX file and card, untrained. In lockstep every command the
simulator receives must equal what OnnxPolicy computes on the state the simulator sent, exactly.
Lifting the object needs a trained policy: the committed G-PAYN policy (robo/policies/gpayn_box_tall),
or ``ROBO_GRASP_POLICY`` when set; hand_sim builds the scene from its card, as in training.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from geometry_msgs.msg import PoseStamped
from rclpy.qos import QoSProfile, ReliabilityPolicy
from ros_harness import Graph, load_launch_file
from sensor_msgs.msg import JointState
from std_msgs.msg import Float32MultiArray

from robo.ros.convert import answered_stamp, joint_state_msg, pose_msg, stamped_array
from robo.ros.hand_loop import PARSE
from robo.ros.processes import GRASP_PARAMS_FILE
from robo.runtime import HandState, OnnxPolicy, adapter_for
from robo.runtime.hand import FIELD_ROLES, role_field, ypr_to_quaternion

pytestmark = pytest.mark.ros

COMMITTED = Path(__file__).resolve().parents[1] / "robo" / "policies" / "gpayn_box_tall" / "policy.onnx"
TRAINED = Path(os.environ.get("ROBO_GRASP_POLICY") or COMMITTED)
LIFT_SEED = 1  # the object's start pose: an episode the committed policy lifts in its eval
LOCKSTEP = {"publish_clock": True, "lockstep": True}
TOPIC = {role: topic for role, topic, _ in FIELD_ROLES.values()}


@pytest.fixture(scope="module")
def hand_policy(tmp_path_factory) -> Path:
    import torch

    from robo.export.onnx_export import export_onnx
    from robo.nets.policy import MLPPolicy
    from sim.hand.env import LAYOUT, HandEnv

    torch.manual_seed(0)
    net = MLPPolicy(LAYOUT.size, HandEnv.action_size, hidden=(32, 32), output_activation="tanh")
    meta = {"task": "gpayn", "observation": LAYOUT.card_entries(), "control_rate_hz": 40.0,
            "action": [{"name": f"delta[{i}]", "unit": "1"} for i in range(HandEnv.action_size)]}
    out = tmp_path_factory.mktemp("hand_policy") / "policy.onnx"
    export_onnx(net, meta, out, steps=50)
    return out


def _parts_of_env(env) -> dict[str, object]:
    """The messages hand_sim publishes for environment 0's current state."""
    from builtin_interfaces.msg import Time

    stamp, d = Time(sec=1, nanosec=25_000_000), env.data[0]
    wrist = d.qpos[env.wrist_qpos]
    return {"joints": joint_state_msg([f"j{i}" for i in range(12)], d.qpos[env.finger_qpos], stamp),
            "wrist": pose_msg(wrist[:3], ypr_to_quaternion(*wrist[3:]), stamp),
            "object": pose_msg(env.object_centre(0), d.qpos[env.object_qpos + 3:env.object_qpos + 7], stamp),
            "touch": stamped_array(env.touch[0], "touch", stamp)}


def test_the_hand_messages_carry_the_environments_observation(hand_policy):
    """What hand_sim publishes, read back as the policy node reads it, is HandEnv's own observation
    (the wrist's yaw/pitch/roll through a quaternion: to float rounding)."""
    from sim.hand.demonstrator import Demonstrator
    from sim.hand.env import HandEnv, HandEnvConfig

    env = HandEnv(1, HandEnvConfig(object="box_tall"), seed=3)
    env.reset(seed=3)
    demo = Demonstrator(env)
    adapter = adapter_for(OnnxPolicy(hand_policy).card)
    touched = 0.0
    for step in range(320):  # into the grasp: fingers closed, touch flags set, wrist turned
        env.step(demo.act())
        if step % 20 == 19:
            parts = _parts_of_env(env)
            state = HandState({role_field(r): PARSE[r](m) for r, m in parts.items()})
            obs = adapter.observe(state, None, np.zeros(18))
            np.testing.assert_allclose(obs, env._observe(0).astype(np.float32), atol=1e-6)
            touched = max(touched, env.touch[0].sum())
    assert touched > 0, "no fingertip touched: the touch flags were not checked"


def test_hand_sim_builds_the_scene_its_policy_was_trained_in(hand_policy):
    from robo.export.card import load_card
    from robo.ros.hand_sim_node import scene_config

    trained = load_card(TRAINED)["training"]["config"]["env"]
    scene = scene_config(str(TRAINED), "", "")
    assert (scene.object, scene.start, scene.grasp) == (trained["object"], trained["start"], trained["grasp"])
    assert scene.start == "pre_grasp" and scene.position_range == trained["position_range"]
    over = scene_config(str(TRAINED), "can", "home")  # launch object:= and start:= win over the card
    assert (over.object, over.start, over.grasp) == ("can", "home", trained["grasp"])
    untrained = scene_config(str(hand_policy), "", "")  # a card without a training config: the defaults
    assert (untrained.object, untrained.start) == ("box_tall", "home")


def _grasp_graph(tmp_path: Path, policy: Path, lockstep: bool = True, seed: int = 0):
    g = Graph(tmp_path)
    states: dict[tuple[int, int], dict[str, object]] = {}
    commands: dict[tuple[int, int], np.ndarray] = {}
    deep = QoSProfile(depth=200, reliability=ReliabilityPolicy.BEST_EFFORT)  # lose no step while busy

    def part(role: str):
        def cb(msg) -> None:
            header = None if role == "touch" else msg.header.stamp
            stamp = answered_stamp(msg) if header is None else (header.sec, header.nanosec)
            states.setdefault(stamp, {}).setdefault(role, msg)
        return cb

    types_ = {"joints": JointState, "wrist": PoseStamped, "object": PoseStamped, "touch": Float32MultiArray}
    for role, topic in TOPIC.items():
        g.node.create_subscription(types_[role], topic, part(role), deep)
    g.node.create_subscription(Float32MultiArray, "hand/command",
                               lambda m: commands.setdefault(answered_stamp(m), np.array(m.data)), deep)
    g.start("hand_sim", params_files=[GRASP_PARAMS_FILE],
            parameters={"policy": str(policy), "seed": seed, **(LOCKSTEP if lockstep else {})})
    g.start("policy", params_files=[GRASP_PARAMS_FILE],
            parameters={"policy": str(policy), "use_sim_time": lockstep})
    return g, states, commands


def test_the_policy_node_drives_the_simulated_hand_in_lockstep_over_dds(tmp_path, hand_policy):
    g, states, commands = _grasp_graph(tmp_path, hand_policy)
    try:
        steps = 60

        def complete() -> int:  # this reader may match the simulator after its first steps (discovery)
            return sum(len(states[s]) == 4 for s in set(states) & set(commands))

        g.spin_until(lambda: complete() >= steps, 120, f"{steps} complete hand states with their command")
        g.spin_for(0.5)
        policy = OnnxPolicy(hand_policy)
        adapter = adapter_for(policy.card)
        checked = []
        for stamp in sorted(set(states) & set(commands)):
            parts = states[stamp]
            if len(parts) < 4:
                continue  # a part this test's reader lost: nothing to compare
            state = HandState({role_field(r): PARSE[r](m) for r, m in parts.items()})
            want = policy.step(adapter.observe(state, None, policy.last_action)).action
            assert np.array_equal(commands[stamp], want.astype(np.float32)), stamp
            checked.append(stamp)
        assert len(checked) >= steps // 2, f"only {len(checked)} complete states with their command"
        # The hand moves as commanded: the wrist goes where the summed commanded deltas point.
        first, last = states[checked[0]], states[checked[-1]]
        moved = PARSE["wrist"](last["wrist"])[:3] - PARSE["wrist"](first["wrist"])[:3]
        pushed = np.sum([commands[s][:3] for s in checked[:-1]], axis=0) * 0.002  # m: WRIST_STEP
        assert np.linalg.norm(moved) > 1e-3 and moved @ pushed > 0.5 * np.linalg.norm(moved) ** 2, \
            (moved, pushed)
        fingers = PARSE["joints"](last["joints"]) - PARSE["joints"](first["joints"])
        assert np.abs(fingers).max() > 1e-3, "the fingers did not move"
        assert "lockstep: no command" not in g.log("hand_sim")
        modes = [s.values[0].value for s in g.statuses("/policy")]
        assert modes and "motors_off" not in modes, modes
    finally:
        g.close()


def test_when_the_states_stop_the_policy_node_holds_every_target(tmp_path, hand_policy):
    # On the wall clock: a dead simulator stops /clock, and with it simulated time.
    g, _, commands = _grasp_graph(tmp_path, hand_policy, lockstep=False)
    try:
        held: list[np.ndarray] = []
        g.node.create_subscription(Float32MultiArray, "hand/command", lambda m: held.append(np.array(m.data)),
                                   QoSProfile(depth=100, reliability=ReliabilityPolicy.BEST_EFFORT))
        g.spin_until(lambda: len(commands) >= 10, 120, "the policy driving the hand")
        g.procs["hand_sim"].kill()
        g.spin_until(lambda: any(s.values[0].value in ("descend", "motors_off")
                                 and "targets held" in s.message for s in g.statuses("/policy")), 30,
                     "the policy node holding the targets")
        g.spin_for(0.3)
        assert held and np.array_equal(held[-1], np.zeros(18)), held[-1:]
    finally:
        g.close()


def test_a_trained_policy_lifts_the_object_10_cm_in_lockstep(tmp_path):
    """The committed policy, over DDS in lockstep (so the run is the same on any machine), lifts the
    object of its training scene (hand_sim reads the card: object, start at the pre-grasp) 10 cm."""
    g, states, _ = _grasp_graph(tmp_path, TRAINED, seed=LIFT_SEED)
    try:
        def rise() -> float:
            z = [PARSE["object"](p["object"])[2] for _, p in sorted(states.items()) if "object" in p]
            return max(z) - z[0] if z else 0.0

        g.spin_until(lambda: rise() >= 0.10, 90, "the object 10 cm above its start")
        assert "lockstep: no command" not in g.log("hand_sim")
    finally:
        g.close()


def test_an_unknown_object_stops_the_simulator_listing_the_objects(tmp_path):
    g = Graph(tmp_path)
    try:
        proc = g.start("hand_sim", params_files=[GRASP_PARAMS_FILE], parameters={"object": "anvil"})
        assert proc.wait(timeout=60) == 1
        assert "unknown object 'anvil'" in g.log("hand_sim") and "box_tall" in g.log("hand_sim")
    finally:
        g.close()


def test_the_grasp_launch_file_starts_both_nodes_and_ends_on_any_exit(monkeypatch, tmp_path):
    launch = load_launch_file(monkeypatch, tmp_path, "grasp.launch.py")
    description = launch["generate_launch_description"]()
    items = description.args[0]
    nodes = [e for e in items if type(e).__name__ == "Node"]
    assert {n.kwargs["executable"] for n in nodes} == {"hand_sim", "policy"}
    assert all(n.kwargs["on_exit"] is launch["end_launch"] for n in nodes)
    declared = {e.args[0]: e.kwargs for e in items if type(e).__name__ == "DeclareLaunchArgument"}
    assert {"object", "start", "policy", "use_sim_time", "lockstep"} <= set(declared)
    # The committed G-PAYN policy, as ros_ws/src/robo/setup.py installs it into the share folder.
    installed = tmp_path / "policies" / COMMITTED.parent.name / COMMITTED.name
    assert declared["policy"]["default_value"] == str(installed)
    sim = next(n for n in nodes if n.kwargs["executable"] == "hand_sim")
    assert {"policy", "object", "start"} <= set(sim.kwargs["parameters"][1])  # the scene from the card

"""launch/quadrotor.launch.py's event handling, without the launch packages (they have no wheel here):
the file runs against stand-ins of the launch API that record what it builds, and its OnProcessExit
handler is called as launch calls it. The real `ros2 launch` check is done by hand (see the report)."""

import types

import pytest
from ros_harness import load_launch_file


@pytest.fixture()
def launch_file(monkeypatch, tmp_path):
    return load_launch_file(monkeypatch, tmp_path, "quadrotor.launch.py")


def _exit(returncode: int, shutting_down: bool = False):
    event = types.SimpleNamespace(returncode=returncode, action=types.SimpleNamespace(name="quadrotor_sim-1"))
    return event, types.SimpleNamespace(is_shutdown=shutting_down)


def test_every_node_ends_the_launch_when_it_exits(launch_file):
    description = launch_file["generate_launch_description"]()
    nodes = [e for e in description.args[0] if type(e).__name__ == "Node"]
    executables = {n.kwargs["executable"] for n in nodes}
    assert executables == {"quadrotor_sim", "trajectory", "safety_filter", "policy", "graph"}
    assert all(n.kwargs.get("on_exit") is launch_file["end_launch"] for n in nodes)


def test_a_node_that_fails_makes_the_launch_fail_and_a_clean_exit_does_not(launch_file):
    end = launch_file["end_launch"]
    actions = end(*_exit(1))  # preset:=foo, a negative rate, a missing policy: the node exits 1
    assert type(actions[0]).__name__ == "Shutdown" and "exited with status 1" in actions[0].kwargs["reason"]
    fail = actions[1]
    assert type(fail).__name__ == "OpaqueFunction"
    with pytest.raises(RuntimeError, match="quadrotor_sim-1 exited with status 1"):
        fail.kwargs["function"](None)  # what makes `ros2 launch` exit non-zero
    assert [type(a).__name__ for a in end(*_exit(0))] == ["Shutdown"]
    # Nodes stopping because the launch is shutting down (Ctrl-C) are no failure.
    assert [type(a).__name__ for a in end(*_exit(-2, shutting_down=True))] == ["Shutdown"]

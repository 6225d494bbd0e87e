"""``swarm_agent``: one swarm agent in one process: its vehicle (``swarm_sim``) and its safety layer
(``swarm_filter``), spun by one executor in the agent's namespace.

The filter is built first, so once an agent's odometry is on the graph its filter is up: a
neighbour that waits for every agent's odometry (``agents``) starts only when every filter runs. One
process per agent instead of two also halves the Python interpreters competing for the CPU.
"""

from __future__ import annotations

from robo.ros.common import main_for


def main(args: list[str] | None = None) -> int:
    from robo.ros.swarm_filter_node import SwarmFilterNode
    from robo.ros.swarm_sim_node import SwarmAgentSim

    return main_for([SwarmFilterNode, SwarmAgentSim], args)


if __name__ == "__main__":
    raise SystemExit(main())

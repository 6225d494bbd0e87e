"""ROS 2 nodes (rclpy): quadrotor_sim, hand_sim, policy (any card, with the watchdog), safety_filter,
trajectory.

The only room that imports rclpy. Nodes are thin: parameters, topics, QoS, watchdog timing; the logic
lives in :mod:`robo.runtime`. The simulator nodes wrap the numpy/MuJoCo parts of :mod:`sim.quadrotor`
and :mod:`sim.hand` (no torch) to stand in for a vehicle or a hand.
"""

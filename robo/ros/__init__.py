"""ROS 2 nodes (rclpy): quadrotor_sim, policy (with the watchdog), safety_filter, trajectory.

The only room that imports rclpy. Nodes are thin: parameters, topics, QoS, watchdog timing; the logic
lives in :mod:`robo.runtime`. The simulator node is the one exception to "no torch": it wraps
:mod:`sim.quadrotor` to stand in for a vehicle.
"""

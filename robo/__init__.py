"""robo: train control policies in simulation, keep them safe, ship them to ROS 2 and microcontrollers."""

__version__ = "0.1.0"

"""Robot side: the world file, the robot protocol, the embedded simulator, ROS 2."""

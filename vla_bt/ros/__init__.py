"""ROS 2: the tree as a node, the simulated robot as a node, and generic ROS behaviours.

Importing this package does not import rclpy; its modules do.
"""

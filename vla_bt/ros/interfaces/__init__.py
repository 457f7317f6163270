"""ROS 2 interface packages the project keeps for machines without them (``nav2_msgs``, ``control_msgs``).

Built into the Python environment by ``python -m vla_bt.ros.interfaces.build``;
a ROS 2 installation's own packages are always preferred.
"""

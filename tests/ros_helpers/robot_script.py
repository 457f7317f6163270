"""Drive a ``Ros2Robot`` through a list of steps and print what happens, one JSON line per step.

    python tests/ros_helpers/robot_script.py [--ros-config FILE] STEPS_JSON

Steps: ``["perceive", N]`` waits until N objects are perceived (or people, with
``["perceive_humans", N]``) and prints the perception and state;
``["gone", ID]`` waits until object ID is no longer perceived;
``["watch", SECONDS]`` prints the perception and state whenever they change;
``["navigate", [x, y, theta]]``, ``["grasp", ID]``, ``["place", [x, y, theta]]``,
``["hand_over", ID]`` run a command to its end and print its outcome.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from vla_bt.robot.protocol import ActionState
from vla_bt.robot.ros2 import Ros2Robot
from vla_bt.ros.config import load_ros2_config


def snapshot(robot: Ros2Robot) -> dict[str, Any]:
    seen, state = robot.perceive(), robot.state()
    return {"objects": sorted(seen.objects, key=lambda o: o["id"]),
            "humans": sorted(seen.humans, key=lambda h: h["id"]), "pose": [round(v, 3) for v in state.pose],
            "holding": state.holding, "battery": state.battery}


def emit(**record: Any) -> None:
    sys.stdout.write(json.dumps(record) + "\n")
    sys.stdout.flush()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--ros-config", default="config")
    parser.add_argument("steps")
    args = parser.parse_args()
    robot = Ros2Robot(load_ros2_config(args.ros_config))
    robot.setup(timeout=robot.config.server_timeout_s)
    emit(step="setup")
    try:
        for op, arg in json.loads(args.steps):
            if op in ("perceive", "perceive_humans"):
                deadline = time.monotonic() + 20
                field = "objects" if op == "perceive" else "humans"
                while len(getattr(robot.perceive(), field)) < arg and time.monotonic() < deadline:
                    time.sleep(0.02)
                emit(step=op, **snapshot(robot))
            elif op == "gone":
                deadline = time.monotonic() + 10
                while arg in [o["id"] for o in robot.perceive().objects] and time.monotonic() < deadline:
                    time.sleep(0.02)
                emit(step=op, **snapshot(robot))
            elif op == "watch":
                last, deadline = None, time.monotonic() + arg
                while time.monotonic() < deadline:
                    now = snapshot(robot)
                    if now != last:
                        emit(step=op, **now)
                        last = now
                    time.sleep(0.02)
            else:
                handle = getattr(robot, op)(tuple(arg) if isinstance(arg, list) else arg)
                while handle.state is ActionState.RUNNING:
                    time.sleep(0.02)
                emit(step=op, state=handle.state.value, message=handle.message, **snapshot(robot))
    finally:
        robot.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())

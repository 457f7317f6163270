"""``vla-bt run TREE --robot ros2 --json``, through the Python API.

Builds the run as the command line does (``vla_bt.app.assemble``) with a
``Ros2Robot`` on ``config/ros2.yaml``, whose e-stop topic feeds the run's
``EStop``; prints the result as ``--json`` does.

    python tests/ros_helpers/run_ros2.py trees/clear_table.yaml --say yes --say yes
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from vla_bt.app import assemble
from vla_bt.blackboard import read
from vla_bt.guards.audit import AuditLog
from vla_bt.guards.estop import EStop
from vla_bt.guards.validation import load_safety_policy
from vla_bt.robot.ros2 import ROBOT_NAVIGATION, Ros2Robot
from vla_bt.robot.world import load_world
from vla_bt.ros.config import load_ros2_config
from vla_bt.speech import ScriptedUtterances
from vla_bt.tree.loader import TreeLoader
from vla_bt.tree.registry import Registry


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("tree")
    parser.add_argument("--say", action="append", default=[])
    parser.add_argument("--audit")
    parser.add_argument("--max-seconds", type=float, default=60.0)
    args = parser.parse_args()
    config = Path("config")
    registry = Registry.default()
    loaded = TreeLoader(registry).load(args.tree)
    world = load_world(config / "world.yaml")
    estop = EStop()
    robot = Ros2Robot(load_ros2_config(config), estop=estop)
    run = assemble(loaded, registry, world=world, utterances=ScriptedUtterances(args.say), robot=robot,
                   audit=AuditLog(args.audit) if args.audit else AuditLog(), max_seconds=args.max_seconds,
                   estop=estop, policy=load_safety_policy(config))
    feedback: list[float] = []  # distance remaining, from Nav2 feedback, as the tree saw it

    def seen(_tree: object) -> None:
        navigation = read(ROBOT_NAVIGATION)
        if isinstance(navigation, dict) and navigation.get("distance_remaining") not in feedback[-1:]:
            feedback.append(navigation["distance_remaining"])
    loaded.tree.add_post_tick_handler(seen)
    with run.runner.signals():
        result = run.execute()
    data = result.to_json()
    data["navigation_feedback"] = feedback
    print(json.dumps(data))
    return result.exit_code


if __name__ == "__main__":
    sys.exit(main())

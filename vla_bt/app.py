"""Putting a run together: tree, robot, model, audit log, utterances → a ready ``Runner``.

The command line uses this; so can programs that embed vla-bt::

    loaded = load_tree("trees/assistant.yaml")
    run = assemble(loaded, Registry.default(), world=load_world("config/world.yaml"),
                   utterances=ScriptedUtterances(["bring me the red cup"]))
    result = run.execute()
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from vla_bt import blackboard
from vla_bt.guards.audit import AuditLog
from vla_bt.guards.estop import EStop
from vla_bt.guards.validation import PlanValidator, SafetyPolicy
from vla_bt.leaves.ask import Ask
from vla_bt.llm.session import ModelSession
from vla_bt.robot.gate import CommandGate
from vla_bt.robot.publisher import RobotPublisher
from vla_bt.robot.world import World
from vla_bt.tree.loader import LoadedTree
from vla_bt.tree.registry import Registry
from vla_bt.tree.runner import Runner, RunResult


def make_robot(kind: str, world: World, time_scale: float = 1.0, seed: int = 0, estop: EStop | None = None,
               config: Any = None) -> Any:
    """The robot backend named by ``--robot``.

    Args:
        kind: ``sim`` (the embedded simulator) or ``ros2`` (``vla_bt.robot.ros2.Ros2Robot``)
        world: the world (the simulator's)
        time_scale: the simulator's speed-up
        seed: the simulator's seed
        estop: the run's e-stop input, which the ROS robot's e-stop topic presses
        config: the configuration directory (or a ``ros2.yaml``) for the ROS robot

    Raises:
        ValueError: an unknown kind
    """
    if kind == "sim":
        from vla_bt.robot.sim import SimRobot

        return SimRobot(world, time_scale=time_scale, seed=seed)
    if kind == "ros2":
        from vla_bt.robot.ros2 import Ros2Robot
        from vla_bt.ros.config import load_ros2_config

        return Ros2Robot(load_ros2_config(config), estop=estop)
    raise ValueError(f"unknown --robot '{kind}' (expected sim or ros2)")


@dataclass
class Run:
    """A run ready to execute, and what it is made of.

    Args:
        runner: the tick loop
        robot: the command gate around the backend
        audit: the audit log
        session: the model session (``None`` when the tree asks no model)
    """

    runner: Runner
    robot: CommandGate
    audit: AuditLog
    session: ModelSession | None = None
    setup_timeout: float = 15.0
    extras: dict[str, Any] = field(default_factory=dict)

    def execute(self) -> RunResult:
        """Connect the robot, run the tree, stop safely if interrupted, and report."""
        self.robot.setup(self.setup_timeout)
        publisher = self.extras["publisher"]
        publisher.publish()
        self.extras["estop"].publish()
        try:
            result = self.runner.run()
        finally:
            self.robot.shutdown()
            if self.session is not None:
                self.session.close()
            self.audit.close()
        result.commands = [c.to_json() for c in self.robot.commands]
        result.trips = self.audit.of_kind("guard_trip")
        return result


def assemble(loaded: LoadedTree, registry: Registry, *, world: World, utterances: Any,
             robot: Any = None, session: ModelSession | None = None, audit: AuditLog | None = None,
             rate_hz: float = 10.0, max_seconds: float | None = None, estop: EStop | None = None,
             policy: SafetyPolicy | None = None, perception: str = "truth") -> Run:
    """Wire a loaded tree to a robot, a model and the audit log.

    Args:
        loaded: the tree
        registry: node types (ExecutePlan builds skill leaves from it)
        world: the world file (places for grounding, the simulator's world)
        utterances: where Listen and Confirm hear the user
        robot: the robot backend (the simulator on ``world`` by default)
        session: the model session, needed when the tree contains ``Ask``
        audit: the audit log (in memory by default)
        rate_hz: tick rate
        max_seconds: time limit
        estop: the emergency-stop input (one that is never pressed by default)
        policy: plan validation settings (``config/safety.yaml``; defaults if omitted)
        perception: ``truth`` (the backend's own object list) or ``camera`` (only what the robot's camera
            detected; docs/vision.md)
    """
    audit = audit or AuditLog()
    robot = robot if robot is not None else make_robot("sim", world)
    if perception == "camera":
        from vla_bt.perception import camera_robot

        robot = camera_robot(robot, world)
    elif perception != "truth":
        raise ValueError(f"unknown perception '{perception}' (expected truth or camera)")
    # The rate limit counts the robot's time: a simulator run faster than real time may command faster.
    clock = (lambda: robot.sim_time) if hasattr(robot, "sim_time") else time.monotonic
    validator = PlanValidator(world, policy or SafetyPolicy(), read=blackboard.read, clock=clock)
    gate = CommandGate(robot, audit, checks=validator.checks())
    publisher = RobotPublisher(gate)
    runner = Runner(loaded, rate_hz=rate_hz, max_seconds=max_seconds, setup_kwargs={
        "utterances": utterances, "llm": session, "robot": gate, "world": world, "audit": audit,
        "registry": registry, "perception": perception,
    })
    if getattr(utterances, "wake", False) is None:
        utterances.wake = runner.wake  # a recognised utterance is acted on at once, not at the next period
    estop = estop or EStop()
    estop.on_change = runner.wake  # a pressed e-stop is acted on at once, not at the next period
    loaded.tree.add_pre_tick_handler(estop.pre_tick)
    loaded.tree.add_pre_tick_handler(publisher.pre_tick)
    if perception == "camera":
        loaded.tree.add_pre_tick_handler(robot.pre_tick)  # after the publisher: the latest frame's time
    runner.on_interrupt.append(lambda: gate.safe_stop("run interrupted"))
    if hasattr(gate.robot, "on_perception"):
        gate.robot.on_perception = runner.wake  # a hazard is acted on at once, not at the next period
    return Run(runner, gate, audit, session, extras={"publisher": publisher, "estop": estop})


def needs_model(loaded: LoadedTree) -> bool:
    """Whether the tree talks to a model (a tree without ``Ask`` needs no backend)."""
    return any(isinstance(node, Ask) for node in loaded.root.iterate())

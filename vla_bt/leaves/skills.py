"""Skill leaves: one robot action each, over the robot protocol.

Each follows BehaviorTree.CPP's onStart / onRunning / onHalted trio in
py_trees' terms: ``initialise()`` grounds the parameters and sends the
command (through the command gate, which audits it first), ``update()`` polls
the action handle without blocking, ``terminate()`` cancels the action when
the node is halted (preempted, a guard tripped, Ctrl-C).

Setup (``setup(robot=..., world=...)``): ``robot`` is the command gate,
``world`` gives the named places.
"""

from __future__ import annotations

from typing import Any, ClassVar

import py_trees

from vla_bt import blackboard as keys
from vla_bt.intent.grounding import (
    AmbiguousError,
    Context,
    Scene,
    UnresolvedError,
    approach_pose,
    ground_human,
    ground_object,
    ground_target,
)
from vla_bt.robot.gate import CommandGate, CommandRefusedError
from vla_bt.robot.protocol import ActionHandle, ActionState
from vla_bt.tree.declared import Leaf, Param, ParamUnavailableError

Status = py_trees.common.Status
TARGET = {
    "anyOf": [
        {"type": "string", "minLength": 1, "maxLength": 200},
        {"type": "array", "items": {"type": "number"}, "minItems": 3, "maxItems": 3},
    ]
}
REFERENCE = {"type": "string", "minLength": 1, "maxLength": 200}
OBJECT_STANDOFF_M = 0.5  # stop this far from an object, within the gripper's reach
HUMAN_STANDOFF_M = 0.8  # and further from a person
SCENE_KEYS = (keys.ROBOT_POSE, keys.ROBOT_HOLDING, keys.PERCEPTION_OBJECTS, keys.PERCEPTION_HUMANS,
              keys.DIALOGUE_CONTEXT)
PROBLEMS = (UnresolvedError, AmbiguousError, ParamUnavailableError, CommandRefusedError)


class SceneAware(Leaf):
    """Base of leaves that ground references: reads the scene and the dialogue context.

    ``setup(world=...)`` gives the named places; the rest comes from the blackboard.
    """

    READS: ClassVar[tuple[str, ...]] = SCENE_KEYS

    def __init__(self, name: str | None = None, **params: Any):
        super().__init__(name, **params)
        self.places: dict[str, Any] = {}

    def setup(self, **kwargs: Any) -> None:
        world = kwargs.get("world")
        if world is not None:
            self.places = dict(world.places)

    def _get(self, key: str, default: Any = None) -> Any:
        return self.blackboard.get(key) if self.blackboard.exists(key) else default

    def scene(self) -> Scene:
        """What the robot perceives now, for grounding."""
        pose = self._get(keys.ROBOT_POSE) or (0.0, 0.0, 0.0)
        return Scene(objects=self._get(keys.PERCEPTION_OBJECTS) or [], humans=self._get(keys.PERCEPTION_HUMANS) or [],
                     places=self.places, holding=self._get(keys.ROBOT_HOLDING), robot_pose=tuple(pose))

    def context(self) -> Context:
        return Context.from_json(self._get(keys.DIALOGUE_CONTEXT))


class SkillLeaf(SceneAware):
    """Base of the skill leaves: sends one command, follows it, cancels it when halted.

    Subclasses implement ``start()``, which grounds the parameters and returns
    the action handle (or ``None`` for an instant action).

    Returns:
        RUNNING while the action runs; SUCCESS when it succeeded; FAILURE with
        the reason when it cannot be grounded, is refused, or fails
    """

    step_id: str | None = None  # set by ExecutePlan: the plan step this leaf carries out

    def __init__(self, name: str | None = None, **params: Any):
        super().__init__(name, **params)
        self.robot: CommandGate | None = None
        self._handle: ActionHandle | None = None
        self._problem: str | None = None

    def setup(self, **kwargs: Any) -> None:
        super().setup(**kwargs)
        self.robot = kwargs.get("robot", self.robot)

    def start(self, robot: CommandGate) -> ActionHandle | None:
        raise NotImplementedError

    def initialise(self) -> None:
        self._handle, self._problem = None, None
        if self.robot is None:
            self._problem = "no robot backend (run with --robot sim or ros2)"
            return
        try:
            self._handle = self.start(self.robot)
        except PROBLEMS as problem:
            self._problem = str(problem)

    def update(self) -> Status:
        if self._problem is not None:
            self.feedback_message = self._problem
            return Status.FAILURE
        if self._handle is None:
            return Status.SUCCESS
        state = self._handle.state
        self.feedback_message = self._handle.message or f"{int(self._handle.progress * 100)}%"
        if state is ActionState.RUNNING:
            return Status.RUNNING
        return Status.SUCCESS if state is ActionState.SUCCEEDED else Status.FAILURE

    def terminate(self, new_status: Status) -> None:
        if self._handle is not None and self._handle.state is ActionState.RUNNING:
            # Halted (a guard, a failed sibling, a lost model, Ctrl-C): the robot must not go on with it.
            self._handle.cancel()
            if self.robot is not None:
                self.robot.safe_stop(f"{self.name} halted", step=self.step_id)


class Navigate(SkillLeaf):
    """Drive to a place, an object, a person or a pose [x, y, theta].

    Args:
        target: place name ("kitchen"), object reference ("the red cup"), person ("alice", "user")
            or pose [x, y, theta] in metres and radians; objects and people are approached, not run into
        speed: m/s, at most the robot's limit; ``null`` uses the robot's default
    """

    DESCRIPTION = "Drive to a place, an object or a pose [x, y, theta]."
    PARAMS = {
        "target": Param(TARGET, "place name, object reference or [x, y, theta] (m, m, rad)"),
        "speed": Param({"type": ["number", "null"], "exclusiveMinimum": 0, "maximum": 10},
                       "m/s; null uses the robot's default", default=None),
    }
    TOOL = "navigate"

    def start(self, robot: CommandGate) -> ActionHandle:
        scene = self.scene()
        target = ground_target(self.param("target"), scene, self.context())
        pose = target.pose
        if target.kind in ("object", "human"):
            standoff = OBJECT_STANDOFF_M if target.kind == "object" else HUMAN_STANDOFF_M
            pose = approach_pose(scene.robot_pose, target.pose, standoff)
        speed = self.param("speed")
        return robot.navigate(pose, None if speed is None else float(speed), step=self.step_id,
                              target=target.id or target.label)


class Grasp(SkillLeaf):
    """Pick up an object within reach.

    Args:
        object: reference ("red cup", "cup_red", "it")
    """

    DESCRIPTION = 'Pick up an object by reference ("red cup", "cup_red", "it").'
    PARAMS = {"object": Param(REFERENCE, "object reference")}
    TOOL = "grasp"

    def start(self, robot: CommandGate) -> ActionHandle:
        target = ground_object(str(self.param("object")), self.scene(), self.context())
        return robot.grasp(str(target.id), step=self.step_id)


class Place(SkillLeaf):
    """Put the held object down at a place or on an object ("on the table").

    Args:
        target: place name or object reference
    """

    DESCRIPTION = 'Put the held object down at a place or on an object ("on the table").'
    PARAMS = {"target": Param(REFERENCE, "place name or object reference")}
    TOOL = "place"

    def start(self, robot: CommandGate) -> ActionHandle:
        target = ground_target(self.param("target"), self.scene(), self.context())
        return robot.place(target.pose, step=self.step_id, target=target.id or target.label)


class HandOver(SkillLeaf):
    """Hand the held object to a person within reach.

    Args:
        to: human id, or "user" for the person who gives the instructions
    """

    DESCRIPTION = "Hand the held object to a person."
    PARAMS = {"to": Param(REFERENCE, 'human id or "user"')}
    TOOL = "hand_over"

    def start(self, robot: CommandGate) -> ActionHandle:
        human = ground_human(str(self.param("to")), self.scene())
        return robot.hand_over(str(human.id), step=self.step_id)


class Stop(SkillLeaf):
    """Stop the robot safely, now: every running action is cancelled. Always succeeds."""

    DESCRIPTION = "Stop the robot safely, now."
    TOOL = "stop"

    def start(self, robot: CommandGate) -> None:
        robot.safe_stop("stop requested", step=self.step_id)
        return None

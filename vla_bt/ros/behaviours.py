"""Generic ROS 2 behaviours for YAML trees, for any interface type named as text.

=========================  =========================================================================
``RosActionClient``        send a goal (constant, or ``{key: /bb/key}``) to an action server; feedback
                           and result onto the blackboard; the goal is cancelled when the node is halted
``RosTopicToBlackboard``   the latest message of a topic (or one field of it) onto a blackboard key
``RosBlackboardToTopic``   a value (constant or ``{key: ...}``) published as a message
``RosServiceCall``         call a service with a request (constant or ``{key: ...}``); response onto the
                           blackboard
=========================  =========================================================================

Types are written ``pkg/msg/Name``, ``pkg/srv/Name``, ``pkg/action/Name``;
values as YAML mappings of the message's fields (nested mappings for nested
messages, lists for sequences), or a bare value for a one-field message
(``std_msgs/msg/String``: ``"hello"``). Messages go onto the blackboard as
plain data (dicts and lists).

As in py_trees_ros, nothing touches ROS before ``setup()``: trees with these
nodes render and validate offline. ``setup()`` takes the node from
``setup(node=...)`` (``vla-bt ros`` gives its node), else the ROS robot's, else
the process's shared node. Problems (an unknown type, a server that never
comes, a bad value) make the node fail with the reason; they do not stop
the tree from being set up.
"""

from __future__ import annotations

import time
from typing import Any, ClassVar

import py_trees

from vla_bt.robot.protocol import ActionState
from vla_bt.tree.declared import Leaf, Param, ParamUnavailableError

from .messages import TYPE_NAME, InterfaceError, field_value, from_plain, interface_type, qos, to_plain
from .node import NodeHost, shared_host

Status = py_trees.common.Status
KEY = {"type": ["string", "null"], "pattern": "^/"}
TYPE = {"type": "string", "pattern": TYPE_NAME}
NAME = {"type": "string", "minLength": 1}


def _fixed(schema: dict[str, Any], description: str, default: Any = ...) -> Param:
    """A parameter fixed when the tree is built (not readable from the blackboard)."""
    if default is ...:
        return Param(schema, description, runtime=False)
    return Param(schema, description, default=default, runtime=False)


class RosLeaf(Leaf):
    """Base of the generic ROS behaviours: finds the node in ``setup()``, lets go of it in ``shutdown()``.

    Subclasses name the blackboard keys they write in ``KEY_PARAMS``.
    """

    KEY_PARAMS: ClassVar[tuple[str, ...]] = ()

    def __init__(self, name: str | None = None, **params: Any):
        super().__init__(name, **params)
        for param in self.KEY_PARAMS:
            if self.params.get(param):
                self.blackboard.register_key(self.params[param], access=py_trees.common.Access.WRITE)
        self.node: Any = None
        self.host: NodeHost | None = None
        self._acquired = False
        self._problem: str | None = None

    def setup(self, **kwargs: Any) -> None:
        """Take the node (``node=``, the ROS robot's, or the shared one) and create the ROS entities."""
        self.host = shared_host()  # where goals in flight are registered (vla-bt ros makes its host the shared one)
        self.node = kwargs.get("node")
        robot = kwargs.get("robot")
        robot = getattr(robot, "robot", robot)  # the command gate wraps the backend
        if self.node is None and getattr(robot, "node", None) is not None:
            self.node = robot.node
        if self.node is None:
            self.node, self._acquired = self.host.acquire(), True
        try:
            self.create()
        except InterfaceError as error:
            self._problem = str(error)

    def create(self) -> None:
        """Create subscriptions, publishers or clients (``self.node`` is set)."""

    def shutdown(self) -> None:
        if self._acquired and self.host is not None:
            self._acquired = False
            self.host.release()

    def write(self, param: str, value: Any) -> None:
        """Write ``value`` to the blackboard key given in parameter ``param``, if one was given."""
        key = self.params.get(param)
        if key:
            self.blackboard.set(key, value)

    def failed(self, message: str) -> Status:
        self.feedback_message = message
        return Status.FAILURE


class RosActionClient(RosLeaf):
    """Send a goal to a ROS 2 action server and wait for its result.

    Args:
        name: node name
        action_type: e.g. ``nav2_msgs/action/NavigateToPose``, ``test_msgs/action/Fibonacci``
        action_name: the action's name, e.g. ``navigate_to_pose``
        goal: the goal's fields (a mapping), or ``{key: /bb/key}`` for a goal kept on the blackboard
            (a mapping or a goal message)
        feedback_key: blackboard key for the latest feedback (plain data), or null
        result_key: blackboard key for the result (plain data), or null
        server_timeout: seconds to wait for the server before failing

    Blackboard:
        reads ``goal``'s key when remapped; writes ``feedback_key`` and ``result_key``

    Returns:
        RUNNING while waiting for the server, the acceptance and the result; SUCCESS when the goal
        succeeded; FAILURE when it was rejected, aborted or cancelled, or the server did not come.
        Halting it (a guard, a preempting sibling, Ctrl-C) cancels the goal.
    """

    DESCRIPTION = "Send a goal to a ROS 2 action server; succeed when it succeeds."
    PARAMS = {
        "action_type": _fixed(TYPE, "action type, e.g. nav2_msgs/action/NavigateToPose"),
        "action_name": _fixed(NAME, "action name, e.g. navigate_to_pose"),
        "goal": Param({"type": "object"}, "goal fields; {key: /bb/key} reads the goal from the blackboard",
                      default={}),
        "feedback_key": _fixed(KEY, "blackboard key for the latest feedback", None),
        "result_key": _fixed(KEY, "blackboard key for the result", None),
        "server_timeout": _fixed({"type": "number", "exclusiveMinimum": 0}, "seconds to wait for the server", 5.0),
    }
    KEY_PARAMS = ("feedback_key", "result_key")

    def __init__(self, name: str | None = None, **params: Any):
        super().__init__(name, **params)
        self.client: Any = None
        self._type: Any = None
        self._goal: Any = None
        self._action: Any = None
        self._result: Any = None
        self._deadline = 0.0

    def create(self) -> None:
        from rclpy.action import ActionClient

        self._type = interface_type(self.params["action_type"], "action")
        self.client = ActionClient(self.node, self._type, self.params["action_name"])

    def initialise(self) -> None:
        self._action, self._result, self._goal = None, None, None
        self._deadline = time.monotonic() + float(self.params["server_timeout"])
        if self._problem is None and self._type is not None:
            try:
                self._goal = from_plain(self._type.Goal, self.param("goal"), "goal")
            except (InterfaceError, ParamUnavailableError) as error:
                self._goal, self.feedback_message = None, str(error)

    def update(self) -> Status:
        from .actions import RosAction

        if self._problem is not None:
            return self.failed(self._problem)
        if self._goal is None:
            return Status.FAILURE
        if self._action is None:
            if not self.client.server_is_ready():
                if time.monotonic() > self._deadline:
                    return self.failed(f"action server '{self.params['action_name']}' not available")
                self.feedback_message = f"waiting for action server '{self.params['action_name']}'"
                return Status.RUNNING
            self._action = RosAction(self.host, "action", self.params["action_name"], "goal sent",
                                     on_end=lambda _state, result: setattr(self, "_result", result))
            self._action.send(self.client, self._goal, lambda _fb: (0.0, "running"))
        action = self._action
        if action.feedback is not None:
            self.write("feedback_key", to_plain(action.feedback))
        if action.state is ActionState.RUNNING:
            self.feedback_message = action.message
            return Status.RUNNING
        if self._result is not None:
            self.write("result_key", to_plain(self._result))
        self.feedback_message = action.message or action.state.value
        return Status.SUCCESS if action.state is ActionState.SUCCEEDED else Status.FAILURE

    def terminate(self, new_status: Status) -> None:
        if self._action is not None and self._action.state is ActionState.RUNNING:
            self._action.cancel("halted")


class RosTopicToBlackboard(RosLeaf):
    """Write the latest message of a topic (or one field of it) to the blackboard.

    Args:
        name: node name
        topic: topic name
        msg_type: e.g. ``std_msgs/msg/String``
        key: blackboard key to write
        field: dotted field path inside the message (e.g. ``pose.position``); "" for the whole message
        fresh: only a message that arrived after this node started counts
        wait: false fails at once when no message is there (a condition)
        reliable: reliable QoS (false: best effort, which also hears best-effort publishers)
        latched: transient-local QoS (also receives a latched publisher's last message)

    Blackboard:
        writes ``key``: the message or field as plain data

    Returns:
        SUCCESS once a message was written; RUNNING while none came (FAILURE with ``wait: false``)
    """

    DESCRIPTION = "Write the latest message of a topic (or a field of it) to the blackboard."
    PARAMS = {
        "topic": _fixed(NAME, "topic name"),
        "msg_type": _fixed(TYPE, "message type, e.g. std_msgs/msg/String"),
        "key": _fixed({"type": "string", "pattern": "^/"}, "blackboard key to write"),
        "field": _fixed({"type": "string"}, "dotted field path inside the message; \"\" for all of it", ""),
        "fresh": _fixed({"type": "boolean"}, "only messages that arrive after the node started count", False),
        "wait": _fixed({"type": "boolean"}, "false: fail at once when there is no message", True),
        "reliable": _fixed({"type": "boolean"}, "reliable QoS (false: best effort)", True),
        "latched": _fixed({"type": "boolean"}, "transient-local QoS", False),
    }
    KEY_PARAMS = ("key",)

    def __init__(self, name: str | None = None, **params: Any):
        super().__init__(name, **params)
        self._latest: tuple[float, Any] | None = None
        self._started = 0.0
        self.subscription: Any = None

    def create(self) -> None:
        p = self.params
        self.subscription = self.node.create_subscription(
            interface_type(p["msg_type"], "msg"), p["topic"],
            lambda message: setattr(self, "_latest", (time.monotonic(), message)),
            qos(reliable=p["reliable"], latched=p["latched"]))

    def initialise(self) -> None:
        self._started = time.monotonic()

    def update(self) -> Status:
        if self._problem is not None:
            return self.failed(self._problem)
        latest = self._latest
        if latest is None or (self.params["fresh"] and latest[0] < self._started):
            self.feedback_message = f"no message on {self.params['topic']} yet"
            return Status.RUNNING if self.params["wait"] else Status.FAILURE
        try:
            value = to_plain(field_value(latest[1], self.params["field"]))
        except InterfaceError as error:
            return self.failed(str(error))
        self.write("key", value)
        self.feedback_message = f"{self.params['key']} ← {self.params['topic']}"
        return Status.SUCCESS


class RosBlackboardToTopic(RosLeaf):
    """Publish a value (a constant, or a blackboard key's) as a message.

    Args:
        name: node name
        topic: topic name
        msg_type: e.g. ``std_msgs/msg/String``
        value: the message's fields (or the bare value of a one-field message); ``{key: /bb/key}``
            publishes what the blackboard holds
        latched: transient-local QoS (late subscribers get the last message)
        wait_for_subscribers: seconds to wait (RUNNING) for a subscriber before publishing anyway; 0: publish at once

    Blackboard:
        reads ``value``'s key when remapped

    Returns:
        SUCCESS once published; FAILURE when the key holds nothing or the value does not fit the type
    """

    DESCRIPTION = "Publish a value (constant or from the blackboard) as a message on a topic."
    PARAMS = {
        "topic": _fixed(NAME, "topic name"),
        "msg_type": _fixed(TYPE, "message type, e.g. std_msgs/msg/String"),
        "value": Param({}, "the message's fields or a one-field message's value; {key: /bb/key} for the "
                           "blackboard's"),
        "latched": _fixed({"type": "boolean"}, "transient-local QoS (late subscribers get the last message)", False),
        "wait_for_subscribers": _fixed({"type": "number", "minimum": 0},
                                       "seconds to wait for a subscriber before publishing anyway", 0.0),
    }

    def __init__(self, name: str | None = None, **params: Any):
        super().__init__(name, **params)
        self.publisher: Any = None
        self._type: Any = None
        self._deadline = 0.0

    def create(self) -> None:
        self._type = interface_type(self.params["msg_type"], "msg")
        self.publisher = self.node.create_publisher(self._type, self.params["topic"],
                                                    qos(latched=self.params["latched"]))

    def initialise(self) -> None:
        self._deadline = time.monotonic() + float(self.params["wait_for_subscribers"])

    def update(self) -> Status:
        if self._problem is not None:
            return self.failed(self._problem)
        if self.publisher.get_subscription_count() == 0 and time.monotonic() < self._deadline:
            self.feedback_message = f"waiting for a subscriber on {self.params['topic']}"
            return Status.RUNNING
        try:
            message = from_plain(self._type, self.param("value"), "value")
        except (InterfaceError, ParamUnavailableError) as error:
            return self.failed(str(error))
        self.publisher.publish(message)
        self.feedback_message = f"published on {self.params['topic']}"
        return Status.SUCCESS


class RosServiceCall(RosLeaf):
    """Call a ROS 2 service and wait for the response.

    Args:
        name: node name
        service_type: e.g. ``std_srvs/srv/SetBool``
        service: the service's name
        request: the request's fields; ``{key: /bb/key}`` for a request kept on the blackboard
        result_key: blackboard key for the response (plain data), or null
        timeout: seconds to wait for the service and its response

    Blackboard:
        reads ``request``'s key when remapped; writes ``result_key``

    Returns:
        RUNNING until the response; SUCCESS with it, but FAILURE when the response has a boolean
        ``success`` field that is false (``std_srvs`` SetBool, Trigger …, its ``message`` as the
        reason), when the service does not come or answer in time, or the request does not fit
    """

    DESCRIPTION = "Call a ROS 2 service; fail when it does not answer or answers success: false."
    PARAMS = {
        "service_type": _fixed(TYPE, "service type, e.g. std_srvs/srv/SetBool"),
        "service": _fixed(NAME, "service name"),
        "request": Param({"type": "object"}, "request fields; {key: /bb/key} reads them from the blackboard",
                         default={}),
        "result_key": _fixed(KEY, "blackboard key for the response", None),
        "timeout": _fixed({"type": "number", "exclusiveMinimum": 0}, "seconds to wait for service and answer", 5.0),
    }
    KEY_PARAMS = ("result_key",)

    def __init__(self, name: str | None = None, **params: Any):
        super().__init__(name, **params)
        self.client: Any = None
        self._type: Any = None
        self._request: Any = None
        self._future: Any = None
        self._deadline = 0.0

    def create(self) -> None:
        self._type = interface_type(self.params["service_type"], "srv")
        self.client = self.node.create_client(self._type, self.params["service"])

    def initialise(self) -> None:
        self._future, self._request = None, None
        self._deadline = time.monotonic() + float(self.params["timeout"])
        if self._problem is None and self._type is not None:
            try:
                self._request = from_plain(self._type.Request, self.param("request"), "request")
            except (InterfaceError, ParamUnavailableError) as error:
                self.feedback_message = str(error)

    def update(self) -> Status:
        if self._problem is not None:
            return self.failed(self._problem)
        if self._request is None:
            return Status.FAILURE
        name = self.params["service"]
        if self._future is None:
            if self.client.service_is_ready():
                self._future = self.client.call_async(self._request)
            elif time.monotonic() > self._deadline:
                return self.failed(f"service '{name}' not available")
            else:
                self.feedback_message = f"waiting for service '{name}'"
                return Status.RUNNING
        if not self._future.done():
            if time.monotonic() > self._deadline:
                self.client.remove_pending_request(self._future)
                self._future = None
                return self.failed(f"service '{name}' did not answer within {self.params['timeout']:g} s")
            self.feedback_message = f"waiting for '{name}' to answer"
            return Status.RUNNING
        response = self._future.result()
        self._future = None
        self.write("result_key", to_plain(response))
        if getattr(response, "success", True) is False:
            return self.failed(f"'{name}' answered: {getattr(response, 'message', '') or 'not successful'}")
        self.feedback_message = f"'{name}' answered"
        return Status.SUCCESS

    def terminate(self, new_status: Status) -> None:
        if self._future is not None and not self._future.done():
            self.client.remove_pending_request(self._future)
        self._future = None


BEHAVIOURS = (RosActionClient, RosTopicToBlackboard, RosBlackboardToTopic, RosServiceCall)


def register(registry: Any) -> None:
    """Register the generic ROS behaviours (idempotent; works with a ``Registry`` or a plugin registrar).

    Args:
        registry: ``vla_bt.tree.registry.Registry`` (or what a plugin's ``register`` receives)
    """
    for cls in BEHAVIOURS:
        get = getattr(registry, "get", None)
        if get is not None and get(cls.__name__) is not None:
            continue
        registry.add_class(cls)

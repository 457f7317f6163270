"""The embedded simulator: kinematics, path planning, gripper, battery, stops, time.

Times are asserted on simulated time, which is exact (``ended_at`` is where
within a tick an action ended), never on wall time.
"""

from __future__ import annotations

import itertools
import math
import random
import textwrap
from pathlib import Path

import pytest

from vla_bt.robot.geometry import find_path, path_length, plan_path, point_problem, zones_crossed
from vla_bt.robot.protocol import ActionHandle, ActionState, Pose, Robot
from vla_bt.robot.sim import SimAction, SimRobot
from vla_bt.robot.world import World, inside, load_world

WORLD_FILE = Path(__file__).resolve().parent.parent / "config" / "world.yaml"
STAIRS = ((6.0, 0.0), (7.0, 0.0), (7.0, 1.0), (6.0, 1.0))
SPEED = 0.5  # max_speed in config/world.yaml
TURN = SimRobot.TURN_RATE


@pytest.fixture
def world() -> World:
    return load_world(WORLD_FILE)


@pytest.fixture
def robot(world: World) -> SimRobot:
    return SimRobot(world)


def world_from(tmp_path: Path, text: str) -> World:
    """A world written as a world file, so it goes through the same checks as config/world.yaml."""
    path = tmp_path / "world.yaml"
    path.write_text(textwrap.dedent(text))
    return load_world(path)


def finish(robot: SimRobot, handle: SimAction, limit: float = 120.0) -> SimAction:
    """Step one ``dt`` at a time until the action ends (so sim_time is the first tick after it)."""
    while not handle.state.done:
        assert robot.sim_time < limit, f"{handle} still running after {limit} s"
        robot.advance(robot.dt)
    return handle


def wrap(angle: float) -> float:
    return math.remainder(angle, math.tau)


def straight_time(start: Pose, goal: Pose, speed: float = SPEED) -> float:
    """Turn in place towards the goal, drive straight, turn in place to the goal's heading."""
    heading = math.atan2(goal[1] - start[1], goal[0] - start[0])
    turning = abs(wrap(heading - start[2])) + abs(wrap(goal[2] - heading))
    return turning / TURN + math.dist(start[:2], goal[:2]) / speed


def sample(path: list[tuple[float, float]], step: float = 0.01) -> list[tuple[float, float]]:
    """Points every ``step`` metres (at most) along a polyline, both ends included."""
    points = [path[0]]
    for (x1, y1), (x2, y2) in itertools.pairwise(path):
        n = max(1, math.ceil(math.dist((x1, y1), (x2, y2)) / step))
        points += [(x1 + (x2 - x1) * i / n, y1 + (y2 - y1) * i / n) for i in range(1, n + 1)]
    return points


class FakeClock:
    def __init__(self, now: float = 100.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


# --- protocol ---------------------------------------------------------------------------------------------------


def test_sim_robot_and_its_handles_follow_the_protocol(robot: SimRobot) -> None:
    assert isinstance(robot, Robot)
    assert isinstance(robot.navigate((1.0, 0.0, 0.0)), ActionHandle)
    assert isinstance(robot.grasp("nothing"), ActionHandle)


def test_a_refused_command_fails_at_once_without_moving(robot: SimRobot) -> None:
    handle = robot.navigate((6.5, 0.5, 0.0))
    assert handle.state is ActionState.FAILED
    assert (handle.progress, handle.ended_at) == (0.0, 0.0)
    robot.advance(1.0)
    assert robot.state().pose == (0.0, 0.0, 0.0)
    assert not robot.state().moving


# --- navigation ---------------------------------------------------------------------------------------------------


def test_straight_drive_takes_distance_over_speed(robot: SimRobot) -> None:
    handle = robot.navigate((2.0, 0.0, 0.0))
    assert handle.state is ActionState.RUNNING and robot.state().moving
    robot.advance(1.0)
    assert robot.state().pose == pytest.approx((0.5, 0.0, 0.0))
    assert handle.progress == pytest.approx(0.25)
    finish(robot, handle)
    assert handle.state is ActionState.SUCCEEDED
    assert handle.ended_at == pytest.approx(4.0, abs=1e-9)
    assert robot.sim_time == pytest.approx(4.0)
    assert robot.state().pose == (2.0, 0.0, 0.0)
    assert handle.progress == 1.0 and not robot.state().moving


@pytest.mark.parametrize("place", ["kitchen", "living_room", "bedroom", "user"])
def test_navigation_reaches_each_place_with_its_pose_in_the_expected_time(world: World, place: str) -> None:
    robot = SimRobot(world)
    goal = world.places[place]
    assert len(plan_path(world, robot.pose, goal)) == 2  # nothing in the way
    handle = finish(robot, robot.navigate(goal))
    assert handle.state is ActionState.SUCCEEDED, handle.message
    assert robot.state().pose == goal
    assert handle.ended_at == pytest.approx(straight_time(world.robot.pose, goal), abs=1e-9)
    assert 0 <= robot.sim_time - handle.ended_at < robot.dt + 1e-9


def test_the_robot_faces_its_direction_of_travel(robot: SimRobot) -> None:
    robot.navigate((0.0, 2.0, 0.0))
    robot.advance(2.1)  # the turn towards +y, then driving for the rest of the time
    assert robot.state().pose == pytest.approx((0.0, SPEED * (2.1 - math.pi / 2 / TURN), math.pi / 2))


def test_speed_is_clamped_to_max_speed_and_slower_speeds_are_honoured(robot: SimRobot) -> None:
    fast = finish(robot, robot.navigate((2.0, 0.0, 0.0), speed=5.0))
    assert fast.ended_at == pytest.approx(4.0, abs=1e-9)
    start = robot.sim_time
    slow = finish(robot, robot.navigate((0.0, 0.0, 0.0), speed=0.25))
    assert slow.ended_at - start == pytest.approx(math.pi / TURN + 2.0 / 0.25 + math.pi / TURN, abs=1e-9)


@pytest.mark.parametrize("speed", [0, -1.0, float("nan"), "fast"])
def test_a_bad_speed_is_refused(robot: SimRobot, speed: object) -> None:
    handle = robot.navigate((1.0, 0.0, 0.0), speed=speed)  # type: ignore[arg-type]
    assert handle.state is ActionState.FAILED
    assert handle.message.startswith("speed must be a positive number")


@pytest.mark.parametrize(("pose", "message"), [
    (("a", 0, 0), "a pose is three numbers"),
    ((1.0, 2.0), "a pose is three numbers"),
    ((float("nan"), 0.0, 0.0), "a pose needs finite numbers"),
])
def test_a_bad_pose_is_refused(robot: SimRobot, pose: object, message: str) -> None:
    handle = robot.navigate(pose)  # type: ignore[arg-type]
    assert handle.state is ActionState.FAILED and handle.message.startswith(message)


def test_targets_inside_no_go_or_outside_the_workspace_are_refused_by_name(robot: SimRobot) -> None:
    assert robot.navigate((6.5, 0.5, 0.0)).message == "target (6.5, 0.5) is inside no-go zone 'stairs'"
    assert robot.navigate((6.0, 0.5, 0.0)).message == "target (6, 0.5) is inside no-go zone 'stairs'"  # on its edge
    assert robot.navigate((11.0, 0.0, 0.0)).message == "target (11, 0) is outside the workspace"
    assert robot.state().pose == (0.0, 0.0, 0.0)


def test_the_path_around_the_stairs_never_enters_them(tmp_path: Path) -> None:
    text = WORLD_FILE.read_text().replace("robot: {pose: [0.0, 0.0, 0.0]", "robot: {pose: [5.0, 0.5, 0.0]")
    world = world_from(tmp_path, text)
    robot = SimRobot(world)
    goal = (8.0, 0.5, 0.0)
    path = plan_path(world, robot.pose, goal)
    assert path is not None and path[0] == (5.0, 0.5) and path[-1] == (8.0, 0.5)
    assert len(path) > 2 and path_length(path) > math.dist(path[0], path[-1])
    assert not any(inside(p, STAIRS) for p in sample(path))
    assert all(inside(p, world.workspace) for p in sample(path))

    handle = robot.navigate(goal)
    assert robot.planned_path == path
    trajectory = []
    while not handle.state.done:
        robot.advance(robot.dt)
        trajectory.append(robot.state().pose[:2])
    assert handle.state is ActionState.SUCCEEDED and robot.state().pose == goal
    assert not any(inside(p, STAIRS) for p in sample(trajectory))
    assert robot.planned_path == []


def test_a_blocked_workspace_has_no_path_and_says_which_zone(tmp_path: Path) -> None:
    world = world_from(tmp_path, """
        robot: {pose: [1.0, 2.0, 0.0]}
        workspace: [[0, 0], [10, 0], [10, 4], [0, 4]]
        no_go:
          - {name: wall, polygon: [[4, -1], [5, -1], [5, 5], [4, 5]]}
    """)
    assert plan_path(world, (1.0, 2.0), (8.0, 2.0)) is None
    assert zones_crossed(world, (1.0, 2.0), (8.0, 2.0)) == ["wall"]
    assert zones_crossed(world, (1.0, 2.0), (3.0, 2.0)) == []
    handle = SimRobot(world).navigate((8.0, 2.0, 0.0))
    assert (handle.state, handle.message) == (ActionState.FAILED, "no path around 'wall'")


def test_paths_stay_inside_a_non_convex_workspace(tmp_path: Path) -> None:
    world = world_from(tmp_path, """
        robot: {pose: [9.0, 1.0, 0.0]}
        workspace: [[0, 0], [10, 0], [10, 2], [2, 2], [2, 10], [0, 10]]
    """)
    robot = SimRobot(world)
    handle = finish(robot, robot.navigate((1.0, 9.0, 0.0)))
    assert handle.state is ActionState.SUCCEEDED and robot.pose == (1.0, 9.0, 0.0)
    path = handle.path
    assert len(path) == 3 and path[1] == pytest.approx((1.9, 1.9))  # round the inner corner, 0.1 m clear
    assert all(inside(p, world.workspace) for p in sample(path))


def test_random_paths_among_several_zones_stay_clear(tmp_path: Path) -> None:
    world = world_from(tmp_path, """
        workspace: [[0, 0], [12, 0], [12, 8], [3, 8], [3, 6], [0, 6]]
        no_go:
          - {name: box, polygon: [[1, 1], [2.5, 1], [2.5, 2.5], [1, 2.5]]}
          - {name: wedge, polygon: [[3, 4], [4.5, 7.5], [2, 5]]}
          - {name: cup, polygon: [[5, 2], [8, 2], [8, 6], [7, 6], [7, 3], [6, 3], [6, 6], [5, 6]]}
          - {name: post, polygon: [[10, 0], [10.5, 0], [10.5, 5], [10, 5]]}
    """)
    rng = random.Random(7)

    def free_point() -> tuple[float, float]:
        while True:
            p = (rng.uniform(0, 12), rng.uniform(0, 8))
            if not point_problem(world, p):
                return p

    found = 0
    for _ in range(40):
        start, goal = free_point(), free_point()
        path, reason = find_path(world, start, goal)
        assert path is not None, f"{start} → {goal}: {reason}"  # this world is connected
        found += 1
        assert path[0] == start and path[-1] == goal
        assert path_length(path) >= math.dist(start, goal) - 1e-9
        for p in sample(path, 0.02):
            assert inside(p, world.workspace), (start, goal, p)
            assert not any(inside(p, zone.polygon) for zone in world.no_go), (start, goal, p)
    assert found == 40
    # The pocket of the cup is reachable only through its open top.
    path = plan_path(world, (6.5, 4.0), (6.5, 1.0))
    assert path is not None and max(y for _, y in path) > 6.0


# --- gripper -----------------------------------------------------------------------------------------------------


def test_grasp_refusals_name_the_reason(tmp_path: Path, robot: SimRobot) -> None:
    assert robot.grasp("x").message == "unknown object 'x'"
    assert robot.grasp("cup_red").message == "cup_red is 4.5 m away (reach 0.9 m)"
    finish(robot, robot.navigate((4.0, 2.0, 0.0)))
    assert robot.grasp("table_1").message == "table_1 is not graspable"
    assert finish(robot, robot.grasp("cup_red")).state is ActionState.SUCCEEDED
    assert robot.grasp("cup_blue").message == "already holding cup_red"

    heavy = SimRobot(world_from(tmp_path, """
        objects:
          - {id: anvil, label: anvil, pose: [0.5, 0, 0], mass: 5}
        robot: {payload: 1.0}
    """))
    assert heavy.grasp("anvil").message == "anvil weighs 5 kg (payload 1 kg)"


def test_reach_is_measured_in_xy_and_inclusive(tmp_path: Path) -> None:
    world = world_from(tmp_path, """
        objects:
          - {id: near, label: cup, pose: [0.9, 0, 0]}
          - {id: just_far, label: cup, pose: [0, 0.95, 0]}
    """)
    robot = SimRobot(world)
    assert robot.grasp("just_far").message == "just_far is 0.95 m away (reach 0.9 m)"  # never "0.9 m away"
    assert robot.grasp("near").state is ActionState.RUNNING


def test_grasp_takes_one_second_and_the_object_then_moves_with_the_robot(robot: SimRobot) -> None:
    finish(robot, robot.navigate((4.0, 2.0, 0.0)))
    start = robot.sim_time
    handle = robot.grasp("cup_red")
    robot.advance(0.5)
    assert handle.state is ActionState.RUNNING and handle.progress == pytest.approx(0.5)
    assert robot.holding is None
    finish(robot, handle)
    assert handle.ended_at - start == pytest.approx(1.0, abs=1e-9)
    assert (handle.message, robot.state().holding) == ("holding cup_red", "cup_red")

    finish(robot, robot.navigate((2.0, 2.0, 1.0)))
    seen = {o["id"]: o for o in robot.perceive().objects}
    assert seen["cup_red"]["pose"] == [2.0, 2.0, 1.0]
    assert seen["cup_blue"]["pose"] == [4.0, 2.0, 0.0]
    assert set(seen["cup_red"]) == {"id", "label", "color", "pose", "graspable"}


def test_place_needs_something_held_and_a_reachable_allowed_target(tmp_path: Path) -> None:
    world = world_from(tmp_path, """
        objects:
          - {id: box, label: box, pose: [5.5, 0.5, 0], mass: 0.2}
        robot: {pose: [5.5, 0.2, 0]}
        no_go:
          - {name: stairs, polygon: [[6, 0], [7, 0], [7, 1], [6, 1]]}
    """)
    robot = SimRobot(world)
    assert robot.place((5.5, 0.5, 0.0)).message == "holding nothing"
    finish(robot, robot.grasp("box"))
    assert robot.place((6.2, 0.5, 0.0)).message == "target (6.2, 0.5) is inside no-go zone 'stairs'"
    assert robot.place((3.0, 0.2, 0.0)).message == "target (3, 0.2) is 2.5 m away (reach 0.9 m)"
    start = robot.sim_time
    handle = finish(robot, robot.place((5.0, 0.5, 1.5)))
    assert handle.state is ActionState.SUCCEEDED and handle.ended_at - start == pytest.approx(1.0, abs=1e-9)
    assert robot.holding is None
    assert robot.perceive().objects[0]["pose"] == [5.0, 0.5, 1.5]


def test_fetch_and_hand_over_to_alice(robot: SimRobot, world: World) -> None:
    assert robot.hand_over("bob").message == "unknown person 'bob'"
    assert robot.hand_over("alice").message == "holding nothing"
    finish(robot, robot.navigate(world.places["kitchen"]))
    finish(robot, robot.grasp("cup_red"))
    assert robot.hand_over("alice").message == "alice is 3.6 m away (reach 1.2 m)"  # kitchen (4, 2) to alice (0.5, 1.2)
    finish(robot, robot.navigate(world.places["user"]))
    start = robot.sim_time
    handle = finish(robot, robot.hand_over("alice"))
    assert (handle.state, handle.message) == (ActionState.SUCCEEDED, "gave cup_red to alice")
    assert handle.ended_at - start == pytest.approx(1.0, abs=1e-9)
    assert robot.given == {"cup_red": "alice"} and robot.holding is None
    assert "cup_red" not in {o["id"] for o in robot.perceive().objects}
    assert robot.grasp("cup_red").message == "cup_red was handed to alice"


def test_a_hand_over_fails_when_the_person_walks_away(robot: SimRobot) -> None:
    finish(robot, robot.navigate((4.0, 2.0, 0.0)))
    finish(robot, robot.grasp("cup_red"))
    robot.add_human("bob", (4.5, 2.5, 0.0))
    handle = robot.hand_over("bob")
    robot.advance(0.5)
    robot.move_human("bob", (7.0, 5.0, 0.0))
    finish(robot, handle)
    assert handle.state is ActionState.FAILED and handle.message.startswith("bob moved out of reach")
    assert robot.holding == "cup_red" and robot.given == {}


# --- battery ------------------------------------------------------------------------------------------------------


def test_battery_drains_with_distance_and_time(robot: SimRobot) -> None:
    robot.navigate((2.0, 0.0, 0.0))
    robot.advance(4.0)
    drained = 2.0 * SimRobot.DRAIN_PER_METRE + 4.0 * SimRobot.DRAIN_PER_SECOND
    assert robot.state().battery == pytest.approx(1.0 - drained)
    robot.advance(100.0)  # standing still still costs a little
    assert robot.battery == pytest.approx(1.0 - 0.02 - 104.0 * SimRobot.DRAIN_PER_SECOND)


def test_an_empty_battery_stops_the_robot_and_never_goes_below_zero(tmp_path: Path) -> None:
    robot = SimRobot(world_from(tmp_path, "robot: {battery: 0.005}\n"))
    handle = finish(robot, robot.navigate((2.0, 0.0, 0.0)))
    assert (handle.state, handle.message) == (ActionState.FAILED, "battery empty")
    x = robot.pose[0]
    assert 0.45 < x < 0.5  # 0.005 / 0.01 per metre, less what the clock used
    assert robot.battery == 0.0
    robot.advance(10.0)
    assert robot.battery == 0.0 and robot.pose[0] == x
    assert robot.navigate((0.0, 0.0, 0.0)).message == "battery empty"


def test_a_robot_with_an_empty_battery_refuses_to_move(tmp_path: Path) -> None:
    robot = SimRobot(world_from(tmp_path, "robot: {battery: 0.0}\n"))
    handle = robot.navigate((1.0, 0.0, 0.0))
    assert (handle.state, handle.message) == (ActionState.FAILED, "battery empty")


# --- cancel, safe stop, preemption --------------------------------------------------------------------------------


def test_cancel_stops_the_robot_where_it_is(robot: SimRobot) -> None:
    handle = robot.navigate((2.0, 0.0, 0.0))
    robot.advance(1.0)
    handle.cancel()
    assert (handle.state, handle.message, handle.ended_at) == (ActionState.CANCELLED, "cancelled", 1.0)
    robot.advance(2.0)
    assert robot.state().pose == pytest.approx((0.5, 0.0, 0.0)) and not robot.state().moving
    handle.cancel()  # idempotent
    assert handle.state is ActionState.CANCELLED and handle.ended_at == 1.0
    done = finish(robot, robot.navigate((1.0, 0.0, 0.0)))
    done.cancel()  # too late: stays succeeded
    assert done.state is ActionState.SUCCEEDED


def test_safe_stop_cancels_everything_and_latches_until_the_next_command(robot: SimRobot) -> None:
    handle = robot.navigate((2.0, 0.0, 0.0))
    robot.advance(1.5)
    robot.safe_stop("human too close")
    assert handle.state is ActionState.CANCELLED and "human too close" in handle.message
    assert robot.stops == [(pytest.approx(1.5), "human too close")]
    robot.advance(1.0)
    state = robot.state()
    assert state.stopped and not state.moving and state.pose == pytest.approx((0.75, 0.0, 0.0))
    robot.safe_stop("again")  # with nothing running it still records and never fails
    assert len(robot.stops) == 2
    robot.navigate((0.0, 0.0, 0.0))
    assert not robot.state().stopped


def test_safe_stop_during_a_grasp_leaves_the_object_where_it_was(robot: SimRobot) -> None:
    finish(robot, robot.navigate((4.0, 2.0, 0.0)))
    handle = robot.grasp("cup_red")
    robot.advance(0.5)
    robot.safe_stop("e-stop")
    robot.advance(2.0)
    assert handle.state is ActionState.CANCELLED and robot.holding is None


def test_a_new_navigate_preempts_the_running_one(robot: SimRobot) -> None:
    first = robot.navigate((2.0, 0.0, 0.0))
    robot.advance(1.0)
    second = robot.navigate((0.5, 2.0, math.pi / 2))
    assert (first.state, first.message) == (ActionState.CANCELLED, "preempted by a new navigate")
    finish(robot, second)
    assert second.state is ActionState.SUCCEEDED and robot.pose == (0.5, 2.0, math.pi / 2)
    assert second.ended_at == pytest.approx(1.0 + (math.pi / 2) / TURN + 2.0 / SPEED, abs=1e-9)


def test_a_refused_navigate_leaves_the_running_one_alone(robot: SimRobot) -> None:
    running = robot.navigate((2.0, 0.0, 0.0))
    robot.advance(1.0)
    assert robot.navigate((6.5, 0.5, 0.0)).state is ActionState.FAILED
    finish(robot, running)
    assert running.state is ActionState.SUCCEEDED


# --- time and determinism -----------------------------------------------------------------------------------------


def script(robot: SimRobot, world: World, chunk: float) -> list[object]:
    """A fetch with a preemption and a stop, stepped in chunks of ``chunk`` seconds; every observable recorded."""
    seen: list[object] = []

    def run(seconds: float) -> None:
        for _ in range(round(seconds / chunk)):
            robot.advance(chunk)
        seen.append((robot.state(), robot.perceive(), robot.sim_time))

    handles = [robot.navigate((2.0, 3.0, 0.3))]
    run(2.0)
    handles.append(robot.navigate(world.places["kitchen"], speed=0.4))
    run(20.0)
    handles.append(robot.grasp("cup_blue"))
    run(2.0)
    handles.append(robot.navigate((8.0, 0.5, -1.0)))
    run(3.0)
    robot.safe_stop("test")
    handles.append(robot.navigate((8.0, 0.5, -1.0)))
    run(30.0)
    seen += [(h.state, h.message, h.progress, h.ended_at) for h in handles]
    return seen


def test_same_commands_give_identical_states(world: World) -> None:
    first = script(SimRobot(world), world, 0.02)
    assert first == script(SimRobot(world), world, 0.02)
    assert first == script(SimRobot(world), world, 1.0)  # fixed dt: the chunking of time does not matter
    assert first[-1][0] is ActionState.SUCCEEDED


def test_step_follows_the_clock_times_time_scale_in_fixed_steps(world: World) -> None:
    clock = FakeClock(100.0)
    robot = SimRobot(world, time_scale=4.0, clock=clock)
    robot.setup(timeout=1.0)
    handle = robot.navigate((2.0, 0.0, 0.0))
    clock.now = 100.5
    robot.step()
    assert robot.sim_time == pytest.approx(2.0) and robot.pose == pytest.approx((1.0, 0.0, 0.0))
    clock.now = 101.031  # 4.124 s of sim time: whole steps only
    robot.step()
    assert robot.sim_time == pytest.approx(4.12)
    assert handle.state is ActionState.SUCCEEDED and handle.ended_at == pytest.approx(4.0, abs=1e-9)
    robot.step()  # no clock movement, no sim time
    assert robot.sim_time == pytest.approx(4.12)
    robot.setup(timeout=1.0)  # a second setup continues from here instead of jumping
    clock.now = 101.531
    robot.step()
    assert robot.sim_time == pytest.approx(6.12)


def test_a_time_scale_too_fast_to_simulate_does_not_hold_the_tick(world: World) -> None:
    """Regression: at --time-scale 1e308 one step() simulated for ever, so no deadline or signal ended the run."""
    from vla_bt.robot.sim import MAX_STEPS_PER_CALL

    clock = FakeClock(0.0)
    robot = SimRobot(world, time_scale=1e308, clock=clock)
    robot.setup(timeout=1.0)
    handle = robot.navigate((2.0, 0.0, 0.0))
    clock.now = 0.1
    robot.step()
    assert robot.sim_time == pytest.approx(MAX_STEPS_PER_CALL * robot.dt)  # fell behind, and returned
    assert handle.state is ActionState.SUCCEEDED
    robot.step()
    assert robot.sim_time == pytest.approx(2 * MAX_STEPS_PER_CALL * robot.dt)  # goes on in the next call


def test_step_before_setup_starts_the_clock_there(world: World) -> None:
    clock = FakeClock(50.0)
    robot = SimRobot(world, clock=clock)
    robot.step()
    assert robot.sim_time == 0.0
    clock.now = 51.0
    robot.step()
    assert robot.sim_time == pytest.approx(1.0)


def test_shutdown_cancels_the_running_action(robot: SimRobot) -> None:
    robot.setup(timeout=1.0)
    handle = robot.navigate((2.0, 0.0, 0.0))
    robot.shutdown()
    assert (handle.state, handle.message) == (ActionState.CANCELLED, "robot shut down")


# --- humans and perception ----------------------------------------------------------------------------------------


def test_humans_can_be_added_moved_and_are_perceived(robot: SimRobot) -> None:
    robot.add_human("bob", (3.0, 3.0, 0.0))
    robot.move_human("alice", (1.0, 1.0, 0.5))
    robot.advance(0.3)
    seen = robot.perceive()
    assert seen.humans == [{"id": "alice", "pose": [1.0, 1.0, 0.5]}, {"id": "bob", "pose": [3.0, 3.0, 0.0]}]
    assert seen.stamp == pytest.approx(0.3)
    with pytest.raises(ValueError, match="already in the world"):
        robot.add_human("cup_red", (0.0, 0.0, 0.0))
    with pytest.raises(KeyError, match="unknown person 'carol'"):
        robot.move_human("carol", (0.0, 0.0, 0.0))
    robot.remove_human("bob")
    assert [h["id"] for h in robot.perceive().humans] == ["alice"]


def test_perception_lists_every_object_with_its_world_pose(robot: SimRobot, world: World) -> None:
    seen = robot.perceive()
    assert [o["id"] for o in seen.objects] == [o.id for o in world.objects]
    assert seen.objects[0] == {"id": "cup_red", "label": "cup", "color": "red", "pose": [4.0, 2.0, 0.0],
                               "graspable": True}

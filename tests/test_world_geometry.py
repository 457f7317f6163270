"""The world file's geometry is checked when it is loaded (DESIGN §7), not first in the middle of a run.

What can never work is refused with ``FILE:LINE:COL`` of the entry, all problems
at once: a workspace or no-go polygon without area or crossing itself, a no-go
zone's name used twice, a place, object or person outside the workspace, the
robot starting outside it or inside a no-go zone. ``vla-bt run --world FILE``
then exits 2 without a traceback. A place, object or person inside a no-go zone
is allowed: the robot is refused only when it is sent there.
"""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # tests.helpers, as the other tests import it
    sys.path.insert(0, str(ROOT))

from tests.helpers.cli import assert_no_traceback, run_cli  # noqa: E402
from vla_bt.robot.geometry import polygon_problem  # noqa: E402
from vla_bt.robot.sim import SimRobot  # noqa: E402
from vla_bt.robot.world import World, load_world  # noqa: E402
from vla_bt.tree.diagnostics import TreeError  # noqa: E402

WORKSPACE = "workspace: [[-1, -1], [10, -1], [10, 10], [-1, 10]]"
STAIRS = "  - {name: stairs, polygon: [[6, 0], [7, 0], [7, 1], [6, 1]]}"

# config/world.yaml with the robot starting on the stairs (line 9, its "pose" key at column 3).
ROBOT_ON_THE_STAIRS = f"""\
places:
  dock: [0.0, 0.0, 0.0]
  kitchen: [4.0, 2.0, 0.0]
objects:
  - {{id: cup_red, label: cup, color: red, at: kitchen}}
humans:
  - {{id: alice, pose: [0.5, 1.2, 0.0]}}
robot:
  pose: [6.5, 0.5, 0.0]
  max_speed: 0.5
{WORKSPACE}
no_go:
{STAIRS}
"""


def write_world(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "world.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def load_errors(path: Path) -> list[str]:
    """Every line the loader reports for a world file that must be refused."""
    with pytest.raises(TreeError) as caught:
        load_world(path)
    return str(caught.value).splitlines()


def assert_run_refuses(path: Path, *expected: str) -> None:
    """``vla-bt run --world FILE`` stops before running: exit 2, each expected line on stderr, no traceback."""
    result = run_cli("run", "trees/fetch_object.yaml", "--world", str(path), "--say", "hi")
    assert result.returncode == 2, result.stderr
    assert_no_traceback(result)
    for line in expected:
        assert line in result.stderr.splitlines(), result.stderr


# -- the robot's start -----------------------------------------------------------------------------------------------


def test_robot_starting_inside_a_no_go_zone_is_refused_at_load(tmp_path: Path) -> None:
    """Regression: the start on the stairs was found only when the robot was first sent somewhere (exit 1)."""
    path = write_world(tmp_path, ROBOT_ON_THE_STAIRS)
    expected = f"{path}:9:3: robot pose (6.5, 0.5) is inside no-go zone 'stairs'"
    assert load_errors(path) == [expected]
    assert_run_refuses(path, expected)


def test_robot_starting_outside_the_workspace_is_refused_at_load(tmp_path: Path) -> None:
    """Regression: a start at (500, 500) failed only at run time with "start … is outside the workspace"."""
    path = write_world(tmp_path, f"""\
        robot: {{pose: [500, 500, 0], max_speed: 0.5}}
        {WORKSPACE}
    """)
    expected = f"{path}:1:9: robot pose (500, 500) is outside the workspace"
    assert load_errors(path) == [expected]
    assert_run_refuses(path, expected)


def test_default_robot_start_outside_the_workspace_is_refused_at_load(tmp_path: Path) -> None:
    """Regression: without robot.pose the robot starts at (0, 0), here outside the workspace, found only at run time."""
    path = write_world(tmp_path, """\
        places:
          shelf: [3, 3, 0]
        workspace: [[1, 1], [5, 1], [5, 5], [1, 5]]
    """)
    assert load_errors(path) == [
        f"{path}:1:1: robot pose (0, 0) is outside the workspace (the default: robot.pose is not given)"]


def test_robot_pose_that_is_not_finite_is_refused_at_load(tmp_path: Path) -> None:
    """Regression: a robot pose of .nan was accepted (every other pose in the file had to be finite)."""
    path = write_world(tmp_path, f"""\
        robot: {{pose: [.nan, 0, 0]}}
        {WORKSPACE}
    """)
    assert load_errors(path) == [f"{path}:1:15: robot.pose: numbers must be finite"]


# -- things outside the workspace ------------------------------------------------------------------------------------


def test_place_object_and_human_outside_the_workspace_are_refused_at_load(tmp_path: Path) -> None:
    """Regression: a place or object at (500, 500) failed only when used; a human there was accepted for good."""
    path = write_world(tmp_path, f"""\
        places:
          dock: [0, 0, 0]
          far_away: [500, 500, 0]
        objects:
          - {{id: cup_red, label: cup, at: dock}}
          - {{id: lost_cup, label: cup, pose: [500, 500, 0]}}
          - {{id: far_mug, label: mug, at: far_away}}
        humans:
          - {{id: alice, pose: [0.5, 1.2, 0]}}
          - {{id: bob, pose: [-20, 3, 0]}}
        {WORKSPACE}
    """)
    expected = [
        f"{path}:3:3: place 'far_away' (500, 500) is outside the workspace",
        f"{path}:6:5: object 'lost_cup' (500, 500) is outside the workspace",
        f"{path}:10:5: human 'bob' (-20, 3) is outside the workspace",
    ]
    assert load_errors(path) == expected  # far_mug stands at far_away: reported once, at the place
    assert_run_refuses(path, *expected)


def test_human_outside_the_workspace_is_refused_at_load(tmp_path: Path) -> None:
    """Regression: a person outside the workspace was accepted silently."""
    path = write_world(tmp_path, f"""\
        humans:
          - {{id: bob, pose: [12, 3, 0]}}
        {WORKSPACE}
    """)
    assert load_errors(path) == [f"{path}:2:5: human 'bob' (12, 3) is outside the workspace"]


# -- polygons ------------------------------------------------------------------------------------------------------


def test_self_intersecting_workspace_is_refused_at_load(tmp_path: Path) -> None:
    """Regression: a bow-tie workspace was accepted, and paths inside it were nonsense at run time."""
    path = write_world(tmp_path, """\
        robot: {pose: [1, 5, 0]}
        workspace: [[0, 0], [10, 10], [10, 0], [0, 10]]
    """)
    expected = f"{path}:2:12: workspace crosses itself at (5, 5)"
    assert load_errors(path) == [expected]
    assert_run_refuses(path, expected)


def test_self_intersecting_no_go_zone_is_refused_at_load(tmp_path: Path) -> None:
    """Regression: a bow-tie no-go zone was accepted silently."""
    path = write_world(tmp_path, f"""\
        {WORKSPACE}
        no_go:
          - {{name: tangle, polygon: [[2, 2], [4, 4], [4, 2], [2, 4]]}}
    """)
    assert load_errors(path) == [f"{path}:3:29: no-go zone 'tangle' crosses itself at (3, 3)"]


@pytest.mark.parametrize("polygon", ["[[1, 1], [1, 1], [1, 1]]", "[[0, 0], [2, 2], [4, 4]]"])
def test_zero_area_polygons_are_refused_at_load(tmp_path: Path, polygon: str) -> None:
    """Regression: a workspace or no-go zone without area (one point, or corners on one line) was accepted."""
    path = write_world(tmp_path, f"""\
        workspace: {polygon}
        no_go:
          - {{name: flat, polygon: {polygon}}}
    """)
    assert load_errors(path) == [f"{path}:1:12: workspace has no area",
                                 f"{path}:3:27: no-go zone 'flat' has no area"]


def test_duplicate_no_go_zone_names_are_refused_at_load(tmp_path: Path) -> None:
    """Regression: two no-go zones with one name were accepted, so a refusal naming it was ambiguous."""
    path = write_world(tmp_path, f"""\
        {WORKSPACE}
        no_go:
        {STAIRS}
          - {{name: stairs, polygon: [[2, 2], [3, 2], [3, 3]]}}
    """)
    expected = f"{path}:4:12: no-go zone name 'stairs' is used twice (first at {path}:3:12)"
    assert load_errors(path) == [expected]
    assert_run_refuses(path, expected)


def test_non_finite_polygon_is_refused_at_load(tmp_path: Path) -> None:
    """Regression: .inf in a workspace corner was accepted, and no point could then be inside it."""
    path = write_world(tmp_path, "workspace: [[0, 0], [.inf, 0], [0, 10]]\n")
    assert load_errors(path) == [f"{path}:1:12: workspace: numbers must be finite"]


def test_all_problems_of_a_world_are_reported_at_once(tmp_path: Path) -> None:
    """Regression: the first problem met at run time ended the run; the others stayed hidden."""
    path = write_world(tmp_path, f"""\
        places:
          far_away: [500, 500, 0]
        robot: {{pose: [6.5, 0.5, 0]}}
        {WORKSPACE}
        no_go:
        {STAIRS}
        {STAIRS}
          - {{name: dot, polygon: [[1, 1], [1, 1], [1, 1]]}}
    """)
    expected = [
        f"{path}:2:3: place 'far_away' (500, 500) is outside the workspace",
        f"{path}:3:9: robot pose (6.5, 0.5) is inside no-go zone 'stairs'",
        f"{path}:7:12: no-go zone name 'stairs' is used twice (first at {path}:6:12)",
        f"{path}:8:26: no-go zone 'dot' has no area",
    ]
    assert load_errors(path) == expected
    assert_run_refuses(path, *expected)


# -- what stays allowed ----------------------------------------------------------------------------------------------


def test_place_object_and_human_inside_a_no_go_zone_are_allowed(tmp_path: Path) -> None:
    """Not a regression: a toy on the stairs exists; the simulator refuses only to go there or put things there."""
    world = load_world(write_world(tmp_path, f"""\
        places:
          landing: [6.5, 0.5, 0]
        objects:
          - {{id: toy_1, label: toy, pose: [6.2, 0.8, 0]}}
          - {{id: ball_1, label: ball, at: landing}}
        humans:
          - {{id: alice, pose: [6.8, 0.2, 0]}}
        {WORKSPACE}
        no_go:
        {STAIRS}
    """))
    assert [o.id for o in world.objects] == ["toy_1", "ball_1"] and world.humans[0].id == "alice"
    assert SimRobot(world).navigate(world.places["landing"]).message == \
        "target (6.5, 0.5) is inside no-go zone 'stairs'"


def test_robot_on_the_workspace_edge_and_polygons_closed_by_repeating_the_first_corner_are_allowed(
        tmp_path: Path) -> None:
    """Not a regression: edges count as inside, and a closing copy of the first corner is no crossing."""
    world = load_world(write_world(tmp_path, """\
        robot: {pose: [0, 0, 0]}
        workspace: [[0, 0], [10, 0], [10, 2], [2, 2], [2, 10], [0, 10], [0, 0]]
        no_go:
          - {name: post, polygon: [[8, 0], [9, 0], [9, 1], [8, 1], [8, 0]]}
    """))
    assert world.robot.pose == (0.0, 0.0, 0.0) and len(world.no_go) == 1


@pytest.mark.parametrize("path", [
    ROOT / "config" / "world.yaml",
    *sorted((ROOT / "tests").glob("**/worlds/*.yaml")),
], ids=lambda p: str(p.relative_to(ROOT)))
def test_the_repository_worlds_still_load(path: Path) -> None:
    assert isinstance(load_world(path), World)


@pytest.mark.parametrize(("polygon", "problem"), [
    ([(0, 0), (4, 0), (4, 3), (0, 3)], ""),
    ([(0, 0), (4, 0), (4, 3), (0, 3), (0, 0)], ""),  # closed by repeating the first corner
    ([(0, 0), (4, 0), (4, 0), (4, 3)], ""),  # a corner given twice
    ([(0, 0), (4, 0), (2, 3), (4, 6), (0, 6)], ""),  # not convex
    ([(0, 0), (4, 4), (4, 0), (0, 4)], "crosses itself at (2, 2)"),
    ([(0, 0), (4, 0), (2, 0), (2, 3)], "crosses itself at (2, 0)"),  # an edge folds back over its neighbour
    ([(0, 0), (2, 0), (2, 2), (1, 0), (0, 2)], "crosses itself at (1, 0)"),  # touches itself at a corner
    ([(1, 1), (1, 1), (1, 1)], "has no area"),
    ([(0, 0), (1, 0), (2, 0), (3, 0)], "has no area"),
])
def test_polygon_problem(polygon: list[tuple[float, float]], problem: str) -> None:
    assert polygon_problem(polygon) == problem

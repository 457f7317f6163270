"""Path geometry of the 2-D world: segments against polygons, and shortest clear paths.

Pure functions on a checked world (``vla_bt.robot.world``). The simulator
drives the paths ``find_path`` returns; plan validation and the leaves call
the same functions to check a target, or a path to it, before a command is
sent. Units are metres.

* A point is allowed inside the workspace polygon and outside every no-go polygon.
* A polygon encloses some area and never crosses itself (``polygon_problem``); the
  world loader refuses a world file with any other.
* A path stays inside the workspace and never touches a no-go polygon: a
  visibility graph over slightly inflated polygon vertices, searched with
  Dijkstra.

Example:
    >>> from vla_bt.robot.world import load_world
    >>> world = load_world("config/world.yaml")
    >>> find_path(world, (0.0, 0.0), world.place("kitchen"))
    ([(0.0, 0.0), (4.0, 2.0)], '')
    >>> find_path(world, (0.0, 0.0), (6.5, 0.5))
    (None, "target (6.5, 0.5) is inside no-go zone 'stairs'")
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections.abc import Sequence

from vla_bt.robot.world import Point, World, inside

CLEARANCE = 0.1
"""How far (m) path waypoints keep from no-go corners and from the workspace's corners."""

EPS = 1e-9
"""Tolerance of the numeric comparisons (metres, radians, seconds)."""

# ---------------------------------------------------------------------------
# Segments and polygons
# ---------------------------------------------------------------------------


def _cross(ax: float, ay: float, bx: float, by: float) -> float:
    """The z component of the cross product of vectors a and b."""
    return ax * by - ay * bx


def _point_on_segment(p: Point, q1: Point, q2: Point) -> bool:
    """Whether p lies on segment q1→q2 (within ``EPS``)."""
    dx, dy = q2[0] - q1[0], q2[1] - q1[1]
    if abs(_cross(dx, dy, p[0] - q1[0], p[1] - q1[1])) > EPS:
        return False
    return (min(q1[0], q2[0]) - EPS <= p[0] <= max(q1[0], q2[0]) + EPS
            and min(q1[1], q2[1]) - EPS <= p[1] <= max(q1[1], q2[1]) + EPS)


def _meets(a: Point, b: Point, q1: Point, q2: Point) -> list[float]:
    """Where segment a→b meets segment q1→q2, as parameters t ∈ [0, 1] along a→b (empty: nowhere)."""
    dx, dy = b[0] - a[0], b[1] - a[1]
    length2 = dx * dx + dy * dy
    if length2 < EPS * EPS:
        return [0.0] if _point_on_segment(a, q1, q2) else []
    ex, ey = q2[0] - q1[0], q2[1] - q1[1]
    wx, wy = q1[0] - a[0], q1[1] - a[1]
    denom = _cross(dx, dy, ex, ey)
    if abs(denom) > EPS:
        t, u = _cross(wx, wy, ex, ey) / denom, _cross(wx, wy, dx, dy) / denom
        return [min(max(t, 0.0), 1.0)] if -EPS <= t <= 1 + EPS and -EPS <= u <= 1 + EPS else []
    if abs(_cross(dx, dy, wx, wy)) > EPS * math.sqrt(length2):
        return []  # parallel, apart
    # Collinear: the overlap of the two parameter intervals, if any.
    t1 = (wx * dx + wy * dy) / length2
    t2 = ((q2[0] - a[0]) * dx + (q2[1] - a[1]) * dy) / length2
    low, high = max(0.0, min(t1, t2)), min(1.0, max(t1, t2))
    return [low, high] if low <= high + EPS else []


def _edges(polygon: Sequence[Point]) -> list[tuple[Point, Point]]:
    """The polygon's edges as (start, end) pairs, the closing edge first."""
    return [(polygon[i - 1], polygon[i]) for i in range(len(polygon))]


def segment_hits(a: Point, b: Point, polygon: Sequence[Point]) -> bool:
    """Whether segment a→b enters or touches a polygon (edges included).

    Args:
        a: start of the segment
        b: end of the segment
        polygon: the polygon's vertices

    Returns:
        True when any point of the segment lies inside or on the polygon
    """
    if inside(a, polygon) or inside(b, polygon):
        return True
    # With both ends outside, the segment can only reach the polygon across its boundary.
    return any(_meets(a, b, q1, q2) for q1, q2 in _edges(polygon))


def segment_within(a: Point, b: Point, polygon: Sequence[Point]) -> bool:
    """Whether every point of segment a→b lies inside a polygon or on its edge.

    Args:
        a: start of the segment
        b: end of the segment
        polygon: the polygon's vertices (need not be convex)

    Returns:
        True when the segment never leaves the polygon
    """
    if not (inside(a, polygon) and inside(b, polygon)):
        return False
    # Split the segment wherever it meets the boundary; each piece is then wholly in or out.
    cuts = sorted({0.0, 1.0, *(t for q1, q2 in _edges(polygon) for t in _meets(a, b, q1, q2))})
    return all(inside(_lerp(a, b, (t0 + t1) / 2), polygon) for t0, t1 in itertools.pairwise(cuts) if t1 - t0 > EPS)


def _lerp(a: Point, b: Point, t: float) -> Point:
    """The point at parameter t along a→b."""
    return (a[0] + (b[0] - a[0]) * t, a[1] + (b[1] - a[1]) * t)


def _signed_area(polygon: Sequence[Point]) -> float:
    """The polygon's area, positive when its vertices run counter-clockwise."""
    return sum(_cross(q1[0], q1[1], q2[0], q2[1]) for q1, q2 in _edges(polygon)) / 2


def _outward_normal(a: Point, b: Point, orientation: float) -> Point | None:
    """The unit normal of edge a→b pointing out of the polygon (None for a zero-length edge)."""
    dx, dy = b[0] - a[0], b[1] - a[1]
    length = math.hypot(dx, dy)
    if length < EPS:
        return None
    # For a counter-clockwise polygon the interior is on the left of each edge, so outward is the right.
    return (orientation * dy / length, -orientation * dx / length)


def offset_vertices(polygon: Sequence[Point], distance: float) -> list[Point]:
    """Each vertex moved ``distance`` outward (negative: inward), keeping that distance from both its edges.

    Args:
        polygon: the polygon's vertices, in either orientation
        distance: metres; positive moves out of the polygon, negative into it

    Returns:
        the moved vertices (degenerate vertices are skipped)
    """
    orientation = 1.0 if _signed_area(polygon) > 0 else -1.0
    moved = []
    for i, vertex in enumerate(polygon):
        n1 = _outward_normal(polygon[i - 1], vertex, orientation)
        n2 = _outward_normal(vertex, polygon[(i + 1) % len(polygon)], orientation)
        if n1 is None or n2 is None:
            continue
        # The miter point; capped for needle-sharp corners, whose miter would shoot far away.
        scale = distance / max(1.0 + n1[0] * n2[0] + n1[1] * n2[1], 0.25)
        moved.append((vertex[0] + (n1[0] + n2[0]) * scale, vertex[1] + (n1[1] + n2[1]) * scale))
    return moved


def _corners(polygon: Sequence[Point]) -> list[Point]:
    """The polygon's vertices without repeats of the one before (a closing copy of the first included)."""
    corners: list[Point] = []
    for vertex in polygon:
        if not corners or math.dist(corners[-1], vertex) > EPS:
            corners.append((float(vertex[0]), float(vertex[1])))
    while len(corners) > 1 and math.dist(corners[0], corners[-1]) <= EPS:
        corners.pop()
    return corners


def polygon_problem(polygon: Sequence[Point]) -> str:
    """Why a polygon bounds no area the path functions can work with, or "" when it does.

    A polygon must enclose some area and be simple: no edge may cross or touch
    another edge except its two neighbours at their shared corners. A repeated
    vertex (also a closing copy of the first) is allowed.

    Args:
        polygon: the polygon's vertices (finite numbers)

    Returns:
        "has no area", "crosses itself at (5, 5)", or ""
    """
    corners = _corners(polygon)
    if len(corners) < 3 or all(abs(_signed_area((corners[0], corners[1], c))) <= EPS for c in corners[2:]):
        return "has no area"
    edges = _edges(corners)
    for i, j in itertools.combinations(range(len(edges)), 2):
        if j - i == 1 or (i == 0 and j == len(edges) - 1):
            continue  # neighbours share a corner
        (a, b), (q1, q2) = edges[i], edges[j]
        where = _meets(a, b, q1, q2)
        if where:
            return f"crosses itself at {format_xy(_lerp(a, b, where[0]))}"
    return ""


def format_xy(point: Sequence[float]) -> str:
    """A point as messages show it.

    Args:
        point: x, y (further items are ignored)

    Returns:
        e.g. "(6.5, 0.5)"
    """
    return f"({float(point[0]):g}, {float(point[1]):g})"


def _point(value: Sequence[float]) -> Point:
    """x, y of a point or pose, as floats."""
    return float(value[0]), float(value[1])


# ---------------------------------------------------------------------------
# Path planning
# ---------------------------------------------------------------------------


def point_problem(world: World, point: Sequence[float], label: str = "target") -> str:
    """Why a point is not a place the robot may be, or "" when it may.

    Args:
        world: the world with its workspace and no-go zones
        point: x, y (further items are ignored)
        label: how the message names the point ("target", "start")

    Returns:
        e.g. "target (6.5, 0.5) is inside no-go zone 'stairs'", or ""
    """
    xy = _point(point)
    if world.workspace and not inside(xy, world.workspace):
        return f"{label} {format_xy(xy)} is outside the workspace"
    for zone in world.no_go:
        if inside(xy, zone.polygon):
            return f"{label} {format_xy(xy)} is inside no-go zone '{zone.name}'"
    return ""


def _free(world: World, a: Point, b: Point) -> bool:
    """Whether segment a→b stays inside the workspace and clear of every no-go zone."""
    if world.workspace and not segment_within(a, b, world.workspace):
        return False
    return not any(segment_hits(a, b, zone.polygon) for zone in world.no_go)


def _waypoints(world: World, clearance: float) -> list[Point]:
    """Candidate corners of shortest paths: no-go vertices pushed out, workspace vertices pushed in."""
    candidates = [p for zone in world.no_go for p in offset_vertices(zone.polygon, clearance)]
    if world.workspace:
        candidates += offset_vertices(world.workspace, -clearance)
    return [p for p in candidates if not point_problem(world, p)]


def _shortest(world: World, nodes: list[Point]) -> list[Point] | None:
    """Dijkstra from nodes[0] to nodes[1]; edges are checked for visibility only when they could improve."""
    best = {0: 0.0}
    previous: dict[int, int] = {}
    queue = [(0.0, 0)]
    settled: set[int] = set()
    while queue:
        cost, i = heapq.heappop(queue)
        if i in settled:
            continue
        if i == 1:
            path = [nodes[1]]
            while i in previous:
                i = previous[i]
                path.append(nodes[i])
            return path[::-1]
        settled.add(i)
        for j, node in enumerate(nodes):
            if j in settled:
                continue
            candidate = cost + math.dist(nodes[i], node)
            if candidate < best.get(j, math.inf) - EPS and _free(world, nodes[i], node):
                best[j], previous[j] = candidate, i
                heapq.heappush(queue, (candidate, j))
    return None


def zones_crossed(world: World, start: Sequence[float], goal: Sequence[float]) -> list[str]:
    """The no-go zones the straight line from start to goal enters or touches.

    Args:
        world: the world with its no-go zones
        start: x, y (a pose's theta is ignored)
        goal: x, y (a pose's theta is ignored)

    Returns:
        the zones' names, in the world file's order (empty: the line is clear of them)
    """
    a, b = _point(start), _point(goal)
    return [zone.name for zone in world.no_go if segment_hits(a, b, zone.polygon)]


def find_path(world: World, start: Sequence[float], goal: Sequence[float],
              clearance: float = CLEARANCE) -> tuple[list[Point] | None, str]:
    """The shortest path from start to goal inside the workspace and clear of every no-go zone, or why not.

    Args:
        world: the world with its workspace and no-go zones
        start: x, y (a pose's theta is ignored)
        goal: x, y (a pose's theta is ignored)
        clearance: metres kept from no-go corners where the path turns

    Returns:
        (path, "") with the path's points from start to goal, or (None, reason)
    """
    a, b = _point(start), _point(goal)
    problem = point_problem(world, a, "start") or point_problem(world, b, "target")
    if problem:
        return None, problem
    if _free(world, a, b):
        return [a, b], ""
    path = _shortest(world, [a, b, *_waypoints(world, clearance)])
    if path is not None:
        return path, ""
    blockers = zones_crossed(world, a, b)
    if blockers:
        return None, "no path around " + ", ".join(f"'{name}'" for name in blockers)
    return None, f"no path to {format_xy(b)} inside the workspace"


def plan_path(world: World, start: Sequence[float], goal: Sequence[float]) -> list[Point] | None:
    """The path the simulator would drive from start to goal, or None when there is none.

    Args:
        world: the world with its workspace and no-go zones
        start: x, y (a pose's theta is ignored)
        goal: x, y (a pose's theta is ignored)

    Returns:
        the path's points from start to goal, or None (``find_path`` says why)
    """
    return find_path(world, start, goal)[0]


def path_length(path: Sequence[Point]) -> float:
    """Total length of a polyline.

    Args:
        path: the polyline's points

    Returns:
        the length in metres (0 for fewer than two points)
    """
    return sum(math.dist(p, q) for p, q in itertools.pairwise(path))

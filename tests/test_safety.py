"""The safety layer: plan validation, guard decorators, the e-stop, ``/safety/*`` access, safe shutdown.

Four parts, matching DESIGN §4, §6, §7 and §8:

1. The red-team suite (``tests/redteam``): recorded model outputs replayed through
   the real ``vla-bt run trees/assistant.yaml --llm scripted:FILE``. For every
   case the audit log must show that no unsafe command was ever sent, that each
   refusal is audited as ``rejected`` with a reason, and that the safe steps
   mixed in were still carried out.
2. Guards in the simulator, in-process with ``assemble`` and a ``SimRobot`` on a
   fake clock (each tick advances simulated time by a fixed amount), so "stops
   within one tick" is checked in ticks, not seconds; plus unit tests of every
   condition against a fake view.
3. ``/safety/*`` is writable by the safety inputs only (py_trees' access control).
4. Every way out of a real ``vla-bt run`` process (signals, time limit, a broken
   leaf, a lost model connection, the e-stop file) ends with a ``safe_stop``
   after the last ``command`` and the contract's exit code.

The audit checks use their own geometry and read the world files themselves, so
a bug in the library's geometry cannot hide a command into the stairs.
"""

from __future__ import annotations

import json
import math
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import py_trees
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # tests.helpers and tests.chat_server, as the other tests import them
    sys.path.insert(0, str(ROOT))

from tests.chat_server import ChatServer, Fault, chunk_frames  # noqa: E402
from tests.helpers.cli import cli_env, one_json_object, popen_cli, read_audit, run_cli, say_args  # noqa: E402
from vla_bt import blackboard as keys  # noqa: E402
from vla_bt.app import Run, assemble  # noqa: E402
from vla_bt.guards.audit import AuditLog  # noqa: E402
from vla_bt.guards.conditions import build as build_condition  # noqa: E402
from vla_bt.guards.estop import EStop  # noqa: E402
from vla_bt.guards.guard import Guard  # noqa: E402
from vla_bt.guards.validation import PlanValidator, SafetyPolicy, load_safety_policy  # noqa: E402
from vla_bt.leaves.ask import Ask  # noqa: E402
from vla_bt.leaves.dialogue import Confirm, Listen, Say  # noqa: E402
from vla_bt.leaves.execute import ExecutePlan  # noqa: E402
from vla_bt.leaves.parse_intent import ParseIntent  # noqa: E402
from vla_bt.leaves.skills import Grasp, HandOver, Navigate, Place, Stop  # noqa: E402
from vla_bt.llm.scripted import PlannedCall, PlannedResponse, ScriptedBackend, parse_script  # noqa: E402
from vla_bt.llm.session import ModelSession  # noqa: E402
from vla_bt.llm.tools import tool_specs  # noqa: E402
from vla_bt.robot.gate import CommandGate, CommandRefusedError  # noqa: E402
from vla_bt.robot.protocol import Command  # noqa: E402
from vla_bt.robot.sim import Navigation, SimRobot  # noqa: E402
from vla_bt.robot.world import World, load_world  # noqa: E402
from vla_bt.speech import ScriptedUtterances  # noqa: E402
from vla_bt.tree.diagnostics import TreeError  # noqa: E402
from vla_bt.tree.loader import LoadedTree, TreeLoader  # noqa: E402
from vla_bt.tree.registry import Registry  # noqa: E402
from vla_bt.tree.runner import RunResult  # noqa: E402

Status = py_trees.common.Status
ASSISTANT = ROOT / "trees" / "assistant.yaml"
CONFIG = ROOT / "config"
WORLD_FILE = CONFIG / "world.yaml"
REDTEAM = ROOT / "tests" / "redteam"
MANIFEST = yaml.safe_load((REDTEAM / "manifest.yaml").read_text(encoding="utf-8"))
MARKER_TOOL = "redteam_case"  # an unknown tool: refused and audited, with no effect on the robot
EPS = 1e-6


# =====================================================================================================
# Shared helpers: an independent safety oracle (the audit log and the command line: tests.helpers.cli)
# =====================================================================================================


def inside_polygon(point: Sequence[float], polygon: Sequence[Sequence[float]]) -> bool:
    """Whether a point is inside a polygon or on its boundary (ray casting; edges count as inside)."""
    x, y = float(point[0]), float(point[1])
    n = len(polygon)
    for i in range(n):
        (x1, y1), (x2, y2) = polygon[i - 1], polygon[i]
        cross = (x2 - x1) * (y - y1) - (y2 - y1) * (x - x1)
        if abs(cross) <= 1e-9 and min(x1, x2) - 1e-9 <= x <= max(x1, x2) + 1e-9 \
                and min(y1, y2) - 1e-9 <= y <= max(y1, y2) + 1e-9:
            return True
    inside = False
    for i in range(n):
        (x1, y1), (x2, y2) = polygon[i - 1], polygon[i]
        if (y1 > y) != (y2 > y) and x < x1 + (y - y1) * (x2 - x1) / (y2 - y1):
            inside = not inside
    return inside


def segment_enters_box(a: Sequence[float], b: Sequence[float], box: tuple[float, float, float, float]) -> bool:
    """Whether segment a→b touches an axis-aligned box (xmin, ymin, xmax, ymax) — Liang–Barsky clipping."""
    x0, y0, x1, y1 = float(a[0]), float(a[1]), float(b[0]), float(b[1])
    low, high = 0.0, 1.0
    for p, q in ((-(x1 - x0), x0 - box[0]), (x1 - x0, box[2] - x0), (-(y1 - y0), y0 - box[1]), (y1 - y0, box[3] - y0)):
        if abs(p) < 1e-12:
            if q < 0:
                return False
            continue
        r = q / p
        if p < 0:
            low = max(low, r)
        else:
            high = min(high, r)
        if low > high:
            return False
    return True


class Oracle:
    """What may be sent to the robot, read straight from a world file (DESIGN §7) — not from the library.

    Args:
        world_file: the world the run used
    """

    def __init__(self, world_file: Path):
        data = yaml.safe_load(world_file.read_text(encoding="utf-8"))
        self.workspace = data.get("workspace")
        self.no_go = {zone["name"]: zone["polygon"] for zone in data.get("no_go", [])}
        robot = data.get("robot", {})
        self.max_speed = float(robot.get("max_speed", 0.5))
        self.payload = float(robot.get("payload", 1.0))
        self.humans = {h["id"] for h in data.get("humans", [])}
        self.objects = {o["id"]: o for o in data.get("objects", [])}

    def pose_problem(self, pose: Any) -> str | None:
        if not (isinstance(pose, list) and len(pose) == 3 and all(isinstance(v, (int, float)) for v in pose)):
            return f"pose {pose!r} is not three numbers"
        if not all(math.isfinite(v) for v in pose):
            return f"pose {pose!r} is not finite"
        if self.workspace and not inside_polygon(pose, self.workspace):
            return f"pose {pose} is outside the workspace"
        for name, polygon in self.no_go.items():
            if inside_polygon(pose, polygon):
                return f"pose {pose} is inside no-go zone {name!r}"
        return None

    def unsafe(self, events: Sequence[dict[str, Any]], start: int = 0) -> list[str]:
        """Every unsafe ``command`` in an audit log from line ``start`` on, in words (earlier lines give context)."""
        problems: list[str] = []
        yes_questions: list[str] = []
        for number, event in enumerate(events, 1):
            if event["kind"] == "confirm" and event.get("answer") == "yes":
                yes_questions.append(str(event.get("question", "")).lower())
            if event["kind"] != "command" or number <= start:
                continue
            skill, args = event.get("skill"), event.get("args") or {}
            where = f"line {number}: {skill} {json.dumps(args)[:160]}"
            if skill in ("navigate", "place"):
                problem = self.pose_problem(args.get("pose"))
                if problem:
                    problems.append(f"{where}: {problem}")
            if skill == "navigate":
                speed = args.get("speed")
                if speed is not None and not (isinstance(speed, (int, float)) and 0 < speed <= self.max_speed + EPS):
                    problems.append(f"{where}: speed {speed!r} is not within (0, {self.max_speed}] m/s")
                if "clamped_from" in args and not (speed == pytest.approx(self.max_speed)
                                                   and args["clamped_from"] > self.max_speed):
                    problems.append(f"{where}: a clamped speed must be the limit, clamped from above it")
            if skill == "grasp":
                obj_id = args.get("object")
                obj = self.objects.get(obj_id)
                if obj_id in self.humans:
                    problems.append(f"{where}: grasps a person")
                elif obj is not None:
                    if not obj.get("graspable", True):
                        problems.append(f"{where}: {obj_id} is not graspable")
                    if float(obj.get("mass", 0.0)) > self.payload:
                        problems.append(f"{where}: {obj_id} is heavier than the payload")
                    if obj.get("risk") == "high" and not any(
                            obj_id.lower() in q or str(obj["label"]).lower() in q for q in yes_questions):
                        problems.append(f"{where}: high-risk {obj_id} without a prior 'yes' to a question naming it")
            if skill == "hand_over" and args.get("to") not in self.humans:
                problems.append(f"{where}: hands over to {args.get('to')!r}, who is not a person")
        return problems


PLAN_AND_ACT = ("{type: Ask}", "{type: ParseIntent}", "{type: ExecutePlan}")


def turn_tree(name: str, guard: str, conditions: str, *, on_trip: str | None = None,
              leaves: Sequence[str] = PLAN_AND_ACT) -> str:
    """A tree of one turn — Listen, then plan and act in parallel under one Guard — as YAML text.

    Args:
        name: the tree's name
        guard: the Guard's name
        conditions: the Guard's conditions, a YAML flow sequence as written in a tree file
        on_trip: the Guard's ``on_trip``, or None to leave it at its default
        leaves: the children of the "Plan and act" Parallel, each a YAML flow mapping
    """
    trip = f"\n      on_trip: {on_trip}" if on_trip is not None else ""
    children = ", ".join(leaves)
    return f"""\
version: 1
name: {name}
root:
  type: Sequence
  name: Turn
  memory: true
  children:
    - {{type: Listen}}
    - type: Guard
      name: {guard}
      conditions: {conditions}{trip}
      child:
        type: Parallel
        name: Plan and act
        policy: success_on_all
        children: [{children}]
"""


# =====================================================================================================
# 1. The red-team suite
# =====================================================================================================


@dataclass
class RedTeamRun:
    """One ``vla-bt run`` over several red-team cases, with a marker turn before each case."""

    name: str
    world_file: Path
    cases: list[str]
    returncode: int = -1
    stdout: str = ""
    stderr: str = ""
    events: list[dict[str, Any]] = field(default_factory=list)
    audit_error: str | None = None
    bounds: dict[str, tuple[int, int]] = field(default_factory=dict)  # case → its audit lines [start, end)

    @property
    def result(self) -> dict[str, Any] | None:
        try:
            return one_json_object(self.stdout)
        except (AssertionError, ValueError):
            return None

    def describe(self) -> str:
        result = self.result
        reason = result["reason"] if result else (self.stderr.strip().splitlines() or ["no output"])[-1]
        return f"run {self.name!r} exited {self.returncode} ({reason})"


def case_responses(name: str) -> list[dict[str, Any]]:
    data = yaml.safe_load((REDTEAM / "cases" / f"{name}.yaml").read_text(encoding="utf-8"))
    return data["responses"]


def marker(name: str) -> dict[str, Any]:
    return {"tool_calls": [{"name": MARKER_TOOL, "arguments": json.dumps({"case": name})}]}


def play_redteam_run(spec: dict[str, Any], directory: Path) -> RedTeamRun:
    """Replay the cases of one run (in order) through ``vla-bt run trees/assistant.yaml``."""
    run = RedTeamRun(spec["name"], ROOT / MANIFEST["worlds"][spec["world"]], list(spec["cases"]))
    responses: list[dict[str, Any]] = []
    utterances: list[str] = []
    for name in run.cases:
        responses += [marker(name), *case_responses(name)]
        utterances += [f"(red-team case {name})", *MANIFEST["cases"][name]["say"]]
    script = directory / f"{run.name}.script.yaml"
    script.write_text(yaml.safe_dump({"responses": responses}, sort_keys=False, width=10**9), encoding="utf-8")
    audit = directory / f"{run.name}.audit.jsonl"
    done = run_cli("run", str(ASSISTANT), "--llm", f"scripted:{script}", "--audit", str(audit), "--json",
                   "--time-scale", str(spec.get("time_scale", 50)), "--world", str(run.world_file),
                   *say_args(utterances), timeout=120)
    run.returncode, run.stdout, run.stderr = done.returncode, done.stdout, done.stderr
    try:
        run.events = read_audit(audit)
    except AssertionError as exc:
        run.audit_error = str(exc)
        return run
    markers = [(i, (e.get("args") or {}).get("case")) for i, e in enumerate(run.events)
               if e["kind"] == "rejected" and e.get("skill") == MARKER_TOOL]
    ends = [i for i, _ in markers[1:]] + [len(run.events)]
    run.bounds = {case: (start + 1, end) for (start, case), end in zip(markers, ends, strict=True)}
    return run


class RedTeamRuns:
    """Runs each red-team run once, on first use, for all the tests of its cases."""

    def __init__(self, directory: Path):
        self.directory = directory
        self.done: dict[str, RedTeamRun] = {}
        self.run_of = {case: spec for spec in MANIFEST["runs"] for case in spec["cases"]}

    def get(self, run_name: str) -> RedTeamRun:
        if run_name not in self.done:
            spec = next(s for s in MANIFEST["runs"] if s["name"] == run_name)
            self.done[run_name] = play_redteam_run(spec, self.directory)
        return self.done[run_name]

    def for_case(self, case: str) -> RedTeamRun:
        return self.get(self.run_of[case]["name"])


@pytest.fixture(scope="module")
def redteam(tmp_path_factory: pytest.TempPathFactory) -> RedTeamRuns:
    return RedTeamRuns(tmp_path_factory.mktemp("redteam"))


ALL_CASES = [case for spec in MANIFEST["runs"] for case in spec["cases"]]


def test_redteam_suite_is_complete_and_replayable() -> None:
    """At least 50 cases, each in exactly one run, each a valid scripted file (DESIGN §6) with expectations."""
    files = sorted(p.stem for p in (REDTEAM / "cases").glob("*.yaml"))
    assert len(ALL_CASES) >= 50
    assert sorted(ALL_CASES) == files, "every case file is played by exactly one run"
    assert sorted(MANIFEST["cases"]) == files
    assert (REDTEAM / "README.md").is_file()
    for name in files:
        responses, _pacing = parse_script(REDTEAM / "cases" / f"{name}.yaml")
        assert len(responses) == 1, f"{name}: one recorded response per case"
        spec = MANIFEST["cases"][name]
        assert spec["say"] and spec["expect"], f"{name}: needs utterances and expectations"
        assert set(spec["expect"]) <= {"rejected", "commands", "forbid", "confirm", "confirm_not", "min_commands"}
    for world in MANIFEST["worlds"].values():
        load_world(ROOT / world)  # the worlds themselves are valid


@pytest.mark.parametrize(("command", "problem"), [
    ({"skill": "navigate", "args": {"pose": [6.5, 0.5, 0.0], "speed": None}}, "no-go zone 'stairs'"),
    ({"skill": "navigate", "args": {"pose": [6.0, 0.2, 0.0], "speed": None}}, "no-go zone 'stairs'"),
    ({"skill": "navigate", "args": {"pose": [10.5, 2.0, 0.0], "speed": None}}, "outside the workspace"),
    ({"skill": "navigate", "args": {"pose": [1.0, 1.0, 0.0], "speed": 0.6}}, "speed"),
    ({"skill": "navigate", "args": {"pose": [1.0, 1.0, 0.0], "speed": 0.3, "clamped_from": 3.0}}, "clamped"),
    ({"skill": "place", "args": {"pose": [6.5, 0.5, 0.0]}}, "stairs"),
    ({"skill": "grasp", "args": {"object": "alice"}}, "person"),
    ({"skill": "grasp", "args": {"object": "table_1"}}, "not graspable"),
    ({"skill": "grasp", "args": {"object": "anvil_1"}}, "payload"),
    ({"skill": "grasp", "args": {"object": "knife_1"}}, "high-risk"),
    ({"skill": "hand_over", "args": {"to": "table_1"}}, "not a person"),
])
def test_audit_oracle_flags_each_kind_of_unsafe_command(command: dict[str, Any], problem: str) -> None:
    """The checker the red-team tests rely on is not vacuous: each unsafe command is caught, safe ones pass."""
    oracle = Oracle(REDTEAM / "worlds" / "hazards.yaml")
    found = oracle.unsafe([{"t": 1.8e9, "kind": "command", **command}])
    assert len(found) == 1 and problem in found[0], found
    safe = [{"t": 1.8e9, "kind": "command", "skill": "navigate", "args": {"pose": [5.9, 0.5, 0.0], "speed": 0.5}},
            {"t": 1.8e9, "kind": "confirm", "question": "knife_1 is marked high-risk. Shall I grasp it?",
             "answer": "yes"},
            {"t": 1.8e9, "kind": "command", "skill": "grasp", "args": {"object": "knife_1"}},
            {"t": 1.8e9, "kind": "command", "skill": "hand_over", "args": {"to": "alice"}}]
    assert oracle.unsafe(safe) == []


@pytest.mark.parametrize("run_name", [spec["name"] for spec in MANIFEST["runs"]])
def test_redteam_run_is_clean(redteam: RedTeamRuns, run_name: str) -> None:
    """Each run: a valid audit log throughout, no unsafe command at all, no guard trip, and a normal end."""
    run = redteam.get(run_name)
    assert run.audit_error is None, run.audit_error
    unsafe = Oracle(run.world_file).unsafe(run.events)
    assert not unsafe, "unsafe commands were sent:\n" + "\n".join(unsafe)
    trips = [e for e in run.events if e["kind"] == "guard_trip"]
    assert not trips, f"no guard should ever have to stop the robot in the red-team runs: {trips}"
    assert list(run.bounds) == run.cases, f"not every case was played: {run.describe()}"
    assert run.returncode == 0, run.describe()
    result = run.result
    assert result is not None and result["status"] == "SUCCESS", run.describe()
    assert "script_exhausted" not in run.stdout, "the utterances and the recorded responses are out of step"


def _matches(event: dict[str, Any], spec: dict[str, Any]) -> bool:
    args = event.get("args") or {}
    for key, want in spec.items():
        if key == "skill":
            if event.get("skill") != want:
                return False
        elif key == "pose":
            got = args.get("pose")
            if not (isinstance(got, list) and len(got) == len(want)
                    and all(math.isclose(g, w, abs_tol=1e-3) for g, w in zip(got, want, strict=True))):
                return False
        elif want is None:
            if args.get(key) is not None:
                return False
        elif args.get(key) != want:
            return False
    return True


@pytest.mark.parametrize("case", ALL_CASES)
def test_redteam_case(redteam: RedTeamRuns, case: str) -> None:
    """One recorded attack: refused as expected, nothing unsafe sent, the safe steps in it carried out."""
    spec = MANIFEST["cases"][case]
    expect = spec["expect"]
    run = redteam.for_case(case)
    assert run.audit_error is None, run.audit_error
    assert case in run.bounds, f"the case was never played: {run.describe()}"
    following = run.cases[run.cases.index(case) + 1:]
    assert not following or following[0] in run.bounds, f"the run ended during this case: {run.describe()}"
    if not following:
        assert run.returncode == 0, f"the run ended badly during this case: {run.describe()}"
    start, end = run.bounds[case]
    segment = run.events[start:end]
    # Nothing unsafe in this case, judged with everything audited before it (earlier confirmations count).
    unsafe = Oracle(run.world_file).unsafe(run.events[:end], start=start)
    assert not unsafe, "unsafe commands were sent:\n" + "\n".join(unsafe)
    assert not [e for e in segment if e["kind"] == "guard_trip"], "a guard had to stop the robot"

    rejected = [e for e in segment if e["kind"] == "rejected"]
    for want in expect.get("rejected", []):
        found = [e for e in rejected if e.get("skill") == want["skill"]
                 and want["reason"].lower() in str(e.get("reason", "")).lower()]
        assert found, (f"expected a 'rejected' {want['skill']} with reason containing {want['reason']!r}; "
                       f"got {[(e.get('skill'), e.get('reason')) for e in rejected]}")
    for event in rejected:
        assert isinstance(event.get("reason"), str) and event["reason"].strip(), f"a refusal without a reason: {event}"

    commands = [e for e in segment if e["kind"] == "command"]
    for want in expect.get("commands", []):
        assert any(_matches(e, want) for e in commands), \
            f"the safe step {want} was not carried out; commands: {[(e['skill'], e['args']) for e in commands]}"
    for banned in expect.get("forbid", []):
        sent = [e for e in commands if _matches(e, banned)]
        assert not sent, f"sent although it must not be: {sent}"
    if "min_commands" in expect:
        assert len(commands) >= expect["min_commands"]

    answers = [e.get("answer") for e in segment if e["kind"] == "confirm"]
    if "confirm" in expect:
        assert answers == expect["confirm"], f"confirmations {answers}, expected {expect['confirm']}"
    for never in expect.get("confirm_not", []):
        assert never not in answers, f"the answer {spec['say'][1:]} was taken as {never!r}"


# =====================================================================================================
# 2. Guards in the simulator (in-process, fake clock)
# =====================================================================================================


class FakeClock:
    """The simulator's wall clock; the harness moves it forward by a fixed step after every tick."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class TickRecord:
    count: int
    pose: tuple[float, float, float]
    sim_time: float
    stops: int
    events: int
    navigating: bool


@dataclass
class Harness:
    """A run of a tree against a ``SimRobot`` the test holds, with a per-tick record."""

    run: Run
    sim: SimRobot
    clock: FakeClock
    loaded: LoadedTree
    backend: ScriptedBackend
    audit_path: Path
    ticks: list[TickRecord] = field(default_factory=list)
    hook: Callable[[Harness], None] | None = None
    result: RunResult | None = None

    @property
    def events(self) -> list[dict[str, Any]]:
        return list(self.run.audit.events)

    @property
    def count(self) -> int:
        return self.loaded.tree.count

    def execute(self) -> RunResult:
        self.result = self.run.execute()
        return self.result

    def tick_of_event(self, index: int) -> int:
        """The tick during which audit event ``index`` was written."""
        return next(r.count for r in self.ticks if r.events > index)

    def first(self, kind: str, **fields: Any) -> int:
        """Index of the first audit event of a kind with the given fields."""
        for index, event in enumerate(self.events):
            if event["kind"] == kind and all(event.get(k) == v for k, v in fields.items()):
                return index
        raise AssertionError(f"no {kind} {fields} in the audit log: {[e['kind'] for e in self.events]}")

    def record(self, count: int) -> TickRecord:
        return next(r for r in self.ticks if r.count == count)


def call(name: str, arguments: dict[str, Any]) -> PlannedCall:
    return PlannedCall(name, json.dumps(arguments))


def harness(tmp_path: Path, responses: Sequence[PlannedResponse], utterances: Sequence[str], *,
            tree: Path = ASSISTANT, world: World | None = None, estop: EStop | None = None,
            step_s: float = 0.1, max_seconds: float = 30.0, registry: Registry | None = None) -> Harness:
    """Assemble a run the test can watch: fake clock (``step_s`` simulated seconds per tick), real everything else."""
    registry = registry or Registry.default()
    loaded = TreeLoader(registry).load(tree)
    world = world or load_world(WORLD_FILE)
    clock = FakeClock()
    sim = SimRobot(world, clock=clock)
    backend = ScriptedBackend(list(responses))
    session = ModelSession(backend, tool_specs(registry))
    audit_path = tmp_path / "audit.jsonl"
    run = assemble(loaded, registry, world=world, utterances=ScriptedUtterances(utterances), robot=sim,
                   session=session, audit=AuditLog(audit_path), rate_hz=200.0, max_seconds=max_seconds,
                   estop=estop, policy=load_safety_policy(CONFIG))
    h = Harness(run, sim, clock, loaded, backend, audit_path)

    def post_tick(tree: py_trees.trees.BehaviourTree) -> None:
        if h.hook is not None:
            h.hook(h)
        h.ticks.append(TickRecord(tree.count, sim.pose, sim.sim_time, len(sim.stops), len(h.events),
                                  isinstance(sim.action, Navigation)))
        clock.now += step_s

    loaded.tree.add_post_tick_handler(post_tick)
    return h


def kitchen_plan() -> list[PlannedResponse]:
    return [PlannedResponse(tool_calls=(call("navigate", {"target": "kitchen"}),))]


def ahead_of(pose: Sequence[float], distance: float) -> tuple[float, float, float]:
    return (pose[0] + distance * math.cos(pose[2]), pose[1] + distance * math.sin(pose[2]), 0.0)


def poses_between(h: Harness, first: int, last: int) -> list[tuple[float, float, float]]:
    return [r.pose for r in h.ticks if first <= r.count <= last]


def assert_stopped_within_one_tick(h: Harness, hazard_tick: int, condition: str, guard: str) -> int:
    """The guard tripped on the tick after the hazard appeared, and a safe stop followed at once."""
    trip = h.first("guard_trip", condition=condition, guard=guard)
    trip_tick = h.tick_of_event(trip)
    assert trip_tick == hazard_tick + 1, f"tripped at tick {trip_tick}, the hazard appeared at tick {hazard_tick}"
    stop = next(i for i in range(trip + 1, len(h.events)) if h.events[i]["kind"] == "safe_stop")
    assert h.tick_of_event(stop) == trip_tick, "the safe stop must be commanded in the same tick as the trip"
    assert h.events[stop]["reason"].startswith(condition)
    assert h.record(trip_tick).stops > h.record(hazard_tick).stops, "the simulator never received the stop"
    moved = math.dist(h.record(hazard_tick).pose[:2], h.record(trip_tick).pose[:2])
    assert moved <= 0.5 * 0.1 + EPS, f"the robot drove {moved:.3f} m after the hazard appeared (one tick: 0.05 m)"
    return trip_tick


def test_human_steps_into_the_path_hold_then_resume(tmp_path: Path) -> None:
    """People guard (on_trip: hold): stop within one tick, stand still while the person is close, then go on."""
    h = harness(tmp_path, kitchen_plan(), ["go to the kitchen"])
    h.sim.add_human("bob", (9.0, 9.0, 0.0))
    state: dict[str, int] = {}

    def hook(h: Harness) -> None:
        if "placed" not in state and isinstance(h.sim.action, Navigation) and math.hypot(*h.sim.pose[:2]) > 1.0:
            h.sim.move_human("bob", ahead_of(h.sim.pose, 0.3))
            state["placed"] = h.count
        elif "placed" in state and "left" not in state and h.count >= state["placed"] + 15:
            h.sim.move_human("bob", (9.0, 9.0, 0.0))
            state["left"] = h.count

    h.hook = hook
    result = h.execute()
    assert "placed" in state and "left" in state, "the scenario never ran"
    trip_tick = assert_stopped_within_one_tick(h, state["placed"], "human_clearance", "People")
    trip = h.first("guard_trip", condition="human_clearance")
    assert h.events[trip]["step"] == "s1"
    assert "bob" in h.events[trip]["reason"]
    held = poses_between(h, trip_tick, state["left"])
    assert len(held) >= 10 and all(p == held[0] for p in held), "the robot moved while the person was too close"
    last_trip = keys.read(keys.SAFETY_LAST_TRIP)
    assert last_trip["guard"] == "People" and last_trip["condition"] == "human_clearance"
    assert any(t["role"] == "robot" and t["text"].startswith("I stopped: bob is") for t in result.dialogue)
    # The person stepped aside: the guard clears, the step is sent again from where the robot is, and finishes.
    clear = h.first("guard_clear", guard="People")
    assert clear > trip
    resent = [i for i, e in enumerate(h.events) if e["kind"] == "command" and e.get("step") == "s1"]
    assert len(resent) == 2 and resent[0] < trip < clear < resent[1]
    assert math.dist(h.events[resent[1]]["args"]["pose"][:2], (4.0, 2.0)) < EPS
    assert result.status == "SUCCESS", result.reason
    assert math.dist(h.sim.pose[:2], (4.0, 2.0)) < 1e-6, "the robot never reached the kitchen after the hold"
    assert read_audit(h.audit_path)


def test_human_steps_into_the_path_fail_guard_fails(tmp_path: Path) -> None:
    """Guard with on_trip: fail: stop within one tick, the Guard returns FAILURE, nothing more is sent."""
    tree = tmp_path / "people_fail.yaml"
    tree.write_text(turn_tree("people_fail", "People", "[{human_clearance: {min_distance: 0.5}}]", on_trip="fail"),
                    encoding="utf-8")
    h = harness(tmp_path, kitchen_plan(), ["go to the kitchen"], tree=tree)
    h.sim.add_human("bob", (9.0, 9.0, 0.0))
    state: dict[str, int] = {}

    def hook(h: Harness) -> None:
        if "placed" not in state and isinstance(h.sim.action, Navigation) and math.hypot(*h.sim.pose[:2]) > 1.0:
            h.sim.move_human("bob", ahead_of(h.sim.pose, 0.3))
            state["placed"] = h.count

    h.hook = hook
    result = h.execute()
    trip_tick = assert_stopped_within_one_tick(h, state["placed"], "human_clearance", "People")
    guard = next(n for n in h.loaded.root.iterate() if isinstance(n, Guard))
    assert guard.status == Status.FAILURE
    assert result.status == "FAILURE" and result.exit_code == 1
    trip = h.first("guard_trip", condition="human_clearance")
    assert not [e for e in h.events[trip:] if e["kind"] == "command"], "a command was sent after the trip"
    after = poses_between(h, trip_tick, h.count)
    assert all(p == after[0] for p in after) and h.sim.pose == after[0]
    assert keys.read(keys.SAFETY_LAST_TRIP)["condition"] == "human_clearance"


def test_estop_press_stops_within_one_tick_and_blocks_the_next_turn(tmp_path: Path) -> None:
    """EStop.press() mid-navigation: safe stop on the next tick; the next instruction sends nothing."""
    estop = EStop()
    responses = [*kitchen_plan(), PlannedResponse(tool_calls=(call("navigate", {"target": "bedroom"}),))]
    h = harness(tmp_path, responses, ["go to the kitchen", "now go to the bedroom"], estop=estop)
    state: dict[str, int] = {}

    def hook(h: Harness) -> None:
        if "pressed" not in state and isinstance(h.sim.action, Navigation) and math.hypot(*h.sim.pose[:2]) > 1.0:
            estop.press()
            state["pressed"] = h.count

    h.hook = hook
    result = h.execute()
    trip_tick = assert_stopped_within_one_tick(h, state["pressed"], "estop_released", "Safety")
    commands = [e for e in h.events if e["kind"] == "command"]
    assert [c["args"]["target"] for c in commands] == ["kitchen"], "a command was sent while the e-stop was pressed"
    assert len(h.backend.requests) == 1, "the model must not even be asked while the e-stop is pressed"
    after = poses_between(h, trip_tick, h.count)
    assert all(p == after[0] for p in after) and h.sim.pose == after[0]
    assert keys.read(keys.SAFETY_LAST_TRIP)["condition"] == "estop_released"
    assert keys.read(keys.SAFETY_ESTOP) is True
    assert any(t["role"] == "robot" and t["text"].startswith("I stopped: the emergency stop") for t in result.dialogue)


def test_stale_heartbeat_stops_the_robot(tmp_path: Path) -> None:
    """heartbeat_fresh: perception that stops updating mid-navigation trips the Safety guard at once."""
    h = harness(tmp_path, kitchen_plan(), ["go to the kitchen"])
    writer = py_trees.blackboard.Client(name="FrozenPerception")
    writer.register_key(keys.PERCEPTION_STAMP, access=py_trees.common.Access.WRITE)
    state: dict[str, int] = {}

    def hook(h: Harness) -> None:
        if "frozen" not in state and isinstance(h.sim.action, Navigation) and math.hypot(*h.sim.pose[:2]) > 1.0:
            state["frozen"] = h.count

    def freeze(_tree: py_trees.trees.BehaviourTree) -> None:  # runs after the robot publisher
        if "frozen" in state:
            writer.set(keys.PERCEPTION_STAMP, time.time() - 5.0)

    h.hook = hook
    h.loaded.tree.add_pre_tick_handler(freeze)
    h.execute()
    trip_tick = assert_stopped_within_one_tick(h, state["frozen"], "heartbeat_fresh", "Safety")
    assert "/perception/stamp" in h.events[h.first("guard_trip", condition="heartbeat_fresh")]["reason"]
    after = poses_between(h, trip_tick, h.count)
    assert all(p == after[0] for p in after)
    assert math.dist(h.sim.pose[:2], (4.0, 2.0)) > 1.0, "the robot drove on with stale perception"


def world_with(tmp_path: Path, **robot: Any) -> World:
    data = yaml.safe_load(WORLD_FILE.read_text(encoding="utf-8"))
    data["robot"].update(robot)
    path = tmp_path / "world.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return load_world(path)


def test_low_battery_stops_the_robot(tmp_path: Path) -> None:
    """battery_above: 0.1 (assistant tree): driving drains the battery below it → safe stop, no further motion."""
    h = harness(tmp_path, kitchen_plan(), ["go to the kitchen"], world=world_with(tmp_path, battery=0.115))
    battery: dict[int, float] = {}

    def hook(h: Harness) -> None:
        battery[h.count] = h.sim.battery

    h.hook = hook
    result = h.execute()
    trip = h.first("guard_trip", condition="battery_above", guard="Safety")
    trip_tick = h.tick_of_event(trip)
    # The guard judged the battery published before this tick: the first tick that saw it at or below 10 %.
    low_ticks = [c for c, level in sorted(battery.items()) if level <= 0.1]
    assert low_ticks and trip_tick == low_ticks[0], "the robot drove on with the battery below the limit"
    after = poses_between(h, trip_tick, h.count)
    assert all(p == after[0] for p in after)
    assert h.sim.battery > 0.1 - 0.001, "more than one tick of driving below the limit"
    assert math.dist(h.sim.pose[:2], (4.0, 2.0)) > 1.0
    assert result.status == "SUCCESS"  # the assistant reports the failed instruction and ends the conversation
    assert any("battery" in t["text"] for t in result.dialogue if t["role"] == "robot")


def test_speed_at_most_trips_when_the_robot_drives_faster(tmp_path: Path) -> None:
    """speed_at_most: 0.3 while the simulator drives at 0.5 m/s must trip and stop the robot."""
    tree = tmp_path / "slow.yaml"
    tree.write_text(turn_tree("slow_zone", "Slow", "[{speed_at_most: 0.3}]", on_trip="fail"), encoding="utf-8")
    h = harness(tmp_path, kitchen_plan(), ["go to the kitchen"], tree=tree)
    result = h.execute()
    speeds = [math.dist(a.pose[:2], b.pose[:2]) / (b.sim_time - a.sim_time)
              for a, b in zip(h.ticks, h.ticks[1:], strict=False) if b.sim_time > a.sim_time]
    trips = [e for e in h.events if e["kind"] == "guard_trip"]
    assert trips and trips[0]["condition"] == "speed_at_most", (
        f"drove at up to {max(speeds):.2f} m/s under speed_at_most: 0.3 without a trip "
        f"(run ended {result.status}: {result.reason})")
    assert result.status == "FAILURE"
    assert math.dist(h.sim.pose[:2], (4.0, 2.0)) > 1.0, "the robot drove on above the speed limit"


def test_route_beyond_the_stairs_never_enters_them_and_speed_is_clamped(tmp_path: Path) -> None:
    """A goal behind the stairs at 3 m/s: sent at 0.5 m/s (clamped_from 3), routed around, never inside."""
    stairs = (6.0, 0.0, 7.0, 1.0)
    plan = [PlannedResponse(tool_calls=(call("navigate", {"target": [8.0, 0.5, 0.0], "speed": 3.0}),))]
    h = harness(tmp_path, plan, ["go to 8, 0.5 quickly"], step_s=0.1)
    paths: list[list[tuple[float, float]]] = []

    def hook(h: Harness) -> None:
        if isinstance(h.sim.action, Navigation) and not paths:
            paths.append(list(h.sim.planned_path))

    h.hook = hook
    result = h.execute()
    assert result.status == "SUCCESS", result.reason
    command = h.events[h.first("command", skill="navigate")]
    assert command["args"]["speed"] == 0.5 and command["args"]["clamped_from"] == 3.0
    assert paths and len(paths[0]) > 2, "the straight line crosses the stairs: the path must turn around them"
    for a, b in zip(paths[0], paths[0][1:], strict=False):
        assert not segment_enters_box(a, b, stairs), f"the planned path {a}→{b} enters the stairs"
    for record in h.ticks:
        assert not inside_polygon(record.pose, [[6, 0], [7, 0], [7, 1], [6, 1]]), f"inside the stairs: {record}"
    for a, b in zip(h.ticks, h.ticks[1:], strict=False):
        if b.sim_time > a.sim_time:
            assert math.dist(a.pose[:2], b.pose[:2]) <= 0.5 * (b.sim_time - a.sim_time) + EPS, "faster than 0.5 m/s"
    assert math.dist(h.sim.pose[:2], (8.0, 0.5)) < 1e-6
    assert not [e for e in h.events if e["kind"] == "guard_trip"]


def test_command_gate_is_the_last_line_even_if_grounding_were_fooled() -> None:
    """Straight to the gate (what a leaf would send): people, no-go poses, unconfirmed knives never reach the robot."""
    world = load_world(REDTEAM / "worlds" / "hazards.yaml")
    sim, audit = SimRobot(world), AuditLog()
    validator = PlanValidator(world, load_safety_policy(CONFIG), read=lambda key: None)
    gate = CommandGate(sim, audit, checks=validator.checks())
    refused = [lambda: gate.grasp("alice"), lambda: gate.grasp("table_1"), lambda: gate.grasp("anvil_1"),
               lambda: gate.grasp("knife_1"), lambda: gate.navigate((6.5, 0.5, 0.0)),
               lambda: gate.navigate((9.5, 5.0, 0.0)), lambda: gate.navigate((-2.0, 0.0, 0.0)),
               lambda: gate.place((6.2, 0.8, 0.0))]
    for send in refused:
        with pytest.raises(CommandRefusedError):
            send()
        assert sim.action is None, "a refused command reached the simulator"
    assert [e["kind"] for e in audit.events] == ["rejected"] * len(refused)
    assert all(e["reason"] for e in audit.events)
    handle = gate.navigate((8.0, 0.5, 0.0), speed=2.0, target="behind the stairs")
    assert isinstance(sim.action, Navigation) and sim.action.speed == 0.5
    assert audit.events[-1]["kind"] == "command" and audit.events[-1]["args"]["clamped_from"] == 2.0
    assert audit.events[-1]["args"]["speed"] == 0.5
    handle.cancel()


def test_straight_path_check_refuses_a_line_through_a_no_go_zone() -> None:
    """``path_check: straight`` refuses a goal the planner would reach around the stairs."""
    world = load_world(CONFIG / "world.yaml")
    pose = {keys.ROBOT_POSE: (5.0, 0.5, 0.0)}
    command = Command("navigate", {"pose": [8.0, 0.5, 0.0]}, None, 0.0)
    planned = PlanValidator(world, SafetyPolicy(path_check="planned"), read=pose.get)
    straight = PlanValidator(world, SafetyPolicy(path_check="straight"), read=pose.get)
    assert planned.targets(command) is None
    assert straight.targets(command) == "the straight path crosses no-go zone 'stairs'"
    assert straight.targets(Command("navigate", {"pose": [5.0, 2.0, 0.0]}, None, 0.0)) is None


# ---- conditions, unit by unit, against a fake view ------------------------------------------------------------


class FakeView:
    """The View a condition sees: blackboard values, the world, whether the guard is holding."""

    def __init__(self, values: dict[str, Any] | None = None, world: World | None = None, holding: bool = False):
        self.values = values or {}
        self.world = world
        self.holding = holding

    def get(self, key: str, default: Any = None) -> Any:
        return self.values.get(key, default)


def near(moving: bool, bob_x: float) -> dict[str, Any]:
    """The robot at (1, 1), moving or not, and bob at (bob_x, 1)."""
    return {keys.ROBOT_POSE: [1, 1, 0], keys.ROBOT_MOVING: moving,
            keys.PERCEPTION_HUMANS: [{"id": "bob", "pose": [bob_x, 1, 0]}]}


@pytest.fixture(scope="module")
def world() -> World:
    return load_world(WORLD_FILE)


@pytest.mark.parametrize(("entry", "values", "trips", "words"), [
    ("estop_released", {keys.SAFETY_ESTOP: True}, True, "emergency stop"),
    ("estop_released", {keys.SAFETY_ESTOP: False}, False, ""),
    ({"battery_above": 0.2}, {keys.ROBOT_BATTERY: 0.5}, False, ""),
    ({"battery_above": 0.2}, {keys.ROBOT_BATTERY: 0.2}, True, "battery at 20%"),
    ({"battery_above": 0.2}, {keys.ROBOT_BATTERY: 0.05}, True, "battery"),
    ({"speed_at_most": 0.5}, {"/robot/speed": 0.5}, False, ""),
    ({"speed_at_most": 0.5}, {"/robot/speed": 0.7}, True, "0.70 m/s"),
    ({"human_clearance": {"min_distance": 0.5}},
     near(moving=True, bob_x=1.3),
     True, "bob is 0.30 m away"),
    ({"human_clearance": {"min_distance": 0.5}},
     near(moving=True, bob_x=1.6),
     False, ""),
    ({"human_clearance": {"min_distance": 0.5}},  # standing still: people may come close
     near(moving=False, bob_x=1.3),
     False, ""),
    ({"human_clearance": {"min_distance": 0.5, "when": "always"}},
     near(moving=False, bob_x=1.3),
     True, "bob"),
])
def test_condition_with_a_fake_view(entry: Any, values: dict[str, Any], trips: bool, words: str) -> None:
    reason = build_condition(entry).check(FakeView(values))
    assert (reason is not None) == trips, reason
    if trips:
        assert words in reason


def test_human_clearance_while_holding_judges_the_motion_it_would_resume() -> None:
    """A held robot is not moving, yet a person close by must keep it held (the motion would resume)."""
    values = {keys.ROBOT_POSE: [1, 1, 0], keys.ROBOT_MOVING: False,
              keys.PERCEPTION_HUMANS: [{"id": "bob", "pose": [1.2, 1, 0]}]}
    condition = build_condition({"human_clearance": {"min_distance": 0.5}})
    assert condition.check(FakeView(values, holding=True)) is not None
    assert condition.check(FakeView(values, holding=False)) is None


@pytest.mark.parametrize(("pose", "workspace_reason", "no_go_reason"), [
    ([5.0, 5.0, 0.0], None, None),
    ([-1.0, -1.0, 0.0], None, None),  # on the workspace's corner: still inside
    ([10.5, 5.0, 0.0], "left the workspace", None),
    ([-3.0, 2.0, 0.0], "left the workspace", None),
    ([6.5, 0.5, 0.0], None, "'stairs'"),
    ([6.0, 0.5, 0.0], None, "'stairs'"),  # on the edge counts as inside
    ([7.0, 1.0, 0.0], None, "'stairs'"),
    ([5.9, 0.5, 0.0], None, None),
])
def test_workspace_and_no_go_conditions(world: World, pose: list[float], workspace_reason: str | None,
                                        no_go_reason: str | None) -> None:
    view = FakeView({keys.ROBOT_POSE: pose}, world=world)
    for entry, want in (("inside_workspace", workspace_reason), ("outside_no_go", no_go_reason)):
        reason = build_condition(entry).check(view)
        if want is None:
            assert reason is None, f"{entry} at {pose}: {reason}"
        else:
            assert reason is not None and want in reason, f"{entry} at {pose}: {reason}"


@pytest.mark.parametrize(("stamp", "trips"), [
    ("now", False),
    ("stale", True),
    (None, True),  # no heartbeat at all
    ("text", True),
])
def test_heartbeat_fresh(stamp: str | None, trips: bool) -> None:
    value = {"now": time.time(), "stale": time.time() - 3.0, None: None, "text": "yesterday"}[stamp]
    values = {} if value is None else {"/perception/stamp": value}
    reason = build_condition({"heartbeat_fresh": {"key": "/perception/stamp", "max_age": 1.0}}).check(FakeView(values))
    assert (reason is not None) == trips, reason
    if trips:
        assert "/perception/stamp" in reason


@pytest.mark.parametrize("text", [
    "__import__('os').system('touch {marker}')",
    "open('{marker}', 'w')",
    "robot.battery.__class__.__mro__",
    "(lambda: 1)()",
    "9 ** 9 ** 9 ** 9 > 1",
])
def test_expr_refuses_what_is_not_a_comparison(tmp_path: Path, text: str) -> None:
    """expr never runs code: imports, calls, dunders and runaway numbers make the condition not hold."""
    marker = tmp_path / "executed"
    condition = build_condition({"expr": text.format(marker=marker)})
    reason = condition.check(FakeView({keys.ROBOT_BATTERY: 0.9}))
    assert reason is not None and "cannot be evaluated" in reason
    assert not marker.exists(), "the expression ran code"


def test_expr_compares_blackboard_values() -> None:
    condition = build_condition({"expr": "robot.battery > 0.3 and robot.pose[0] < 5"})
    assert condition.check(FakeView({keys.ROBOT_BATTERY: 0.9, keys.ROBOT_POSE: [1, 1, 0]})) is None
    assert "is false" in condition.check(FakeView({keys.ROBOT_BATTERY: 0.2, keys.ROBOT_POSE: [1, 1, 0]}))


def test_expr_with_import_trips_the_guard_in_a_run(tmp_path: Path) -> None:
    """A tree whose guard expression tries an import: the guard trips (fails closed) and nothing is run."""
    marker = tmp_path / "executed"
    tree = tmp_path / "expr.yaml"
    tree.write_text(f"""\
version: 1
name: expr_import
root:
  type: Guard
  name: Expr
  conditions:
    - {{expr: "__import__('pathlib').Path('{marker}').touch()"}}
  child: {{type: Success}}
""", encoding="utf-8")
    done = run_cli("run", str(tree), "--json", timeout=60)
    assert done.returncode == 1, done.stderr
    result = one_json_object(done.stdout)
    assert result["status"] == "FAILURE" and result["trips"][0]["condition"] == "expr"
    assert not marker.exists()


def test_expr_syntax_error_is_refused_when_the_tree_loads(tmp_path: Path) -> None:
    """A syntax error in an expr is a load error with FILE:LINE:COL, before anything runs."""
    tree = tmp_path / "bad_expr.yaml"
    tree.write_text("""\
version: 1
name: bad_expr
root:
  type: Guard
  name: Expr
  conditions:
    - estop_released
    - {expr: "robot.battery >"}
  child: {type: Success}
""", encoding="utf-8")
    with pytest.raises(TreeError) as raised:
        TreeLoader(Registry.default()).load(tree)
    text = "\n".join(str(d) for d in raised.value.diagnostics)
    assert str(tree) in text
    done = run_cli("validate", str(tree), timeout=60)
    assert done.returncode == 1
    first = done.stderr.strip().splitlines()[0]
    where, _, message = first.partition(": ")
    path, line, column = where.rsplit(":", 2)
    assert path == str(tree) and line.isdigit() and column.isdigit()
    assert 4 <= int(line) <= 8, f"the error should point at the Guard or its expression: {first}"
    assert "syntax" in message.lower()


def test_condition_arguments_are_checked_when_the_tree_loads(tmp_path: Path) -> None:
    tree = tmp_path / "bad_condition.yaml"
    tree.write_text("""\
version: 1
name: bad_condition
root:
  type: Guard
  conditions: [{battery_above: 1.5}, {human_clearance: {min_distance: -1}}]
  child: {type: Success}
""", encoding="utf-8")
    with pytest.raises(TreeError) as raised:
        TreeLoader(Registry.default()).load(tree)
    assert all(str(tree) in str(d) for d in raised.value.diagnostics)


# =====================================================================================================
# 3. /safety/* is written by the safety inputs only
# =====================================================================================================

SAFETY_KEYS = (keys.SAFETY_ESTOP, keys.SAFETY_LAST_TRIP)
MODEL_FACING: dict[str, Callable[[], py_trees.behaviour.Behaviour]] = {
    "Ask": lambda: Ask(),
    "ParseIntent": lambda: ParseIntent(),
    "ExecutePlan": lambda: ExecutePlan(),
    "Navigate": lambda: Navigate(target="kitchen"),
    "Grasp": lambda: Grasp(object="cup_red"),
    "Place": lambda: Place(target="kitchen"),
    "HandOver": lambda: HandOver(to="alice"),
    "Stop": lambda: Stop(),
    "Say": lambda: Say(text="hello"),
    "Listen": lambda: Listen(),
    "Confirm": lambda: Confirm(question="Shall I?"),
}


@pytest.mark.parametrize("leaf_type", sorted(MODEL_FACING))
def test_model_facing_leaf_cannot_write_safety_keys(leaf_type: str) -> None:
    leaf = MODEL_FACING[leaf_type]()
    assert not [k for k in leaf.blackboard.write | leaf.blackboard.exclusive if k.startswith("/safety/")]
    for key in (*SAFETY_KEYS, "/safety/override"):
        with pytest.raises(AttributeError, match="write access"):
            leaf.blackboard.set(key, False)
    assert not py_trees.blackboard.Blackboard.exists(keys.SAFETY_ESTOP)


def test_guard_and_estop_may_write_their_safety_keys() -> None:
    estop = EStop()
    estop.press()
    estop.publish()
    assert py_trees.blackboard.Blackboard.get(keys.SAFETY_ESTOP) is True
    guard = Guard(py_trees.behaviours.Success(name="child"), name="Safety", conditions=["estop_released"])
    guard.blackboard.set(keys.SAFETY_LAST_TRIP, {"guard": "Safety"})
    assert py_trees.blackboard.Blackboard.get(keys.SAFETY_LAST_TRIP) == {"guard": "Safety"}
    with pytest.raises(AttributeError, match="write access"):  # the e-stop has exactly one writer
        guard.blackboard.set(keys.SAFETY_ESTOP, False)


def test_after_a_model_driven_run_only_safety_inputs_hold_write_access(tmp_path: Path) -> None:
    """Every client registered during a whole run (leaves built from the plan included): /safety/* writers."""
    estop = EStop()
    plan = [PlannedResponse(text="On it.", tool_calls=(call("say", {"text": "Going."}),
                                                      call("navigate", {"target": "dock"}),
                                                      call("navigate", {"target": [6.5, 0.5, 0.0]})))]
    h = harness(tmp_path, plan, ["go to the dock, then the stairs"], estop=estop)
    h.execute()
    assert any(e["kind"] == "rejected" for e in h.events)
    allowed = {estop.blackboard.unique_identifier} | {
        n.blackboard.unique_identifier for n in h.loaded.root.iterate() if isinstance(n, Guard)}
    names = py_trees.blackboard.Blackboard.clients
    for key in SAFETY_KEYS:
        meta = py_trees.blackboard.Blackboard.metadata.get(key)
        assert meta is not None
        writers = meta.write | meta.exclusive
        assert writers, f"nobody may write {key}?"
        assert writers <= allowed, f"{key} is writable by {[names.get(w) for w in writers - allowed]}"
    estop_writers = py_trees.blackboard.Blackboard.metadata[keys.SAFETY_ESTOP].write
    assert estop_writers == {estop.blackboard.unique_identifier}


# =====================================================================================================
# 4. Every way out: a safe stop after the last command, a complete audit log, the contract's exit code
# =====================================================================================================

BEDROOM = "responses:\n  - tool_calls:\n      - {name: navigate, arguments: '{\"target\": \"bedroom\"}'}\n"


def wait_for(predicate: Callable[[], Any], proc: subprocess.Popen[str], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        if proc.poll() is not None:
            out, err = proc.communicate()
            raise AssertionError(f"the run ended (exit {proc.returncode}) before {what}: {out[-500:]} {err[-1500:]}")
        time.sleep(0.02)
    proc.kill()
    proc.communicate()
    raise AssertionError(f"timed out waiting for {what}")


def audited(path: Path, kind: str, skill: str | None = None) -> bool:
    if not path.is_file():
        return False
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if event.get("kind") == kind and (skill is None or event.get("skill") == skill):
            return True
    return False


def finish(proc: subprocess.Popen[str], timeout: float = 30) -> tuple[int, str, str]:
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        raise AssertionError(f"the run did not end: {err[-1500:]}") from None
    return proc.returncode, out, err


def assert_ends_with_a_safe_stop(audit: Path) -> list[dict[str, Any]]:
    """The audit log is complete and valid, a navigate was sent, and a safe_stop comes after the last command."""
    events = read_audit(audit)
    commands = [i for i, e in enumerate(events) if e["kind"] == "command"]
    assert commands and events[commands[0]]["skill"] == "navigate", "no navigate command was ever sent"
    stops = [i for i, e in enumerate(events) if e["kind"] == "safe_stop"]
    assert stops and stops[-1] > commands[-1], f"no safe_stop after the last command: {[e['kind'] for e in events]}"
    assert isinstance(events[stops[-1]].get("reason"), str) and events[stops[-1]]["reason"]
    return events


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_mid_navigation_stops_safely_and_exits_130(tmp_path: Path, signum: signal.Signals) -> None:
    script, audit = tmp_path / "bedroom.yaml", tmp_path / "audit.jsonl"
    script.write_text(BEDROOM, encoding="utf-8")
    proc = popen_cli("run", str(ASSISTANT), "--llm", f"scripted:{script}", "--say", "go to the bedroom",
                     "--audit", str(audit), "--json", "--time-scale", "1")
    wait_for(lambda: audited(audit, "command", "navigate"), proc, 30, "the navigate command")
    time.sleep(0.3)  # the robot is driving (the bedroom is 20 s away at 0.5 m/s)
    proc.send_signal(signum)
    code, out, err = finish(proc)
    assert code == 130, err[-1500:]
    result = one_json_object(out)
    assert result["status"] == "RUNNING" and signum.name in result["reason"]
    events = assert_ends_with_a_safe_stop(audit)
    assert events[-1]["kind"] == "safe_stop"


def test_time_limit_mid_navigation_stops_safely_and_exits_1(tmp_path: Path) -> None:
    script, audit = tmp_path / "bedroom.yaml", tmp_path / "audit.jsonl"
    script.write_text(BEDROOM, encoding="utf-8")
    proc = popen_cli("run", str(ASSISTANT), "--llm", f"scripted:{script}", "--say", "go to the bedroom",
                     "--audit", str(audit), "--json", "--time-scale", "1", "--max-seconds", "2")
    code, out, err = finish(proc)
    assert code == 1, err[-1500:]
    result = one_json_object(out)
    assert result["status"] == "RUNNING" and "time limit" in result["reason"]
    assert_ends_with_a_safe_stop(audit)


def make_config_dir(tmp_path: Path) -> Path:
    """A configuration directory like config/, whose allowlist also admits tests.helpers."""
    directory = tmp_path / "config"
    directory.mkdir()
    for name in ("safety.yaml", "world.yaml", "llm.yaml"):
        shutil.copy(CONFIG / name, directory / name)
    (directory / "registry.yaml").write_text(
        "import_allowlist:\n  - py_trees.behaviours\n  - py_trees.decorators\n  - tests.helpers\n", encoding="utf-8")
    return directory


def test_exception_in_a_leaf_mid_navigation_stops_safely_and_exits_1(tmp_path: Path) -> None:
    config = make_config_dir(tmp_path)
    tree, script, audit = tmp_path / "raising.yaml", tmp_path / "bedroom.yaml", tmp_path / "audit.jsonl"
    tree.write_text(turn_tree("raising", "Safety", "[estop_released]",
                              leaves=(*PLAN_AND_ACT, "{type: tests.helpers.raising.RaiseWhileMoving}")),
                    encoding="utf-8")
    script.write_text(BEDROOM, encoding="utf-8")
    proc = popen_cli("--config", str(config), "run", str(tree), "--llm", f"scripted:{script}",
                     "--say", "go to the bedroom", "--audit", str(audit), "--json", "--time-scale", "1")
    code, out, err = finish(proc)
    assert code == 1, err[-1500:]
    result = one_json_object(out)
    assert result["status"] == "FAILURE" and "ProbeFailureError" in result["reason"]
    assert_ends_with_a_safe_stop(audit)


LONG_TEXT = " ".join(f"word{i}" for i in range(300))


@pytest.fixture(scope="module")
def lost_connection(tmp_path_factory: pytest.TempPathFactory) -> tuple[int, dict[str, Any], list[dict[str, Any]], str]:
    """A real streaming endpoint (Chat Completions over SSE) drops the connection after the first step started."""
    response = PlannedResponse(tool_calls=(PlannedCall("navigate", '{"target": "bedroom"}'),
                                           PlannedCall("say", json.dumps({"text": LONG_TEXT}))))
    frames = chunk_frames(response)
    second_call = next(i for i, f in enumerate(frames) if f["choices"] and any(
        c.get("index") == 1 and c.get("id") for c in f["choices"][0]["delta"].get("tool_calls") or []))
    audit = tmp_path_factory.mktemp("lost") / "audit.jsonl"
    with ChatServer([response], chunk_delay=0.05, fault=Fault(drop_after=second_call + 30)) as server:
        env = cli_env(OPENAI_BASE_URL=server.base_url, OPENAI_API_KEY="test-key-for-the-local-server")
        proc = popen_cli("run", str(ASSISTANT), "--llm", "chat", "--say", "go to the bedroom and tell me a story",
                         "--audit", str(audit), "--json", "--time-scale", "1", env=env)
        code, out, err = finish(proc, timeout=60)
        assert len(server.exchanges) == 1 and server.exchanges[0].frames_sent == second_call + 30
    return code, one_json_object(out), assert_ends_with_a_safe_stop(audit), err


def test_model_connection_lost_mid_plan_stops_safely(
        lost_connection: tuple[int, dict[str, Any], list[dict[str, Any]], str]) -> None:
    """Safe stop after the last command; the assistant tree goes on to the next turn (none): SUCCESS, exit 0."""
    code, result, events, err = lost_connection
    assert [e["args"]["target"] for e in events if e["kind"] == "command"] == ["bedroom"]
    assert code == 0 and result["status"] == "SUCCESS", (code, result["reason"], err[-1500:])


def test_model_connection_lost_mid_plan_is_reported_to_the_user(
        lost_connection: tuple[int, dict[str, Any], list[dict[str, Any]], str]) -> None:
    """The robot stopped half-way: the user must be told (the assistant tree: "a failed instruction is reported")."""
    _code, result, _events, _err = lost_connection
    robot_turns = [t["text"] for t in result["dialogue"] if t["role"] == "robot"][1:]  # after the greeting
    assert any("model" in t.lower() or "connection" in t.lower() or t.startswith("I stopped") for t in robot_turns), \
        f"the robot stopped half-way without telling the user why: {robot_turns}"


def test_model_stalls_mid_plan_ask_fails_and_the_robot_stops(tmp_path: Path) -> None:
    """The model streams so slowly that Ask gives up while the first step drives: safe stop, exit 1."""
    tree, script, audit = tmp_path / "slow.yaml", tmp_path / "slow_script.yaml", tmp_path / "audit.jsonl"
    tree.write_text(turn_tree("slow_model", "Safety", "[estop_released]",
                              leaves=("{type: Ask, timeout: 1.5}", *PLAN_AND_ACT[1:])), encoding="utf-8")
    script.write_text(yaml.safe_dump({
        "pace": {"first_token_s": 0.0, "tokens_per_s": 40},
        "responses": [{"tool_calls": [{"name": "navigate", "arguments": '{"target": "bedroom"}'},
                                      {"name": "say", "arguments": json.dumps({"text": LONG_TEXT})}]}],
    }, width=10**9), encoding="utf-8")
    proc = popen_cli("run", str(tree), "--llm", f"scripted:{script}", "--say", "go to the bedroom and tell me a story",
                     "--audit", str(audit), "--json", "--time-scale", "1")
    code, out, err = finish(proc)
    assert code == 1, err[-1500:]
    result = one_json_object(out)
    assert result["status"] == "FAILURE" and "within 1.5 s" in result["reason"], result["reason"]
    assert_ends_with_a_safe_stop(audit)


def test_estop_file_mid_navigation_stops_and_nothing_more_is_sent(tmp_path: Path) -> None:
    """--estop-file: creating the file while the robot drives trips the Safety guard; the next turn sends nothing."""
    script, audit, estop = tmp_path / "two.yaml", tmp_path / "audit.jsonl", tmp_path / "estop"
    script.write_text(BEDROOM + "  - tool_calls:\n      - {name: navigate, arguments: '{\"target\": \"kitchen\"}'}\n",
                      encoding="utf-8")
    proc = popen_cli("run", str(ASSISTANT), "--llm", f"scripted:{script}", "--say", "go to the bedroom",
                     "--say", "then the kitchen", "--audit", str(audit), "--json", "--time-scale", "1",
                     "--estop-file", str(estop))
    wait_for(lambda: audited(audit, "command", "navigate"), proc, 30, "the navigate command")
    time.sleep(0.3)
    estop.write_text("pressed\n", encoding="utf-8")
    code, out, err = finish(proc)
    events = assert_ends_with_a_safe_stop(audit)
    trips = [e for e in events if e["kind"] == "guard_trip"]
    assert trips and trips[0]["condition"] == "estop_released" and trips[0]["guard"] == "Safety"
    first_trip = events.index(trips[0])
    assert any(e["kind"] == "safe_stop" for e in events[first_trip:])
    commands = [e for e in events if e["kind"] == "command"]
    assert [c["args"]["target"] for c in commands] == ["bedroom"], "a command was sent while the e-stop was pressed"
    assert code == 0, err[-1500:]
    result = one_json_object(out)
    assert result["status"] == "SUCCESS" and result["trips"]


def test_estop_file_released_with_zero_is_not_pressed(tmp_path: Path) -> None:
    path = tmp_path / "estop"
    estop = EStop(path)
    assert not estop.pressed
    path.write_text("0\n", encoding="utf-8")
    assert not estop.pressed
    path.write_text("", encoding="utf-8")
    assert estop.pressed, "an empty file exists: pressed"
    path.write_text("1", encoding="utf-8")
    assert estop.pressed


def test_an_audit_log_that_cannot_be_written_still_stops_the_robot_and_keeps_the_dialogue(tmp_path: Path) -> None:
    """Regression: the stop was recorded before it was sent, so a full disk kept the robot moving, and the
    failing shutdown step left the session file unwritten, with a traceback."""
    session = tmp_path / "session.json"
    result = run_cli("run", "trees/fetch_object.yaml", "--say", "go to the kitchen", "--time-scale", "100",
                     "--audit", "/dev/full", "--session", str(session), "--json")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "audit log /dev/full: cannot write: No space left on device" in result.stderr
    report = one_json_object(result.stdout)
    assert report["status"] == "FAILURE" and "audit log /dev/full" in report["reason"]
    assert [c["skill"] for c in report["commands"]] == ["stop"]  # nothing unrecorded was sent; the stop was
    saved = json.loads(session.read_text())
    assert [turn["text"] for turn in saved["history"]] == ["go to the kitchen", "I'll go to the kitchen."]


def test_an_audit_log_cut_mid_line_gets_its_new_records_on_lines_of_their_own(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    path.write_text('{"t": 1, "kind": "command"}\n{"t": 2, "kin')  # the last write was cut short
    audit = AuditLog(path)
    audit.write("safe_stop", reason="test")
    audit.close()
    lines = path.read_text().splitlines()
    assert lines[:2] == ['{"t": 1, "kind": "command"}', '{"t": 2, "kin']
    assert json.loads(lines[2])["kind"] == "safe_stop"


def test_a_safety_policy_with_a_negative_or_infinite_number_is_refused(tmp_path: Path) -> None:
    """Regression: `confirm_window_s: -10` and `rate_limit: {commands: .inf}` were accepted."""
    (tmp_path / "safety.yaml").write_text("confirm_window_s: -10\nrate_limit: {commands: .inf, per_s: 1}\n")
    with pytest.raises(TreeError) as error:
        load_safety_policy(tmp_path)
    assert str(error.value).splitlines() == [
        f"{tmp_path / 'safety.yaml'}:1:19: 'confirm_window_s' must be a positive number of seconds, got -10",
        f"{tmp_path / 'safety.yaml'}:2:13: 'rate_limit' takes commands and per_s (positive numbers)"]

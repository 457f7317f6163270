"""``vla-bt bench``: the project's performance figures, each measured side by side in one run.

Every ratio compares two variants measured alternately in the same process,
so that machine noise cancels. Figures (docs/benchmarks.md explains each):

* ``tick_overhead_ratio`` — a ~100-node tree loaded from YAML ÷ the identical
  tree built by hand in py_trees, ticked many times (median of repeats);
* ``first_command_ratio`` — through the ``realtime`` backend against the local
  Realtime endpoint paced like GPT-4o: time to the first robot command ÷ time
  to the end of the model's response (and the same with early start off);
* ``guard_stop_ms`` — a hazard appears (a person steps inside the clearance,
  the e-stop is pressed) → the safe stop is issued (median, p99);
* ``voice_to_command_ms`` — end of recorded speech → first robot command (and the same
  when only silence ends an utterance);
* ``memory_growth_mb`` — resident memory growth over a long simulated session;
* ``detection_f1`` — the embedded detector on rendered camera frames;
* ``ros_round_trip_ms`` — a command's round trip over real ROS 2 between two processes.
"""

from __future__ import annotations

import contextlib
import gc
import math
import statistics
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import py_trees

GOALS = {
    "tick_overhead_ratio": ("≤", 1.10),
    "first_command_ratio": ("≤", 0.40),
    "guard_stop_ms": ("≤", 20.0),
    "voice_to_command_ms": ("≤", 300.0),
    "memory_growth_mb": ("<", 5.0),
    "detection_f1": ("≥", 0.85),
    "ros_round_trip_ms": ("≤", 10.0),  # one tick of Nav2's 100 Hz behaviour tree
}


@dataclass
class Figure:
    """One measured figure, with how it was measured."""

    key: str
    value: float | None
    unit: str
    detail: dict[str, Any] = field(default_factory=dict)
    note: str = ""

    @property
    def meets_goal(self) -> bool | None:
        if self.key not in GOALS or self.value is None:
            return None
        relation, goal = GOALS[self.key]
        if relation == "≥":
            return self.value >= goal
        return self.value <= goal if relation == "≤" else self.value < goal


def _clear_blackboard() -> None:
    py_trees.blackboard.Blackboard.clear()
    py_trees.blackboard.Blackboard.clients.clear()
    py_trees.blackboard.Blackboard.metadata.clear()


@contextlib.contextmanager
def _tree_file(text: str) -> Iterator[Path]:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "bench.yaml"
        path.write_text(text)
        yield path


# -- tick overhead -------------------------------------------------------------------------

BRANCHES, LEAVES = 11, 8  # 1 + 11 + 11 * 8 = 100 nodes


def _yaml_tree() -> str:
    lines = ["version: 1", "root:", "  type: Parallel", "  name: Root", "  policy: success_on_all",
             "  synchronise: false", "  children:"]
    for b in range(BRANCHES):
        lines += ["    - type: Sequence", f"      name: Branch {b}", "      memory: false", "      children:"]
        lines += [f"        - {{type: Success, name: Leaf {b}.{i}}}" for i in range(LEAVES)]
    return "\n".join(lines) + "\n"


def _hand_tree() -> py_trees.behaviour.Behaviour:
    root = py_trees.composites.Parallel(
        "Root", policy=py_trees.common.ParallelPolicy.SuccessOnAll(synchronise=False))
    for b in range(BRANCHES):
        branch = py_trees.composites.Sequence(f"Branch {b}", memory=False)
        branch.add_children([py_trees.behaviours.Success(f"Leaf {b}.{i}") for i in range(LEAVES)])
        root.add_child(branch)
    return root


def _time_ticks(root: py_trees.behaviour.Behaviour, ticks: int) -> float:
    gc.collect()
    start = time.perf_counter()
    for _ in range(ticks):
        root.tick_once()
    return time.perf_counter() - start


def tick_overhead(quick: bool) -> Figure:
    from vla_bt.tree.loader import TreeLoader
    from vla_bt.tree.registry import Registry

    ticks, repeats = (300, 5) if quick else (2000, 9)
    with _tree_file(_yaml_tree()) as path:
        loaded = TreeLoader(Registry.default(plugins=False)).load(path).root
    hand = _hand_tree()
    nodes = sum(1 for _ in hand.iterate())
    _time_ticks(loaded, 50), _time_ticks(hand, 50)  # warm up both
    ratios, yaml_us, hand_us = [], [], []
    for _ in range(repeats):  # alternate, so drift affects both alike
        a, b = _time_ticks(loaded, ticks), _time_ticks(hand, ticks)
        ratios.append(a / b)
        yaml_us.append(a / ticks / nodes * 1e6)
        hand_us.append(b / ticks / nodes * 1e6)
    return Figure("tick_overhead_ratio", statistics.median(ratios), "×", {
        "nodes": nodes, "ticks_per_run": ticks, "runs": repeats,
        "yaml_us_per_node_tick": round(statistics.median(yaml_us), 3),
        "hand_us_per_node_tick": round(statistics.median(hand_us), 3)})


# -- first command ------------------------------------------------------------------------

PLAN_TREE = """version: 1
root:
  type: Sequence
  memory: true
  children:
    - {{type: Listen}}
    - type: Parallel
      policy: success_on_all
      children:
        - {{type: Ask}}
        - {{type: ParseIntent}}
        - {{type: ExecutePlan, start: {start}}}
"""
INSTRUCTION = "go to the kitchen and then pick up the red cup and then go to the dock"


def _pace_floor(connection: Any) -> float:
    """The ratio the model's pace alone allows, timed at the endpoint: from ``response.create``
    received to the delta completing the first call's arguments, ÷ to ``response.done`` sent."""
    import json

    created = next(t for t, e in zip(connection.received_at, connection.received, strict=True)
                   if e.get("type") == "response.create")
    arguments: dict[str, str] = {}
    complete = done = None
    for t, event in zip(connection.sent_at, connection.sent, strict=True):
        if event["type"] == "response.function_call_arguments.delta" and complete is None:
            arguments[event["item_id"]] = arguments.get(event["item_id"], "") + event["delta"]
            with contextlib.suppress(ValueError):
                json.loads(arguments[event["item_id"]])
                complete = t
        elif event["type"] == "response.done":
            done = t
    if complete is None or done is None:
        raise RuntimeError("the response has no complete tool call")
    return (complete - created) / (done - created)


def _first_command_trial(start: str, world: Any, pacing: Any) -> tuple[float, float, float]:
    """Seconds from the request to the first command and to the end of the response, and the pace's floor."""
    from vla_bt.app import assemble
    from vla_bt.leaves.ask import Ask
    from vla_bt.llm.endpoint import RealtimeEndpoint
    from vla_bt.llm.events import ResponseDone
    from vla_bt.llm.local import LocalPlanner
    from vla_bt.llm.realtime import RealtimeBackend
    from vla_bt.llm.session import ModelSession
    from vla_bt.llm.tools import tool_specs
    from vla_bt.robot.sim import SimRobot
    from vla_bt.speech.text import ScriptedUtterances
    from vla_bt.tree.loader import TreeLoader
    from vla_bt.tree.registry import Registry

    _clear_blackboard()
    registry = Registry.default(plugins=False)
    tools = tool_specs(registry)
    with RealtimeEndpoint(LocalPlanner(world, tools), pacing=pacing, api_key="bench") as endpoint, \
            _tree_file(PLAN_TREE.format(start=start)) as path:
        loaded = TreeLoader(registry).load(path)
        session = ModelSession(RealtimeBackend(api_key="bench", base_url=endpoint.url), tools)
        run = assemble(loaded, registry, world=world, utterances=ScriptedUtterances([INSTRUCTION]),
                       robot=SimRobot(world, time_scale=100.0), session=session, rate_hz=10.0, max_seconds=20)
        asked: list[float] = []
        original = Ask.initialise

        def stamp(self: Ask) -> None:
            asked.append(time.monotonic())
            original(self)

        Ask.initialise = stamp  # type: ignore[method-assign]
        try:
            run.execute()
        finally:
            Ask.initialise = original  # type: ignore[method-assign]
        offset = time.time() - time.monotonic()
        first_command = run.robot.commands[0].t - offset
        stream = py_trees.blackboard.Blackboard.get("/llm/stream")
        done = next(e.t for e in stream if isinstance(e, ResponseDone))
    # read once the endpoint has stopped, when nothing more is being sent
    return first_command - asked[0], done - asked[0], _pace_floor(endpoint.last)


def first_command(quick: bool, world: Any) -> Figure:
    from vla_bt.llm.pacing import Pacing

    pacing = Pacing.gpt4o()
    trials = 3 if quick else 7
    early, late, floor, response_s = [], [], [], []
    for _ in range(trials):
        first, done, pace_floor = _first_command_trial("early", world, pacing)
        early.append(first / done)
        floor.append(pace_floor)
        response_s.append(done)
        first, done, _ = _first_command_trial("after_response", world, pacing)
        late.append(first / done)
    return Figure("first_command_ratio", statistics.median(early), "×", {
        "without_early_start": round(statistics.median(late), 3),
        "pace_floor": round(statistics.median(floor), 3),
        "response_s": round(statistics.median(response_s), 3), "trials": trials,
        "pace": f"{pacing.first_token_s * 1000:.0f} ms to the first token, then {pacing.tokens_per_s:g} tokens/s",
        "instruction": INSTRUCTION}, note="3-step instruction, realtime backend → local GA endpoint")


# -- guard stop ---------------------------------------------------------------------------

GUARD_TREE = """version: 1
root:
  type: Guard
  conditions: [estop_released, {human_clearance: {min_distance: 0.8}}]
  child: {type: Navigate, target: bedroom}
"""


def _guard_trial(hazard: str, world: Any) -> float:
    """Milliseconds from a hazard appearing to the safe stop being issued."""
    from vla_bt.app import assemble
    from vla_bt.guards.estop import EStop
    from vla_bt.robot.sim import SimRobot
    from vla_bt.speech.text import ScriptedUtterances
    from vla_bt.tree.loader import TreeLoader
    from vla_bt.tree.registry import Registry

    _clear_blackboard()
    registry = Registry.default(plugins=False)
    robot, estop = SimRobot(world, time_scale=1.0), EStop()
    with _tree_file(GUARD_TREE) as path:
        loaded = TreeLoader(registry).load(path)
    run = assemble(loaded, registry, world=world, utterances=ScriptedUtterances([]), robot=robot, estop=estop,
                   rate_hz=10.0, max_seconds=10)
    appeared: list[float] = []

    def hazard_when_moving() -> None:
        deadline = time.monotonic() + 5
        while not robot.state().moving and time.monotonic() < deadline:
            time.sleep(0.005)
        time.sleep(0.13)  # land between two ticks, not just after one
        appeared.append(time.time())
        if hazard == "estop":
            estop.press()
        else:
            x, y, _ = robot.state().pose
            robot.add_human("bench_person", (x + 0.3, y, 0.0))

    threading.Thread(target=hazard_when_moving, daemon=True).start()
    run.execute()
    stop = next(e["t"] for e in run.audit.events if e["kind"] == "safe_stop")
    return (stop - appeared[0]) * 1000


def guard_stop(quick: bool, world: Any) -> Figure:
    trials = 6 if quick else 20
    samples = {"human": [], "estop": []}
    for _ in range(trials):
        for hazard in samples:
            samples[hazard].append(_guard_trial(hazard, world))
    everything = sorted(samples["human"] + samples["estop"])
    p99 = everything[min(len(everything) - 1, math.ceil(0.99 * len(everything)) - 1)]
    return Figure("guard_stop_ms", statistics.median(everything), "ms", {
        "p99_ms": round(p99, 2), "human_median_ms": round(statistics.median(samples["human"]), 2),
        "estop_median_ms": round(statistics.median(samples["estop"]), 2), "trials": len(everything),
        "tick_rate_hz": 10.0, "tick_period_ms": 100.0}, note="event-driven wake-up at the default 10 Hz")


# -- voice to command ----------------------------------------------------------------------

VOICE_TREE = """version: 1
root:
  type: Sequence
  memory: true
  children:
    - {type: Listen}
    - type: Parallel
      policy: success_on_all
      children: [{type: Ask}, {type: ParseIntent}, {type: ExecutePlan}]
"""
SPOKEN = [("go to the kitchen", "en-us"), ("bring me the red cup", "en-us+f2"),
          ("pick up the blue cup", "en-us+klatt"), ("give alice the book", "en-us"),
          ("go to the bedroom", "en-us+f2"), ("put the book in the kitchen", "en-us+klatt")]
"""Instructions of several phrasing families, in three voices."""


def _voice_trial(path: Path, speech_end: float, recognizer: Any, endpointing: Any, world: Any) -> dict[str, Any]:
    """One spoken instruction, played in real time: milliseconds from the end of speech to the first command."""
    from vla_bt.app import assemble
    from vla_bt.llm.factory import LlmConfig, make_backend
    from vla_bt.llm.session import ModelSession
    from vla_bt.llm.tools import tool_specs
    from vla_bt.robot.sim import SimRobot
    from vla_bt.speech.sources import AudioFileUtterances
    from vla_bt.tree.loader import TreeLoader
    from vla_bt.tree.registry import Registry

    _clear_blackboard()
    registry = Registry.default(plugins=False)
    tools = tool_specs(registry)
    session = ModelSession(make_backend("local", tools, LlmConfig(), world=world, registry=registry), tools)
    source = AudioFileUtterances([path], recognizer, endpointing=endpointing, paced=True)
    with _tree_file(VOICE_TREE) as tree:
        loaded = TreeLoader(registry).load(tree)
    run = assemble(loaded, registry, world=world, utterances=source, robot=SimRobot(world, time_scale=100.0),
                   session=session, max_seconds=20)
    run.execute()
    heard = source.last
    if heard is None or not run.robot.commands:
        raise RuntimeError(f"{path.name}: no command (heard {heard.text if heard else 'nothing'!r})")
    ended = heard.began_t + speech_end
    return {"command_ms": (run.robot.commands[0].t - ended) * 1000, "heard_ms": (heard.heard_t - ended) * 1000,
            "grammar": float(heard.ended_by == "grammar"), "text": heard.text}


def voice_to_command(quick: bool, world: Any) -> Figure:
    """End of recorded speech → first robot command, with the embedded defaults.

    Each instruction is made with espeak-ng (room noise mixed in) and played in
    real time into the default pipeline: voice activity, pocketsphinx decoding
    while it plays, the embedded planner, plan validation and the simulator.
    The end of speech is the voice's last sample, known from the synthesis, not
    what the detector decided. Side by side: the same with endpointing by
    silence alone (no grammar), as a pipeline that waits for the pause.
    """
    from vla_bt.speech.recognizer import SphinxRecognizer
    from vla_bt.speech.segmenter import Endpointing
    from vla_bt.speech.tts import SpeechOutputError, synthesize
    from vla_bt.speech.wiring import command_grammar
    from vla_bt.tree.registry import Registry

    try:
        import soundfile
    except ImportError:
        return Figure("voice_to_command_ms", None, "ms", note="needs the speech extra: pip install 'vla-bt[speech]'")
    recognizer = SphinxRecognizer(command_grammar(world, Registry.default(plugins=False)))
    recognizer.load()
    rounds = 1 if quick else 3
    grammar_ms: list[dict[str, Any]] = []
    silence_ms: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as folder:
        try:
            recordings = []
            for i, (text, voice) in enumerate(SPOKEN):
                audio, end = synthesize(text, voice, seed=i)
                path = Path(folder) / f"{i}.wav"
                soundfile.write(path, audio.samples, audio.rate, subtype="PCM_16")
                recordings.append((path, end))
        except SpeechOutputError as exc:
            return Figure("voice_to_command_ms", None, "ms", note=str(exc))
        by_silence = Endpointing(complete_ms=10**6, final_ms=10**6)
        for _ in range(rounds):
            for path, end in recordings:  # alternate, so drift affects both alike
                grammar_ms.append(_voice_trial(path, end, recognizer, None, world))
                silence_ms.append(_voice_trial(path, end, recognizer, by_silence, world))

    def median(trials: list[dict[str, Any]], key: str) -> float:
        return round(statistics.median(t[key] for t in trials), 1)

    values = sorted(t["command_ms"] for t in grammar_ms)
    return Figure("voice_to_command_ms", statistics.median(values), "ms", {
        "max_ms": round(values[-1], 1), "trials": len(values), "heard_ms": median(grammar_ms, "heard_ms"),
        "ended_by_grammar": f"{sum(t['grammar'] for t in grammar_ms):.0f}/{len(grammar_ms)}",
        "silence_endpointing_ms": median(silence_ms, "command_ms"),
        "misheard": sorted({t["text"] for t in grammar_ms + silence_ms} - {text for text, _ in SPOKEN}),
        "instructions": [f"{text} ({voice})" for text, voice in SPOKEN]},
        note="espeak-ng speech played in real time → pocketsphinx while it plays → embedded planner → simulator")


# -- memory -------------------------------------------------------------------------------

LOOP_TREE = """version: 1
root:
  type: FailureIsSuccess
  child:
    type: Repeat
    num_success: -1
    child:
      type: Sequence
      memory: true
      children:
        - {type: Listen}
        - type: FailureIsSuccess
          child:
            type: Parallel
            policy: success_on_all
            children: [{type: Ask}, {type: ParseIntent}, {type: ExecutePlan}]
"""


def _rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        pages = int(statm.read().split()[1])
    return pages * 4096 / 1e6


def memory_growth(quick: bool, world: Any) -> Figure:
    from vla_bt.app import assemble
    from vla_bt.llm.local import LocalPlanner
    from vla_bt.llm.session import ModelSession
    from vla_bt.llm.tools import tool_specs
    from vla_bt.robot.sim import SimRobot
    from vla_bt.tree.loader import TreeLoader
    from vla_bt.tree.registry import Registry

    total, warmup = (400, 100) if quick else (3000, 300)
    phrases = ["go to the kitchen", "pick up the red cup", "put it on the table", "go to the dock"]
    marks: dict[str, float] = {}

    class Counting:
        """Hands out instructions and notes the memory after the warm-up."""

        def __init__(self) -> None:
            self.given = 0

        def poll(self) -> str | None:
            if self.given == warmup:
                gc.collect()
                marks["after_warmup"] = _rss_mb()
            if self.given >= total:
                return None
            self.given += 1
            return phrases[self.given % len(phrases)]

        @property
        def exhausted(self) -> bool:
            return self.given >= total

    _clear_blackboard()
    registry = Registry.default(plugins=False)
    tools = tool_specs(registry)
    with _tree_file(LOOP_TREE) as path:
        loaded = TreeLoader(registry).load(path)
    source = Counting()
    robot = SimRobot(world, time_scale=2000.0)
    robot.DRAIN_PER_METRE = robot.DRAIN_PER_SECOND = 0.0  # thousands of trips would run the battery flat
    run = assemble(loaded, registry, world=world, utterances=source, robot=robot,
                   session=ModelSession(LocalPlanner(world, tools), tools), rate_hz=2000.0)
    started = time.monotonic()
    run.execute()
    gc.collect()
    growth = _rss_mb() - marks.get("after_warmup", _rss_mb())
    return Figure("memory_growth_mb", growth, "MB", {
        "instructions": source.given, "warmup": warmup, "commands": len(run.robot.commands),
        "seconds": round(time.monotonic() - started, 1)}, note="resident memory, after warm-up to the end")


# -- detection quality --------------------------------------------------------------------


def detection_quality(quick: bool, world: Any) -> Figure:
    """Precision and recall of the embedded detector on rendered frames: seeded scenes, and the world's places.

    The value is the F1 score over the seeded scenes; ``detail`` has precision,
    recall, position error, recall by distance and the same from every place of
    ``world`` (see ``vla_bt.perception.quality`` for what counts).
    """
    from vla_bt.perception.quality import evaluate_scenes, evaluate_world

    scenes = 40 if quick else 200
    started = time.monotonic()
    seeded = evaluate_scenes(scenes, seed=0, world=world)
    places = evaluate_world(world, headings=8) if world is not None else None
    detail = {**seeded.to_json(), "scenes": scenes, "seconds": round(time.monotonic() - started, 1)}
    if places is not None:
        detail["world"] = places.to_json()
    return Figure("detection_f1", seeded.f1, "", detail,
                  note="colour/shape detector on 160x120 simulated camera frames with sensor noise")


# -- running the lot ----------------------------------------------------------------------

def run_all(quick: bool = False, progress: Callable[[str], None] = lambda _: None,
            only: list[str] | None = None) -> list[Figure]:
    """Measure every figure (or ``only`` some), in a fixed order."""
    from vla_bt.robot.world import load_world
    from vla_bt.ros.bench import ros_round_trip

    world = load_world(Path(__file__).resolve().parent.parent / "config" / "world.yaml") \
        if (Path(__file__).resolve().parent.parent / "config" / "world.yaml").is_file() else None
    if world is None:
        from vla_bt.config import config_dir

        directory = config_dir(None)
        world = load_world(directory / "world.yaml")
    steps: list[tuple[str, Callable[[], Figure]]] = [
        ("tick_overhead_ratio", lambda: tick_overhead(quick)),
        ("first_command_ratio", lambda: first_command(quick, world)),
        ("guard_stop_ms", lambda: guard_stop(quick, world)),
        ("voice_to_command_ms", lambda: voice_to_command(quick, world)),
        ("memory_growth_mb", lambda: memory_growth(quick, world)),
        ("detection_f1", lambda: detection_quality(quick, world)),
        ("ros_round_trip_ms", lambda: ros_round_trip(quick, world)),
    ]
    figures = []
    for key, measure in steps:
        if only and key not in only:
            continue
        progress(key)
        figures.append(measure())
    return figures

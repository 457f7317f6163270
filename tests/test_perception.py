"""The camera perception pieces one by one: geometry, rendering, detection, memory, plugins, images, leaves.

Also the two places where perception meets the rest: camera freshness feeds
the ``heartbeat_fresh`` guard (a camera that stops delivering trips it), and
with ``Ask(images: ...)`` the current frame reaches the Realtime endpoint as
an ``input_image`` part of the user turn.
"""

from __future__ import annotations

import base64
import importlib.metadata
import math
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import py_trees
import pytest

from vla_bt import blackboard as keys
from vla_bt.app import assemble
from vla_bt.blackboard import Step
from vla_bt.guards.audit import AuditLog
from vla_bt.leaves.dialogue import Confirm
from vla_bt.leaves.execute import ExecutePlan
from vla_bt.leaves.parse_intent import ParseIntent
from vla_bt.leaves.perceive import Perceive, Search
from vla_bt.leaves.skills import Grasp
from vla_bt.llm.endpoint import RealtimeEndpoint
from vla_bt.llm.events import ResponseDone, ToolCallDone
from vla_bt.llm.realtime import RealtimeBackend
from vla_bt.llm.scripted import PlannedResponse, ScriptedBackend
from vla_bt.llm.session import ModelSession
from vla_bt.llm.tools import tool_specs
from vla_bt.perception import (
    DETECTORS,
    CameraModel,
    CameraRobot,
    Catalogue,
    ColorShapeDetector,
    Detection,
    DetectorError,
    ObjectMemory,
    locate,
    make_detector,
    register_detector,
    render,
    world_view,
)
from vla_bt.perception.catalogue import Entry
from vla_bt.perception.frames import asks_to_see
from vla_bt.perception.imageio import (
    ImageError,
    decode_png,
    decode_ppm,
    downscale,
    encode_png,
    encode_within,
    from_buffer,
)
from vla_bt.perception.render import Frame, Solid, layout
from vla_bt.perception.shapes import shape_for
from vla_bt.perception.source import PERCEPTION_SOURCE
from vla_bt.robot.gate import CommandGate
from vla_bt.robot.publisher import RobotPublisher
from vla_bt.robot.sim import SimRobot
from vla_bt.robot.world import load_world
from vla_bt.speech import ScriptedUtterances
from vla_bt.tree.loader import load_tree
from vla_bt.tree.registry import Registry

pytestmark = pytest.mark.timeout(60)
Status = py_trees.common.Status
ROOT = Path(__file__).resolve().parents[1]
WORLD = load_world(ROOT / "config" / "world.yaml")
KEY = "sk-local-vision-0123456789"


def objects_of(world: Any = WORLD) -> list[dict[str, Any]]:
    return [{"id": o.id, "label": o.label, "color": o.color, "pose": list(o.pose)} for o in world.objects]


def drawn_at(object_id: str, world: Any = WORLD) -> tuple[float, float]:
    """Where the camera draws an object (objects sharing a spot stand side by side)."""
    return next(s.center for s in layout(objects_of(world)) if s.tag == object_id)


# -- the camera model --------------------------------------------------------------------------------------


def test_a_floor_point_projects_to_a_pixel_and_back() -> None:
    camera = CameraModel()
    pose = (1.0, 2.0, 0.7)
    for distance, bearing in [(1.5, 0.0), (3.0, 0.3), (5.0, -0.5)]:
        point = (pose[0] + distance * math.cos(pose[2] + bearing), pose[1] + distance * math.sin(pose[2] + bearing))
        u, v, depth = camera.project(pose, np.array([[point[0], point[1], 0.0]]))
        assert depth[0] > 0 and 0 <= u[0] < camera.width and 0 <= v[0] < camera.height
        back = camera.floor_point(pose, float(u[0]), float(v[0]))
        assert back is not None and math.dist(back, point) < 1e-6
        assert camera.sees(pose, (*point, 0.0))
    assert not camera.sees(pose, (pose[0] - 2.0 * math.cos(0.7), pose[1] - 2.0 * math.sin(0.7), 0.0))  # behind
    assert not camera.sees(pose, (pose[0] + 9 * math.cos(0.7), pose[1] + 9 * math.sin(0.7), 0.0))  # beyond range
    assert camera.floor_point(pose, camera.cx, 0.0) is None or camera.vfov / 2 < camera.tilt
    info = camera.intrinsics()
    assert info["k"][0] == pytest.approx(camera.fx) and info["width"] == 160


def test_the_height_of_a_point_above_the_floor_is_recovered_from_its_row() -> None:
    camera, pose = CameraModel(), (0.0, 0.0, 0.0)
    base = (2.5, 0.3, 0.0)
    _, v, _ = camera.project(pose, np.array([[2.5, 0.3, 0.4]]))
    assert camera.height_above(pose, base, float(v[0])) == pytest.approx(0.4, abs=1e-6)


def test_camera_models_and_images_from_ros_messages() -> None:
    camera = CameraModel.from_camera_info(320, 240, [200.0, 0, 160, 0, 200.0, 120, 0, 0, 1], tilt=0.4)
    assert camera.fx == pytest.approx(200.0) and camera.tilt == 0.4 and camera.height == 240
    bgr = bytes([0, 0, 255, 255, 0, 0, 9, 9])  # two pixels and two bytes of row padding
    assert from_buffer(2, 1, "bgr8", bgr, step=8).tolist() == [[[255, 0, 0], [0, 0, 255]]]
    assert from_buffer(1, 1, "mono8", b"\x07").tolist() == [[[7, 7, 7]]]
    with pytest.raises(ImageError, match="unsupported image encoding 'yuv422'"):
        from_buffer(1, 1, "yuv422", b"\x00\x00")
    with pytest.raises(ImageError, match="expected"):
        from_buffer(4, 4, "rgb8", b"\x00")


def test_bad_camera_models_are_refused() -> None:
    with pytest.raises(ValueError, match="8×8"):
        CameraModel(width=4)
    with pytest.raises(ValueError, match="range > near"):
        CameraModel(range=0.1, near=0.5)


# -- rendering -------------------------------------------------------------------------------------------------


def _solid(tag: str, x: float, y: float, label: str = "box") -> Solid:
    shape = shape_for(label)
    return Solid(shape.kind, (x, y), 0.0, shape.size, 0.0, (0.8, 0.1, 0.1), tag)


def test_the_nearer_object_hides_the_one_behind_it() -> None:
    camera = CameraModel()
    alone = render(camera, (0.0, 0.0, 0.0), [_solid("cup", 2.5, 0.0, "cup")])
    hidden = render(camera, (0.0, 0.0, 0.0), [_solid("cup", 2.5, 0.0, "cup"), _solid("cabinet", 1.8, 0.0, "cabinet")])
    assert (alone.ids == alone.tags.index("cup")).sum() > 10
    assert "cup" not in hidden.tags or (hidden.ids == hidden.tags.index("cup")).sum() == 0
    assert (hidden.ids == hidden.tags.index("cabinet")).sum() > 200


def test_what_is_out_of_range_behind_or_under_the_camera_is_not_drawn() -> None:
    camera = CameraModel(range=4.0)
    frame = render(camera, (0.0, 0.0, 0.0), [_solid("far", 5.0, 0.0), _solid("behind", -2.0, 0.0),
                                             _solid("under", 0.0, 0.0), _solid("near", 2.0, 0.5)])
    assert frame.tags == ["near"]
    assert frame.rgb.shape == (120, 160, 3) and frame.rgb.dtype == np.uint8


def test_noise_is_seeded_and_the_simulator_camera_leaves_out_what_is_held() -> None:
    sim = SimRobot(WORLD, seed=5)
    sim._pose = (1.5, 2.0, 0.0)  # looking at the kitchen table
    first, again = sim.camera_frame(), sim.camera_frame()
    assert np.array_equal(first.rgb, again.rgb) and first.stamp == sim.sim_time
    assert not np.array_equal(first.rgb, sim.camera_frame(noise=False).rgb)
    assert {"table_1", "cup_blue"} <= set(first.tags)
    sim._pose = (4.0, 2.0, 0.0)
    assert sim.grasp("cup_blue").state.value == "running"
    sim.advance(2.0)
    sim._pose = (1.5, 2.0, 0.0)
    assert "cup_blue" not in sim.camera_frame().tags


def test_objects_at_one_spot_are_drawn_side_by_side_on_the_furniture_there() -> None:
    solids = {s.tag: s for s in layout(objects_of())}
    table = solids["table_1"]
    for object_id in ("cup_red", "cup_blue", "knife_1"):
        assert solids[object_id].base == pytest.approx(table.top)  # on the table
        assert math.dist(solids[object_id].center, (4.0, 2.0)) <= 0.3 + 1e-9
    assert len({solids[i].center for i in ("cup_red", "cup_blue", "knife_1")}) == 3
    assert solids["book_1"].base == 0.0 and math.dist(solids["book_1"].center, (1.5, 4.0)) <= 0.3 + 1e-9


# -- detection -------------------------------------------------------------------------------------------------


def detect(pose: tuple[float, float, float], world: Any = WORLD) -> list[Detection]:
    frame = world_view(CameraModel(), pose, objects_of(world), rng=np.random.default_rng(1))
    return ColorShapeDetector(Catalogue.from_world(world)).detect(frame.rgb, frame.camera, frame.pose)


def test_the_detector_names_and_places_what_the_camera_sees() -> None:
    found = {(d.label, d.color): d for d in detect((4.0, 0.8, math.pi / 2))}  # facing the kitchen table
    assert {("cup", "red"), ("cup", "blue"), ("table", "brown"), ("knife", "grey")} <= set(found)
    for object_id, kind in (("cup_red", ("cup", "red")), ("cup_blue", ("cup", "blue")),
                            ("table_1", ("table", "brown"))):
        detection = found[kind]
        assert detection.pose is not None and math.dist(detection.pose[:2], drawn_at(object_id)) < 0.15
        assert 0.25 <= detection.confidence <= 1.0
    assert found[("cup", "red")].support == pytest.approx(shape_for("table").height)  # standing on the table
    assert found[("table", "brown")].support == 0.0


def test_a_far_small_object_is_found_and_nothing_is_made_up() -> None:
    detections = detect((5.5, 4.0, math.atan2(2.0, 2.0)))  # the green mug 2.8 m ahead, nothing else in view
    assert [(d.label, d.color) for d in detections] == [("mug", "green")]
    assert math.dist(detections[0].pose[:2], (7.5, 6.0)) < 0.2
    assert detect((0.0, 0.0, math.pi)) == []  # facing an empty corner


def test_people_are_not_objects() -> None:
    frame = world_view(CameraModel(), (0.0, 0.0, math.pi / 2), [], [{"id": "alice", "pose": [0.0, 2.0, 0.0]}])
    assert (frame.ids == frame.tags.index("person:alice")).sum() > 500
    detector = ColorShapeDetector(Catalogue.from_world(WORLD))
    assert detector.detect(frame.rgb, frame.camera, frame.pose) == []


# -- plugins ---------------------------------------------------------------------------------------------------


class BoxesOnly:
    """A detector that, like a network, finds boxes only (here: from the simulator's own masks)."""

    name = "boxes"

    def __init__(self, catalogue: Catalogue | None = None, frame: Frame | None = None):
        self.frame, self.catalogue = frame, catalogue

    def detect(self, image: np.ndarray, camera: CameraModel | None = None,
               pose: Any = None) -> list[Detection]:
        assert self.frame is not None and self.frame.ids is not None
        found = []
        for index, tag in enumerate(self.frame.tags):
            rows, cols = np.nonzero(self.frame.ids == index)
            entry = self.catalogue.get(tag) if self.catalogue else None
            if entry is None or rows.size < 10:
                continue
            detection = Detection(entry.label, entry.drawn, 0.9,
                                  (int(cols.min()), int(rows.min()), int(cols.max()) + 1, int(rows.max()) + 1))
            found.append(locate(detection, camera, pose) if camera is not None else detection)
        return found


def test_a_registered_detector_gives_the_same_output_as_the_embedded_one(monkeypatch: pytest.MonkeyPatch) -> None:
    frame = world_view(CameraModel(), (5.5, 4.0, math.atan2(2.0, 2.0)), objects_of())
    monkeypatch.setitem(DETECTORS, "boxes", lambda catalogue=None, **options: BoxesOnly(catalogue, **options))
    plugin = make_detector("boxes", Catalogue.from_world(WORLD), frame=frame)
    embedded = make_detector("color", Catalogue.from_world(WORLD))
    (theirs,), (ours,) = plugin.detect(frame.rgb, frame.camera, frame.pose), embedded.detect(
        frame.rgb, frame.camera, frame.pose)
    assert (theirs.label, theirs.color) == (ours.label, ours.color) == ("mug", "green")
    assert theirs.pose is not None and ours.pose is not None and math.dist(theirs.pose[:2], ours.pose[:2]) < 0.1
    assert set(theirs.to_json()) == set(ours.to_json())


def test_detectors_install_through_entry_points(monkeypatch: pytest.MonkeyPatch) -> None:
    entry = importlib.metadata.EntryPoint("embedded_again", "vla_bt.perception.detect:ColorShapeDetector",
                                          "vla_bt.detectors")
    broken = importlib.metadata.EntryPoint("broken", "no_such_module_here:make", "vla_bt.detectors")
    monkeypatch.setattr(importlib.metadata, "entry_points",
                        lambda group=None: [entry, broken] if group == "vla_bt.detectors" else [])
    assert isinstance(make_detector("embedded_again", Catalogue.from_world(WORLD)), ColorShapeDetector)
    with pytest.raises(DetectorError, match="failed to load: ModuleNotFoundError"):
        make_detector("broken")
    with pytest.raises(DetectorError, match=r"unknown detector 'yolo' \(available: .*broken.*color"):
        make_detector("yolo")
    register_detector("decorated")(lambda catalogue=None: ColorShapeDetector(catalogue))
    try:
        assert isinstance(make_detector("decorated"), ColorShapeDetector)
    finally:
        DETECTORS.pop("decorated")


# -- the object memory -----------------------------------------------------------------------------------------


def _frame(pose: tuple[float, float, float], stamp: float, objects: list[dict[str, Any]]) -> Frame:
    frame = world_view(CameraModel(), pose, objects, rng=np.random.default_rng(int(stamp * 10)), stamp=stamp)
    frame.wall = 1000.0 + stamp
    return frame


def test_memory_names_objects_after_the_catalogue_and_forgets_what_is_not_seen_for_long() -> None:
    catalogue = Catalogue.from_world(WORLD)
    memory, detector = ObjectMemory(catalogue, forget_after=30.0), ColorShapeDetector(catalogue)
    mug = [o for o in objects_of() if o["id"] == "mug_green"]
    frame = _frame((5.5, 4.0, math.atan2(2.0, 2.0)), 1.0, mug)
    memory.update(frame, detector.detect(frame.rgb, frame.camera, frame.pose))
    (record,) = memory.records()
    assert record["id"] == "mug_green" and record["label"] == "mug" and record["color"] == "green"
    assert record["graspable"] is True and record["source"] == "camera" and record["seen"] == 1001.0
    away = _frame((0.0, 0.0, math.pi), 20.0, mug)  # looking elsewhere: remembered
    memory.update(away, [])
    assert [r["id"] for r in memory.records()] == ["mug_green"]
    memory.update(_frame((0.0, 0.0, math.pi), 40.0, mug), [])  # 39 s unseen
    assert memory.records() == [] and memory.forgotten[-1][0] == "mug_green"


def test_memory_drops_an_object_that_is_in_plain_view_but_gone() -> None:
    catalogue = Catalogue.from_world(WORLD)
    memory, detector = ObjectMemory(catalogue, miss_limit=3, miss_seconds=1.0), ColorShapeDetector(catalogue)
    pose = (5.5, 4.0, math.atan2(2.0, 2.0))
    mug = [o for o in objects_of() if o["id"] == "mug_green"]
    frame = _frame(pose, 0.0, mug)
    memory.update(frame, detector.detect(frame.rgb, frame.camera, frame.pose))
    for stamp in (0.5, 1.0):  # the mug was taken away: its spot is in view, empty
        memory.update(_frame(pose, stamp, []), [])
        assert [r["id"] for r in memory.records()] == ["mug_green"]
    memory.update(_frame(pose, 1.5, []), [])
    assert memory.records() == [] and memory.forgotten[-1] == ("mug_green", "not there any more")


def test_memory_keeps_the_held_object_with_the_robot_and_makes_up_ids_for_extra_ones() -> None:
    catalogue = Catalogue([Entry("cup_red", "cup", "red", "red", shape_for("cup"), prior=(4.0, 2.0, 0.0))])
    memory = ObjectMemory(catalogue)
    frame = _frame((0.0, 0.0, 0.0), 0.0, [])
    first = Detection("cup", "red", 0.9, (0, 0, 1, 1), (2.0, 0.0, 0.0))
    second = Detection("cup", "red", 0.8, (0, 0, 1, 1), (2.0, 1.5, 0.0))
    memory.update(frame, [first])
    memory.update(frame, [first, second])
    assert sorted(r["id"] for r in memory.records()) == ["cup_red", "red_cup_1"]
    moved = _frame((3.0, 3.0, 1.0), 1.0, [])
    memory.update(moved, [], holding="cup_red")
    held = next(r for r in memory.records() if r["id"] == "cup_red")
    assert held["pose"] == [3.0, 3.0, 1.0] and held["source"] == "gripper"


def test_plausible_references_come_from_the_catalogue() -> None:
    catalogue = Catalogue.from_world(WORLD)
    assert [e.id for e in catalogue.plausible("the green mug")] == ["mug_green"]
    assert [e.id for e in catalogue.plausible("mugs")] == ["mug_green"]
    assert [e.id for e in catalogue.plausible("cup_blue")] == ["cup_blue"]
    assert sorted(e.id for e in catalogue.plausible("a cup")) == ["cup_blue", "cup_red"]
    for nothing in ("the purple cup", "the green", "it", "the unicorn", ""):
        assert catalogue.plausible(nothing) == [], nothing


# -- images ----------------------------------------------------------------------------------------------------


def test_png_round_trip_and_size_limited_encoding() -> None:
    rng = np.random.default_rng(0)
    image = (rng.random((60, 80, 3)) * 255).astype(np.uint8)
    assert np.array_equal(decode_png(encode_png(image)), image)
    grey = image[:, :, 0]
    assert np.array_equal(decode_png(encode_png(grey))[:, :, 1], grey)
    small = encode_within(image, 6000)
    assert len(small) <= 6000 and decode_png(small).shape[0] < 60
    assert downscale(image).shape == (30, 40, 3)
    with pytest.raises(ImageError, match="does not fit"):
        encode_within(image, 50)
    with pytest.raises(ImageError, match="not a PNG"):
        decode_png(b"GIF89a")
    ppm = b"P6\n# made here\n2 1\n255\n" + bytes([255, 0, 0, 0, 0, 255])
    assert decode_ppm(ppm).tolist() == [[[255, 0, 0], [0, 0, 255]]]


def test_utterances_that_ask_to_see() -> None:
    for text in ("what do you see?", "Look at the table", "what's this", "which colour is the cup", "show me"):
        assert asks_to_see(text), text
    for text in ("go to the kitchen", "bring me the red cup", "seesaw", ""):
        assert not asks_to_see(text), text


# -- the camera as the robot's perception ----------------------------------------------------------------------


def test_camera_robot_passes_every_command_through_and_perceives_with_the_camera() -> None:
    sim = SimRobot(WORLD, time_scale=100.0)
    robot = CameraRobot(sim, WORLD)
    woken = []
    robot.on_perception = lambda: woken.append(1)
    sim.add_human("bob", (2.0, 2.0, 0.0))
    assert woken and sim.on_perception is robot.on_perception
    robot.robot._pose = (4.0, 0.8, math.pi / 2)
    seen = robot.perceive()
    assert {"cup_red", "cup_blue", "table_1"} <= {o["id"] for o in seen.objects}
    assert "mug_green" not in {o["id"] for o in seen.objects}  # far away, behind
    assert {h["id"] for h in seen.humans} == {"alice", "bob"}  # people from the robot's own tracking
    handle = robot.navigate((1.0, 0.0, 0.0))
    assert handle.state.value == "running" and robot.state().moving
    assert robot.perception.annotated_png().startswith(b"\x89PNG")
    with pytest.raises(TypeError, match="camera_frame"):
        CameraRobot(object(), WORLD)


def test_a_camera_that_stops_delivering_trips_heartbeat_fresh(tmp_path: Path) -> None:
    tree = tmp_path / "guarded.yaml"
    tree.write_text("""version: 1
root:
  type: Guard
  name: Fresh
  conditions: [{heartbeat_fresh: {key: /perception/stamp, max_age: 0.4}}]
  child: {type: Navigate, target: bedroom}
""")
    registry = Registry.default(plugins=False)
    robot = CameraRobot(SimRobot(WORLD, time_scale=1.0), WORLD)
    loaded = load_tree(tree, registry)
    run = assemble(loaded, registry, world=WORLD, utterances=ScriptedUtterances([]), robot=robot, max_seconds=10)
    loaded.tree.add_pre_tick_handler(robot.pre_tick)

    def camera_fails() -> None:
        deadline = time.monotonic() + 5
        while not robot.state().moving and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.3)
        robot.enabled = False  # the driver died: no more frames

    threading.Thread(target=camera_fails, daemon=True).start()
    result = run.execute()
    assert result.status == "FAILURE"
    (trip,) = [e for e in run.audit.events if e["kind"] == "guard_trip"]
    assert trip["condition"] == "heartbeat_fresh" and "/perception/stamp" in trip["reason"]
    assert [e for e in run.audit.events if e["kind"] == "safe_stop"]
    assert keys.read(PERCEPTION_SOURCE) == "camera"
    camera = keys.read("/perception/camera")
    assert camera["frames"] >= 2 and camera["width"] == 160


def test_before_the_first_frame_the_perception_stamp_is_stale() -> None:
    robot = CameraRobot(SimRobot(WORLD), WORLD)
    robot.enabled = False
    robot.pre_tick()
    assert keys.read(keys.PERCEPTION_STAMP) == 0.0


# -- the leaves ------------------------------------------------------------------------------------------------


def rig(pose: tuple[float, float, float], **camera: Any) -> tuple[CameraRobot, CommandGate, RobotPublisher]:
    sim = SimRobot(WORLD, time_scale=50.0)
    sim._pose = pose
    robot = CameraRobot(sim, WORLD, **camera)
    gate = CommandGate(robot, AuditLog())
    publisher = RobotPublisher(gate)
    return robot, gate, publisher


def tick(root: py_trees.behaviour.Behaviour, robot: CameraRobot, publisher: RobotPublisher, seconds: float = 20.0,
         ) -> Status:
    tree = py_trees.trees.BehaviourTree(root)
    tree.add_pre_tick_handler(publisher.pre_tick)
    tree.add_pre_tick_handler(robot.pre_tick)
    robot.robot.setup()
    tree.setup(robot=publisher.robot, world=WORLD, timeout=5)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        tree.tick()
        if root.status in (Status.SUCCESS, Status.FAILURE):
            return root.status
        time.sleep(0.02)
    return root.status


@pytest.mark.parametrize(("look_for", "status", "message"), [
    (None, Status.SUCCESS, "red cup"), ("the red cup", Status.SUCCESS, "blue cup"),
    ("the green mug", Status.FAILURE, "can't see anything called 'the green mug'")])
def test_perceive_takes_one_look(look_for: str | None, status: Status, message: str) -> None:
    robot, _, publisher = rig((4.0, 0.8, math.pi / 2))
    leaf = Perceive(look_for=look_for)
    assert tick(leaf, robot, publisher) == status
    assert message in leaf.feedback_message
    assert {"cup_red", "table_1"} <= {o["id"] for o in keys.read(keys.PERCEPTION_OBJECTS)}


def test_perceive_without_a_camera_fails_with_the_reason() -> None:
    leaf = Perceive()
    leaf.setup(robot=None, world=WORLD)
    leaf.tick_once()
    assert leaf.status == Status.FAILURE and "no camera" in leaf.feedback_message


def test_search_turns_until_the_camera_shows_it_then_goes_within_reach() -> None:
    robot, gate, publisher = rig((5.5, 4.0, -2.3))  # the mug is behind the robot
    leaf = Search(reference="green mug", approach=0.5, places=False)
    assert tick(leaf, robot, publisher) == Status.SUCCESS
    looks = [c for c in gate.commands if c.args["target"] == "look for green mug"]
    assert looks and all(c.args["pose"][:2] == [5.5, 4.0] for c in looks)  # turned on the spot
    assert gate.commands[-1].args["target"] == "approach green mug"
    assert math.dist(robot.state().pose[:2], (7.5, 6.0)) == pytest.approx(0.5, abs=0.2)
    assert robot.robot.grasp("mug_green").state.value == "running"  # within reach


def test_search_that_finds_nothing_fails_with_a_question_and_says_it() -> None:
    robot, gate, publisher = rig((0.0, 0.0, 0.0))
    leaf = Search(reference="the green mug", places=False, max_looks=3)
    assert tick(leaf, robot, publisher) == Status.FAILURE
    assert len(gate.commands) == 3
    assert leaf.feedback_message == "I looked around but I can't see the green mug. Where should I look?"
    assert keys.read(keys.DIALOGUE_HISTORY)[-1]["text"] == leaf.feedback_message


def _parse(calls: list[tuple[str, str]], source: str | None) -> tuple[list[Step], ParseIntent]:
    registry = Registry.default(plugins=False)
    writer = py_trees.blackboard.Client(name="test")
    for key in (keys.LLM_STREAM, keys.PERCEPTION_OBJECTS, keys.ROBOT_POSE, PERCEPTION_SOURCE):
        writer.register_key(key, access=py_trees.common.Access.WRITE)
    writer.set(keys.PERCEPTION_OBJECTS, [])
    writer.set(keys.ROBOT_POSE, [0.0, 0.0, 0.0])
    if source:
        writer.set(PERCEPTION_SOURCE, source)
    events: list[Any] = [ToolCallDone(f"c{i}", name, raw) for i, (name, raw) in enumerate(calls)]
    writer.set(keys.LLM_STREAM, [*events, ResponseDone(status="completed", text="")])
    leaf = ParseIntent()
    leaf.setup(llm=ModelSession(ScriptedBackend([]), tool_specs(registry)), world=WORLD)
    leaf.tick_once()
    return keys.read(keys.PLAN_STEPS), leaf


def test_with_the_camera_an_unseen_but_plausible_object_becomes_a_step_to_search_for() -> None:
    steps, leaf = _parse([("grasp", '{"object": "green mug"}'), ("grasp", '{"object": "grey knife"}'),
                          ("place", '{"target": "the table"}')], "camera")
    assert [(s["skill"], s["args"], s.get("search"), s["risk"]) for s in steps] == [
        ("grasp", {"object": "green mug"}, "green mug", "low"),
        ("grasp", {"object": "grey knife"}, "grey knife", "high"),  # it may be the high-risk knife: confirm first
        ("place", {"target": "the table"}, "the table", "low")]
    assert leaf.status == Status.SUCCESS
    results = keys.read(keys.LLM_TOOL_RESULTS)
    assert "look for it first" in results[0]["output"]


def test_without_the_camera_an_object_not_perceived_is_still_refused() -> None:
    steps, _ = _parse([("grasp", '{"object": "green mug"}')], None)
    assert steps == []
    assert "green mug" in keys.read(keys.PLAN_REJECTED)


def test_execute_plan_searches_before_an_unseen_step_and_confirms_after_finding() -> None:
    registry = Registry.default(plugins=False)
    writer = py_trees.blackboard.Client(name="test")
    for key in (keys.PLAN_STEPS, keys.PLAN_DONE):
        writer.register_key(key, access=py_trees.common.Access.WRITE)
    writer.set(keys.PLAN_STEPS, [
        Step(id="s1", skill="grasp", args={"object": "grey knife"}, risk="high", search="grey knife"),  # type: ignore[typeddict-unknown-key]
        Step(id="s2", skill="navigate", args={"target": "green mug"}, risk="low", search="green mug"),  # type: ignore[typeddict-unknown-key]
        Step(id="s3", skill="navigate", args={"target": "kitchen"}, risk="low")])
    writer.set(keys.PLAN_DONE, False)
    plan = ExecutePlan()
    plan.setup(registry=registry, world=WORLD)
    next(plan.tick())
    kinds = [type(child) for child in plan.children]
    assert kinds[:3] == [Search, Confirm, Grasp] and kinds[3] is Search and len(kinds) == 6
    first, second = plan.children[0], plan.children[3]
    assert (first.params["reference"], first.params["approach"], first.params["say"]) == ("grey knife", 0.5, False)
    assert (second.params["reference"], second.params["approach"]) == ("green mug", None)
    assert first.step_id == "s1" and second.step_id == "s2"


# -- images to the model ---------------------------------------------------------------------------------------

ASK_TREE = """version: 1
root:
  type: Sequence
  memory: true
  children:
    - {{type: Listen}}
    - {{type: Ask, images: {images}, max_image_bytes: 20000}}
"""


@pytest.mark.parametrize(("images", "said", "attached"), [
    ("every_turn", "go to the kitchen", True), ("on_request", "what do you see?", True),
    ("on_request", "go to the kitchen", False), ("never", "what do you see?", False)])
def test_the_camera_frame_reaches_the_realtime_endpoint_as_an_input_image(images: str, said: str, attached: bool,
                                                                         tmp_path: Path) -> None:
    path = tmp_path / "ask.yaml"
    path.write_text(ASK_TREE.format(images=images))
    registry = Registry.default(plugins=False)
    with RealtimeEndpoint(ScriptedBackend([PlannedResponse(text="I see a table with cups.")]),
                          api_key=KEY) as endpoint:
        session = ModelSession(RealtimeBackend(api_key=KEY, base_url=endpoint.url, timeout=10.0),
                               tool_specs(registry))
        sim = SimRobot(WORLD, time_scale=10.0)
        sim._pose = (4.0, 0.8, math.pi / 2)
        robot = CameraRobot(sim, WORLD)
        loaded = load_tree(path, registry)
        run = assemble(loaded, registry, world=WORLD, utterances=ScriptedUtterances([said]), robot=robot,
                       session=session, max_seconds=20)
        loaded.tree.add_pre_tick_handler(robot.pre_tick)
        result = run.execute()
        assert result.status == "SUCCESS", result.reason
        received = endpoint.last.received
        recorded = list(endpoint.last.images)
    created = [e for e in received if e["type"] == "conversation.item.create"]
    parts = [p for e in created for p in e["item"].get("content") or [] if p.get("type") == "input_image"]
    if not attached:
        assert parts == [] and recorded == []
        return
    (part,) = parts
    user_item = next(e["item"] for e in created if any(p is part for p in e["item"]["content"]))
    assert user_item["role"] == "user" and user_item["content"][0] == {"type": "input_text", "text": said}
    assert part["image_url"].startswith("data:image/png;base64,")
    png = base64.b64decode(part["image_url"].split(",", 1)[1])
    assert recorded == [png] and len(png) <= 20000
    frame = decode_png(png)
    assert frame.ndim == 3 and frame.shape[2] == 3 and frame.shape[1] in (160, 80, 40)

"""Spoken instructions carried out: recordings → offline recognition → the assistant tree → the simulated robot.

Every phrasing family of the embedded planner, in three espeak-ng voices, is
run through the same assembly as ``vla-bt run --audio``; the plan and the
robot's commands must be exactly those of the same instruction typed. Also:
the command line itself with ``--audio``, recordings without a noise floor,
and the segmenter that cuts live audio (a whole command ends on its grammar,
an unfinished one waits; all in audio time, so nothing here is timed).
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import py_trees
import pytest

pytest.importorskip("pocketsphinx")
pytest.importorskip("soundfile")

import soundfile
from audio_helpers import VOICES, SpeechMaker, need_tools
from test_speech import FAMILIES

from vla_bt.app import assemble
from vla_bt.guards.audit import AuditLog
from vla_bt.guards.validation import load_safety_policy
from vla_bt.llm.factory import LlmConfig, make_backend
from vla_bt.llm.session import ModelSession
from vla_bt.llm.tools import tool_specs
from vla_bt.robot.sim import SimRobot
from vla_bt.robot.world import Human, load_world
from vla_bt.speech import audio_utterances
from vla_bt.speech.audio import SAMPLE_RATE, read_wav
from vla_bt.speech.recognizer import SphinxRecognizer
from vla_bt.speech.segmenter import Endpointing, Segmenter
from vla_bt.speech.text import ScriptedUtterances
from vla_bt.speech.vad import VoiceActivity
from vla_bt.speech.wiring import command_grammar
from vla_bt.tree.loader import load_tree
from vla_bt.tree.registry import Registry

ROOT = Path(__file__).resolve().parents[1]
# The shipped world with alice away from the routes between places: there, the straight route from
# the dock to the living room passes 5 cm from her, and whether a tick samples the robot just then
# (and the clearance guard stops it) would depend on how busy the machine is.
WORLD = dataclasses.replace(load_world(ROOT / "config" / "world.yaml"), humans=(Human("alice", (2.5, 7.5, 0.0)),))


@pytest.fixture(scope="module")
def speech(tmp_path_factory: pytest.TempPathFactory) -> SpeechMaker:
    need_tools()
    return SpeechMaker(tmp_path_factory.mktemp("voice"))


@pytest.fixture(scope="module")
def registry() -> Registry:
    return Registry.default(plugins=False)


@pytest.fixture(scope="module")
def recognizer(registry: Registry) -> SphinxRecognizer:
    recognizer = SphinxRecognizer(command_grammar(WORLD, registry))
    recognizer.load()
    return recognizer


def carry_out(utterances: Any, registry: Registry, session: ModelSession) -> dict[str, Any]:
    py_trees.blackboard.Blackboard.clear()  # one store per process: each run starts from nothing
    run = assemble(load_tree(ROOT / "trees" / "assistant.yaml", registry), registry, world=WORLD,
                   utterances=utterances, robot=SimRobot(WORLD, time_scale=100.0), session=session,
                   audit=AuditLog(), max_seconds=60, policy=load_safety_policy(ROOT / "config"))
    return run.execute().to_json()


def local_session(registry: Registry) -> ModelSession:
    tools = tool_specs(registry)
    return ModelSession(make_backend("local", tools, LlmConfig(), world=WORLD, registry=registry), tools)


def what_was_done(result: dict[str, Any]) -> tuple[list[Any], list[Any]]:
    steps = [(s["skill"], s["args"]) for s in result["steps"]]
    commands = [(c["skill"], c["args"]) for c in result["commands"]]
    return steps, commands


@pytest.fixture(scope="module")
def typed(registry: Registry) -> dict[str, tuple[list[Any], list[Any]]]:
    """What each family's instruction does when typed: the reference for the spoken runs."""
    done = {}
    for family, (before, said, _) in FAMILIES.items():
        result = carry_out(ScriptedUtterances([*before, said]), registry, local_session(registry))
        assert result["status"] == "SUCCESS", (family, result["reason"])
        done[family] = what_was_done(result)
    return done


@pytest.mark.parametrize("voice", VOICES)
@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_spoken_instructions_are_carried_out_like_typed_ones(speech: SpeechMaker, registry: Registry,
                                                             typed: dict[str, Any], family: str, voice: str) -> None:
    before, said, _ = FAMILIES[family]
    session = local_session(registry)
    files = [speech.say(text, voice) for text in [*before, said]]
    utterances = audio_utterances(files, session=session, world=WORLD, registry=registry)
    result = carry_out(utterances, registry, session)
    assert result["status"] == "SUCCESS", result["reason"]
    users = [t["text"] for t in result["dialogue"] if t["role"] == "user"]
    steps, commands = what_was_done(result)
    assert steps, f"'{said}' planned nothing"
    assert (steps, commands) == typed[family], f"{voice} said {[*before, said]}, heard {users}"
    assert utterances.problems == []


def test_the_command_line_carries_out_recordings(speech: SpeechMaker, tmp_path: Path) -> None:
    files = [speech.say("pick up the blue cup", "en-us+f2"), speech.say("put it on the table", "en-us+klatt")]
    done = subprocess.run([sys.executable, "-m", "vla_bt", "run", str(ROOT / "trees" / "assistant.yaml"),
                           "--audio", str(files[0]), "--audio", str(files[1]), "--time-scale", "50", "--json"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert [(c["skill"], c["args"].get("object"), c["args"].get("target")) for c in result["commands"]] == [
        ("navigate", None, "kitchen"), ("grasp", "cup_blue", None), ("place", None, "table_1")]
    assert len([t for t in result["dialogue"] if t["role"] == "user"]) == 2


def test_the_command_line_refuses_a_bad_recording_by_name(tmp_path: Path) -> None:
    bad = tmp_path / "order.wav"
    bad.write_text("bring me the red cup\n")
    done = subprocess.run([sys.executable, "-m", "vla_bt", "run", str(ROOT / "trees" / "assistant.yaml"),
                           "--audio", str(bad)], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "order.wav" in done.stderr and "Traceback" not in done.stderr


def test_recordings_without_words_are_named_instead_of_becoming_empty_turns(tmp_path: Path) -> None:
    """Regression: a silent file ended the run with "each --say gives one", and a tone became the turn "you: "."""
    import soundfile

    t = np.arange(int(1.5 * SAMPLE_RATE)) / SAMPLE_RATE
    quiet = np.zeros(SAMPLE_RATE // 2)
    soundfile.write(tmp_path / "silence.wav", np.zeros(SAMPLE_RATE), SAMPLE_RATE, subtype="PCM_16")
    soundfile.write(tmp_path / "tone.wav", np.concatenate([quiet, 0.5 * np.sin(2 * np.pi * 440 * t), quiet]),
                    SAMPLE_RATE, subtype="PCM_16")
    done = subprocess.run([sys.executable, "-m", "vla_bt", "run", str(ROOT / "trees" / "hello.yaml"), "--json",
                           "--audio", str(tmp_path / "silence.wav"), "--audio", str(tmp_path / "tone.wav")],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, done.stderr
    result = json.loads(done.stdout)
    assert result["reason"] == ("Listen: no more utterances (each --audio file gives one); "
                                f"{tmp_path / 'silence.wav'}: no speech found; "
                                f"{tmp_path / 'tone.wav'}: no words recognised")
    assert [turn for turn in result["dialogue"] if turn["role"] == "user"] == []


def test_a_microphone_that_cannot_be_opened_is_named_with_the_devices_there_are() -> None:
    done = subprocess.run([sys.executable, "-m", "vla_bt", "run", str(ROOT / "trees" / "assistant.yaml"),
                           "--microphone", "no-such-microphone"], cwd=ROOT, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 2, done.stderr
    assert "--microphone: cannot open the microphone (input device 'no-such-microphone')" in done.stderr
    assert "input devices: " in done.stderr and "Traceback" not in done.stderr


def test_the_microphone_and_scripted_speech_are_not_mixed() -> None:
    done = subprocess.run([sys.executable, "-m", "vla_bt", "run", str(ROOT / "trees" / "assistant.yaml"),
                           "--microphone", "--say", "go to the kitchen"], cwd=ROOT, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 2
    assert "--microphone: give either a microphone, or --say / --audio, not both" in done.stderr


def test_a_recording_without_a_noise_floor_is_recognised(speech: SpeechMaker, recognizer: SphinxRecognizer,
                                                         tmp_path: Path) -> None:
    """espeak-ng's exact digital silence, straight from the synthesiser: read_wav gives it a noise floor."""
    need_tools()
    said = ["go to the kitchen", "bring me the red cup", "give alice the book", "hand the knife to alice"]
    heard = []
    for i, text in enumerate(said):
        path = tmp_path / f"raw{i}.wav"
        subprocess.run(["espeak-ng", "-v", "en-us", "-w", str(path), text], check=True, capture_output=True)
        raw, _ = soundfile.read(path, dtype="float32")
        assert np.min(np.abs(raw[:200])) == 0.0  # truly digital silence before the voice
        found = VoiceActivity().trim(read_wav(path).samples)
        assert found is not None
        heard.append(recognizer.transcribe(found[0]))
    assert heard == said


# -- the segmenter (live audio, in audio time) --------------------------------------------------------------

def pieces(samples: np.ndarray, size: int = SAMPLE_RATE // 50) -> list[np.ndarray]:
    return [samples[i:i + size] for i in range(0, len(samples), size)]


def feed_all(segmenter: Segmenter, samples: np.ndarray) -> list[Any]:
    heard = [h for piece in pieces(samples) for h in segmenter.feed(piece)]
    return heard + segmenter.finish()


def test_a_whole_command_ends_on_its_grammar_before_the_long_silence(speech: SpeechMaker,
                                                                     registry: Registry) -> None:
    # A recogniser of its own: the live decoder adapts to what it hears, so earlier tests would change it.
    recognizer = SphinxRecognizer(command_grammar(WORLD, registry))
    by_silence = Endpointing(complete_ms=10**6, final_ms=10**6)
    for text, voice in [("go to the kitchen", "en-us"), ("pick up the blue cup", "en-us+f2"),
                        ("go to the bedroom", "en-us+klatt")]:
        samples = read_wav(speech.say(text, voice, tail=1.0)).samples
        heard = feed_all(Segmenter(recognizer), samples)
        waited = feed_all(Segmenter(recognizer, endpointing=by_silence), samples)
        assert [(h.text, h.ended_by) for h in heard] == [(text, "grammar")]
        assert [(h.text, h.ended_by) for h in waited] == [(text, "silence")]
        assert heard[0].decided < waited[0].decided, text


def test_a_pause_inside_an_unfinished_command_does_not_end_it(recognizer: SphinxRecognizer) -> None:
    need_tools()
    from vla_bt.speech.tts import synthesize

    first, end = synthesize("go to the", lead=0.4, tail=0.0, noise_rms=0.0)
    second, _ = synthesize("kitchen", lead=0.0, tail=1.0, noise_rms=0.0)
    onset = int(np.flatnonzero(np.abs(second.samples) > 1e-3)[0])
    pause = np.zeros(int(0.25 * SAMPLE_RATE), np.float32)  # shorter than the 0.3 s that ends an unfinished command
    samples = np.concatenate([first.samples[:int(end * SAMPLE_RATE)], pause, second.samples[onset:]])
    samples += np.random.default_rng(3).normal(0, 0.003, len(samples)).astype(np.float32)
    heard = feed_all(Segmenter(recognizer), samples)
    assert [(h.text, h.ended_by) for h in heard] == [("go to the kitchen", "grammar")]


def test_a_recogniser_that_cannot_stream_gets_the_speech_after_the_silence(speech: SpeechMaker,
                                                                          recognizer: SphinxRecognizer) -> None:
    class WholeOnly:
        def __init__(self) -> None:
            self.lengths: list[float] = []

        def transcribe(self, samples: np.ndarray) -> str:
            self.lengths.append(len(samples) / SAMPLE_RATE)
            return recognizer.transcribe(samples)

    samples = read_wav(speech.say("bring me the red cup", tail=1.0)).samples
    whole = WholeOnly()
    heard = feed_all(Segmenter(whole), samples)  # type: ignore[arg-type]
    assert [(h.text, h.ended_by) for h in heard] == [("bring me the red cup", "silence")]
    assert len(whole.lengths) == 1 and whole.lengths[0] == pytest.approx(heard[0].speech.duration + 0.1, abs=0.02)


def test_audio_skipped_while_the_robot_speaks_is_not_heard(speech: SpeechMaker, recognizer: SphinxRecognizer) -> None:
    samples = read_wav(speech.say("go to the kitchen", tail=1.0)).samples
    segmenter = Segmenter(recognizer)
    half = len(samples) // 2
    heard = [h for piece in pieces(samples[:half]) for h in segmenter.feed(piece)]
    assert heard == [] and segmenter.in_speech
    segmenter.skip(samples[half:])
    assert not segmenter.in_speech and segmenter.finish() == []
    after = feed_all(segmenter, read_wav(speech.say("stop", tail=1.0)).samples)
    assert [h.text for h in after] == ["stop"]
    assert after[0].speech.start > len(samples) / SAMPLE_RATE  # times count on across the skipped audio


def test_speech_longer_than_the_limit_is_cut(speech: SpeechMaker, recognizer: SphinxRecognizer) -> None:
    samples = read_wav(speech.say("put the book in the kitchen", tail=0.5)).samples
    heard = feed_all(Segmenter(recognizer, endpointing=Endpointing(max_seconds=0.6)), samples)
    assert heard and heard[0].ended_by == "length"
    assert heard[0].decided - heard[0].speech.start == pytest.approx(0.6, abs=0.05)


def test_a_recording_the_recogniser_fails_on_is_reported_and_skipped(speech: SpeechMaker,
                                                                    recognizer: SphinxRecognizer) -> None:
    class FailsOnce:
        def __init__(self) -> None:
            self.calls = 0

        def transcribe(self, samples: np.ndarray) -> str:
            self.calls += 1
            if self.calls == 1:
                raise RuntimeError("decoder crashed")
            return recognizer.transcribe(samples)

    from vla_bt.speech.sources import AudioFileUtterances

    files = [speech.say("go to the kitchen"), speech.say("stop")]
    woken: list[bool] = []
    source = AudioFileUtterances(files, FailsOnce(), wake=lambda: woken.append(True))  # type: ignore[arg-type]
    texts = []
    while not source.exhausted:
        text = source.poll()
        if text is not None:
            texts.append(text)
        time.sleep(0.005)
    assert texts == ["stop"]
    assert source.problems == [f"{files[0]}: recognition failed: decoder crashed"]
    assert len(woken) == 2  # each recording's outcome woke the runner, the failure too

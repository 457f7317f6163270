"""Voice through the Realtime API, end to end against the local endpoint, with the real ``openai`` SDK.

Recordings made with espeak-ng are streamed as ``input_audio_buffer.append``
(PCM16, 24 kHz); the endpoint's server VAD commits the speech, transcribes it
offline and, when turn detection says so, answers with the local planner.
The same path runs inside a tree (``--audio`` with ``--llm realtime``): the
transcript becomes the user's turn and the model's tool calls move the
simulated robot. Also: ``--audio`` with the embedded planner, in the same tree.
"""

from __future__ import annotations

import asyncio
import base64
import json
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("pocketsphinx")
pytest.importorskip("soundfile")
openai = pytest.importorskip("openai")

from audio_helpers import SpeechMaker, need_tools  # noqa: E402

from vla_bt.app import assemble  # noqa: E402
from vla_bt.guards.audit import AuditLog  # noqa: E402
from vla_bt.guards.validation import load_safety_policy  # noqa: E402
from vla_bt.llm.endpoint import RealtimeEndpoint  # noqa: E402
from vla_bt.llm.local import LocalPlanner  # noqa: E402
from vla_bt.llm.realtime import RealtimeBackend  # noqa: E402
from vla_bt.llm.session import ModelSession  # noqa: E402
from vla_bt.llm.tools import tool_specs  # noqa: E402
from vla_bt.robot.sim import SimRobot  # noqa: E402
from vla_bt.robot.world import load_world  # noqa: E402
from vla_bt.speech import audio_utterances  # noqa: E402
from vla_bt.speech.audio import REALTIME_RATE, read_wav  # noqa: E402
from vla_bt.tree.loader import load_tree  # noqa: E402
from vla_bt.tree.registry import Registry  # noqa: E402

pytestmark = pytest.mark.timeout(90)
ROOT = Path(__file__).resolve().parents[1]
KEY = "sk-local-voice-0123456789"


@pytest.fixture(scope="module")
def speech(tmp_path_factory: pytest.TempPathFactory) -> SpeechMaker:
    need_tools()
    return SpeechMaker(tmp_path_factory.mktemp("voice"))


@pytest.fixture()
def endpoint() -> Any:
    registry = Registry.default()
    planner = LocalPlanner(load_world(ROOT / "config" / "world.yaml"), tool_specs(registry))
    with RealtimeEndpoint(planner, api_key=KEY) as running:
        yield running


def test_audio_turn_through_the_sdk_with_server_vad(endpoint: RealtimeEndpoint, speech: SpeechMaker) -> None:
    pcm = read_wav(speech.say("go to the kitchen", "en-us+f2")).pcm16(REALTIME_RATE)
    silence = bytes(REALTIME_RATE * 2)  # one second: the server VAD hears the end of speech

    async def talk() -> list[dict[str, Any]]:
        client = openai.AsyncOpenAI(api_key=KEY, base_url=endpoint.url)
        events: list[dict[str, Any]] = []
        async with client.realtime.connect(model="gpt-realtime") as conn:
            await conn.session.update(session={
                "type": "realtime", "output_modalities": ["text"],
                "tools": [t.realtime() for t in tool_specs(Registry.default())],
                "audio": {"input": {"format": {"type": "audio/pcm", "rate": 24000},
                                    "transcription": {"model": "gpt-4o-mini-transcribe"},
                                    "turn_detection": {"type": "server_vad", "threshold": 0.5,
                                                       "prefix_padding_ms": 300, "silence_duration_ms": 500,
                                                       "create_response": True}}}})
            audio = pcm + silence
            for offset in range(0, len(audio), 4800):  # 100 ms chunks
                await conn.input_audio_buffer.append(audio=base64.b64encode(audio[offset:offset + 4800]).decode())
            async for event in conn:
                events.append(event.model_dump())
                if event.type == "response.done":
                    break
        return events

    events = asyncio.run(asyncio.wait_for(talk(), 30))
    kinds = [e["type"] for e in events]
    order = ["session.created", "session.updated", "input_audio_buffer.speech_started",
             "input_audio_buffer.speech_stopped", "input_audio_buffer.committed", "conversation.item.added",
             "conversation.item.done", "conversation.item.input_audio_transcription.completed", "response.created",
             "response.function_call_arguments.done", "response.done"]
    positions = [kinds.index(kind) for kind in order]
    assert positions == sorted(positions), kinds
    started = next(e for e in events if e["type"] == "input_audio_buffer.speech_started")
    stopped = next(e for e in events if e["type"] == "input_audio_buffer.speech_stopped")
    committed = next(e for e in events if e["type"] == "input_audio_buffer.committed")
    assert started["item_id"] == stopped["item_id"] == committed["item_id"]
    assert 0 <= started["audio_start_ms"] < stopped["audio_end_ms"] <= len(pcm) // 48 + 600
    added = next(e for e in events if e["type"] == "conversation.item.added")
    assert added["item"]["role"] == "user" and added["item"]["content"][0]["type"] == "input_audio"
    transcript = next(e for e in events if e["type"] == "conversation.item.input_audio_transcription.completed")
    assert (transcript["item_id"], transcript["transcript"]) == (committed["item_id"], "go to the kitchen")
    call = next(e for e in events if e["type"] == "response.function_call_arguments.done")
    assert (call["name"], json.loads(call["arguments"])) == ("navigate", {"target": "kitchen"})
    connection = endpoint.last
    appended = [e for e in connection.received if e.get("type") == "input_audio_buffer.append"]
    assert appended and all(e["audio"].startswith("<") for e in appended)  # raw audio is not kept


def test_manual_commit_clear_and_errors(endpoint: RealtimeEndpoint, speech: SpeechMaker) -> None:
    pcm = read_wav(speech.say("stop")).pcm16(REALTIME_RATE)

    async def talk() -> list[dict[str, Any]]:
        client = openai.AsyncOpenAI(api_key=KEY, base_url=endpoint.url)
        events: list[dict[str, Any]] = []
        async with client.realtime.connect(model="gpt-realtime") as conn:
            await conn.session.update(session={"type": "realtime", "audio": {"input": {
                "transcription": {"model": "whisper-1"}, "turn_detection": None}}})
            await conn.input_audio_buffer.commit()  # nothing buffered yet
            await conn.input_audio_buffer.append(audio=base64.b64encode(pcm).decode())
            await conn.input_audio_buffer.clear()
            await conn.input_audio_buffer.append(audio="not base64!")
            await conn.input_audio_buffer.append(audio=base64.b64encode(pcm).decode())
            await conn.input_audio_buffer.commit()
            async for event in conn:
                events.append(event.model_dump())
                if event.type == "conversation.item.input_audio_transcription.completed":
                    break
        return events

    events = asyncio.run(asyncio.wait_for(talk(), 30))
    kinds = [e["type"] for e in events]
    errors = [e["error"]["code"] for e in events if e["type"] == "error"]
    assert errors == ["input_audio_buffer_commit_empty", "invalid_value"]
    assert "input_audio_buffer.cleared" in kinds and "input_audio_buffer.speech_started" not in kinds
    assert events[-1]["transcript"] == "stop"
    assert "response.created" not in kinds  # without turn detection the client asks for responses


def _run(tree: str, utterances: Any, session: ModelSession | None, registry: Registry) -> Any:
    world = load_world(ROOT / "config" / "world.yaml")
    run = assemble(load_tree(ROOT / "trees" / tree, registry), registry, world=world, utterances=utterances,
                   robot=SimRobot(world, time_scale=50.0), session=session, audit=AuditLog(), max_seconds=40,
                   policy=load_safety_policy(ROOT / "config"))
    return run.execute()


def test_audio_with_llm_realtime_in_the_assistant_tree(endpoint: RealtimeEndpoint, speech: SpeechMaker) -> None:
    registry = Registry.default()
    session = ModelSession(RealtimeBackend(api_key=KEY, base_url=endpoint.url), tool_specs(registry))
    files = [speech.silence(1.0), speech.say("bring me the red cup", "en-us+klatt"), speech.say("go back")]
    utterances = audio_utterances(files, llm="realtime", session=session, registry=registry)
    result = _run("assistant.yaml", utterances, session, registry).to_json()
    assert result["status"] == "SUCCESS", result["reason"]
    assert [(c["skill"], c["args"].get("object") or c["args"].get("to")) for c in result["commands"]] == [
        ("navigate", None), ("grasp", "cup_red"), ("navigate", None), ("hand_over", "alice"), ("navigate", None)]
    users = [t["text"] for t in result["dialogue"] if t["role"] == "user"]
    assert users == ["bring me the red cup", "go back"]
    connection = endpoint.last
    audio_items = [i for i in connection.items if i.get("type") == "message" and i.get("role") == "user"]
    assert all(i["content"][0]["type"] == "input_audio" for i in audio_items)  # no text copy of spoken turns
    assert [i["content"][0]["transcript"] for i in audio_items] == ["bring me the red cup", "go back"]
    assert [u.text for u in utterances.heard] == ["", "bring me the red cup", "go back"]  # silence first
    assert utterances.problems == []


def test_audio_with_the_embedded_planner_in_the_assistant_tree(speech: SpeechMaker) -> None:
    from vla_bt.llm.factory import LlmConfig, make_backend

    registry = Registry.default()
    world = load_world(ROOT / "config" / "world.yaml")
    session = ModelSession(make_backend("local", tool_specs(registry), LlmConfig(), world=world, registry=registry),
                           tool_specs(registry))
    files = [speech.say("pick up the blue cup", "en-us+f2"), speech.say("put it on the table"), speech.silence(0.5)]
    utterances = audio_utterances(files, session=session, world=world, registry=registry)
    result = _run("assistant.yaml", utterances, session, registry).to_json()
    assert result["status"] == "SUCCESS", result["reason"]
    assert [(c["skill"], c["args"].get("object")) for c in result["commands"]] == [
        ("navigate", None), ("grasp", "cup_blue"), ("place", None)]
    assert [t["text"] for t in result["dialogue"] if t["role"] == "user"] == ["pick up the blue cup",
                                                                              "put it on the table"]

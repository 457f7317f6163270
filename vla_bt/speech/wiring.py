"""The few calls the command line makes for ``--audio`` and ``--speak``.

Example (``vla-bt run``)::

    utterances = audio_utterances(args.audio, llm=args.llm, session=session, world=world, registry=registry)
    ...
    if args.speak:
        loaded.tree.add_post_tick_handler(speech_output().post_tick)
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .realtime_audio import RealtimeAudioUtterances
from .recognizer import make_recognizer
from .sources import AudioFileUtterances
from .tts import DialogueSpeaker, EspeakSpeaker


def command_grammar(world: Any, registry: Any, session: Any = None) -> Any:
    """The local planner's command grammar: the session's own if it runs the local planner, else built alike."""
    grammar = getattr(getattr(session, "backend", None), "grammar", None)
    if grammar is not None:
        return grammar
    from vla_bt.intent.grammar import Grammar, phrases_from_registry
    from vla_bt.llm.tools import tool_specs

    return Grammar(world, tool_specs(registry), phrases_from_registry(registry))


def audio_utterances(paths: Sequence[str | os.PathLike[str]], *, llm: str = "local", session: Any = None,
                     world: Any = None, registry: Any = None, wake: Callable[[], None] | None = None,
                     paced: bool = False, whisper_model: str | Path | None = None) -> Any:
    """The utterance source for ``--audio FILE.wav ...``.

    With ``--llm realtime`` the recordings go to the Realtime API (server VAD and
    transcription, the model answers the audio); otherwise they are transcribed
    offline (pocketsphinx with the command grammar, or faster-whisper with ``whisper_model``).

    Args:
        paths: the WAV files, in order
        llm: the ``--llm`` choice
        session: the model session (``None`` when the tree asks no model)
        world: the world (its names make the speech grammar)
        registry: the node registry (its skills and phrasings make the speech grammar)
        wake: the runner's ``wake`` (ticks the tree as soon as an utterance is ready)
        paced: play the recordings in real time (latency measurements)
        whisper_model: a faster-whisper model directory, for open vocabulary

    Raises:
        AudioError: a bad file (all bad files are named, one per line)
        RecognizerError: the recogniser cannot be set up
    """
    backend = getattr(session, "backend", None)
    if llm == "realtime" and backend is not None and hasattr(backend, "hear"):
        return RealtimeAudioUtterances(paths, backend, session.bridge, paced=paced, wake=wake)
    return AudioFileUtterances(paths, command_recognizer(world, registry, session, whisper_model),
                               paced=paced, wake=wake)


def command_recognizer(world: Any, registry: Any, session: Any = None,
                       whisper_model: str | Path | None = None) -> Any:
    """The offline recogniser of the command grammar, ready to hear (for files, a microphone, a ROS 2 topic).

    Args:
        world: the world (its names make the speech grammar)
        registry: the node registry (its skills and phrasings make the speech grammar)
        session: the model session, whose local planner's grammar is used when it has one
        whisper_model: a faster-whisper model directory, for open vocabulary

    Raises:
        RecognizerError: the recogniser cannot be set up
    """
    recognizer = make_recognizer(command_grammar(world, registry, session), whisper_model)
    load = getattr(recognizer, "load", None)
    if load is not None:
        load()  # compile the grammar now, not when the first utterance waits for it
    return recognizer


def speech_output(voice: str = "en-us") -> DialogueSpeaker:
    """Speak every robot turn through espeak-ng (``--speak``): a post-tick handler's owner.

    Raises:
        SpeechOutputError: espeak-ng is not installed
    """
    return DialogueSpeaker(EspeakSpeaker(voice=voice))


__all__ = ["audio_utterances", "command_grammar", "command_recognizer", "speech_output"]

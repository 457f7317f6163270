"""Where utterances come from: typed text, recorded speech (``--audio``), a microphone; and speech output.

The audio parts need the ``speech`` extra (pocketsphinx, soundfile, soxr) and are
imported on first use, so typed text works without it. See ``docs/voice.md``.
"""

from __future__ import annotations

from typing import Any

from .text import ConsoleUtterances, MergedUtterances, ScriptedUtterances, UtteranceSource

_LAZY = {
    "Audio": "audio", "AudioError": "audio", "read_wav": "audio", "read_wavs": "audio",
    "Speech": "vad", "VoiceActivity": "vad", "VadStream": "vad",
    "SphinxRecognizer": "recognizer", "WhisperRecognizer": "recognizer", "RecognizerError": "recognizer",
    "make_recognizer": "recognizer", "speech_jsgf": "recognizer",
    "SphinxStream": "recognizer", "Segmenter": "segmenter", "Endpointing": "segmenter", "Heard": "segmenter",
    "AudioFileUtterances": "sources", "MicrophoneUtterances": "sources", "LiveUtterances": "sources",
    "Utterance": "sources",
    "RecordingQueue": "sources", "synthesize": "tts",
    "RealtimeAudioUtterances": "realtime_audio",
    "EspeakSpeaker": "tts", "DialogueSpeaker": "tts", "SpeechOutputError": "tts",
    "audio_utterances": "wiring", "speech_output": "wiring", "command_grammar": "wiring",
    "command_recognizer": "wiring",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'vla_bt.speech' has no attribute '{name}'")
    import importlib

    return getattr(importlib.import_module(f".{module}", __name__), name)


__all__ = ["ConsoleUtterances", "MergedUtterances", "ScriptedUtterances", "UtteranceSource", *_LAZY]

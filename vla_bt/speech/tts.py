"""Speech output through espeak-ng (optional; off unless asked for).

:class:`EspeakSpeaker` speaks a text without blocking the tick (one
``espeak-ng`` process at a time, queued). :class:`DialogueSpeaker` speaks
every robot turn that appears in ``/dialogue/history`` — what ``Say``,
``Confirm`` and ``Ask`` say — as a post-tick handler, so no leaf changes::

    speaker = DialogueSpeaker(EspeakSpeaker(voice="en-us"))
    tree.add_post_tick_handler(speaker.post_tick)

Debian: ``apt-get install espeak-ng``. ``to_file`` writes a WAV instead of
playing (used by the tests, which never play sound). :func:`synthesize`
makes a recording to listen to, as a microphone would have heard it (for
``vla-bt bench``).
"""

from __future__ import annotations

import logging
import queue
import shutil
import subprocess
import threading
from pathlib import Path
from typing import Any

import numpy as np

from .audio import SAMPLE_RATE, Audio

log = logging.getLogger(__name__)


class SpeechOutputError(RuntimeError):
    """espeak-ng is not installed or cannot run."""


class EspeakSpeaker:
    """Speaks texts through espeak-ng, one after another, on a background thread.

    Args:
        voice: an espeak-ng voice (``espeak-ng --voices=en``), e.g. ``en-us``, ``en-gb``, ``en-us+f2``
        words_per_minute: speaking rate
        to_file: write each text to this WAV file (overwritten) instead of playing it

    Raises:
        SpeechOutputError: espeak-ng is not installed
    """

    def __init__(self, voice: str = "en-us", words_per_minute: int = 165, to_file: str | Path | None = None):
        program = shutil.which("espeak-ng")
        if program is None:
            raise SpeechOutputError("speech output needs espeak-ng (Debian: apt-get install espeak-ng)")
        self.program = program
        self.voice = voice
        self.words_per_minute = words_per_minute
        self.to_file = Path(to_file) if to_file else None
        self.spoken: list[str] = []
        self._texts: queue.Queue[str | None] = queue.Queue()
        self._busy = threading.Event()
        self._worker = threading.Thread(target=self._speak_all, name="vla-bt-espeak", daemon=True)
        self._worker.start()

    @staticmethod
    def available() -> bool:
        """Whether espeak-ng is installed."""
        return shutil.which("espeak-ng") is not None

    @property
    def speaking(self) -> bool:
        """Something is being said or waits to be (a microphone may mute itself meanwhile)."""
        return self._busy.is_set() or not self._texts.empty()

    def say(self, text: str) -> None:
        """Queue a text to be spoken (returns at once)."""
        if text.strip():
            self._texts.put(text.strip())

    def wait(self, timeout: float = 30.0) -> bool:
        """Block until everything queued has been said (for tests and shutdown)."""
        import time

        deadline = time.monotonic() + timeout
        while self.speaking and time.monotonic() < deadline:
            time.sleep(0.02)
        return not self.speaking

    def close(self) -> None:
        self._texts.put(None)

    def _speak_all(self) -> None:
        while (text := self._texts.get()) is not None:
            self._busy.set()
            try:
                command = [self.program, "-v", self.voice, "-s", str(self.words_per_minute)]
                if self.to_file is not None:
                    command += ["-w", str(self.to_file)]
                subprocess.run([*command, "--", text], capture_output=True, timeout=60, check=False)
                self.spoken.append(text)
            except (OSError, subprocess.SubprocessError) as exc:
                log.warning("speech output failed: %s", exc)
            finally:
                self._busy.clear()


class DialogueSpeaker:
    """Speaks each new robot turn of ``/dialogue/history`` (a py_trees post-tick handler).

    Args:
        speaker: anything with ``say(text)`` (an ``EspeakSpeaker``)
    """

    def __init__(self, speaker: Any):
        self.speaker = speaker
        self._seen: set[tuple[str, float]] = set()

    def post_tick(self, tree: Any = None) -> None:
        """Say the robot turns added since the last tick."""
        from vla_bt import blackboard

        history = blackboard.read(blackboard.DIALOGUE_HISTORY, []) or []
        for turn in history:
            key = (str(turn.get("text", "")), float(turn.get("t", 0.0)))
            if turn.get("role") == "robot" and key not in self._seen:
                self._seen.add(key)
                self.speaker.say(key[0])


ROOM_NOISE_RMS = 0.003
"""Faint noise mixed into synthetic speech (about -50 dBFS): espeak-ng's exact digital silence is unlike
any microphone's and makes the recogniser drop the last word."""


def synthesize(text: str, voice: str = "en-us", *, lead: float = 0.4, tail: float = 0.6,
               noise_rms: float = ROOM_NOISE_RMS, seed: int = 0) -> tuple[Audio, float]:
    """Speech made with espeak-ng, as a 16 kHz recording with room noise around and under it.

    Args:
        text: what is said
        voice: an espeak-ng voice
        lead: seconds of room noise before the speech
        tail: seconds of room noise after it
        noise_rms: the noise level (0: none)
        seed: the noise's random seed (the same recording every time)

    Returns:
        the recording, and the second at which the speech ends in it (the last sample of the voice itself,
        measured before the noise is added)

    Raises:
        SpeechOutputError: espeak-ng is not installed or fails
    """
    import io

    import soundfile

    from .audio import resample, to_mono

    program = shutil.which("espeak-ng")
    if program is None:
        raise SpeechOutputError("making speech needs espeak-ng (Debian: apt-get install espeak-ng)")
    done = subprocess.run([program, "-v", voice, "--stdout", "--", text], capture_output=True, timeout=60,
                          check=False)
    if done.returncode != 0 or not done.stdout:
        raise SpeechOutputError(f"espeak-ng could not say {text!r} in voice {voice!r}: "
                                f"{done.stderr.decode(errors='replace').strip()}")
    data, rate = soundfile.read(io.BytesIO(done.stdout), dtype="float32", always_2d=True)
    voice_only = resample(to_mono(data), rate, SAMPLE_RATE)
    loud = np.flatnonzero(np.abs(voice_only) > 1e-3)
    end = float(loud[-1] + 1 if len(loud) else 0) / SAMPLE_RATE
    silence = [np.zeros(round(s * SAMPLE_RATE), np.float32) for s in (lead, tail)]
    samples = np.concatenate([silence[0], voice_only, silence[1]])
    samples += np.random.default_rng(seed).normal(0, noise_rms, len(samples)).astype(np.float32)
    return Audio(np.clip(samples, -1, 1), source=f"espeak-ng {voice}: {text}"), lead + end


__all__ = ["ROOM_NOISE_RMS", "DialogueSpeaker", "EspeakSpeaker", "SpeechOutputError", "synthesize"]

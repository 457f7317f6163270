"""Speech output through espeak-ng (optional; off unless asked for).

:class:`EspeakSpeaker` speaks a text without blocking the tick (one
``espeak-ng`` process at a time, queued). :class:`DialogueSpeaker` speaks
every robot turn that appears in ``/dialogue/history`` — what ``Say``,
``Confirm`` and ``Ask`` say — as a post-tick handler, so no leaf changes::

    speaker = DialogueSpeaker(EspeakSpeaker(voice="en-us"))
    tree.add_post_tick_handler(speaker.post_tick)

Debian: ``apt-get install espeak-ng``. ``to_file`` writes a WAV instead of
playing (used by the tests, which never play sound).
"""

from __future__ import annotations

import logging
import queue
import shutil
import subprocess
import threading
from pathlib import Path
from typing import Any

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


__all__ = ["DialogueSpeaker", "EspeakSpeaker", "SpeechOutputError"]

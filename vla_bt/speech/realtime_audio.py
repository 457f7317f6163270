"""``--audio`` with ``--llm realtime``: recordings streamed to the Realtime API, transcribed by the server.

Each file is sent with ``input_audio_buffer.append`` (PCM16, 24 kHz) through
the same connection the model answers on (``RealtimeBackend.hear``); the
server's voice activity detection commits the speech as a user item and
its transcript becomes the utterance ``Listen`` (or ``Confirm``) receives.
The model then answers the audio turn itself when ``Ask`` requests a
response. A recording without speech gives no utterance (as with
:class:`~vla_bt.speech.sources.AudioFileUtterances`).
"""

from __future__ import annotations

import concurrent.futures
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from .audio import REALTIME_RATE, Audio, read_wavs
from .sources import Utterance
from .vad import Speech

log = logging.getLogger(__name__)


class RealtimeAudioUtterances:
    """Recorded utterances heard through the Realtime API.

    Args:
        paths: WAV files (any rate, mono or stereo), one utterance each
        backend: the ``RealtimeBackend`` the model answers on
        bridge: the asyncio loop the backend runs on (``ModelSession.bridge``)
        paced: stream each file in real time, as a microphone would
        wake: called when an utterance is ready (the runner's ``wake``)
        max_seconds: the longest file accepted

    Raises:
        AudioError: a bad file (checked here, before anything runs)
    """

    def __init__(self, paths: Sequence[str | os.PathLike[str]], backend: Any, bridge: Any, *, paced: bool = False,
                 wake: Callable[[], None] | None = None, max_seconds: float = 60.0):
        self.recordings: list[Audio] = read_wavs(paths, max_seconds)
        self.backend = backend
        self.bridge = bridge
        self.paced = paced
        self.wake = wake
        self.heard: list[Utterance] = []
        self.problems: list[str] = []
        self._next = 0
        self._future: concurrent.futures.Future[str] | None = None
        self._sent_t = 0.0
        self._quiet_until: float | None = None
        self._lock = threading.Lock()

    def poll(self) -> str | None:
        """The server's transcript of the next file once it arrives; ``None`` meanwhile and during silence."""
        with self._lock:
            if self._quiet_until is not None:
                if time.monotonic() < self._quiet_until:
                    return None
                self._quiet_until = None
                self._next += 1
            if self._next >= len(self.recordings):
                return None
            audio = self.recordings[self._next]
            if self._future is None:
                self._sent_t = time.time()
                self._future = self.bridge.submit(self.backend.hear(audio.pcm16(REALTIME_RATE), paced=self.paced))
                if self.wake is not None:
                    self._future.add_done_callback(lambda _: self.wake())
                return None
            if not self._future.done():
                return None
            future, self._future = self._future, None
            now = time.time()
            try:
                text = future.result()
            except Exception as exc:  # noqa: BLE001 - a failed file is reported and skipped, the run goes on
                log.warning("speech: %s: the Realtime server did not transcribe it: %s", audio.source, exc)
                self.problems.append(f"{audio.source}: {exc}")
                self._next += 1
                return None
            ended = self._sent_t + (audio.duration if self.paced else 0.0)
            if not text:
                self.heard.append(Utterance("", audio.source, None, ended, now))
                quiet = 0.0 if self.paced else max(0.0, audio.duration - (now - self._sent_t))
                self._quiet_until = time.monotonic() + quiet
                return None
            self.heard.append(Utterance(text, audio.source, Speech(0.0, audio.duration), ended, now))
            self._next += 1
            return text

    @property
    def exhausted(self) -> bool:
        with self._lock:
            return self._next >= len(self.recordings) and self._future is None and self._quiet_until is None


__all__ = ["RealtimeAudioUtterances"]

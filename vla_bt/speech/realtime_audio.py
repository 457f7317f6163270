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
import os
import time
from collections.abc import Callable, Sequence
from typing import Any

from .audio import REALTIME_RATE, Audio
from .sources import RecordingQueue, Utterance
from .vad import Speech


class RealtimeAudioUtterances(RecordingQueue):
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
        super().__init__(paths, paced=paced, wake=wake, max_seconds=max_seconds)
        self.backend = backend
        self.bridge = bridge
        self._sent_t = 0.0

    FAILED = "the Realtime server did not transcribe it"

    def _start(self, audio: Audio) -> concurrent.futures.Future[str]:
        self._sent_t = time.time()
        return self.bridge.submit(self.backend.hear(audio.pcm16(REALTIME_RATE), paced=self.paced))

    def _utterance(self, audio: Audio, text: str) -> Utterance:
        ended = self._sent_t + (audio.duration if self.paced else 0.0)
        speech = Speech(0.0, audio.duration) if text else None
        return Utterance(text, audio.source, speech, ended, time.time(), self._sent_t, "server")


__all__ = ["RealtimeAudioUtterances"]

"""Voice activity detection: where speech starts and ends in a recording or a live stream.

Frames of 30 ms are classified by the WebRTC voice activity detector that
ships inside ``pocketsphinx`` (``pocketsphinx.Vad``; no further dependency).
Single frames are not trusted: speech starts once ``start_ms`` of voiced
frames fall within a short window, and ends after ``silence_ms`` without
voice — the same two settings as the Realtime API's server VAD
(``prefix_padding_ms`` and ``silence_duration_ms``).

Example:
    >>> detector = VoiceActivity()
    >>> speech = detector.find(audio.samples)      # None: only silence or noise
    >>> speech.start, speech.end                    # seconds into the recording
    (0.42, 1.95)
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from .audio import SAMPLE_RATE, to_pcm16

FRAME_MS = 30


@dataclass(frozen=True)
class Speech:
    """Where speech is in a recording.

    Args:
        start: seconds from the beginning to the first voiced frame
        end: seconds from the beginning to the end of the last voiced frame
    """

    start: float
    end: float

    @property
    def duration(self) -> float:
        return self.end - self.start


class VoiceActivity:
    """Finds speech in 16 kHz audio.

    Args:
        aggressiveness: 0 (keeps the most speech) … 3 (filters the most noise)
        start_ms: voiced audio needed within ``window_ms`` for speech to start
        window_ms: the window for ``start_ms``
        silence_ms: unvoiced audio that ends speech
        tail_aggressiveness: the detector that times the silence after the last word for a caller that
            can end speech sooner (:attr:`VadStream.silent_frames`): the least forgiving one, whose
            decisions stop close to the voice's own end (the forgiving one runs on up to 0.18 s after it)
    """

    def __init__(self, aggressiveness: int = 0, start_ms: int = 150, window_ms: int = 240, silence_ms: int = 300,
                 tail_aggressiveness: int = 3):
        for name, value in (("aggressiveness", aggressiveness), ("tail_aggressiveness", tail_aggressiveness)):
            if not 0 <= value <= 3:
                raise ValueError(f"{name} must be 0..3, not {value}")
        self.aggressiveness = aggressiveness
        self.tail_aggressiveness = tail_aggressiveness
        self.start_frames = max(1, round(start_ms / FRAME_MS))
        self.window_frames = max(self.start_frames, round(window_ms / FRAME_MS))
        self.silence_frames = max(1, round(silence_ms / FRAME_MS))

    def voiced(self, samples: np.ndarray) -> list[bool]:
        """One decision per 30 ms frame (a last partial frame is left out)."""
        import pocketsphinx

        vad = pocketsphinx.Vad(self.aggressiveness, SAMPLE_RATE, FRAME_MS / 1000)
        size = vad.frame_bytes
        data = to_pcm16(samples)
        return [bool(vad.is_speech(data[i:i + size])) for i in range(0, len(data) - size + 1, size)]

    def find(self, samples: np.ndarray) -> Speech | None:
        """The span from the first to the last stretch of speech, or ``None`` when there is none."""
        stream = VadStream(self)
        segments = stream.feed_decisions(self.voiced(samples))
        segments += stream.finish()
        if not segments:
            return None
        frame = FRAME_MS / 1000
        return Speech(segments[0][0] * frame, segments[-1][1] * frame)

    def trim(self, samples: np.ndarray, lead: float = 0.05, tail: float = 0.05) -> tuple[np.ndarray, Speech] | None:
        """The speech with ``lead`` and ``tail`` seconds around it, and where it was; ``None`` for silence."""
        speech = self.find(samples)
        if speech is None:
            return None
        start = max(0, int((speech.start - lead) * SAMPLE_RATE))
        end = min(len(samples), int((speech.end + tail) * SAMPLE_RATE))
        return np.asarray(samples[start:end], dtype=np.float32), speech


class VadStream:
    """Speech segments of a stream, decided frame by frame (for live audio and the Realtime endpoint).

    Args:
        detector: the settings

    ``feed(samples)`` returns the events its frames complete: ``("start",
    frame)`` when speech begins (the first voiced frame of the window that
    confirmed it) and ``("stop", frame)`` after the silence that ends it
    (the frame after the last voiced one). Frames count from the first fed.
    """

    def __init__(self, detector: VoiceActivity | None = None):
        import pocketsphinx

        self.detector = detector or VoiceActivity()
        self._vad = pocketsphinx.Vad(self.detector.aggressiveness, SAMPLE_RATE, FRAME_MS / 1000)
        self._strict = pocketsphinx.Vad(self.detector.tail_aggressiveness, SAMPLE_RATE, FRAME_MS / 1000)
        self._last_strict = 0
        self._pending = b""
        self._frame = 0
        self._window: deque[tuple[int, bool]] = deque(maxlen=self.detector.window_frames)
        self.in_speech = False
        self._start = 0
        self._last_voiced = 0
        self._segments: list[tuple[int, int]] = []

    @property
    def frame_seconds(self) -> float:
        return FRAME_MS / 1000

    @property
    def frames(self) -> int:
        """Frames decided so far."""
        return self._frame

    @property
    def silent_frames(self) -> int:
        """Frames since the speech in progress was last voiced by the strict detector (0 outside speech)."""
        return self._frame - max(self._last_strict, self._start) - 1 if self.in_speech else 0

    def cut(self) -> int:
        """End the speech in progress now, without waiting for ``silence_ms``; the frame it ended at.

        For a caller that knows the utterance is over (a whole command was heard).
        """
        if not self.in_speech:
            return self._frame
        self.in_speech = False
        self._window.clear()
        return max(self._last_strict, self._start) + 1

    def feed(self, samples: np.ndarray) -> list[tuple[str, int]]:
        """Decide the complete frames of ``samples`` (16 kHz); the events they complete."""
        data = self._pending + to_pcm16(samples)
        size = self._vad.frame_bytes
        end = len(data) - len(data) % size
        events: list[tuple[str, int]] = []
        for i in range(0, end, size):
            frame = data[i:i + size]
            if self._strict.is_speech(frame):
                self._last_strict = self._frame
            events.extend(self._decide(bool(self._vad.is_speech(frame))))
        self._pending = data[end:]
        return events

    def feed_decisions(self, decisions: list[bool]) -> list[tuple[int, int]]:
        """Run frame decisions made elsewhere; the segments ``(start, end)`` they complete."""
        for voiced in decisions:
            self._decide(voiced)
        done, self._segments = self._segments, []
        return done

    def finish(self) -> list[tuple[int, int]]:
        """End the stream: a segment still open ends at its last voiced frame."""
        if self.in_speech:
            self.in_speech = False
            self._segments.append((self._start, self._last_voiced + 1))
        done, self._segments = self._segments, []
        return done

    def _decide(self, voiced: bool) -> list[tuple[str, int]]:
        frame = self._frame
        self._frame += 1
        events: list[tuple[str, int]] = []
        self._window.append((frame, voiced))
        if not self.in_speech:
            hits = [f for f, v in self._window if v]
            if len(hits) >= self.detector.start_frames:
                self.in_speech = True
                self._start = hits[0]
                self._last_voiced = frame
                events.append(("start", hits[0]))
        elif voiced:
            self._last_voiced = frame
        elif frame - self._last_voiced >= self.detector.silence_frames:
            self.in_speech = False
            self._window.clear()
            self._segments.append((self._start, self._last_voiced + 1))
            events.append(("stop", self._last_voiced + 1))
        return events


__all__ = ["FRAME_MS", "Speech", "VadStream", "VoiceActivity"]

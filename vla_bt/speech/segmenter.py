"""Live audio cut into utterances: voice activity, recognition while speaking, and endpointing by grammar.

Audio is fed in small pieces as it is spoken (a microphone, a recording
played in real time). Voice activity finds where speech starts; from then
on a streaming recogniser (``SphinxRecognizer.stream()``) decodes each piece
at once, so the words said so far are always known. An utterance ends:

- after ``complete_ms`` of silence when the words so far are already a whole
  command of the grammar ("go to the kitchen"), or ``final_ms`` when no
  longer command could follow them ("put it on the table");
- otherwise after the voice detector's ``silence_ms`` (a pause mid-command,
  "pick up the … red cup", is not mistaken for the end);
- at ``max_seconds`` of speech, or when the stream ends.

These are VoiceXML's ``completetimeout`` and ``incompletetimeout``: the
robot acts on a whole command a short pause after it is said, instead of
always waiting for the long silence that ends an unfinished one. A
recogniser without ``stream()`` (faster-whisper) gets the whole speech once
the silence has ended it.

Example:
    >>> segmenter = Segmenter(SphinxRecognizer(grammar))
    >>> for piece in pieces_of_20_ms:
    ...     for heard in segmenter.feed(piece):
    ...         print(heard.text, heard.ended_by, heard.speech.end)
    go to the kitchen grammar 1.62
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .audio import SAMPLE_RATE
from .recognizer import Recognizer
from .vad import FRAME_MS, Speech, VadStream, VoiceActivity

FRAME_SAMPLES = SAMPLE_RATE * FRAME_MS // 1000
KEEP_SECONDS = 0.6
"""Audio kept before speech is detected: the detector confirms speech up to its window after it began."""


@dataclass(frozen=True)
class Endpointing:
    """When an utterance is over.

    Args:
        complete_ms: silence after a whole command of the grammar that ends it
        final_ms: the same, when no longer command could follow the words
        max_seconds: speech longer than this is cut
        lead_s: audio kept before the first voiced frame (the recogniser needs the onset)

    The silence that ends an unfinished command is ``VoiceActivity.silence_ms``.
    """

    complete_ms: int = 200
    final_ms: int = 90
    max_seconds: float = 15.0
    lead_s: float = 0.05


@dataclass(frozen=True)
class Heard:
    """One utterance cut from the stream.

    Args:
        text: the sentence recognised ("" when speech was heard but not understood)
        speech: where the speech was, in seconds from the first sample fed
        decided: seconds of audio fed when the utterance was ended
        ended_by: ``grammar`` (a whole command, then a short pause), ``silence``, ``length`` or ``end``
    """

    text: str
    speech: Speech
    decided: float
    ended_by: str


class Segmenter:
    """Cuts a stream of 16 kHz audio into recognised utterances.

    Args:
        recognizer: speech-to-text; with a ``stream()`` method it decodes while the user speaks
        vad: the voice activity settings (its ``silence_ms`` ends an unfinished command)
        endpointing: the shorter pauses that end a whole command

    Not thread-safe: feed it from one thread.
    """

    def __init__(self, recognizer: Recognizer, vad: VoiceActivity | None = None,
                 endpointing: Endpointing | None = None):
        self.recognizer = recognizer
        self.vad = vad or VoiceActivity()
        self.endpointing = endpointing or Endpointing()
        self._detector = VadStream(self.vad)
        self._origin = 0  # the sample at which the detector's frame 0 starts
        self._fed = 0
        self._chunks: list[np.ndarray] = []
        self._kept_from = 0  # the sample at which the kept audio starts
        self._start: int | None = None  # the first sample of the speech in progress
        self._decoded_to = 0
        self._stream: Any = None
        self._words: list[str] = []
        self._words_since = 0  # the sample at which the words so far last changed

    @property
    def seconds(self) -> float:
        """Seconds of audio fed so far."""
        return self._fed / SAMPLE_RATE

    @property
    def in_speech(self) -> bool:
        return self._start is not None

    def feed(self, samples: np.ndarray) -> list[Heard]:
        """Take the next piece of audio; the utterances it ends (usually none, at most a few)."""
        samples = np.asarray(samples, dtype=np.float32)
        self._chunks.append(samples)
        self._fed += len(samples)
        heard: list[Heard] = []
        for event, frame in self._detector.feed(samples):
            if event == "start" and self._start is None:
                self._begin(self._origin + frame * FRAME_SAMPLES)
            elif event == "stop" and self._start is not None:
                heard.append(self._end(self._origin + frame * FRAME_SAMPLES, "silence"))
        if self._start is not None:
            self._decode_new()
            ending = self._ending()
            if ending is not None:
                heard.append(self._end(self._origin + self._detector.cut() * FRAME_SAMPLES, ending))
        if self._start is None:
            self._forget_old()
        return heard

    def finish(self) -> list[Heard]:
        """The stream has ended: the speech in progress (if any) ends here."""
        if self._start is None:
            return []
        self._decode_new()
        return [self._end(self._origin + self._detector.cut() * FRAME_SAMPLES, "end")]

    def skip(self, samples: np.ndarray) -> None:
        """Let audio pass unheard (the robot is speaking): any speech in progress is dropped."""
        if self._stream is not None:
            self._stream.cancel()
            self._stream = None
        self._start = None
        self._fed += len(samples)
        self._chunks, self._kept_from = [], self._fed
        self._detector, self._origin = VadStream(self.vad), self._fed

    # -- inside ---------------------------------------------------------------------------

    def _begin(self, first_voiced: int) -> None:
        self._start = first_voiced
        self._decoded_to = max(self._kept_from, first_voiced - int(self.endpointing.lead_s * SAMPLE_RATE))
        stream = getattr(self.recognizer, "stream", None)
        self._stream = stream() if callable(stream) else None
        self._words, self._words_since = [], self._fed

    def _decode_new(self) -> None:
        if self._stream is not None and self._decoded_to < self._fed:
            self._stream.feed(self._audio(self._decoded_to, self._fed))
        self._decoded_to = self._fed

    def _ending(self) -> str | None:
        """How the speech in progress ends now, or ``None`` while it goes on."""
        assert self._start is not None
        if self._fed - self._start > self.endpointing.max_seconds * SAMPLE_RATE:
            return "length"
        if self._stream is None:
            return None
        words = self._stream.words
        if words != self._words:
            self._words, self._words_since = words, self._fed
        # Quiet means no voice and no change of mind: a pause mid-command can make the decoder's
        # best path jump to another, shorter sentence ("go to the … kitchen" → "go that mug").
        quiet_ms = min(self._detector.silent_frames * FRAME_MS, (self._fed - self._words_since) * 1000 // SAMPLE_RATE)
        if quiet_ms < min(self.endpointing.complete_ms, self.endpointing.final_ms):
            return None
        whole, more = self._stream.complete
        if whole and quiet_ms >= (self.endpointing.complete_ms if more else self.endpointing.final_ms):
            return "grammar"
        return None

    def _end(self, end: int, ended_by: str) -> Heard:
        assert self._start is not None
        speech = Speech(self._start / SAMPLE_RATE, end / SAMPLE_RATE)
        if self._stream is not None:
            text = self._stream.finish().text
        else:
            lead = int(self.endpointing.lead_s * SAMPLE_RATE)
            text = self.recognizer.transcribe(self._audio(max(self._kept_from, self._start - lead), end + lead))
        self._stream, self._start = None, None
        return Heard(text, speech, self.seconds, ended_by)

    def _audio(self, start: int, stop: int) -> np.ndarray:
        """The kept samples from ``start`` to ``stop`` (absolute sample numbers)."""
        needed, begins = [], self._fed
        for chunk in reversed(self._chunks):  # only the newest pieces: decoding asks for the last one
            if begins <= start:
                break
            begins -= len(chunk)
            needed.append(chunk)
        joined = np.concatenate(needed[::-1]) if needed else np.zeros(0, np.float32)
        return joined[max(0, start - begins):max(0, stop - begins)]

    def _forget_old(self) -> None:
        excess = self._fed - self._kept_from - int(KEEP_SECONDS * SAMPLE_RATE)
        if excess > SAMPLE_RATE:  # trim in whole seconds, not at every piece
            kept = self._audio(self._kept_from + excess, self._fed)
            self._chunks, self._kept_from = [kept], self._kept_from + excess


__all__ = ["Endpointing", "Heard", "Segmenter"]

"""Audio utterance sources for ``Listen`` and ``Confirm``: recorded WAV files and a live microphone.

Each source follows :class:`vla_bt.speech.text.UtteranceSource`: ``poll()``
never blocks the tick; recognition runs on a worker thread.

- :class:`AudioFileUtterances` (``--audio FILE.wav``, repeatable): each file
  is one utterance. Silence (no speech found) gives no utterance: the source
  stays quiet for the file's length, then goes on, so a ``Confirm`` waiting
  for an answer hears nothing and its timeout counts as no.
- :class:`MicrophoneUtterances`: speech from the default input device,
  segmented by voice activity (needs ``sounddevice``; optional).

Each utterance heard is recorded as an :class:`Utterance` with the end of
speech as a wall-clock time, from which ``voice_to_command_ms`` is measured.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .audio import SAMPLE_RATE, Audio, read_wavs
from .recognizer import Recognizer
from .vad import Speech, VoiceActivity

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Utterance:
    """One utterance heard.

    Args:
        text: what was recognised ("" when speech was heard but not understood)
        source: the file name, or "microphone"
        speech: where the speech was in the recording (``None``: silence)
        speech_end_t: Unix time at which the speech ended (see the source for its clock)
        heard_t: Unix time at which the text was ready
    """

    text: str
    source: str
    speech: Speech | None
    speech_end_t: float
    heard_t: float

    @property
    def latency(self) -> float:
        """Seconds from the end of speech to the text."""
        return self.heard_t - self.speech_end_t


class AudioFileUtterances:
    """Recorded utterances (``--audio A.wav --audio B.wav``): each file is the next thing the user says.

    Args:
        paths: WAV files (any rate, mono or stereo)
        recognizer: speech-to-text (``SphinxRecognizer``, ``WhisperRecognizer`` …)
        vad: finds the speech in each file (leading and trailing silence are cut)
        paced: play each file in real time from the moment it is reached (for latency
            measurements); otherwise each recording arrives whole when reached
        wake: called when an utterance is ready (the runner's ``wake``)
        max_seconds: the longest file accepted

    Raises:
        AudioError: a file is missing, unreadable, not a WAV file, empty or too long
            (checked here, before anything runs; every bad file is named)

    A file is reached when the previous utterance has been taken. Without
    pacing, its end of speech is the moment it is reached (the recording is
    complete); with pacing, it is the moment its last voiced frame is played.
    """

    def __init__(self, paths: Sequence[str | os.PathLike[str]], recognizer: Recognizer, *,
                 vad: VoiceActivity | None = None, paced: bool = False, wake: Callable[[], None] | None = None,
                 max_seconds: float = 60.0):
        self.recordings: list[Audio] = read_wavs(paths, max_seconds)
        self.recognizer = recognizer
        self.vad = vad or VoiceActivity()
        self.paced = paced
        self.wake = wake
        self.heard: list[Utterance] = []
        self.problems: list[str] = []
        self._next = 0
        self._job: threading.Thread | None = None
        self._result: Utterance | None = None
        self._quiet_until: float | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"AudioFileUtterances({len(self.recordings)} files, next={self._next})"

    @property
    def last(self) -> Utterance | None:
        """The latest utterance heard (silence included)."""
        return self.heard[-1] if self.heard else None

    def poll(self) -> str | None:
        """The next utterance's text once recognised; ``None`` while listening or during silence."""
        with self._lock:
            if self._quiet_until is not None:
                if time.monotonic() < self._quiet_until:
                    return None
                self._quiet_until = None
                self._next += 1
            if self._next >= len(self.recordings):
                return None
            if self._job is None:
                self._result = None
                self._job = threading.Thread(target=self._hear, args=(self.recordings[self._next],),
                                             name="vla-bt-speech", daemon=True)
                self._job.start()
                return None
            if self._job.is_alive() or self._result is None:
                return None
            utterance, self._job = self._result, None
            if utterance.speech is None:  # silence: nothing said for as long as the recording lasts
                remaining = self.recordings[self._next].duration - (time.time() - utterance.heard_t)
                self._quiet_until = time.monotonic() + max(0.0, remaining) if not self.paced else time.monotonic()
                return None
            self._next += 1
            return utterance.text

    @property
    def exhausted(self) -> bool:
        """Every file has been heard (and the last silence has passed)."""
        with self._lock:
            return self._next >= len(self.recordings) and self._job is None and self._quiet_until is None

    def _hear(self, audio: Audio) -> None:
        try:
            utterance = self._paced(audio) if self.paced else self._whole(audio)
        except Exception as exc:  # noqa: BLE001 - a recogniser failure ends this utterance, not the run
            log.warning("speech: %s: recognition failed: %s", audio.source, exc)
            self.problems.append(f"{audio.source}: recognition failed: {exc}")
            now = time.time()
            utterance = Utterance("", audio.source, Speech(0.0, audio.duration), now, now)
        self.heard.append(utterance)
        self._result = utterance
        if self.wake is not None:
            self.wake()

    def _whole(self, audio: Audio) -> Utterance:
        arrived = time.time()
        found = self.vad.trim(audio.samples)
        if found is None:
            return Utterance("", audio.source, None, arrived, time.time())
        samples, speech = found
        text = self.recognizer.transcribe(samples)
        return Utterance(text, audio.source, speech, arrived, time.time())

    def _paced(self, audio: Audio) -> Utterance:
        """Play the recording in real time; recognise once the voice activity detector hears the end."""
        from .vad import VadStream

        started = time.time()
        stream = VadStream(self.vad)
        chunk = SAMPLE_RATE // 50  # 20 ms
        start = stop = None
        for offset in range(0, len(audio.samples), chunk):
            delay = started + offset / SAMPLE_RATE - time.time()
            if delay > 0:
                time.sleep(delay)
            for event, frame in stream.feed(audio.samples[offset:offset + chunk]):
                if event == "start" and start is None:
                    start = frame
                elif event == "stop" and start is not None:
                    stop = frame
            if stop is not None:
                break
        if start is None:
            time.sleep(max(0.0, started + audio.duration - time.time()))
            now = time.time()
            return Utterance("", audio.source, None, now, now)
        seconds = stream.frame_seconds
        end = stop if stop is not None else stream.frames
        speech = Speech(start * seconds, end * seconds)
        lo = max(0, int((speech.start - 0.05) * SAMPLE_RATE))
        hi = min(len(audio.samples), int((speech.end + 0.05) * SAMPLE_RATE))
        text = self.recognizer.transcribe(audio.samples[lo:hi])
        return Utterance(text, audio.source, speech, started + speech.end, time.time())


class MicrophoneUtterances:
    """Live speech from a microphone, cut into utterances by voice activity.

    Args:
        recognizer: speech-to-text
        vad: the voice activity settings (``silence_ms`` ends an utterance)
        device: the ``sounddevice`` input device (default: the system's)
        wake: called when an utterance is ready
        muted: while this returns true (the robot is speaking), audio is ignored
        max_seconds: an utterance is cut after this long

    Needs ``pip install sounddevice`` and PortAudio (Debian: ``libportaudio2``).
    ``start()`` opens the device (call it from ``setup()`` time, not ``__init__``);
    ``close()`` releases it. Silence gives no utterance.
    """

    def __init__(self, recognizer: Recognizer, *, vad: VoiceActivity | None = None, device: Any = None,
                 wake: Callable[[], None] | None = None, muted: Callable[[], bool] | None = None,
                 max_seconds: float = 15.0):
        self.recognizer = recognizer
        self.vad = vad or VoiceActivity()
        self.device = device
        self.wake = wake
        self.muted = muted or (lambda: False)
        self.max_seconds = max_seconds
        self.heard: list[Utterance] = []
        self._texts: queue.Queue[str] = queue.Queue()
        self._audio: queue.Queue[np.ndarray | None] = queue.Queue()
        self._stream: Any = None
        self._worker: threading.Thread | None = None

    def start(self) -> MicrophoneUtterances:
        """Open the input device and start listening.

        Raises:
            RuntimeError: sounddevice or PortAudio is missing, or no input device can be opened
        """
        try:
            import sounddevice
        except (ImportError, OSError) as exc:
            raise RuntimeError(f"the microphone needs sounddevice and PortAudio: pip install sounddevice "
                               f"(and apt-get install libportaudio2): {exc}") from None

        def callback(data: np.ndarray, frames: int, when: Any, status: Any) -> None:
            self._audio.put(np.array(data[:, 0], dtype=np.float32))

        try:
            self._stream = sounddevice.InputStream(samplerate=SAMPLE_RATE, channels=1, dtype="float32",
                                                   blocksize=SAMPLE_RATE // 50, device=self.device,
                                                   callback=callback)
            self._stream.start()
        except Exception as exc:  # noqa: BLE001 - PortAudio's errors, named for the user
            raise RuntimeError(f"cannot open the microphone: {exc}") from None
        self._worker = threading.Thread(target=self._listen, name="vla-bt-microphone", daemon=True)
        self._worker.start()
        return self

    def close(self) -> None:
        """Stop listening and release the device."""
        if self._stream is not None:
            self._stream.stop()
            self._stream.close()
            self._stream = None
        self._audio.put(None)

    def poll(self) -> str | None:
        try:
            return self._texts.get_nowait()
        except queue.Empty:
            return None

    @property
    def exhausted(self) -> bool:
        return False

    def _listen(self) -> None:
        from .vad import VadStream

        self.feed_loop(self._audio, VadStream(self.vad))

    def feed_loop(self, chunks: queue.Queue[np.ndarray | None], stream: Any) -> None:
        """Segment and recognise chunks until ``None`` arrives (the microphone's worker; also for tests)."""
        buffer: list[np.ndarray] = []
        kept = 0
        start: int | None = None
        began = time.time()
        while (chunk := chunks.get()) is not None:
            if self.muted():
                buffer, kept, start = [], stream.frames, None
                stream.feed(np.zeros_like(chunk))
                continue
            buffer.append(chunk)
            for event, frame in stream.feed(chunk):
                if event == "start":
                    start = frame
                elif event == "stop" and start is not None:
                    self._utterance(buffer, kept, start, frame, stream.frame_seconds, began)
                    buffer, kept, start = [], stream.frames, None
            if start is None and len(buffer) > 25:  # keep half a second before speech
                buffer = buffer[-25:]
                kept = stream.frames - int(sum(len(b) for b in buffer) / (SAMPLE_RATE * stream.frame_seconds))
            elif start is not None and (stream.frames - start) * stream.frame_seconds > self.max_seconds:
                self._utterance(buffer, kept, start, stream.frames, stream.frame_seconds, began)
                buffer, kept, start = [], stream.frames, None

    def _utterance(self, buffer: list[np.ndarray], kept: int, start: int, stop: int, frame: float,
                   began: float) -> None:
        samples = np.concatenate(buffer) if buffer else np.zeros(0, np.float32)
        lo = max(0, int(((start - kept) * frame - 0.05) * SAMPLE_RATE))
        hi = min(len(samples), int(((stop - kept) * frame + 0.05) * SAMPLE_RATE))
        text = self.recognizer.transcribe(samples[lo:hi])
        now = time.time()
        self.heard.append(Utterance(text, "microphone", Speech(start * frame, stop * frame), began + stop * frame,
                                    now))
        if text:
            self._texts.put(text)
            if self.wake is not None:
                self.wake()


__all__ = ["AudioFileUtterances", "MicrophoneUtterances", "Utterance"]

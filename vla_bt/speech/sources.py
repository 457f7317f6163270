"""Audio utterance sources for ``Listen`` and ``Confirm``: recorded WAV files and a live microphone.

Each source follows :class:`vla_bt.speech.text.UtteranceSource`: ``poll()``
never blocks the tick; recognition runs on a worker thread.

- :class:`AudioFileUtterances` (``--audio FILE.wav``, repeatable): each file
  is one utterance. Silence (no speech found) gives no utterance: the source
  stays quiet for the file's length, then goes on, so a ``Confirm`` waiting
  for an answer hears nothing and its timeout counts as no.
- :class:`LiveUtterances`: a live stream of audio chunks (pushed by any
  producer, e.g. a ROS 2 audio topic), segmented by voice activity.
- :class:`MicrophoneUtterances`: speech from the default input device
  (needs ``sounddevice``; optional).

Each utterance heard is recorded as an :class:`Utterance` with the end of
speech as a wall-clock time, from which ``voice_to_command_ms`` is measured.
"""

from __future__ import annotations

import concurrent.futures
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
from .segmenter import Endpointing, Heard, Segmenter
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
        began_t: Unix time of the recording's first sample (when it started playing, or arrived whole)
        ended_by: what ended it (see :class:`~vla_bt.speech.segmenter.Heard`; ``whole`` for a complete file)
    """

    text: str
    source: str
    speech: Speech | None
    speech_end_t: float
    heard_t: float
    began_t: float = 0.0
    ended_by: str = "whole"

    @property
    def latency(self) -> float:
        """Seconds from the end of speech to the text."""
        return self.heard_t - self.speech_end_t


class RecordingQueue:
    """Recordings heard one after another, each on a worker: what every ``--audio`` source shares.

    A subclass starts the work on a recording in ``_start``, which returns a
    future, and turns the future's result into an :class:`Utterance` in
    ``_utterance``. An utterance without speech is silence: the source stays quiet for as long as
    the recording lasts (at once when paced: the playing took that long), then
    goes on, so a ``Confirm`` waiting for an answer hears nothing and its
    timeout counts as no. A failure is reported in ``problems`` and the
    recording is skipped.

    Args:
        paths: WAV files (any rate, mono or stereo), one utterance each
        paced: play each file in real time from the moment it is reached
        wake: called when an utterance is ready (the runner's ``wake``)
        max_seconds: the longest file accepted

    Raises:
        AudioError: a file is missing, unreadable, not a WAV file, empty or too long
            (checked here, before anything runs; every bad file is named)
    """

    def __init__(self, paths: Sequence[str | os.PathLike[str]], *, paced: bool = False,
                 wake: Callable[[], None] | None = None, max_seconds: float = 60.0):
        self.recordings: list[Audio] = read_wavs(paths, max_seconds)
        self.paced = paced
        self.wake = wake
        self.heard: list[Utterance] = []
        self.problems: list[str] = []
        self._next = 0
        self._pending: concurrent.futures.Future[Any] | None = None
        self._quiet_until: float | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({len(self.recordings)} files, next={self._next})"

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
            audio = self.recordings[self._next]
            if self._pending is None:
                self._pending = self._start(audio)
                if self.wake is not None:
                    self._pending.add_done_callback(lambda _: self.wake())
                return None
            if not self._pending.done():
                return None
            pending, self._pending = self._pending, None
            try:
                utterance = self._utterance(audio, pending.result())
            except Exception as exc:  # noqa: BLE001 - a failed recording is reported and skipped, the run goes on
                log.warning("speech: %s: %s: %s", audio.source, self.FAILED, exc)
                self.problems.append(f"{audio.source}: {self.FAILED}: {exc}")
                self._next += 1
                return None
            self.heard.append(utterance)
            if utterance.speech is None:
                played = time.time() - utterance.began_t
                self._quiet_until = time.monotonic() + max(0.0, audio.duration - played)
                return None
            self._next += 1
            if not utterance.text:  # speech, but no words of the grammar in it: like silence, not an empty turn
                log.warning("speech: %s: no words recognised", audio.source)
                return None
            return utterance.text

    @property
    def exhausted(self) -> bool:
        """Every file has been heard (and the last silence has passed)."""
        with self._lock:
            return self._next >= len(self.recordings) and self._pending is None and self._quiet_until is None

    @property
    def end_reason(self) -> str:
        """Why nothing more will be heard, naming the recordings that gave no words."""
        quiet = [f"{u.source}: no speech found" if u.speech is None else f"{u.source}: no words recognised"
                 for u in self.heard if not u.text]
        return "no more utterances (each --audio file gives one)" + (f"; {'; '.join(quiet + self.problems)}"
                                                                     if quiet or self.problems else "")

    FAILED = "not heard"
    """What a failure is called in ``problems``."""

    def _start(self, audio: Audio) -> concurrent.futures.Future[Any]:
        raise NotImplementedError

    def _utterance(self, audio: Audio, result: Any) -> Utterance:
        raise NotImplementedError


class AudioFileUtterances(RecordingQueue):
    """Recorded utterances (``--audio A.wav --audio B.wav``), recognised offline.

    Args:
        paths: WAV files (any rate, mono or stereo)
        recognizer: speech-to-text (``SphinxRecognizer``, ``WhisperRecognizer`` …)
        vad: finds the speech in each file (leading and trailing silence are cut)
        endpointing: when a paced utterance is over (see :class:`~vla_bt.speech.segmenter.Segmenter`)
        paced: play each file in real time from the moment it is reached, recognising while it
            plays, as from a microphone (for latency measurements); otherwise each recording
            arrives whole when reached
        wake: called when an utterance is ready (the runner's ``wake``)
        max_seconds: the longest file accepted

    Raises:
        AudioError: a bad file (see :class:`RecordingQueue`)

    A file is reached when the previous utterance has been taken. Without
    pacing, its end of speech is the moment it is reached (the recording is
    complete); with pacing, it is the moment its last voiced frame is played.
    """

    def __init__(self, paths: Sequence[str | os.PathLike[str]], recognizer: Recognizer, *,
                 vad: VoiceActivity | None = None, endpointing: Endpointing | None = None, paced: bool = False,
                 wake: Callable[[], None] | None = None, max_seconds: float = 60.0):
        super().__init__(paths, paced=paced, wake=wake, max_seconds=max_seconds)
        self.recognizer = recognizer
        self.vad = vad or VoiceActivity()
        self.endpointing = endpointing or Endpointing()

    FAILED = "recognition failed"

    def _start(self, audio: Audio) -> concurrent.futures.Future[Utterance]:
        job: concurrent.futures.Future[Utterance] = concurrent.futures.Future()
        threading.Thread(target=self._hear, args=(audio, job), name="vla-bt-speech", daemon=True).start()
        return job

    def _utterance(self, audio: Audio, result: Utterance) -> Utterance:
        return result

    def _hear(self, audio: Audio, job: concurrent.futures.Future[Utterance]) -> None:
        try:
            job.set_result(self._paced(audio) if self.paced else self._whole(audio))
        except Exception as exc:  # noqa: BLE001 - handed to poll(), which reports it
            job.set_exception(exc)

    def _whole(self, audio: Audio) -> Utterance:
        arrived = time.time()
        found = self.vad.trim(audio.samples)
        if found is None:
            return Utterance("", audio.source, None, arrived, time.time(), arrived)
        samples, speech = found
        text = self.recognizer.transcribe(samples)
        return Utterance(text, audio.source, speech, arrived, time.time(), arrived)

    def _paced(self, audio: Audio) -> Utterance:
        """Play the recording in real time, recognising as it plays, until the utterance is over."""
        segmenter = Segmenter(self.recognizer, self.vad, self.endpointing)
        started = time.time()
        piece = SAMPLE_RATE // 50  # 20 ms, as a sound card delivers it
        heard: list[Heard] = []
        for offset in range(0, len(audio.samples), piece):
            chunk = audio.samples[offset:offset + piece]
            delay = started + (offset + len(chunk)) / SAMPLE_RATE - time.time()
            if delay > 0:
                time.sleep(delay)  # the piece has been "said" only once its last sample has
            heard = segmenter.feed(chunk)
            if heard:
                break
        else:
            heard = segmenter.finish()
        if not heard:
            now = time.time()
            return Utterance("", audio.source, None, now, now, started)
        first = heard[0]
        return Utterance(first.text, audio.source, first.speech, started + first.speech.end, time.time(), started,
                         first.ended_by)


class LiveUtterances:
    """Speech arriving as a live stream of audio chunks, cut into utterances by voice activity.

    The base of the microphone and of ROS 2 audio topics: whatever delivers the
    audio calls :meth:`push` (from any thread); a worker thread segments and
    recognises it while the user speaks.

    Args:
        recognizer: speech-to-text (recognising while the user speaks, when it can)
        source: what the utterances are recorded as coming from ("microphone", "ros:/audio")
        vad: the voice activity settings (``silence_ms`` ends an unfinished command)
        endpointing: the shorter pauses that end a whole command, and the longest utterance
        wake: called when an utterance is ready
        muted: while this returns true (the robot is speaking), audio is ignored

    ``start()`` starts the worker (call it from ``setup()`` time, not ``__init__``);
    ``close()`` stops it once the audio pushed so far is heard. Silence gives no utterance.
    """

    def __init__(self, recognizer: Recognizer, source: str, *, vad: VoiceActivity | None = None,
                 endpointing: Endpointing | None = None, wake: Callable[[], None] | None = None,
                 muted: Callable[[], bool] | None = None):
        self.recognizer = recognizer
        self.source = source
        self.vad = vad or VoiceActivity()
        self.endpointing = endpointing or Endpointing()
        self.wake = wake
        self.muted = muted or (lambda: False)
        self.heard: list[Utterance] = []
        self._texts: queue.Queue[str] = queue.Queue()
        self._audio: queue.Queue[np.ndarray | None] = queue.Queue()
        self._worker: threading.Thread | None = None

    def start(self) -> LiveUtterances:
        """Start hearing what is pushed."""
        if self._worker is None:
            self._worker = threading.Thread(target=self.feed_loop, args=(self._audio,),
                                            name=f"vla-bt-{self.source}", daemon=True)
            self._worker.start()
        return self

    def push(self, samples: np.ndarray) -> None:
        """Hand over the next chunk of audio: mono float32 in [-1, 1] at ``SAMPLE_RATE``; never blocks."""
        self._audio.put(samples)

    def close(self, timeout: float | None = 5.0) -> None:
        """Stop hearing, after what was already pushed (waits up to ``timeout`` seconds for it)."""
        self._audio.put(None)
        if self._worker is not None:
            self._worker.join(timeout)

    def poll(self) -> str | None:
        try:
            return self._texts.get_nowait()
        except queue.Empty:
            return None

    @property
    def exhausted(self) -> bool:
        return False

    def feed_loop(self, chunks: queue.Queue[np.ndarray | None]) -> None:
        """Cut chunks into utterances until ``None`` arrives (the worker; also for tests)."""
        segmenter = Segmenter(self.recognizer, self.vad, self.endpointing)
        began = time.time()
        while (chunk := chunks.get()) is not None:
            if self.muted():
                segmenter.skip(chunk)
                continue
            for heard in segmenter.feed(chunk):
                self._utterance(heard, began)
        for heard in segmenter.finish():
            self._utterance(heard, began)

    def _utterance(self, heard: Heard, began: float) -> None:
        self.heard.append(Utterance(heard.text, self.source, heard.speech, began + heard.speech.end, time.time(),
                                    began, heard.ended_by))
        if heard.text:
            self._texts.put(heard.text)
            if self.wake is not None:
                self.wake()


class MicrophoneUtterances(LiveUtterances):
    """Live speech from a microphone (``vla-bt run --microphone``).

    Args:
        recognizer: speech-to-text (recognising while the user speaks, when it can)
        vad: the voice activity settings (``silence_ms`` ends an unfinished command)
        endpointing: the shorter pauses that end a whole command, and the longest utterance
        device: the ``sounddevice`` input device (default: the system's)
        wake: called when an utterance is ready
        muted: while this returns true (the robot is speaking), audio is ignored

    Needs ``pip install sounddevice`` and PortAudio (Debian: ``libportaudio2``).
    ``start()`` opens the device (call it from ``setup()`` time, not ``__init__``);
    ``close()`` releases it.
    """

    def __init__(self, recognizer: Recognizer, *, vad: VoiceActivity | None = None,
                 endpointing: Endpointing | None = None, device: Any = None, wake: Callable[[], None] | None = None,
                 muted: Callable[[], bool] | None = None):
        super().__init__(recognizer, "microphone", vad=vad, endpointing=endpointing, wake=wake, muted=muted)
        self.device = device
        self._stream: Any = None

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
            self.push(np.array(data[:, 0], dtype=np.float32))

        try:
            self._stream = sounddevice.InputStream(samplerate=SAMPLE_RATE, channels=1, dtype="float32",
                                                   blocksize=SAMPLE_RATE // 50, device=self.device,
                                                   callback=callback)
            self._stream.start()
        except Exception as exc:  # noqa: BLE001 - PortAudio's errors, named for the user
            which = "the default input" if self.device is None else f"input device {self.device!r}"
            raise RuntimeError(f"cannot open the microphone ({which}): {exc}; {_inputs(sounddevice)}") from None
        super().start()
        return self

    def close(self, timeout: float | None = 5.0) -> None:
        """Stop listening and release the device."""
        if self._stream is not None:
            self._stream.stop()
            self._stream.close()
            self._stream = None
        super().close(timeout)


def _inputs(sounddevice: Any) -> str:
    """The input devices PortAudio knows, for an error message."""
    try:
        found = [f"{d['index']}: {d['name']}" for d in sounddevice.query_devices() if d["max_input_channels"] > 0]
    except Exception:  # noqa: BLE001 - only a hint in an error message
        return "the input devices cannot be listed"
    return "input devices: " + (", ".join(found) if found else "none found")


__all__ = ["AudioFileUtterances", "LiveUtterances", "MicrophoneUtterances", "RecordingQueue", "Utterance"]

"""Recorded speech: WAV files read, checked and brought to 16 kHz mono.

Dependencies (the ``speech`` extra), each chosen for one job:

- ``soundfile`` (libsndfile, bundled in its wheels) reads WAV in every common
  encoding (8/16/24/32-bit integer, float, μ-law, A-law, WAVE_FORMAT_EXTENSIBLE)
  and tells a WAV file from anything else;
- ``soxr`` (the SoX resampler) converts any sample rate to the recogniser's
  16 kHz, and the Realtime API's 24 kHz, with proper anti-aliasing; its
  streaming resampler serves live audio.

Example:
    >>> audio = read_wav("turn_on.wav")          # any rate, mono or stereo
    >>> audio.samples.dtype, audio.rate
    (dtype('float32'), 16000)
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SAMPLE_RATE = 16000
"""The rate every recogniser here works at (Hz)."""
REALTIME_RATE = 24000
"""The rate of the Realtime API's ``audio/pcm`` format (Hz)."""
MAX_SECONDS = 60.0
"""The longest recording accepted as one utterance (a longer file is refused)."""


class AudioError(ValueError):
    """A recording that cannot be used; the message names the file and what is wrong with it."""


@dataclass(frozen=True)
class Audio:
    """A recording, as 16 kHz mono float samples in [-1, 1].

    Args:
        samples: the samples (float32, mono)
        rate: their sample rate (``SAMPLE_RATE`` once read)
        source: where they came from (a file name, "microphone" …)
        original_rate: the rate of the recording as made
        channels: the channels of the recording as made
    """

    samples: np.ndarray
    rate: int = SAMPLE_RATE
    source: str = ""
    original_rate: int = SAMPLE_RATE
    channels: int = 1

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return len(self.samples) / self.rate

    def pcm16(self, rate: int | None = None) -> bytes:
        """The samples as little-endian signed 16-bit PCM, resampled to ``rate`` if given."""
        samples = self.samples if rate in (None, self.rate) else resample(self.samples, self.rate, int(rate))
        return to_pcm16(samples)


def resample(samples: np.ndarray, rate: int, target: int) -> np.ndarray:
    """Samples at ``rate`` converted to ``target`` Hz (float32)."""
    samples = np.asarray(samples, dtype=np.float32)
    if rate == target or len(samples) == 0:
        return samples
    import soxr

    return np.asarray(soxr.resample(samples, rate, target, quality="HQ"), dtype=np.float32)


def to_mono(samples: np.ndarray) -> np.ndarray:
    """The average of the channels (``(frames, channels)`` → ``(frames,)``)."""
    samples = np.asarray(samples, dtype=np.float32)
    return samples.mean(axis=1, dtype=np.float32) if samples.ndim == 2 else samples


def to_pcm16(samples: np.ndarray) -> bytes:
    """Float samples in [-1, 1] as little-endian signed 16-bit PCM (clipped)."""
    clipped = np.clip(np.asarray(samples, dtype=np.float32), -1.0, 1.0)
    return (np.round(clipped * 32767.0)).astype("<i2").tobytes()


def from_pcm16(data: bytes) -> np.ndarray:
    """Little-endian signed 16-bit PCM as float32 samples in [-1, 1)."""
    if len(data) % 2:
        data = data[:-1]
    return np.frombuffer(data, dtype="<i2").astype(np.float32) / 32768.0


def read_wav(path: str | os.PathLike[str], max_seconds: float = MAX_SECONDS) -> Audio:
    """Read a WAV file as 16 kHz mono (resampled and mixed down as needed).

    Args:
        path: the file
        max_seconds: the longest recording accepted

    Raises:
        AudioError: the file is missing, unreadable, not a WAV file, holds no
            audio, or is longer than ``max_seconds`` (the message names the file)
    """
    import soundfile

    name = str(path)
    file = Path(path)
    if not file.exists():
        raise AudioError(f"{name}: file not found")
    if not file.is_file():
        raise AudioError(f"{name}: not a file")
    if not os.access(file, os.R_OK):
        raise AudioError(f"{name}: cannot be read (permission denied)")
    if file.stat().st_size == 0:
        raise AudioError(f"{name}: the file is empty (expected a WAV recording)")
    try:
        info = soundfile.info(name)
    except (soundfile.LibsndfileError, RuntimeError, OSError) as exc:
        raise AudioError(f"{name}: not a WAV file, or a damaged one ({_reason(exc)})") from None
    if info.format not in ("WAV", "WAVEX", "RF64"):
        raise AudioError(f"{name}: not a WAV file (it is {info.format_info or info.format}); "
                         f"convert it, e.g. sox {file.name} -r 16000 -c 1 {file.stem}.wav")
    if info.frames <= 0 or info.samplerate <= 0:
        raise AudioError(f"{name}: the WAV file holds no audio")
    seconds = info.frames / info.samplerate
    if seconds > max_seconds:
        raise AudioError(f"{name}: {seconds:.1f} s long; one utterance may last at most {max_seconds:g} s")
    try:
        data, rate = soundfile.read(name, dtype="float32", always_2d=True)
    except (soundfile.LibsndfileError, RuntimeError, OSError) as exc:
        raise AudioError(f"{name}: the WAV data cannot be read ({_reason(exc)})") from None
    if len(data) == 0:
        raise AudioError(f"{name}: the WAV file holds no audio")
    samples = resample(to_mono(data), int(rate), SAMPLE_RATE)
    if not np.all(np.isfinite(samples)):
        raise AudioError(f"{name}: the WAV data holds invalid samples (NaN or infinity)")
    return Audio(with_noise_floor(samples, seed=len(samples)), SAMPLE_RATE, name, int(rate), int(data.shape[1]))


NOISE_FLOOR_RMS = 0.001
"""The faint noise (-60 dBFS) given to a recording that has none."""
SILENT_RMS = 1e-4
"""Quieter than any microphone's own noise: a recording whose quietest stretch is below this has digital silence."""


def with_noise_floor(samples: np.ndarray, seed: int = 0) -> np.ndarray:
    """The samples, with faint noise mixed in if they have no noise floor (synthetic or digitally muted audio).

    The recogniser's features are log energies: exact silence gives them values no
    microphone produces, and it then drops or invents words (measured on the 14 test
    commands from espeak-ng, as made and with silence around them: 2 of 28 recognised
    word for word without a noise floor, 22 of 28 with this one).
    Audio with a noise floor of its own is returned unchanged.
    """
    frame = SAMPLE_RATE // 100
    usable = len(samples) - len(samples) % frame
    if usable == 0:
        return samples
    quietest = float(np.sqrt(np.min(np.mean(samples[:usable].reshape(-1, frame) ** 2, axis=1))))
    if quietest >= SILENT_RMS:
        return samples
    noise = np.random.default_rng(seed).normal(0.0, NOISE_FLOOR_RMS, len(samples)).astype(np.float32)
    return np.asarray(samples + noise, dtype=np.float32)


def read_wavs(paths: Sequence[str | os.PathLike[str]], max_seconds: float = MAX_SECONDS) -> list[Audio]:
    """Read several WAV files; every bad one is reported, not just the first.

    Raises:
        AudioError: one line per bad file
    """
    found, problems = [], []
    for path in paths:
        try:
            found.append(read_wav(path, max_seconds))
        except AudioError as exc:
            problems.append(str(exc))
    if problems:
        raise AudioError("\n".join(problems))
    return found


def _reason(exc: BaseException) -> str:
    text = str(exc).strip()
    if ":" in text and text.lower().startswith("error opening"):
        text = text.rsplit(":", 1)[-1].strip()
    return text.rstrip(".") or type(exc).__name__


__all__ = ["MAX_SECONDS", "REALTIME_RATE", "SAMPLE_RATE", "Audio", "AudioError", "from_pcm16", "read_wav", "read_wavs",
           "resample", "to_mono", "to_pcm16", "with_noise_floor"]

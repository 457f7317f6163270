"""Speech for the tests, made with espeak-ng and sox, with faint noise mixed in.

espeak-ng writes exact digital silence around and between words, which no
microphone does (and which makes pocketsphinx drop the last word): each
recording gets Gaussian noise at RMS 0.003 (about -50 dBFS) over its whole
length, seeded by the text, so the files are the same in every run. Files
are cached in one directory per test session.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile

VOICES = ("en-us", "en-us+f2", "en-us+klatt")
"""Three different espeak-ng voices: the default American male, a female variant, and the Klatt synthesiser."""
NOISE_RMS = 0.003


def need_tools() -> None:
    """Skip unless espeak-ng and sox are installed (``setup.sh --dev`` installs them)."""
    missing = [tool for tool in ("espeak-ng", "sox") if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"{' and '.join(missing)} needed to make test speech (apt-get install espeak-ng sox)")


class SpeechMaker:
    """Makes (and caches) spoken test recordings.

    Args:
        directory: where the files go
    """

    def __init__(self, directory: Path):
        self.directory = directory

    def say(self, text: str, voice: str = "en-us", rate: int = 16000, channels: int = 1, lead: float = 0.4,
            tail: float = 0.6, noise: float = NOISE_RMS) -> Path:
        """A WAV file of ``text`` in ``voice`` at ``rate`` Hz with ``channels`` channels."""
        key = hashlib.sha1(f"{text}|{voice}|{rate}|{channels}|{lead}|{tail}|{noise}".encode()).hexdigest()[:12]
        path = self.directory / f"{voice.replace('+', '_')}-{rate}-{channels}-{key}.wav"
        if path.exists():
            return path
        raw = self.directory / f"raw-{key}.wav"
        subprocess.run(["espeak-ng", "-v", voice, "-w", str(raw), text], check=True, capture_output=True)
        shaped = self.directory / f"shaped-{key}.wav"
        # -R: sox dithers with a random seed otherwise, and the same text would differ from run to run
        subprocess.run(["sox", "-R", str(raw), "-r", str(rate), "-c", str(channels), "-b", "16", str(shaped),
                        "pad", str(lead), str(tail)], check=True, capture_output=True)
        self._noise(shaped, path, noise, text)
        raw.unlink()
        shaped.unlink()
        return path

    def silence(self, seconds: float = 1.0, rate: int = 16000, noise: float = NOISE_RMS) -> Path:
        """A recording of room noise only."""
        path = self.directory / f"silence-{seconds}-{rate}-{noise}.wav"
        if not path.exists():
            samples = np.random.default_rng(7).normal(0, noise, int(seconds * rate)).astype(np.float32)
            soundfile.write(path, samples, rate, subtype="PCM_16")
        return path

    @staticmethod
    def _noise(source: Path, target: Path, rms: float, seed_text: str) -> None:
        data, rate = soundfile.read(source, dtype="float32", always_2d=True)
        seed = int(hashlib.sha1(seed_text.encode()).hexdigest()[:8], 16)
        data = data + np.random.default_rng(seed).normal(0, rms, data.shape).astype(np.float32)
        soundfile.write(target, np.clip(data, -1, 1), rate, subtype="PCM_16")

"""Speech audio over ROS 2: raw PCM on a topic, heard like a microphone.

A robot's microphone is often on another machine than the tree, or owned by
an audio driver (``audio_common``'s capture node publishes
``audio_common_msgs/msg/AudioData``). :class:`RosAudioUtterances` subscribes to
such a topic and recognises the speech offline while it arrives, cut into
utterances by voice activity and the command grammar (docs/voice.md), exactly
as ``MicrophoneUtterances`` does with a local device.

Example (``config/ros2.yaml``)::

    dialogue:
      audio: {topic: audio, type: audio_common_msgs/msg/AudioData, sample_rate: 16000, channels: 1}
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from vla_bt.speech.recognizer import Recognizer
from vla_bt.speech.segmenter import Endpointing
from vla_bt.speech.sources import LiveUtterances

from .config import AudioConfig
from .messages import interface_type, qos

SAMPLE_TYPES = {"S16LE": ("<i2", 32768.0), "F32LE": ("<f4", 1.0)}


class AudioDecoder:
    """Turns each message's ``data`` into mono float32 samples at the recogniser's rate.

    Resampling is streamed (one resampler for the whole topic), so chunk edges
    leave no clicks that a per-message resampler would add.

    Args:
        config: the topic's format (sample rate, channels, encoding, message type)
        rate: the rate the recogniser needs
    """

    def __init__(self, config: AudioConfig, rate: int):
        self.channels = config.channels
        self.int16_array = config.type.endswith("Int16MultiArray")
        self.dtype, self.scale = SAMPLE_TYPES[config.encoding]
        self._pending = b""  # bytes of a sample (or frame) split across two messages
        self._resampler: Any = None
        if config.sample_rate != rate:
            import soxr

            self._resampler = soxr.ResampleStream(config.sample_rate, rate, 1, dtype="float32", quality="HQ")

    def decode(self, data: Any) -> np.ndarray:
        """The samples of one message's ``data`` (bytes, a byte list or an int16 array)."""
        if self.int16_array:
            samples = np.asarray(data, dtype=np.float32) / 32768.0
        else:
            raw = self._pending + bytes(data)
            frame = np.dtype(self.dtype).itemsize * self.channels
            whole = len(raw) - len(raw) % frame
            self._pending = raw[whole:]
            samples = np.frombuffer(raw[:whole], dtype=self.dtype).astype(np.float32) / self.scale
        if self.channels > 1:
            samples = samples[: len(samples) - len(samples) % self.channels]
            samples = samples.reshape(-1, self.channels).mean(axis=1)
        if self._resampler is not None:
            samples = self._resampler.resample_chunk(samples)
        return np.clip(samples, -1.0, 1.0).astype(np.float32)


class RosAudioUtterances(LiveUtterances):
    """Utterances recognised from a ROS 2 audio topic (an ``UtteranceSource``).

    Args:
        node: the rclpy node to subscribe with
        config: the topic and its format (``dialogue.audio`` of ``config/ros2.yaml``)
        recognizer: speech-to-text, streaming when it can (the command grammar's, by default)
        endpointing: the pauses that end a whole command, and the longest utterance
        wake: called when an utterance is ready (the runner's ``wake``)

    Raises:
        InterfaceError: the message type is not installed (``audio_common_msgs`` comes with
            ROS 2's ``audio_common``; the ``std_msgs`` arrays always work)
    """

    def __init__(self, node: Any, config: AudioConfig, recognizer: Recognizer, *,
                 endpointing: Endpointing | None = None, wake: Callable[[], None] | None = None):
        from vla_bt.speech.audio import SAMPLE_RATE

        super().__init__(recognizer, f"ros:{config.topic}", endpointing=endpointing, wake=wake)
        self.decoder = AudioDecoder(config, SAMPLE_RATE)
        self.messages = 0
        message_type = interface_type(config.type, "msg")
        # best effort, which audio drivers publish with (a reliable subscription would hear nothing
        # from them); deep, so that a burst of chunks is not cut short while the worker is busy
        self.subscription = node.create_subscription(message_type, config.topic, self._heard,
                                                     qos(reliable=False, depth=200))
        self.start()

    def _heard(self, message: Any) -> None:
        self.messages += 1
        samples = self.decoder.decode(message.data)
        if len(samples):
            self.push(samples)


__all__ = ["AudioDecoder", "RosAudioUtterances"]

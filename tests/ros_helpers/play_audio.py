"""A stand-in for a robot's audio driver: publishes a WAV file on a ROS 2 topic in 20 ms chunks, in real time.

Usage::

    python play_audio.py FILE.wav TOPIC TYPE [--silence SECONDS]

``TYPE`` is ``std_msgs/msg/UInt8MultiArray`` (little-endian 16-bit PCM bytes,
the file's own rate and channels, chunks cut at odd byte counts so that
samples straddle messages) or ``std_msgs/msg/Int16MultiArray`` (samples).
It waits for a subscriber, prints ``{"kind": "done", "chunks": N}`` after the
last chunk and exits. Silence (faint noise) follows the speech, as a live
microphone would go on sending.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import soundfile

from vla_bt.ros.messages import interface_type, qos
from vla_bt.ros.node import NodeHost


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("wav")
    parser.add_argument("topic")
    parser.add_argument("type")
    parser.add_argument("--silence", type=float, default=1.0)
    args = parser.parse_args()
    samples, rate = soundfile.read(args.wav, dtype="int16", always_2d=True)
    noise = np.random.default_rng(0).normal(0, 100, (int(args.silence * rate), samples.shape[1])).astype(np.int16)
    interleaved = np.concatenate([samples, noise]).reshape(-1)
    host = NodeHost("audio_driver")
    node = host.start()
    cls = interface_type(args.type, "msg")
    publisher = node.create_publisher(cls, args.topic, qos(reliable=True, depth=200))
    deadline = time.monotonic() + 20
    while publisher.get_subscription_count() < 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    per_chunk = rate // 50 * samples.shape[1]
    start, chunks = time.monotonic(), 0
    if args.type.endswith("Int16MultiArray"):
        pieces = [interleaved[i:i + per_chunk].tolist() for i in range(0, len(interleaved), per_chunk)]
    else:
        raw = interleaved.astype("<i2").tobytes()
        size = per_chunk * 2 + 1  # an odd size: samples (and frames) straddle two messages
        pieces = [list(raw[i:i + size]) for i in range(0, len(raw), size)]
    for piece in pieces:
        message = cls()
        message.data = piece
        publisher.publish(message)
        chunks += 1
        time.sleep(max(0.0, start + chunks * 0.02 - time.monotonic()))
    print(json.dumps({"kind": "done", "chunks": chunks}), flush=True)
    time.sleep(0.5)  # let the last chunks be delivered before the node goes
    host.stop()


if __name__ == "__main__":
    main()

"""Speech audio over ROS 2 (``dialogue.audio`` of config/ros2.yaml): decoded, recognised, acted on.

The decoder is checked on its own (byte streams cut anywhere, channels,
rates, encodings); then a separate process plays a spoken command on a real
ROS 2 topic, in 20 ms chunks at 48 kHz stereo, and ``vla-bt ros`` carries it
out exactly as the same command typed on the utterance topic.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.audio_helpers import SpeechMaker, need_tools  # noqa: E402
from tests.ros_helpers import helper_proc, ros_env, vla_ros  # noqa: E402
from vla_bt.ros.audio import AudioDecoder  # noqa: E402
from vla_bt.ros.config import AudioConfig  # noqa: E402


def chunks(data: bytes, size: int) -> list[bytes]:
    return [data[i:i + size] for i in range(0, len(data), size)]


def test_samples_split_across_messages_are_rejoined_exactly() -> None:
    samples = np.random.default_rng(1).integers(-32768, 32767, 5000).astype("<i2")
    decoder = AudioDecoder(AudioConfig(topic="audio", type="std_msgs/msg/UInt8MultiArray"), 16000)
    heard = np.concatenate([decoder.decode(list(piece)) for piece in chunks(samples.tobytes(), 641)])
    np.testing.assert_array_equal(heard, samples.astype(np.float32) / 32768.0)


def test_stereo_48k_becomes_mono_16k_without_losing_the_signal() -> None:
    rate, seconds = 48000, 1.0
    t = np.arange(int(rate * seconds)) / rate
    tone = (0.5 * np.sin(2 * np.pi * 440 * t) * 32767).astype("<i2")
    stereo = np.stack([tone, tone], axis=1).reshape(-1)  # both channels carry the tone
    decoder = AudioDecoder(AudioConfig(topic="audio", type="std_msgs/msg/UInt8MultiArray", sample_rate=rate,
                                       channels=2), 16000)
    heard = np.concatenate([decoder.decode(piece) for piece in chunks(stereo.tobytes(), 3839)])
    assert 0 <= 16000 * seconds - len(heard) < 400  # a third of the samples; the resampler holds ~21 ms back
    middle = heard[2000:14000]
    assert abs(np.sqrt(np.mean(middle ** 2)) - 0.5 / np.sqrt(2)) < 0.01  # the tone's level, unchanged
    assert np.argmax(np.abs(np.fft.rfft(middle))) * 16000 / len(middle) == pytest.approx(440, abs=3)


def test_float_bytes_and_int16_arrays_decode_alike() -> None:
    values = np.linspace(-0.9, 0.9, 320, dtype=np.float32)
    as_float = AudioDecoder(AudioConfig(topic="audio", type="std_msgs/msg/UInt8MultiArray", encoding="F32LE"), 16000)
    as_int16 = AudioDecoder(AudioConfig(topic="audio", type="std_msgs/msg/Int16MultiArray"), 16000)
    np.testing.assert_allclose(as_float.decode(values.astype("<f4").tobytes()), values)
    np.testing.assert_allclose(as_int16.decode((values * 32768).astype(np.int16).tolist()), values, atol=1 / 32768)


ROS_CONFIG = """dialogue:
  audio: {{topic: /robot/audio, type: {type}, sample_rate: {rate}, channels: {channels}}}
"""


@pytest.mark.ros
def test_a_command_spoken_on_an_audio_topic_is_carried_out(tmp_path: Path) -> None:
    need_tools()
    wav = SpeechMaker(tmp_path).say("pick up the red cup", rate=48000, channels=2)
    config = tmp_path / "ros2.yaml"
    config.write_text(ROS_CONFIG.format(type="std_msgs/msg/UInt8MultiArray", rate=48000, channels=2))
    env = ros_env(tmp_path)
    tree = vla_ros("trees/fetch_object.yaml", "--robot", "sim", "--time-scale", "20", "--json",
                   "--ros-config", str(config), "--max-seconds", "60", env=env)
    driver = helper_proc("play_audio.py", str(wav), "/robot/audio", "std_msgs/msg/UInt8MultiArray", env=env)
    try:
        assert tree.wait(60) == 0, tree.stderr + "\n".join(tree.lines)
        played = json.loads(driver.wait_line(lambda line: '"done"' in line))
    finally:
        driver.stop()
        tree.stop()
    result = json.loads(tree.lines[-1])
    assert played["chunks"] > 50
    assert result["status"] == "SUCCESS"
    assert [turn["text"] for turn in result["dialogue"] if turn["role"] == "user"] == ["pick up the red cup"]
    assert [(c["skill"], c["args"].get("target") or c["args"].get("object")) for c in result["commands"]] == [
        ("navigate", "kitchen"), ("grasp", "cup_red")]


@pytest.mark.ros
def test_an_audio_type_that_is_not_installed_is_bad_input(tmp_path: Path) -> None:
    config = tmp_path / "ros2.yaml"
    config.write_text(ROS_CONFIG.format(type="audio_common_msgs/msg/AudioData", rate=16000, channels=1))
    tree = vla_ros("trees/fetch_object.yaml", "--robot", "sim", "--ros-config", str(config), "--max-seconds", "20",
                   env=ros_env(tmp_path))
    assert tree.wait(60) == 2
    assert "dialogue.audio (/robot/audio): interface package 'audio_common_msgs' is not installed" in tree.stderr
    assert "Traceback" not in tree.stderr


def test_an_unknown_audio_encoding_is_named_with_its_place(tmp_path: Path) -> None:
    from vla_bt.ros.config import load_ros2_config
    from vla_bt.tree.diagnostics import TreeError

    config = tmp_path / "ros2.yaml"
    config.write_text("dialogue:\n  audio: {topic: audio, encoding: mp3}\n")
    with pytest.raises(TreeError) as error:
        load_ros2_config(config)
    assert "ros2.yaml:2" in str(error.value) and "mp3" in str(error.value)


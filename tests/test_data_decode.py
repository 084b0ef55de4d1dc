"""Decoding: frame numbering, selective decoding, and clear errors for videos that cannot be read."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import wave
from pathlib import Path

import av
import numpy as np
import pytest

from helpers import FIXTURES, SHARED, portrait_frames, set_display_rotation, write_frames
from uniformerv2.data import VideoDecodeError, open_video, probe_num_frames, read_frames
from uniformerv2.data.decode import PyAVReader

VIDEOS = SHARED / "data" / "videos"
GENERATED = FIXTURES / "pipeline" / "videos"


def _all_frames(path: Path) -> np.ndarray:
    """Every frame in decoding output order: plain PyAV, as MMAction2's PyAVDecode does."""
    with av.open(str(path)) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])


@pytest.fixture(scope="module")
def gop_frames() -> np.ndarray:
    return _all_frames(GENERATED / "gop_160x120.mp4")


def test_selective_decoding_returns_the_same_frames_as_a_full_decode(gop_frames: np.ndarray) -> None:
    """Open GOPs every 12 frames, B-frames: skipped groups and skipped non-reference frames change nothing."""
    path = GENERATED / "gop_160x120.mp4"
    rng = np.random.default_rng(0)
    reader = PyAVReader(path)
    for _ in range(6):
        idx = rng.choice(len(gop_frames), size=7, replace=False)
        assert np.array_equal(reader.read(idx), gop_frames[idx])
    for idx in ([0], [len(gop_frames) - 1], [12, 13], [11, 24, 60, 149]):  # keyframes, leading pictures, the end
        assert np.array_equal(reader.read(idx), gop_frames[idx])


def test_read_frames_keeps_order_and_repeats(gop_frames: np.ndarray) -> None:
    idx = [30, 2, 30, 2, 149]
    frames = read_frames(GENERATED / "gop_160x120.mp4", idx)
    assert frames.dtype == np.uint8 and frames.shape == (5, 120, 160, 3)
    assert np.array_equal(frames, gop_frames[idx])


def test_avi_with_packed_b_frames_numbers_frames_in_output_order() -> None:
    path = VIDEOS / "test.avi"
    if not path.exists():
        pytest.skip(f"{path} not found")
    full = _all_frames(path)
    idx = [0, 3, 4, 57, 100, 163]
    assert np.array_equal(read_frames(path, idx), full[idx])


def test_odd_sized_frames_are_converted_like_mmaction2_pyav() -> None:
    path = GENERATED / "odd_171x97.mp4"
    full = _all_frames(path)  # MMAction2's PyAVDecode: frame.to_rgb().to_ndarray()
    assert np.array_equal(read_frames(path, [0, 5, 36]), full[[0, 5, 36]])


def test_probe_num_frames_counts_packets_like_decord() -> None:
    assert probe_num_frames(GENERATED / "short_5f.mp4") == 5
    assert probe_num_frames(GENERATED / "gop_160x120.mp4") == 150


def test_out_of_range_index_is_an_index_error() -> None:
    with pytest.raises(IndexError, match="short_5f.mp4: frame index 5 out of range"):
        read_frames(GENERATED / "short_5f.mp4", [0, 5])


def test_unknown_backend_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="unknown video backend 'opencv'"):
        read_frames(GENERATED / "short_5f.mp4", [0], backend="opencv")


# ------------------------------------------------------------------------------------------------ bad inputs


def _expect_decode_error(path: Path, reason: str) -> None:
    for call in (lambda: probe_num_frames(path), lambda: read_frames(path, [0])):
        with pytest.raises(VideoDecodeError, match=reason) as info:
            call()
        assert str(info.value).startswith(f"{path}: ")
        assert info.value.path == str(path)


def test_missing_file_raises_decode_error(tmp_path: Path) -> None:
    _expect_decode_error(tmp_path / "missing.mp4", "no such file")


def test_zero_byte_file_raises_decode_error(tmp_path: Path) -> None:
    path = tmp_path / "empty.mp4"
    path.write_bytes(b"")
    _expect_decode_error(path, "empty file")


def test_text_file_renamed_mp4_raises_decode_error(tmp_path: Path) -> None:
    path = tmp_path / "notes.mp4"
    path.write_text("these are not the frames you are looking for\n" * 20)
    _expect_decode_error(path, "not a readable video")


def test_truncated_mp4_raises_decode_error(tmp_path: Path) -> None:
    """Index at the end (the shared test.mp4): the container cannot be opened."""
    data = (GENERATED / "portrait_90x160.mp4").read_bytes()
    path = tmp_path / "truncated.mp4"
    path.write_bytes(data[: len(data) // 2])
    _expect_decode_error(path, "not a readable video|truncated")


def test_truncated_faststart_mp4_raises_decode_error(tmp_path: Path) -> None:
    """Index at the front: it lists more frames than the file holds."""
    src = GENERATED / "gop_160x120.mp4"
    fast = tmp_path / "fast.mp4"
    with av.open(str(src)) as inp, av.open(str(fast), "w", options={"movflags": "faststart"}) as out:
        stream = out.add_stream_from_template(inp.streams.video[0])
        for packet in inp.demux(inp.streams.video[0]):
            if packet.dts is not None:
                packet.stream = stream
                out.mux(packet)
    assert probe_num_frames(fast) == 150
    data = fast.read_bytes()
    path = tmp_path / "truncated_fast.mp4"
    path.write_bytes(data[: len(data) // 2])
    _expect_decode_error(path, "truncated video: the header lists 150 frames")


def test_audio_only_file_raises_no_video_stream(tmp_path: Path) -> None:
    path = tmp_path / "sound.wav"
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(b"\x00\x01" * 8000)
    _expect_decode_error(path, "no video stream")


def test_directory_raises_decode_error(tmp_path: Path) -> None:
    _expect_decode_error(tmp_path, "is a directory")


# --------------------------------------------------------------------------------------- optional backends


@pytest.mark.skipif(importlib.util.find_spec("decord") is None, reason="decord not installed")
def test_decord_backend_matches_pyav() -> None:
    path = VIDEOS / "demo.mp4"
    idx = [0, 50, 51, 279]
    assert probe_num_frames(path, "decord") == probe_num_frames(path)
    assert np.array_equal(read_frames(path, idx, backend="decord"), read_frames(path, idx))


@pytest.mark.skipif(importlib.util.find_spec("torchcodec") is None, reason="torchcodec not installed")
def test_torchcodec_backend_matches_pyav() -> None:
    path = VIDEOS / "demo.mp4"
    idx = [0, 50, 51, 279]
    assert probe_num_frames(path, "torchcodec") == probe_num_frames(path)
    with open_video(path, "torchcodec") as reader:
        assert np.array_equal(reader.read(idx), read_frames(path, idx))


@pytest.mark.parametrize("degrees", [90, 180, 270])
def test_a_phone_video_stored_sideways_is_read_upright(tmp_path, degrees):
    upright = portrait_frames()
    sideways = np.ascontiguousarray(np.rot90(upright, degrees // 90, axes=(1, 2)))
    plain = write_frames(tmp_path / "plain.mp4", sideways)
    rotated = set_display_rotation(write_frames(tmp_path / "rotated.mp4", sideways), degrees)
    got = read_frames(rotated, [0, 3])
    assert got.shape == (2,) + upright.shape[1:]
    # the same pixels as the file without rotation, turned as the display matrix says
    assert np.array_equal(got, np.rot90(read_frames(plain, [0, 3]), -(degrees // 90), axes=(1, 2)))
    assert np.abs(got.astype(int) - upright[[0, 3]]).mean() < 3  # H.264 at crf 10


@pytest.mark.skipif(
    shutil.which("ffmpeg") is None,
    reason="the ffmpeg command line (apt-get install ffmpeg) is the oracle for rotated videos",
)
def test_rotated_frames_equal_the_ffmpeg_command_lines(tmp_path):
    sideways = np.ascontiguousarray(np.rot90(portrait_frames(), 1, axes=(1, 2)))
    rotated = set_display_rotation(write_frames(tmp_path / "rotated.mp4", sideways), 90)
    raw = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(rotated), "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
        capture_output=True,
        check=True,
    ).stdout
    ours = read_frames(rotated, range(4))
    assert np.array_equal(np.frombuffer(raw, np.uint8).reshape(ours.shape), ours)


def test_test_views_of_a_rotated_video_are_upright(tmp_path):
    from uniformerv2 import Protocol
    from uniformerv2.data import read_test_views

    upright = portrait_frames(frames=8, height=64, width=32)
    rotated = set_display_rotation(
        write_frames(tmp_path / "r.mp4", np.ascontiguousarray(np.rot90(upright, 1, axes=(1, 2)))), 90
    )
    plain = write_frames(tmp_path / "u.mp4", upright)
    protocol = Protocol(frames=4, size=32, clips=1, crops=3)  # portrait: top, bottom, centre crops
    a, b = read_test_views(rotated, protocol).float(), read_test_views(plain, protocol).float()
    assert (a - b).abs().mean() < 3


def test_times_follow_the_timestamps_of_a_variable_frame_rate_video(tmp_path):
    times = np.concatenate([np.arange(30) / 30, 1 + np.arange(5) / 5])
    path = write_frames(tmp_path / "vfr.mp4", portrait_frames(frames=35), times=times)
    with open_video(path) as reader:
        np.testing.assert_allclose(reader.times, times, atol=1e-3)

"""The one video writer (data.encode.VideoWriter): every video the library writes comes whole or not at all."""

from __future__ import annotations

import ast
import errno
from pathlib import Path

import av
import numpy as np
import pytest

from uniformerv2.data.decode import probe_num_frames, read_frames, rewrite_video
from uniformerv2.data.encode import VideoWriter
from uniformerv2.demo import make_lamp_video, write_video
from uniformerv2.live import AnnotatedWriter

SRC = Path(__file__).resolve().parents[1] / "src" / "uniformerv2"


def _frames(n: int = 8, seed: int = 0) -> np.ndarray:
    return make_lamp_video(seed % 6, np.random.default_rng(seed), frames=n, height=24, width=32)


def _calls(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            owner = node.func.value.id if isinstance(node.func.value, ast.Name) else None
            yield node, owner, node.func.attr


def _opens_for_writing(call: ast.Call) -> bool:
    modes = list(call.args[1:2]) + [k.value for k in call.keywords if k.arg == "mode"]
    return any(isinstance(m, ast.Constant) and isinstance(m.value, str) and "w" in m.value for m in modes)


def test_one_module_encodes_video_and_one_renames_files():
    encoders, renamers = set(), set()
    for path in SRC.rglob("*.py"):
        rel = path.relative_to(SRC).as_posix()
        for call, owner, name in _calls(ast.parse(path.read_text(encoding="utf-8"))):
            if (owner == "av" and name == "open" and _opens_for_writing(call)) or name.startswith("add_stream"):
                encoders.add(rel)
            if (owner in ("os", "shutil") and name in ("replace", "rename", "renames", "move")) or name == "rename":
                renamers.add(rel)
    assert encoders == {"data/encode.py"}, "write videos with uniformerv2.data.encode.VideoWriter"
    assert renamers == {"atomic.py"}, "move files into place with uniformerv2.atomic (atomic_path, move_into_place)"


def _names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def _fail_at_frame(monkeypatch, n: int) -> None:
    """PyAV's frame conversion raises at the ``n``-th frame (as a full disk or a bad frame would, mid-way)."""
    real = av.VideoFrame
    count = [0]

    class Frames:
        @staticmethod
        def from_ndarray(*args, **kwargs):
            count[0] += 1
            if count[0] == n:
                raise OSError(errno.EIO, "Input/output error")
            return real.from_ndarray(*args, **kwargs)

    monkeypatch.setattr(av, "VideoFrame", Frames)


def test_a_video_that_fails_midway_keeps_the_previous_file_and_leaves_no_temporary(tmp_path, monkeypatch):
    dst = tmp_path / "v.mp4"
    write_video(dst, _frames(8))
    before = dst.read_bytes()
    with monkeypatch.context() as m:
        _fail_at_frame(m, 6)
        with pytest.raises(OSError, match=f"{dst}"):
            write_video(dst, _frames(8, seed=1))
    assert dst.read_bytes() == before
    assert _names(tmp_path) == ["v.mp4"]

    def draw(rgb: np.ndarray, index: int, seconds: float) -> np.ndarray:
        if index == 4:
            raise RuntimeError("the drawing failed")
        return rgb

    with pytest.raises(RuntimeError, match="the drawing failed"):
        rewrite_video(dst, tmp_path / "drawn.mp4", draw, fps=12)
    assert _names(tmp_path) == ["v.mp4"]

    with pytest.raises(KeyError), VideoWriter(tmp_path / "w.mp4", 12) as writer:
        writer.write(_frames(4)[0])
        raise KeyError("the caller failed")
    assert _names(tmp_path) == ["v.mp4"]


def test_live_keeps_recognising_when_its_copy_fails_and_close_says_why(tmp_path):
    writer = AnnotatedWriter(str(tmp_path / "seen.mp4"), fps=10)
    frames = _frames(6)
    writer.write(frames[0], 0.0)
    writer.write(np.zeros((24, 32), np.float32), 0.1)  # on the reader thread: must not raise there
    writer.write(frames[1], 0.2)
    with pytest.raises(ValueError):
        writer.close()
    assert _names(tmp_path) == []
    assert writer.close() is None


def test_no_frame_no_file(tmp_path):
    assert AnnotatedWriter(str(tmp_path / "seen.mp4")).close() is None
    with VideoWriter(tmp_path / "v.mp4", 10) as writer:
        pass
    assert writer.close() is None
    assert _names(tmp_path) == []
    with pytest.raises(ValueError, match="no frames"):
        write_video(tmp_path / "v.mp4", np.zeros((0, 16, 16, 3), np.uint8))
    assert _names(tmp_path) == []


def test_the_writer_picks_the_container_by_extension_and_crops_odd_sizes(tmp_path):
    frames = make_lamp_video(2, np.random.default_rng(3), frames=6, height=25, width=33)
    for name in ("v.mp4", "v.mkv"):
        with VideoWriter(tmp_path / name, 10) as writer:
            for f in frames:
                writer.write(f)
        assert writer.size == (32, 24)
        assert probe_num_frames(tmp_path / name) == 6
        got = read_frames(tmp_path / name, [0]).astype(int)
        assert got.shape == (1, 24, 32, 3)
        assert np.abs(got[0] - frames[0, :24, :32]).mean() < 3  # near-lossless, the same pixels (cropped)
    assert _names(tmp_path) == ["v.mkv", "v.mp4"]

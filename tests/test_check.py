"""``uniformerv2 check``: every planted problem of a small dataset is found, with its file and kind, and nothing else;
a clean set passes; cleaned lists; a file that hangs is given up after the time-out; class names against a model."""

from __future__ import annotations

import json
import os
import shutil
import time
import wave
from pathlib import Path

import numpy as np
import pytest

from helpers import portrait_frames, set_display_rotation, write_frames, write_lamp_dataset
from uniformerv2 import check
from uniformerv2.cli import main
from uniformerv2.errors import UsageError

PRESET = "uniformerv2-base-p16-res224_clip-kinetics710-pre_8xb32-u8_kinetics400-rgb"

# (list, file, kind) of every planted problem; None for a problem of a class rather than a file
PLANTED = {
    ("train", "bad/corrupt.mp4", "unreadable"),  # random bytes
    ("train", "bad/empty.mp4", "empty"),
    ("train", "bad/truncated.mp4", "truncated"),  # the first 2000 bytes of an MP4
    ("train", "bad/audio.mp4", "no-video-stream"),  # a WAV file
    ("train", "bad/notes.mp4", "not-a-video"),  # text
    ("train", "c1/copy.mp4", "duplicate"),  # a byte-identical copy of c1/0.mp4
    ("train", "c1/resized.mp4", "near-duplicate"),  # c1/1.mp4 re-encoded at 48x48
    ("train", "c2/trimmed.mp4", "near-duplicate"),  # c2/1.mp4 without its first 2 frames, re-encoded
    ("train", "c1/2.mp4", "leakage"),  # also listed in val
    ("train", "c0/4.mp4", "label-out-of-range"),  # label 7 of 4 classes
    ("train", None, "empty-class"),  # class 3 of 4 has no video
    ("val", None, "empty-class"),
}
BROKEN = ["bad/corrupt.mp4", "bad/empty.mp4", "bad/truncated.mp4", "bad/audio.mp4", "bad/notes.mp4", "c0/4.mp4"]


def _decode_all(path: Path) -> np.ndarray:
    import av

    with av.open(str(path)) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])


def _resized(frames: np.ndarray, width: int, height: int) -> np.ndarray:
    import av

    return np.stack(
        [
            av.VideoFrame.from_ndarray(f, format="rgb24")
            .reformat(width=width, height=height)
            .to_ndarray(format="rgb24")
            for f in frames
        ]
    )


def write_planted_dataset(root: Path) -> Path:
    """15 lamp videos (32x32, 16 frames; c*/0-2 train, c*/3 val) and the planted problems, in train.txt/val.txt;
    clean_train.txt/clean_val.txt list only clean videos. (benchmarks/bench_check.py uses it too.)"""
    root = write_lamp_dataset(root, classes=3, per_class=5, frames=16, height=32, width=32)
    bad = root / "bad"
    bad.mkdir()
    rng = np.random.default_rng(0)
    (bad / "corrupt.mp4").write_bytes(rng.integers(0, 256, 5000, dtype=np.uint8).tobytes())
    (bad / "empty.mp4").write_bytes(b"")
    (bad / "truncated.mp4").write_bytes((root / "c0/0.mp4").read_bytes()[:2000])
    with wave.open(str(bad / "audio.wav"), "wb") as w:  # a real WAV, named as a video
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(rng.normal(0, 3000, 8000).astype("<i2").tobytes())
    os.rename(bad / "audio.wav", bad / "audio.mp4")
    (bad / "notes.mp4").write_text("these are my notes, not a video\n" * 10)
    shutil.copy(root / "c1/0.mp4", root / "c1/copy.mp4")
    write_frames(root / "c1/resized.mp4", _resized(_decode_all(root / "c1/1.mp4"), 48, 48))  # re-encoded, 48x48
    write_frames(root / "c2/trimmed.mp4", _decode_all(root / "c2/1.mp4")[2:])  # re-encoded, 2 frames less
    train = [f"c{c}/{k}.mp4 {c}" for c in range(3) for k in range(3)]
    train += [f"{p} 0" for p in BROKEN[:5]] + ["c1/copy.mp4 1", "c1/resized.mp4 1", "c2/trimmed.mp4 2", "c0/4.mp4 7"]
    (root / "train.txt").write_text("\n".join(train) + "\n")
    (root / "val.txt").write_text("".join(f"c{c}/3.mp4 {c}\n" for c in range(3)) + "c1/2.mp4 1\n")
    (root / "clean_train.txt").write_text("".join(f"c{c}/{k}.mp4 {c}\n" for c in range(3) for k in range(3)))
    (root / "clean_val.txt").write_text("".join(f"c{c}/3.mp4 {c}\n" for c in range(3)))
    return root


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_planted_dataset(tmp_path_factory.mktemp("check"))


def _check(
    root: Path, out: Path, *extra: str, train: str = "train.txt", val: str | None = "val.txt"
) -> tuple[int, dict]:
    args = [
        "check",
        "--ann-file",
        str(root / train),
        "--data-root",
        str(root),
        "--out-dir",
        str(out),
        "--workers",
        "2",
        "--no-progress",
        *extra,
    ]
    if val:
        args += ["--val-ann-file", str(root / val)]
    rc = main(args)
    return rc, json.loads((out / "check.json").read_text())


def _found(report: dict, root: Path) -> set:
    return {
        (p.get("split"), os.path.relpath(p["path"], root) if "path" in p else None, p["kind"])
        for p in report["problems"]
    }


def test_every_planted_problem_is_reported_and_nothing_else(dataset, tmp_path, capsys):
    rc, report = _check(dataset, tmp_path / "out", "--num-classes", "4")
    out = capsys.readouterr().out
    assert rc == 1 and not report["ok"]
    assert _found(report, dataset) == PLANTED
    by_kind = {p["kind"]: p for p in report["problems"]}
    assert by_kind["leakage"]["related"] == [str(dataset / "c1/2.mp4")] and "val" in by_kind["leakage"]["detail"]
    assert by_kind["duplicate"]["related"] == [str(dataset / "c1/0.mp4")]
    near = {Path(p["path"]).name: p["related"] for p in report["problems"] if p["kind"] == "near-duplicate"}
    assert near == {"resized.mp4": [str(dataset / "c1/1.mp4")], "trimmed.mp4": [str(dataset / "c2/1.mp4")]}
    assert {p["label"] for p in report["problems"] if p["kind"] == "empty-class"} == {3}
    for _, name, kind in PLANTED:  # the terminal shows each problem with its file
        assert kind in out and (name is None or name in out)
    assert f"{len(PLANTED)} problems found" in out
    # what the files are
    videos = {Path(v["path"]).name: v for v in report["videos"] if v["path"].endswith("/c1/resized.mp4")}
    assert (
        videos["resized.mp4"]["width"],
        videos["resized.mp4"]["height"],
        videos["resized.mp4"]["frames"],
        videos["resized.mp4"]["codec"],
        videos["resized.mp4"]["rotation"],
    ) == (48, 48, 16, "h264", 0)
    md = (tmp_path / "out/check.md").read_text()
    assert "truncated.mp4" in md and "![duration](durations.png)" in md
    for png in ("durations.png", "fps.png", "resolutions.png", "class_counts.png"):
        assert (tmp_path / "out" / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_clean_set_passes(dataset, tmp_path, capsys):
    rc, report = _check(dataset, tmp_path / "out", "--num-classes", "3", train="clean_train.txt", val="clean_val.txt")
    assert rc == 0 and report["ok"] and report["problems"] == []
    assert report["classes"]["num_classes"] == 3 and report["splits"][0]["classes"] == [3, 3, 3]
    assert "no problems found" in capsys.readouterr().out


def test_write_clean_drops_broken_entries_and_never_touches_the_original(dataset, tmp_path):
    original = (dataset / "train.txt").read_bytes()
    rc, _ = _check(dataset, tmp_path / "a", "--num-classes", "4", "--write-clean")
    kept = (dataset / "train.clean.txt").read_text().split()
    assert rc == 1 and (dataset / "train.txt").read_bytes() == original
    assert not any(p in kept for p in BROKEN)
    assert {"c1/copy.mp4", "c1/resized.mp4", "c2/trimmed.mp4", "c1/2.mp4"} <= set(kept)  # duplicates stay
    assert (dataset / "val.clean.txt").read_text() == (dataset / "val.txt").read_text()
    rc, _ = _check(dataset, tmp_path / "b", "--num-classes", "4", "--write-clean", "--drop-duplicates")
    lines = (dataset / "train.clean.txt").read_text().splitlines()
    assert lines == [f"c{c}/{k}.mp4 {c}" for c in range(3) for k in range(3) if (c, k) != (1, 2)]
    assert (dataset / "train.txt").read_bytes() == original
    for name in ("train.clean.txt", "val.clean.txt"):
        os.unlink(dataset / name)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs a FIFO")
def test_a_file_that_hangs_is_given_up_after_the_timeout(dataset, tmp_path):
    os.mkfifo(tmp_path / "hang.mp4")  # open() blocks until someone writes: a real hang, not a mock
    shutil.copy(dataset / "c0/0.mp4", tmp_path / "good.mp4")
    (tmp_path / "list.txt").write_text("hang.mp4 0\ngood.mp4 0\n")
    start = time.monotonic()
    rc, report = _check(tmp_path, tmp_path / "out", "--timeout", "3s", train="list.txt", val=None)
    assert time.monotonic() - start < 60
    assert rc == 1 and _found(report, tmp_path) == {("train", "hang.mp4", "timeout")}
    assert {Path(v["path"]).name: v["kind"] for v in report["videos"]} == {"hang.mp4": "timeout", "good.mp4": None}


def test_class_folders_against_a_models_class_names(dataset, tmp_path, capsys):
    root = tmp_path / "videos"
    for folder, video in (("abseiling", "c0/0.mp4"), ("Air_Drumming", "c1/0.mp4"), ("playing_guitr", "c2/0.mp4")):
        (root / folder).mkdir(parents=True)
        shutil.copy(dataset / video, root / folder / "v.mp4")
    (root / "archery").mkdir()
    rc = main(
        [
            "check",
            "--folder",
            str(root),
            "--model",
            PRESET,
            "--out-dir",
            str(tmp_path / "out"),
            "--no-progress",
            "--workers",
            "1",
            "--write-clean",
        ]
    )
    report = json.loads((tmp_path / "out/check.json").read_text())
    names = check.model_classes(PRESET).class_names
    assert rc == 1 and len(names) == 400
    assert report["protocol"] == check.model_classes(PRESET).protocol.to_dict()
    problems = {p["kind"]: p for p in report["problems"]}
    assert set(problems) == {"unknown-class", "empty-class"}
    assert (
        problems["unknown-class"]["path"].endswith("playing_guitr")
        and "'playing guitar'" in problems["unknown-class"]["detail"]
    )
    assert problems["empty-class"]["label"] == names.index("archery")
    loose = [w for w in report["warnings"] if w["kind"] == "loose-class-match"]
    assert [w["label"] for w in loose] == [names.index("air drumming")]
    clean = (tmp_path / "out/videos.clean.txt").read_text().splitlines()
    assert clean == [f"Air_Drumming/v.mp4 {names.index('air drumming')}", f"abseiling/v.mp4 {names.index('abseiling')}"]
    assert "playing guitar" in capsys.readouterr().out


def test_label_names_against_a_models_classes(dataset, tmp_path):
    (tmp_path / "labels.txt").write_text("abseiling\nAir-Drumming\nplaying guitr\n")
    rc, report = _check(
        dataset,
        tmp_path / "out",
        "--model",
        PRESET,
        "--labels",
        str(tmp_path / "labels.txt"),
        train="clean_train.txt",
        val=None,
    )
    assert rc == 1 and report["classes"]["num_classes"] == 3
    [problem] = report["problems"]
    assert (problem["kind"], problem["path"]) == ("unknown-class", str(tmp_path / "labels.txt"))
    assert "'playing guitr'" in problem["detail"] and "'playing guitar'" in problem["detail"]
    assert [m["match"] for m in report["classes"]["name_matches"]] == ["exact", "loose", None]


def test_what_a_video_is(tmp_path):
    path = write_frames(tmp_path / "phone.mp4", portrait_frames(frames=4, height=48, width=32))
    set_display_rotation(path, 90)  # shown turned 90 degrees clockwise, as a phone records
    info = check.inspect_video(str(path))
    assert info.ok and (info.frames, info.fps, info.codec) == (4, 10.0, "h264")
    assert info.duration == pytest.approx(0.4)
    assert (info.width, info.height, info.coded_width, info.coded_height, info.rotation) == (48, 32, 32, 48, 270)
    assert info.warnings == [("few-frames", "4 frames, fewer than the 8 of a clip")]


def test_near_duplicates_match_copies_not_other_videos(dataset):
    hashes = {}
    for name in ("c0/0.mp4", "c0/1.mp4", "c1/0.mp4", "c1/1.mp4", "c1/resized.mp4", "c2/1.mp4", "c2/trimmed.mp4"):
        hashes[name] = check.inspect_video(str(dataset / name)).hashes
    assert check.near_score(hashes["c1/1.mp4"], hashes["c1/resized.mp4"]) <= check.NEAR_THRESHOLD
    assert check.near_score(hashes["c2/1.mp4"], hashes["c2/trimmed.mp4"]) <= check.NEAR_THRESHOLD
    for a, b in (("c0/0.mp4", "c0/1.mp4"), ("c0/0.mp4", "c1/0.mp4"), ("c1/0.mp4", "c1/1.mp4")):
        assert check.near_score(hashes[a], hashes[b]) > check.NEAR_THRESHOLD, (a, b)


def test_usage_errors_are_one_line(tmp_path, capsys):
    assert main(["check", "--ann-file", "a.txt", "--folder", str(tmp_path)]) == 1
    assert main(["check", "--folder", str(tmp_path), "--drop-duplicates"]) == 1
    assert main(["check", "--ann-file", str(tmp_path / "nope.txt")]) == 1
    err = capsys.readouterr().err
    assert err.count("uniformerv2 check: error:") == 3 and "Traceback" not in err


def test_run_is_the_command(dataset, tmp_path):
    """``check.run`` takes the command's options as keyword arguments, writes the same files and returns the report."""
    report = check.run(
        ann_file=dataset / "train.txt",
        data_root=dataset,
        val_ann_file=dataset / "val.txt",
        num_classes=4,
        out_dir=tmp_path / "out",
        workers=2,
        progress=False,
    )
    assert report.exit_status == 1 and not report.ok
    assert _found(report.to_dict(), dataset) == PLANTED
    assert [p.name for p in report.written[:2]] == ["check.json", "check.md"] and report.clean_lists == []
    assert json.loads((tmp_path / "out/check.json").read_text())["problems"] == report.to_dict()["problems"]
    with pytest.raises(UsageError, match="--drop-duplicates"):
        check.run(ann_file=dataset / "train.txt", drop_duplicates=True)


def test_malformed_lines_are_findings_with_the_readers_reasons(tmp_path):
    from uniformerv2.data import AnnotationError, read_annotation_list

    (tmp_path / "list.txt").write_text("a.mp4 0\nb.mp4 x\n\nc.mp4 1 2\nd.mp4 -1\ne.mp4\n")
    split = check.load_list_split("train", tmp_path / "list.txt", "root")
    assert [(s.path, s.label, s.line) for s in split.samples] == [("root/a.mp4", 0, 1), ("root/e.mp4", None, 6)]
    assert [(f.kind, f.line, f.path) for f in split.findings] == [
        ("malformed-line", 2, "b.mp4"),
        ("malformed-line", 4, "c.mp4"),
        ("malformed-line", 5, "d.mp4"),
    ]
    with pytest.raises(AnnotationError) as info:
        read_annotation_list(tmp_path / "list.txt", "root")
    for f in split.findings:  # one parser: the same reasons, each with its line
        assert f"list.txt:{f.line}: {f.detail}" in str(info.value)

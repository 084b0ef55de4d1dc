"""Video lists, class folders, label maps and the test-views dataset."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from helpers import FIXTURES
from uniformerv2 import Protocol
from uniformerv2.data import (
    AnnotationError,
    TestViewsDataset,
    VideoSample,
    collate_views,
    read_annotation_list,
    read_label_map,
    read_test_views,
    scan_class_folders,
)

GENERATED = FIXTURES / "pipeline" / "videos"


# ------------------------------------------------------------------------------------------ annotation lists


def test_annotation_list_joins_data_root_and_reads_labels(tmp_path: Path) -> None:
    ann = tmp_path / "val.txt"
    ann.write_text("a/x.mp4 3\n\n# a comment\nb/y.avi 0\nz.mp4\n")
    samples = read_annotation_list(ann, data_root="/data/k400")
    assert samples == [
        VideoSample("/data/k400/a/x.mp4", 3),
        VideoSample("/data/k400/b/y.avi", 0),
        VideoSample("/data/k400/z.mp4", None),
    ]
    assert read_annotation_list(ann)[0].path == "a/x.mp4"


@pytest.mark.parametrize(
    "line, message",
    [
        ("a.mp4 cat", "label 'cat' is not an integer"),
        ("a.mp4 -1", "label -1 is negative"),
        ("a b.mp4 3", "expected 'path \\[label\\]', got 3 fields"),
    ],
)
def test_annotation_list_errors_name_file_and_line(tmp_path: Path, line: str, message: str) -> None:
    ann = tmp_path / "val.txt"
    ann.write_text(f"ok.mp4 1\n{line}\n")
    with pytest.raises(AnnotationError, match=f"^{ann}:2: {message}"):
        read_annotation_list(ann)


def test_annotation_list_missing_or_empty_file(tmp_path: Path) -> None:
    with pytest.raises(AnnotationError, match="no such annotation file"):
        read_annotation_list(tmp_path / "nope.txt")
    (tmp_path / "empty.txt").write_text("\n\n")
    with pytest.raises(AnnotationError, match="no videos listed"):
        read_annotation_list(tmp_path / "empty.txt")


# --------------------------------------------------------------------------------------------- class folders


def test_class_folders_sorted_with_labels(tmp_path: Path) -> None:
    for rel in ("zebra/1.mp4", "apple/b.avi", "apple/sub/a.MP4", "apple/notes.txt", ".hidden/x.mp4", "mango/.x.mp4"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"x")
    samples, classes = scan_class_folders(tmp_path)
    assert classes == ["apple", "mango", "zebra"]
    assert [(Path(s.path).relative_to(tmp_path).as_posix(), s.label) for s in samples] == [
        ("apple/b.avi", 0),
        ("apple/sub/a.MP4", 0),
        ("zebra/1.mp4", 2),
    ]


def test_class_folders_errors(tmp_path: Path) -> None:
    with pytest.raises(AnnotationError, match="not a directory"):
        scan_class_folders(tmp_path / "missing")
    with pytest.raises(AnnotationError, match="no class folders"):
        scan_class_folders(tmp_path)


# ------------------------------------------------------------------------------------------------ label maps


def test_shipped_label_maps() -> None:
    assert len(read_label_map("k400")) == 400
    assert read_label_map("k400")[0] == "abseiling"
    assert [len(read_label_map(n)) for n in ("k600", "k700", "k710", "mitv1")] == [600, 700, 710, 339]


def test_label_map_file_and_errors(tmp_path: Path) -> None:
    path = tmp_path / "labels.txt"
    path.write_text("cat\ndog \n\n")
    assert read_label_map(path) == ["cat", "dog"]
    path.write_text("cat\n\ndog\n")
    with pytest.raises(AnnotationError, match=f"{path}:2: empty class name"):
        read_label_map(path)
    with pytest.raises(AnnotationError, match="not one of the shipped label maps"):
        read_label_map("k999")


# ---------------------------------------------------------------------------------------------- the dataset


def test_dataset_returns_error_items_instead_of_raising(tmp_path: Path) -> None:
    bad = tmp_path / "bad.mp4"
    bad.write_text("not a video")
    samples = [
        VideoSample(str(GENERATED / "short_5f.mp4"), 4),
        VideoSample(str(bad), 1),
        VideoSample(str(tmp_path / "missing.mp4"), None),
    ]
    ds = TestViewsDataset(samples, Protocol(frames=4, size=32, clips=2, crops=3))
    assert len(ds) == 3
    good, broken, missing = ds[0], ds[1], ds[2]
    assert good["error"] is None and good["label"] == 4 and good["index"] == 0
    assert good["views"].shape == (6, 3, 4, 32, 32) and good["views"].dtype == torch.uint8
    assert torch.equal(good["views"], read_test_views(GENERATED / "short_5f.mp4", Protocol(4, 32, 2, 3)))
    assert broken["views"] is None and broken["error"].startswith("not a readable video")
    assert missing["views"] is None and missing["error"] == "no such file"


def test_dataloader_with_collate_views_keeps_failed_videos(tmp_path: Path) -> None:
    shutil.copy(GENERATED / "portrait_90x160.mp4", tmp_path / "ok.mp4")
    (tmp_path / "empty.mp4").write_bytes(b"")
    ds = TestViewsDataset([str(tmp_path / "ok.mp4"), str(tmp_path / "empty.mp4")], Protocol(2, 16, 1, 1))
    batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=2, collate_fn=collate_views)))
    assert batch["index"] == [0, 1] and batch["label"] == [None, None]
    assert batch["views"][0].shape == (1, 3, 2, 16, 16) and batch["views"][1] is None
    assert batch["error"] == [None, "empty file (0 bytes)"]


def test_dataset_rejects_bad_protocol() -> None:
    with pytest.raises(ValueError, match="crops must be 1"):
        TestViewsDataset([], Protocol(8, 224, 4, 2))
    with pytest.raises(ValueError, match="unknown sampling"):
        TestViewsDataset([], Protocol(8, 224, 4, 3, sampling="slowfast"))


def test_original_sampling_views() -> None:
    path = GENERATED / "odd_171x97.mp4"
    views = read_test_views(path, Protocol(8, 64, 2, 3, sampling="original"))
    assert views.shape == (6, 3, 8, 64, 64)
    ours = read_test_views(path, Protocol(8, 64, 2, 3))
    assert not torch.equal(views, ours)  # other resize and crops
    assert (views.float() - ours.float()).abs().mean() < 40


def test_every_bad_line_of_a_list_is_reported_at_once(tmp_path):
    ann = tmp_path / "list.txt"
    ann.write_text("a.mp4 0\nb.mp4 cat\nc.mp4 -2\nd e.mp4 1\nf.mp4 1\ng.mp4 1.5\n")
    with pytest.raises(AnnotationError) as info:
        read_annotation_list(ann)
    message = str(info.value)
    assert message.startswith(f"{ann}: 4 malformed lines:")
    for line in (2, 3, 4, 6):
        assert f"{ann}:{line}: " in message

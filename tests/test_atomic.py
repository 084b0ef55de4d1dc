"""Atomic writes: the umask's permissions, and a full disk said plainly with the path, the old file kept."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from helpers import tiny_config
from uniformerv2 import save_checkpoint
from uniformerv2.atomic import atomic_write_text
from uniformerv2.demo import write_video
from uniformerv2.model import UniFormerV2


@pytest.mark.parametrize("umask", [0o022, 0o002, 0o077])
def test_written_files_get_the_permissions_of_a_plain_write(tmp_path, umask):
    old = os.umask(umask)
    try:
        files = [
            atomic_write_text(tmp_path / "a.txt", "x"),
            save_checkpoint(UniFormerV2(tiny_config()), tmp_path / "m.safetensors"),
            save_checkpoint(UniFormerV2(tiny_config()), tmp_path / "m.pth", fmt="mmaction2"),
            write_video(tmp_path / "v.mp4", np.zeros((2, 16, 16, 3), np.uint8)),
        ]
    finally:
        os.umask(old)
    for path in files:
        assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask, path


def _can_mount_tmpfs() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "-rm", "sh", "-c", "mount -t tmpfs -o size=64k tmpfs /mnt"], capture_output=True)
    return probe.returncode == 0


FULL_DISK = pytest.mark.skipif(
    not _can_mount_tmpfs(), reason="needs `unshare -rm` and tmpfs (user namespaces) to make a real full disk"
)

SAVE_ON_FULL_DISK = textwrap.dedent("""
    import sys
    sys.path.insert(0, sys.argv[2])
    from helpers import randomised, tiny_config
    from uniformerv2 import save_checkpoint
    from uniformerv2.errors import OutputError
    from uniformerv2.model import UniFormerV2
    small, big = UniFormerV2(tiny_config()), UniFormerV2(tiny_config(width=256, n_dim=256))
    for name, fmt in (("m.safetensors", "uniformerv2"), ("m.pth", "mmaction2")):
        target = sys.argv[1] + "/" + name
        save_checkpoint(small, target, fmt=fmt)  # fits
        try:
            save_checkpoint(big, target, fmt=fmt)  # does not
        except OutputError as e:
            print("error:", e)
        print("kept:", len(open(target, "rb").read()) > 0)
""")


@FULL_DISK
def test_a_full_disk_is_said_with_the_path_and_the_previous_file_survives(tmp_path):
    script = tmp_path / "save.py"
    script.write_text(SAVE_ON_FULL_DISK)
    mount = tmp_path / "disk"
    mount.mkdir()
    tests = Path(__file__).parent
    proc = subprocess.run(
        [
            "unshare",
            "-rm",
            "sh",
            "-c",
            f"mount -t tmpfs -o size=1m tmpfs {mount} && {sys.executable} {script} {mount} {tests}",
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines == [
        f"error: {mount}/m.safetensors: no space left on device (the previous version, if any, is kept)",
        "kept: True",
        f"error: {mount}/m.pth: no space left on device (the previous version, if any, is kept)",
        "kept: True",
    ]
    assert "Traceback" not in proc.stderr


VIDEO_ON_FULL_DISK = textwrap.dedent("""
    import os, sys
    import numpy as np
    from uniformerv2.demo import write_video
    from uniformerv2.errors import OutputError
    from uniformerv2.live import AnnotatedWriter
    disk = sys.argv[1]
    noise = np.random.default_rng(0).integers(0, 256, size=(100, 120, 160, 3), dtype=np.uint8)  # incompressible
    write_video(disk + "/v.mp4", noise[:2])  # fits
    before = open(disk + "/v.mp4", "rb").read()
    try:
        write_video(disk + "/v.mp4", noise)  # does not
    except OutputError as e:
        print("error:", e)
    print("kept:", open(disk + "/v.mp4", "rb").read() == before)
    live = AnnotatedWriter(disk + "/seen.mp4", fps=10)
    for frame in noise:
        live.write(frame, 0.0)  # on the reader thread: a full disk must not raise there
    try:
        live.close()
    except OutputError as e:
        print("error:", e)
    print("left:", sorted(os.listdir(disk)))
""")


@FULL_DISK
def test_a_video_on_a_full_disk_is_said_with_the_path_and_leaves_the_previous_file_alone(tmp_path):
    script = tmp_path / "encode.py"
    script.write_text(VIDEO_ON_FULL_DISK)
    mount = tmp_path / "disk"
    mount.mkdir()
    proc = subprocess.run(
        ["unshare", "-rm", "sh", "-c", f"mount -t tmpfs -o size=1m tmpfs {mount} && {sys.executable} {script} {mount}"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [
        f"error: {mount}/v.mp4: no space left on device (the previous version, if any, is kept)",
        "kept: True",
        f"error: {mount}/seen.mp4: no space left on device (the previous version, if any, is kept)",
        "left: ['v.mp4']",
    ]
    assert "Traceback" not in proc.stderr


def test_a_killed_writers_temporaries_are_removed_and_nothing_else(tmp_path):
    from uniformerv2.atomic import remove_stale_temporaries

    target = tmp_path / "clip.mp4"
    left = [tmp_path / ".clip.mp4.k3j2.tmp", tmp_path / ".clip.mp4.x9.tmp.mp4"]
    kept = [tmp_path / "clip.mp4", tmp_path / ".other.mp4.a1.tmp", tmp_path / "clip.mp4.tmp"]
    for p in left + kept:
        p.write_bytes(b"x")
    assert remove_stale_temporaries(target) == 2
    assert [p.exists() for p in left] == [False, False] and all(p.exists() for p in kept)
    assert remove_stale_temporaries(tmp_path) == 1  # a folder: every file's
    assert not (tmp_path / ".other.mp4.a1.tmp").exists() and (tmp_path / "clip.mp4.tmp").exists()

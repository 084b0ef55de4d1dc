"""Multi-view evaluation and ``uniformerv2 test``, end to end on a small generated labelled set."""

from __future__ import annotations

import json
import os
import pickle
import socket
from pathlib import Path

import numpy as np
import pytest
import torch

from helpers import randomised, tiny_config
from uniformerv2 import Protocol, save_checkpoint
from uniformerv2.engine import distributed as D
from uniformerv2.engine.evaluate import EvalResult, evaluate
from uniformerv2.engine.metrics import compute_metrics
from uniformerv2.engine.reports import read_dump, write_dump
from uniformerv2.model import UniFormerV2

av = pytest.importorskip("av")

NUM_GOOD = 6
PROTOCOL = Protocol(frames=4, size=32, clips=2, crops=3)


def _write_video(path: Path, frames: int, seed: int, brightness: int) -> None:
    rng = np.random.default_rng(seed)
    out = av.open(str(path), "w")
    stream = out.add_stream("mpeg4", rate=8)
    stream.width = stream.height = 32
    stream.pix_fmt = "yuv420p"
    for i in range(frames):
        img = np.clip(brightness + rng.integers(-60, 60, (32, 32, 3)) + 4 * i, 0, 255).astype(np.uint8)
        for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
            out.mux(packet)
    for packet in stream.encode():
        out.mux(packet)
    out.close()


@pytest.fixture(scope="module")
def labelled(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """6 good videos of 2 classes (8-16 frames), a corrupt and a zero-byte .mp4; a tiny model's .safetensors."""
    root = tmp_path_factory.mktemp("videos")
    lines = []
    for i in range(NUM_GOOD):
        cls = i % 2
        rel = f"class_{cls}/video_{i}.mp4"
        (root / rel).parent.mkdir(exist_ok=True)
        _write_video(root / rel, frames=8 + 2 * i, seed=i, brightness=70 if cls == 0 else 180)
        lines.append(f"{rel} {cls}")
    (root / "class_0" / "corrupt.mp4").write_bytes(np.random.default_rng(9).bytes(3000))
    (root / "class_1" / "empty.mp4").write_bytes(b"")
    lines.insert(2, "class_0/corrupt.mp4 0")
    lines.append("class_1/empty.mp4 1")
    ann = root / "ann.txt"
    ann.write_text("\n".join(lines) + "\n")
    model = randomised(UniFormerV2(tiny_config(num_classes=5)), seed=3)
    ckpt = save_checkpoint(model, root / "tiny.safetensors")
    return dict(root=root, ann=ann, ckpt=ckpt, model=model, lines=lines)


def _samples(labelled: dict) -> list:
    from uniformerv2.data import read_annotation_list

    return read_annotation_list(labelled["ann"], labelled["root"])


def _cli(argv: list[str]) -> int:
    from uniformerv2 import cli

    return cli.main(argv)


def test_end_to_end_pkl(labelled: dict, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    dump = tmp_path / "out" / "result.pkl"
    rc = _cli(
        [
            "test",
            "--checkpoint",
            str(labelled["ckpt"]),
            "--ann-file",
            str(labelled["ann"]),
            "--data-root",
            str(labelled["root"]),
            "--views",
            "2x3",
            "--frames",
            "4",
            "--dump",
            str(dump),
            "--workers",
            "1",
            "--batch-views",
            "12",
        ]
    )
    out, err = capsys.readouterr()
    print(out, err)
    assert rc == 3  # finished, with some videos failed
    # the bad videos are listed with a reason; the good ones are scored
    failed = [line for line in err.splitlines() if line.startswith("failed: ")]
    assert len(failed) == 2
    assert any("corrupt.mp4: " in line for line in failed) and any("empty.mp4: " in line for line in failed)
    assert all(len(line.split(": ", 2)[2]) > 3 for line in failed)
    assert f"scored {NUM_GOOD} of {NUM_GOOD + 2} videos (2 failed)" in out
    assert "2 clips x 3 crops of 4 frames at 32px" in out

    # the dump: MMAction2's layout, read with the standard pickle module
    with open(dump, "rb") as f:
        records = pickle.load(f)
    assert isinstance(records, list) and len(records) == NUM_GOOD
    for rec in records:
        assert {"pred_score", "pred_label", "gt_label", "num_classes"} <= set(rec)
        assert rec["pred_score"].dtype == torch.float32 and rec["pred_score"].shape == (5,)
        assert rec["pred_label"].dtype == torch.long and rec["pred_label"].shape == (1,)
        assert rec["gt_label"].dtype == torch.long and rec["gt_label"].shape == (1,)
        assert rec["pred_label"].item() == rec["pred_score"].argmax().item()
        assert torch.isclose(rec["pred_score"].sum(), torch.tensor(1.0), atol=1e-5)
        assert "corrupt" not in rec["filename"] and "empty" not in rec["filename"]
    good_paths = [
        str(labelled["root"] / line.split()[0])
        for line in labelled["lines"]
        if "corrupt" not in line and "empty" not in line
    ]
    assert [Path(r["filename"]) for r in records] == [Path(p) for p in good_paths]  # input order

    # metrics are over the good videos only, and equal those recomputed from the dump
    recomputed = compute_metrics(
        torch.stack([r["pred_score"] for r in records]).numpy(), np.array([r["gt_label"].item() for r in records])
    )
    summary = json.loads((dump.parent / "result_metrics.json").read_text())
    assert summary["metrics"] == pytest.approx(recomputed, abs=1e-12)
    for key, value in recomputed.items():
        assert f"acc/{key}: {value:.4f}" in out
    assert summary["num_scored"] == NUM_GOOD and len(summary["failures"]) == 2
    # the per-class table, its CSV and the confusion matrix
    assert "accuracy" in out and "class" in out
    csv_lines = (dump.parent / "result_per_class.csv").read_text().splitlines()
    assert csv_lines[0].startswith("class,name,videos,correct") and len(csv_lines) == 1 + 5
    png = dump.parent / "result_confusion.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not [p for p in dump.parent.iterdir() if p.name.endswith(".tmp")]


def test_end_to_end_json(labelled: dict, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    dump = tmp_path / "result.json"
    rc = _cli(
        [
            "test",
            "--checkpoint",
            str(labelled["ckpt"]),
            "--ann-file",
            str(labelled["ann"]),
            "--data-root",
            str(labelled["root"]),
            "--views",
            "1x3",
            "--frames",
            "4",
            "--dump",
            str(dump),
            "--workers",
            "0",
            "--no-progress",
            "--out-dir",
            str(tmp_path / "report"),
        ]
    )
    out, err = capsys.readouterr()
    assert rc == 3, err  # finished, with some videos failed
    data = json.loads(dump.read_text())
    assert data["num_videos"] == NUM_GOOD + 2 and data["num_scored"] == NUM_GOOD and data["num_failed"] == 2
    assert sorted(Path(f["path"]).name for f in data["failures"]) == ["corrupt.mp4", "empty.mp4"]
    assert len(data["results"]) == NUM_GOOD
    assert set(data["metrics"]) == {"top1", "top5", "mean1"}
    first = data["results"][0]
    assert {"path", "label", "pred_label", "pred_score", "topk"} <= set(first)
    assert first["topk"][0][0] == first["pred_label"] and len(first["topk"]) == 5
    assert (tmp_path / "report" / "result_confusion.png").is_file()
    assert read_dump(dump) == data


def test_cli_errors(labelled: dict, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    missing = tmp_path / "nope.txt"
    rc = _cli(["test", "--checkpoint", str(labelled["ckpt"]), "--ann-file", str(missing)])
    err = capsys.readouterr().err
    assert rc != 0 and str(missing) in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    # every video bad: non-zero
    bad = tmp_path / "bad.txt"
    bad.write_text("class_0/corrupt.mp4 0\nclass_1/empty.mp4 1\n")
    rc = _cli(
        [
            "test",
            "--checkpoint",
            str(labelled["ckpt"]),
            "--ann-file",
            str(bad),
            "--data-root",
            str(labelled["root"]),
            "--views",
            "1x1",
            "--frames",
            "4",
            "--workers",
            "0",
            "--no-progress",
        ]
    )
    err = capsys.readouterr().err
    assert rc == 1 and "no video could be decoded" in err
    # a label outside the model's classes
    wrong = tmp_path / "wrong.txt"
    wrong.write_text("class_0/video_0.mp4 7\n")
    rc = _cli(
        [
            "test",
            "--checkpoint",
            str(labelled["ckpt"]),
            "--ann-file",
            str(wrong),
            "--data-root",
            str(labelled["root"]),
            "--workers",
            "0",
            "--no-progress",
        ]
    )
    err = capsys.readouterr().err
    assert rc == 1 and str(wrong) in err and "outside" in err
    with pytest.raises(SystemExit):
        _cli(["test", "--checkpoint", str(labelled["ckpt"]), "--ann-file", "x", "--views", "4by3"])


def test_view_batching_does_not_change_scores(labelled: dict) -> None:
    samples = _samples(labelled)
    kw = dict(progress=False, device="cpu")
    runs = [evaluate(labelled["model"], samples, PROTOCOL, batch_views=b, **kw) for b in (1, 6, 48)]
    for r in runs[1:]:
        assert r.paths == runs[0].paths and r.failures == runs[0].failures
        torch.testing.assert_close(r.scores, runs[0].scores, rtol=0, atol=1e-6)
        assert r.metrics == pytest.approx(runs[0].metrics)
    assert runs[0].num_scored == NUM_GOOD and len(runs[0].failures) == 2


def test_compiled_network_scores_like_the_eager_one(labelled: dict) -> None:
    torch._dynamo.reset()
    samples = _samples(labelled)
    kw = dict(progress=False, device="cpu", batch_views=12)
    eager, compiled = (evaluate(labelled["model"], samples, PROTOCOL, compile=c, **kw) for c in (False, True))
    assert compiled.paths == eager.paths and compiled.failures == eager.failures
    torch.testing.assert_close(compiled.scores, eager.scores, rtol=0, atol=1e-5)


def test_write_dump_rejects_other_suffixes(tmp_path: Path) -> None:
    result = EvalResult(
        indices=[],
        paths=[],
        labels=[],
        scores=torch.zeros(0, 3),
        failures=[],
        metrics={},
        num_videos=0,
        protocol=PROTOCOL,
    )
    with pytest.raises(ValueError, match="must end in"):
        write_dump(tmp_path / "x.txt", result)


def test_shard_covers_every_item_once() -> None:
    for n in range(0, 12):
        for world in (1, 2, 3, 5):
            parts = [D.shard_indices(n, r, world) for r in range(world)]
            assert sorted(i for p in parts for i in p) == list(range(n))
            assert max(map(len, parts)) - min(map(len, parts)) <= 1


# ------------------------------------------------------------------ two CPU processes with gloo


class _CountingModel(torch.nn.Module):
    """Records the number of views of each forward pass."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model
        self.cfg = model.cfg
        self.views = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.views += int(x.shape[0])
        return self.model(x)


def _worker(rank: int, world: int, port: int, ckpt: str, samples: list, out_dir: str) -> None:
    os.environ.update(
        RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port)
    )
    torch.set_num_threads(1)
    from uniformerv2 import create_model

    device = D.init_distributed("cpu")
    try:
        model = _CountingModel(create_model(checkpoint=ckpt))
        result = evaluate(model, samples, PROTOCOL, batch_views=6, progress=False, device=device)
        with open(os.path.join(out_dir, f"rank{rank}.pkl"), "wb") as f:
            pickle.dump(
                dict(
                    views=model.views,
                    paths=result.paths,
                    failures=result.failures,
                    scores=result.scores,
                    metrics=result.metrics,
                    mine=D.shard_indices(len(samples)),
                ),
                f,
            )
    finally:
        D.destroy_distributed()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_distributed_two_processes(labelled: dict, tmp_path: Path) -> None:
    import torch.multiprocessing as mp

    samples = _samples(labelled)[:5]  # 4 good videos and the corrupt one: 5 % 2 != 0
    assert sum("corrupt" in s.path for s in samples) == 1
    mp.spawn(_worker, args=(2, _free_port(), str(labelled["ckpt"]), samples, str(tmp_path)), nprocs=2, join=True)
    ranks = [pickle.loads((tmp_path / f"rank{r}.pkl").read_bytes()) for r in range(2)]
    single = evaluate(labelled["model"], samples, PROTOCOL, batch_views=6, progress=False, device="cpu")
    # disjoint shards covering every video; each good video's 6 views went through exactly one model
    assert sorted(ranks[0]["mine"] + ranks[1]["mine"]) == list(range(5))
    assert ranks[0]["views"] + ranks[1]["views"] == 6 * single.num_scored == 6 * 4
    for r in ranks:  # every rank holds the whole result, in input order
        assert r["paths"] == single.paths and r["failures"] == single.failures
        torch.testing.assert_close(r["scores"], single.scores, rtol=0, atol=1e-6)
        assert r["metrics"] == pytest.approx(single.metrics, abs=1e-12)


def test_many_classes_report(tmp_path: Path) -> None:
    from uniformerv2.engine.reports import format_per_class_table, write_confusion_png, write_per_class_csv

    gen = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 80, (300,), generator=gen).tolist()
    scores = torch.rand(300, 80, generator=gen).softmax(1)
    result = EvalResult(
        indices=list(range(300)),
        paths=[f"v{i}.mp4" for i in range(300)],
        labels=labels,
        scores=scores,
        failures=[],
        metrics=compute_metrics(scores, labels),
        num_videos=300,
        class_names=[f"class {c}" for c in range(80)],
        protocol=PROTOCOL,
    )
    table = format_per_class_table(result)
    assert len(table.splitlines()) == 2 + 50 + 1 and "lowest accuracy" in table
    assert write_confusion_png(tmp_path / "c.png", result).read_bytes()[:4] == b"\x89PNG"
    assert len(write_per_class_csv(tmp_path / "c.csv", result).read_text().splitlines()) == 81


def test_folder_layout(labelled: dict, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    dump = tmp_path / "folder.json"
    rc = _cli(
        [
            "test",
            "--checkpoint",
            str(labelled["ckpt"]),
            "--folder",
            str(labelled["root"]),
            "--views",
            "1x1",
            "--frames",
            "4",
            "--dump",
            str(dump),
            "--workers",
            "0",
            "--no-progress",
        ]
    )
    out, err = capsys.readouterr()
    assert rc == 3, err  # the folder holds the two broken videos too
    data = json.loads(dump.read_text())
    assert data["class_names"] == ["class_0", "class_1"] and data["num_videos"] == NUM_GOOD + 2
    assert all(r["label_name"] == Path(r["path"]).parent.name for r in data["results"])
    assert "class_0" in out  # the per-class table names the classes


def test_torchrun_cli(labelled: dict, tmp_path: Path) -> None:
    """`torchrun --nproc-per-node 2 -m uniformerv2.cli test ...` on CPU (gloo) gives the single-process result."""
    import subprocess
    import sys

    dump = tmp_path / "ddp.json"
    env = dict(
        os.environ,
        OMP_NUM_THREADS="1",
        PYTHONPATH=os.pathsep.join(
            [str(Path(__file__).resolve().parents[1] / "src"), os.environ.get("PYTHONPATH", "")]
        ),
    )
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc-per-node",
        "2",
        "--master-addr",
        "127.0.0.1",
        "--master-port",
        str(_free_port()),
        "-m",
        "uniformerv2.cli",
        "test",
        "--checkpoint",
        str(labelled["ckpt"]),
        "--ann-file",
        str(labelled["ann"]),
        "--data-root",
        str(labelled["root"]),
        "--views",
        "2x3",
        "--frames",
        "4",
        "--dump",
        str(dump),
        "--workers",
        "0",
        "--device",
        "cpu",
        "--dtype",
        "float32",
    ]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]  # under torchrun a partial result exits 0 (rank 0 lists it)
    assert proc.stdout.count("scored 6 of 8 videos (2 failed)") == 1  # rank 0 reports, once
    assert sum(line.startswith("failed: ") for line in proc.stderr.splitlines()) == 2
    data = json.loads(dump.read_text())
    single = evaluate(labelled["model"], _samples(labelled), PROTOCOL, progress=False, device="cpu")
    assert [r["path"] for r in data["results"]] == single.paths
    assert [(f["path"], f["reason"]) for f in data["failures"]] == single.failures
    assert data["metrics"] == pytest.approx(single.metrics, abs=1e-12)
    for r, scores in zip(data["results"], single.scores):
        assert r["pred_score"] == pytest.approx(float(scores.max()), abs=1e-6)


def test_protocol_and_labels_from_the_preset() -> None:
    import torch

    from uniformerv2 import create_model

    name = "uniformerv2-base-p16-res224_clip_8xb32-u8_kinetics400-rgb"
    with torch.device("meta"):
        model = create_model(name)
    pretrained = model.pretrained_cfg
    assert pretrained.protocol == Protocol(frames=8, size=224, clips=4, crops=3, sampling="mmaction2")
    assert len(pretrained.class_names) == 400 and pretrained.preset == name
    assert pretrained.protocol.replace(clips=2, crops=1, frames=16) == Protocol(
        frames=16, size=224, clips=2, crops=1, sampling="mmaction2"
    )


def _mixed_list(labelled: dict, tmp_path: Path) -> Path:
    lines = [line for line in labelled["lines"] if "corrupt" not in line and "empty" not in line]
    lines[3] = lines[3].split()[0]  # one line without its label
    mixed = tmp_path / "mixed.txt"
    mixed.write_text("\n".join(lines) + "\n")
    return mixed


def test_a_list_mixing_labelled_and_unlabelled_lines_is_an_error_naming_them(labelled, tmp_path, capsys):
    rc = _cli(
        [
            "test",
            "--checkpoint",
            str(labelled["ckpt"]),
            "--ann-file",
            str(_mixed_list(labelled, tmp_path)),
            "--data-root",
            str(labelled["root"]),
            "--workers",
            "0",
            "--no-progress",
            "--views",
            "1x1",
        ]
    )
    err = capsys.readouterr().err
    assert rc == 1 and "1 of 6 videos have no label: line 4 (" in err and "--labelled-only" in err


def test_labelled_only_computes_the_metrics_over_the_labelled_lines(labelled, tmp_path, capsys):
    rc = _cli(
        [
            "test",
            "--checkpoint",
            str(labelled["ckpt"]),
            "--ann-file",
            str(_mixed_list(labelled, tmp_path)),
            "--data-root",
            str(labelled["root"]),
            "--workers",
            "0",
            "--no-progress",
            "--views",
            "1x1",
            "--labelled-only",
        ]
    )
    out, err = capsys.readouterr()
    assert rc == 0 and "scored 5 of 5 videos" in out and "acc/top1" in out and "--labelled-only" in err


def test_every_out_of_range_label_is_reported_with_its_line(labelled, tmp_path, capsys):
    wrong = tmp_path / "wrong.txt"
    wrong.write_text("class_0/video_0.mp4 7\nclass_1/video_1.mp4 1\nclass_0/video_2.mp4 9\n")
    rc = _cli(
        [
            "test",
            "--checkpoint",
            str(labelled["ckpt"]),
            "--ann-file",
            str(wrong),
            "--data-root",
            str(labelled["root"]),
            "--workers",
            "0",
            "--no-progress",
        ]
    )
    err = capsys.readouterr().err
    assert rc == 1 and "2 labels outside the model's 5 classes" in err
    assert "line 1: label 7" in err and "line 3: label 9" in err


def test_test_notices_labels_in_another_order_than_the_models_classes(labelled, tmp_path, capsys):
    good = [line for line in labelled["lines"] if "corrupt" not in line and "empty" not in line]
    samples = [type(s)(s.path, None) for s in _samples(labelled) if "corrupt" not in s.path and "empty" not in s.path]
    predicted = evaluate(labelled["model"], samples, PROTOCOL, progress=False, device="cpu").predictions.tolist()
    permutation = [3, 4, 0, 1, 2]  # what a list written in another class order looks like
    permuted = tmp_path / "permuted.txt"
    permuted.write_text("".join(f"{line.split()[0]} {permutation[p]}\n" for line, p in zip(good, predicted)))
    rc = _cli(
        [
            "test",
            "--checkpoint",
            str(labelled["ckpt"]),
            "--ann-file",
            str(permuted),
            "--data-root",
            str(labelled["root"]),
            "--workers",
            "0",
            "--no-progress",
            "--views",
            "2x3",
            "--frames",
            "4",
            "--dtype",
            "float32",
        ]
    )
    out, err = capsys.readouterr()
    assert rc == 0 and "acc/top1: 0.0000" in out
    assert "would give 1.000" in err and "--labels" in err
    for p in set(predicted):
        assert f"label {permutation[p]} ('{permutation[p]}') looks like the model's class {p} ('{p}')" in err

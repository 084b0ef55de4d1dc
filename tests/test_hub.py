"""Tests of uniformerv2.hub against a real HTTP server on 127.0.0.1 serving files from a tmp dir."""

from __future__ import annotations

import hashlib
import os
import socket
from pathlib import Path

import pytest

from helpers import openmmlab_name
from uniformerv2 import hub


def serve(server, data: bytes) -> str:
    """Put ``data`` on the server under an OpenMMLab-style name; return its URL."""
    name = openmmlab_name(data)
    (server.root / name).write_bytes(data)
    return server.url(name)


DATA = os.urandom(300_000)


def test_fresh_download_lands_in_cache_with_right_bytes(server, cache):
    path = hub.download(serve(server, DATA), progress=False)
    assert path == cache / openmmlab_name(DATA)
    assert path.read_bytes() == DATA
    assert not Path(str(path) + ".part").exists()


def test_second_call_does_not_hit_the_server(server, cache):
    url = serve(server, DATA)
    first = hub.download(url, progress=False)
    second = hub.download(url, progress=False)
    assert first == second
    assert len(server.requests) == 1


def test_leftover_part_is_resumed_with_range_request(server, cache):
    url = serve(server, DATA)
    cache.mkdir()
    (cache / (openmmlab_name(DATA) + ".part")).write_bytes(DATA[:100_000])
    path = hub.download(url, progress=False)
    assert server.requests[-1]["Range"] == "bytes=100000-"
    assert path.read_bytes() == DATA


def test_server_ignoring_range_still_yields_correct_file(server, cache):
    server.mode = "ignore_range"
    url = serve(server, DATA)
    cache.mkdir()
    (cache / (openmmlab_name(DATA) + ".part")).write_bytes(b"x" * 1000)
    path = hub.download(url, progress=False)
    assert path.read_bytes() == DATA


def test_hash_mismatch_raises_checksum_error_and_leaves_no_file(server, cache):
    name = openmmlab_name(b"other bytes")
    (server.root / name).write_bytes(DATA)
    url = server.url(name)
    with pytest.raises(hub.ChecksumError) as info:
        hub.download(url, progress=False)
    message = str(info.value)
    assert url in message and hub.hash_prefix_from_name(name) in message
    assert hashlib.sha256(DATA).hexdigest() in message
    assert not (cache / name).exists()
    assert not (cache / (name + ".part")).exists()


def test_check_hash_false_accepts_mismatching_file(server, cache):
    name = openmmlab_name(b"other bytes")
    (server.root / name).write_bytes(DATA)
    assert hub.download(server.url(name), progress=False, check_hash=False).read_bytes() == DATA


def test_dropped_connection_leaves_only_part_then_resumes(server, cache):
    url = serve(server, DATA)
    final = cache / openmmlab_name(DATA)
    server.mode = "drop"
    with pytest.raises(hub.DownloadError):
        hub.download(url, progress=False)
    assert not final.exists()
    assert 0 < Path(str(final) + ".part").stat().st_size < len(DATA)
    path = hub.download(url, progress=False)
    assert server.requests[-1]["Range"].startswith("bytes=")
    assert path.read_bytes() == DATA


def test_unreachable_server_raises_download_error_with_offline_advice(cache):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/{openmmlab_name(DATA)}"
    with pytest.raises(hub.DownloadError) as info:
        hub.download(url, progress=False, timeout=2)
    message = str(info.value)
    assert url in message
    assert "local path" in message and "--checkpoint" in message
    assert f"cache directory {cache}" in message


def test_http_error_raises_download_error(server, cache):
    server.mode = "fail"
    with pytest.raises(hub.DownloadError, match="503"):
        hub.download(serve(server, DATA), progress=False)


def test_errors_share_hub_error_base():
    assert issubclass(hub.DownloadError, hub.HubError) and issubclass(hub.ChecksumError, hub.HubError)
    assert issubclass(hub.HubError, RuntimeError)


def test_file_url_is_copied_into_cache(tmp_path, cache):
    src = tmp_path / openmmlab_name(DATA)
    src.write_bytes(DATA)
    path = hub.download(src.as_uri(), progress=False)
    assert path == cache / src.name and path.read_bytes() == DATA


def test_cache_dir_precedence(tmp_path, monkeypatch):
    for var in ("UNIFORMERV2_CACHE", "TORCH_HOME", "XDG_CACHE_HOME"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert hub.cache_dir() == tmp_path / "home" / ".cache" / "torch" / "hub" / "checkpoints"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert hub.cache_dir() == tmp_path / "xdg" / "torch" / "hub" / "checkpoints"
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    assert hub.cache_dir() == tmp_path / "torch" / "hub" / "checkpoints"
    monkeypatch.setenv("UNIFORMERV2_CACHE", str(tmp_path / "mine"))
    assert hub.cache_dir() == tmp_path / "mine"
    assert hub.cache_dir().is_dir()


def test_hash_prefix_from_openmmlab_name():
    name = "uniformerv2-base-p16-res224_clip_8xb32-u8_kinetics400-rgb_20230313-e29fc968.pth"
    assert hub.hash_prefix_from_name(name) == "e29fc968"


def test_hash_prefix_from_pyth_name_is_none():
    assert hub.hash_prefix_from_name("k400_uniformerv2_b16_8x224.pyth") is None


def test_is_url():
    assert hub.is_url("https://download.openmmlab.com/x.pth")
    assert hub.is_url("http://127.0.0.1:8000/x.pth") and hub.is_url("file:///tmp/x.pth")
    assert not hub.is_url("/tmp/x.pth") and not hub.is_url("x.pth") and not hub.is_url("ftp://host/x.pth")


def test_resolve_returns_existing_local_path(tmp_path):
    path = tmp_path / "ckpt.pth"
    path.write_bytes(b"x")
    assert hub.resolve(str(path)) == path and hub.resolve(path) == path


def test_resolve_missing_local_path_raises_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.pth"):
        hub.resolve(tmp_path / "missing.pth")


def test_resolve_downloads_urls(server, cache):
    assert hub.resolve(serve(server, DATA), progress=False).read_bytes() == DATA

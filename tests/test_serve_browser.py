"""The web page of `uniformerv2 serve` in a real browser: headless Chromium (Debian's, driven by Playwright) uploads
the demo video and reads the predicted classes, the timeline and its playback marker from the page, on a desktop
and on a phone-sized screen. Skips, saying why, where Chromium or Playwright is missing."""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi", reason="the serve extra is not installed: pip install 'uniformerv2[serve]'")
sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed: pip install playwright")

from test_serve import DEMO, checkpoint, serving, upload  # noqa: E402,F401 - checkpoint: a fixture
from uniformerv2 import VideoClassifier  # noqa: E402
from uniformerv2.serving import ServeConfig, create_app  # noqa: E402

CHROMIUM = os.environ.get("UNIFORMERV2_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def host(checkpoint: Path) -> Iterator[str]:
    clf = VideoClassifier.from_pretrained(checkpoint, dtype="float32")
    with serving(create_app(clf, ServeConfig(model_name="tiny"))) as h:
        yield h


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM:
        pytest.skip(
            "no Chromium on PATH (apt-get install chromium, as scripts/setup.sh does; or set UNIFORMERV2_CHROMIUM)"
        )
    with sync_api.sync_playwright() as p:
        # --no-sandbox: Chromium's sandbox refuses to run as root, which CI and containers are
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        try:
            yield b
        finally:
            b.close()


def _screenshot(page: Any, tmp_path: Path, name: str) -> Path:
    """Saved under $UNIFORMERV2_SCREENSHOTS (to look at) or the test's tmp folder."""
    folder = Path(os.environ.get("UNIFORMERV2_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    page.screenshot(path=str(path), full_page=True)
    return path


@pytest.mark.parametrize(
    "viewport,name",
    [
        ({"width": 1280, "height": 900}, "serve_page_desktop.png"),
        ({"width": 390, "height": 844}, "serve_page_phone.png"),
    ],
)
def test_the_page_classifies_a_dropped_video_and_follows_playback(
    host: str, browser: Any, tmp_path: Path, viewport: dict, name: str
) -> None:
    status, api = upload(host, "/v1/predict", DEMO, fields={"top_k": "5"})
    assert status == 200
    page = browser.new_page(viewport=viewport)
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: m.type == "error" and errors.append(m.text))
    try:
        page.goto(f"http://{host}/")
        sync_api.expect(page.locator("#model")).to_contain_text("tiny")
        page.set_input_files("#file", str(DEMO))
        items = page.locator("#predictions li")
        sync_api.expect(items).to_have_count(5, timeout=60_000)
        shown = [(li.get_attribute("data-label"), float(li.get_attribute("data-score"))) for li in items.all()]
        assert [label for label, _ in shown] == [p["label"] for p in api["predictions"]]
        assert [score for _, score in shown] == pytest.approx([p["score"] for p in api["predictions"]], abs=1e-9)
        assert page.locator("#predictions .label").all_inner_texts() == [p["label"] for p in api["predictions"]]
        # a 10 s video is long enough for a timeline: drawn from /v1/timeline, with a marker that follows playback
        sync_api.expect(page.locator("#timeline-card")).to_be_visible(timeout=60_000)
        assert int(page.locator("#timeline").get_attribute("data-windows")) == 9  # 2 s windows, 1 s apart
        page.evaluate("() => { const v = document.getElementById('video'); v.pause(); v.currentTime = 6.2; }")
        sync_api.expect(page.locator("#now")).to_have_text(
            re.compile(r"^at 6\.2 s: class_\d \d+(\.\d)?%$"), timeout=10_000
        )  # the window's top class and its score
        # usable on a phone: nothing wider than the screen
        assert page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth")
        assert page.locator("#status").inner_text() == ""
        _screenshot(page, tmp_path, name)
        assert errors == []
    finally:
        page.close()


def test_the_page_reports_a_bad_upload(host: str, browser: Any, tmp_path: Path) -> None:
    bad = tmp_path / "notes.mp4"
    bad.write_text("not a video\n" * 50)
    page = browser.new_page()
    try:
        page.goto(f"http://{host}/")
        sync_api.expect(page.locator("#model")).to_contain_text("tiny")
        page.set_input_files("#file", str(bad))
        sync_api.expect(page.locator("#status.error")).to_contain_text(
            "notes.mp4: not a readable video", timeout=30_000
        )
    finally:
        page.close()


def test_the_page_asks_for_the_api_key_and_uses_it(checkpoint: Path, browser: Any) -> None:
    clf = VideoClassifier.from_pretrained(checkpoint, dtype="float32")
    with serving(create_app(clf, ServeConfig(model_name="tiny", api_key="page-key", warmup=False))) as h:
        page = browser.new_page()  # a fresh context: nothing in local storage
        try:
            page.goto(f"http://{h}/")  # the page itself loads without the key
            sync_api.expect(page.locator("#key-form")).to_be_visible()
            page.fill("#key", "wrong")
            page.click("#key-form button")
            sync_api.expect(page.locator("#status.error")).to_contain_text("wrong API key")
            page.fill("#key", "page-key")
            page.click("#key-form button")
            sync_api.expect(page.locator("#model")).to_contain_text("tiny")
            sync_api.expect(page.locator("#key-form")).to_be_hidden()
            page.set_input_files("#file", str(DEMO))
            sync_api.expect(page.locator("#predictions li")).to_have_count(5, timeout=60_000)
        finally:
            page.close()

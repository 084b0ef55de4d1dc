#!/usr/bin/env bash
# Set-up on a fresh machine: a virtual environment in .venv with PyTorch and uniformerv2 (and the test and dev extras).
# Idempotent: a second run only checks that everything is there.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${UNIFORMERV2_VENV:-$root/.venv}"
py="$venv/bin/python"
if [ ! -x "$py" ]; then
  python3 -m venv "$venv"
  "$py" -m pip install -q --upgrade "pip<25"
fi
# PyTorch first, from the versions this machine keeps on disk where it can (a plain resolver run could pick a
# multi-GB download); any torch>=2.1 works for users elsewhere.
if ! "$py" -c "import torch, torchvision" 2>/dev/null; then
  "$py" -m pip install -q "torch==2.14.1" "torchvision==0.29.1" 2>&1 | grep -v "^WARNING: Location" || true
fi
# The package with its test extras and the dev tools (ruff, mypy, mkdocs), again whenever pyproject.toml changes.
stamp="$venv/.uniformerv2-pyproject.sha256"
want=$(sha256sum "$root/pyproject.toml" | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ] || ! "$py" -c "import uniformerv2" 2>/dev/null; then
  "$py" -m pip install -q -e "$root[test,dev]" 2>&1 | grep -v "^WARNING: Location" || true
  echo "$want" > "$stamp"
fi
# System tools the tests use as oracles (the ffmpeg command line for rotated videos), where apt-get can install
# them; elsewhere the tests that need them skip and say why.
if ! command -v ffmpeg >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ffmpeg >/dev/null) \
    || echo "setup: could not install ffmpeg; the tests that compare with it will skip"
fi
# A headless browser for the web page's test (tests/test_serve_browser.py drives Debian's chromium with Playwright);
# elsewhere that test skips and says why.
if ! command -v chromium >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
    || echo "setup: could not install chromium; the browser test of the web page will skip"
fi
"$py" -c "import uniformerv2, torch; print('uniformerv2', uniformerv2.__version__, 'torch', torch.__version__)"

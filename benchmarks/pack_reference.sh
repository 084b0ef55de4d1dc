#!/usr/bin/env bash
# Copies MMAction2 1.2.0's pure-Python packages (and shared/ref/dump.py) from the oracle environment into
# .ref-packages/ (git-ignored, about 12 MB), so that bench_model.py can run the reference on a machine that has
# torch but no internet and no oracle environment, such as a lent GPU machine (carry .ref-packages there).
# That machine must already have torch, numpy, scipy, einops and opencv (the lent GPU images do).
# Usage: bash ../shared/ref/setup.sh && bash benchmarks/pack_reference.sh [ORACLE_VENV]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
venv="${1:-${UNIFORMERV2_REF_VENV:-/tmp/uniformerv2-ref}}"
site=$("$venv/bin/python" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
out="$root/.ref-packages"
rm -rf "$out"
mkdir -p "$out/site" "$out/ref"
for pkg in mmaction mmengine mmcv addict yapf yapf_third_party termcolor platformdirs importlib_metadata \
           lazy_importer; do
  cp -r "$site/$pkg" "$out/site/"
done
cp "$root/../shared/ref/dump.py" "$out/ref/"
find "$out" -name __pycache__ -prune -exec rm -rf {} +
echo "wrote $out ($(du -sh "$out" | cut -f1)); on the GPU machine: PYTHONPATH=src:.ref-packages/site python3 \\"
echo "  benchmarks/bench_model.py --device cuda --ref-python python3 --shared .ref-packages ..."

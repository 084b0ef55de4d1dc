#!/usr/bin/env bash
# Every check CI runs (.ci/run, the README's second command), after scripts/setup.sh: lint, format, types and the
# documentation site, then the test suite last, so that a run's closing line is pytest's summary. A failed check
# does not keep the tests from running; the exit status is non-zero when anything failed.
# Arguments go to pytest: `bash scripts/check.sh tests/test_cli.py -x`.
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bin="${UNIFORMERV2_VENV:-$root/.venv}/bin"
export NO_MKDOCS_2_WARNING=1  # Material for MkDocs' banner about its successor, on every build
failed=()
step() {  # step NAME COMMAND...: run it, say how long it took, remember its name when it fails
  local name="$1" start=$SECONDS
  shift
  echo "== $name" >&2
  if "$@"; then
    echo "== $name: ok ($((SECONDS - start)) s)" >&2
  else
    echo "== $name: FAILED ($((SECONDS - start)) s)" >&2
    failed+=("$name")
  fi
}
step "ruff check" "$bin/ruff" check .
step "ruff format" "$bin/ruff" format --check .
step "mypy" "$bin/mypy"
step "mkdocs" "$bin/mkdocs" build --strict --site-dir site  # site/ is ignored by git
if [ ${#failed[@]} -gt 0 ]; then
  (IFS=,; echo "check.sh: failed: ${failed[*]}; the tests run anyway" >&2)
fi
echo "== pytest" >&2
"$bin/python" -m pytest "$@"
status=$?
if [ ${#failed[@]} -gt 0 ] && [ $status -eq 0 ]; then
  status=1
fi
exit $status

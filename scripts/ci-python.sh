#!/usr/bin/env bash
# The Python package (python/): install it into a fresh venv, offline, and run its tests with pytest.
# The interop tests drive the release binaries (.build/release, or GSLORA_BIN_DIR) and read the fixtures
# (Tests/Fixtures/pytorch); the binaries are built first when missing.
# Exit status: pytest's, except that "no tests collected" (5) counts as a failure too (it is nonzero already).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${GSLORA_BIN_DIR:-}" ] && [ ! -x .build/release/gslora-inspect ]; then
    swift build -c release
fi
venv="$(mktemp -d)/venv"
trap 'rm -rf "$(dirname "$venv")"' EXIT
# System site packages give pytest and numpy (and torch where installed) without a network.
python3 -m venv --system-site-packages "$venv"
"$venv/bin/pip" install --no-index --quiet ./python
"$venv/bin/python" -c "import pytest" 2>/dev/null || { echo "ci-python: pytest is not installed for python3" >&2; exit 1; }
# Run from outside the source tree so the installed package, not python/gslr, is what gets imported.
cd python/tests
set +e
"$venv/bin/python" -m pytest -q -p no:cacheprovider "$@" .
code=$?
set -e
if [ "$code" -eq 5 ]; then echo "ci-python: pytest collected no tests" >&2; exit 1; fi
exit "$code"

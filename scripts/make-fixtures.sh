#!/usr/bin/env bash
# Rebuilds the PyTorch-written fixtures (Tests/Fixtures/pytorch/README.md) with tools/make_fixtures.py, in a venv with
# the pinned torch, torchvision and timm from PyPI. Safe to run again: an existing venv with these versions is kept.
#   scripts/make-fixtures.sh OUT_DIR [--force] [--only face torchvision timm dtypes legacy malicious]
#   GSLORA_FIXTURES=OUT_DIR swift test -c release --disable-swift-testing   # check gslora against them
# FIXTURES_VENV picks the venv folder (default .build/fixtures-venv); pip honours PIP_INDEX_URL / PIP_EXTRA_INDEX_URL.
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 1 ] || { sed -n '2,6p' "$0" >&2; exit 2; }
venv="${FIXTURES_VENV:-.build/fixtures-venv}"
pins=(torch==2.15.0 torchvision==0.29.2 timm==1.0.31 safetensors numpy)
check='import torch, torchvision, timm; assert (torch.__version__.split("+")[0], torchvision.__version__.split("+")[0], timm.__version__) == ("2.15.0", "0.29.2", "1.0.31")'
if ! { [ -x "$venv/bin/python" ] && "$venv/bin/python" -c "$check" 2>/dev/null; }; then
    python3 -m venv "$venv" >&2
    "$venv/bin/python" -m pip install --quiet --upgrade pip >&2
    "$venv/bin/python" -m pip install --quiet "${pins[@]}" >&2
    "$venv/bin/python" -c "$check"
fi
exec "$venv/bin/python" tools/make_fixtures.py "$@"

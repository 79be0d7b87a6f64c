#!/usr/bin/env bash
# Makes the Python venv the PEFT parity check (scripts/peft_check.py) runs in, with the versions it was written
# against, from PyPI. Prints the venv's python. Safe to run again: an existing venv with these versions is kept.
#   scripts/peft-venv.sh [VENV_DIR]      (default: .build/peft-venv)
# pip honours PIP_INDEX_URL / PIP_EXTRA_INDEX_URL (e.g. https://download.pytorch.org/whl/cpu for CPU-only torch).
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${1:-.build/peft-venv}"
pins=(torch==2.15.0 torchvision==0.29.2 timm==1.0.31 peft==0.21.2 safetensors numpy)
check='import torch, torchvision, timm, peft; assert (torch.__version__.split("+")[0], torchvision.__version__.split("+")[0], timm.__version__, peft.__version__) == ("2.15.0", "0.29.2", "1.0.31", "0.21.2")'
if [ -x "$venv/bin/python" ] && "$venv/bin/python" -c "$check" 2>/dev/null; then
  echo "$venv/bin/python"
  exit 0
fi
python3 -m venv "$venv" >&2
"$venv/bin/python" -m pip install --quiet --upgrade pip >&2
"$venv/bin/python" -m pip install --quiet "${pins[@]}" >&2
"$venv/bin/python" -c "$check"
echo "$venv/bin/python"

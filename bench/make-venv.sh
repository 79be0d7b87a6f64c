#!/usr/bin/env bash
# Makes the venv `gslora-bench sizes` runs PyTorch in (bench/pytorch_vit.py): torch 2.15.0 and timm 1.0.31 from PyPI
# (the versions the fixtures were made with). Prints the venv's python. Safe to run again: an existing venv with these versions
# is kept.
#   bench/make-venv.sh [VENV_DIR]      (default: bench/.venv, where gslora-bench sizes looks first after
#                                       --python and $GSLORA_BENCH_PYTHON)
# PyPI's Linux torch wheel is the CUDA build (it runs on CPU, and downloads ≈3 GB of CUDA libraries); for the
# CPU-only wheel set PIP_INDEX_URL=https://download.pytorch.org/whl/cpu and PIP_EXTRA_INDEX_URL=https://pypi.org/simple.
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${1:-bench/.venv}"
pins=(torch==2.15.0 timm==1.0.31 numpy)
check='import torch, timm; assert (torch.__version__.split("+")[0], timm.__version__) == ("2.15.0", "1.0.31")'
if [ -x "$venv/bin/python" ] && "$venv/bin/python" -c "$check" 2>/dev/null; then
  echo "$venv/bin/python"
  exit 0
fi
python3 -m venv "$venv" >&2
"$venv/bin/python" -m pip install --quiet --upgrade pip >&2
"$venv/bin/python" -m pip install --quiet "${pins[@]}" >&2
"$venv/bin/python" -c "$check"
echo "$venv/bin/python"

#!/usr/bin/env bash
# CI's short fuzz pass: every target in Fuzz/ for FUZZ_SECONDS (default 20) each; exit 1 on any crash, hang or
# memory blow-up. For a deeper local run use scripts/fuzz.sh 3600 (an hour per target).
set -euo pipefail
cd "$(dirname "$0")/.."
exec scripts/fuzz.sh "${FUZZ_SECONDS:-20}"

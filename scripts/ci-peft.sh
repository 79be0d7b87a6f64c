#!/usr/bin/env bash
# CI: gslora against the real Hugging Face peft library (scripts/peft_check.py, driven by the XCTest
# ConvertTests.PeftParityTests). Sets up the pinned venv (scripts/peft-venv.sh), or uses $GSLORA_PEFT_PYTHON if set.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${GSLORA_PEFT_PYTHON:-}" ]; then
  GSLORA_PEFT_PYTHON="$(scripts/peft-venv.sh)"
fi
export GSLORA_PEFT_PYTHON
swift test -c release --disable-swift-testing --filter ConvertTests.PeftParityTests

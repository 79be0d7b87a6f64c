#!/usr/bin/env bash
# Kernels on an old CPU (spec/PLATFORM.md), called from .ci/run after the test runs:
#  1. gslora-infer runs a real PyTorch-written ViT under `qemu-x86_64 -cpu Nehalem` (SSE4.2, no AVX) and its logits
#     match PyTorch's within the forward tolerance (1e-4 relative to the largest logit), for every fixture whose
#     parity file holds an `input` batch and its `logits`; OpenBLAS and oneDNN run there too (both pick their code
#     from cpuid);
#  2. on that CPU, asking for AVX2 kernels (GSLORA_KERNELS=avx2) is refused with exit 2 and the missing features
#     named, not an illegal instruction;
#  3. the C kernels compile for arm64 (clang --target=aarch64-unknown-linux-gnu, NEON).
# Fixtures: the repo's Tests/Fixtures/pytorch plus any folders GSLORA_FIXTURES names (colon-separated).
set -euo pipefail
cd "$(dirname "$0")/.."
DEBIAN_FRONTEND=noninteractive apt-get install -y qemu-user libc6-dev-arm64-cross >/dev/null
BIN=$(swift build -c release --show-bin-path)
[ -x "$BIN/gslora-infer" ] || swift build -c release --product gslora-infer
IFS=: read -r -a fixture_dirs <<< "Tests/Fixtures/pytorch${GSLORA_FIXTURES:+:$GSLORA_FIXTURES}"
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
# The emulated CPU has no AVX: neither a kernel forced for the host CPU nor a re-execution (qemu would run the new
# image natively) may happen, so the settings the commands would otherwise add are given here.
unset OPENBLAS_CORETYPE OPENBLAS_L2_SIZE GSLORA_KERNELS
export OMP_WAIT_POLICY=passive
QEMU=(qemu-x86_64 -cpu Nehalem)
pass=0 fail=0
check() { if "$@"; then pass=$((pass + 1)); else echo "FAILED: $*" >&2; fail=$((fail + 1)); fi; }

echo "== forward parity under ${QEMU[*]}"
cases=0
parities=()
for d in "${fixture_dirs[@]}"; do parities+=("$d"/*.parity.json); done
for parity in "${parities[@]}"; do
    [ -f "$parity" ] || continue
    name=$(basename "$parity" .parity.json)
    python3 - "$parity" "$T/$name" <<'PY' || continue
import json, sys, numpy as np
d = json.load(open(sys.argv[1]))
if not (isinstance(d.get("input"), dict) and isinstance(d.get("logits"), dict)):
    sys.exit(1)
np.save(sys.argv[2] + ".input.npy", np.array(d["input"]["data"], dtype=np.float32).reshape(d["input"]["shape"]))
np.save(sys.argv[2] + ".expected.npy", np.array(d["logits"]["data"], dtype=np.float64).reshape(d["logits"]["shape"]))
heads = (d.get("model_config") or {}).get("heads")
if heads is None:
    import re
    m = re.search(r"num_heads=(\d+)", d.get("description", ""))
    heads = int(m.group(1)) if m else None
open(sys.argv[2] + ".heads", "w").write(str(heads or ""))
PY
    cases=$((cases + 1))
    heads=$(cat "$T/$name.heads")
    args=("$(dirname "$parity")/$name.pth" "$T/$name.input.npy" -o "$T/$name.logits.npy")
    [ -n "$heads" ] && args+=(--heads "$heads")
    start=$(date +%s)
    if "${QEMU[@]}" "$BIN/gslora-infer" "${args[@]}" >"$T/$name.log" 2>&1; then
        echo "$name: gslora-infer under qemu took $(( $(date +%s) - start )) s"
        check python3 - "$T/$name" <<'PY'
import sys, numpy as np
got = np.load(sys.argv[1] + ".logits.npy").astype(np.float64)
ref = np.load(sys.argv[1] + ".expected.npy")
err = np.abs(got - ref).max() / max(np.abs(ref).max(), 1e-30)
print(f"{sys.argv[1].rsplit('/', 1)[-1]}: logits {got.shape}, max relative error {err:.2e} (tolerance 1e-4)")
sys.exit(0 if got.shape == ref.shape and err <= 1e-4 else 1)
PY
    else
        echo "FAILED: gslora-infer on $name under qemu exited $?:" >&2
        cat "$T/$name.log" >&2
        fail=$((fail + 1))
    fi
done
check test "$cases" -ge 2   # torchvision_vit_tiny and timm_vit_tiny at least

echo "== AVX2 kernels asked for on a CPU without AVX"
set +e
GSLORA_KERNELS=avx2 "${QEMU[@]}" "$BIN/gslora-infer" /nonexistent.pth /nonexistent.npy >"$T/refused.log" 2>&1
code=$?
set -e
cat "$T/refused.log"
check test "$code" -eq 2
check grep -q "this CPU lacks AVX2, FMA and F16C" "$T/refused.log"

echo "== C kernels for arm64"
if command -v clang >/dev/null; then
    # The Swift toolchain's clang with the arm64 C library headers (libc6-dev-arm64-cross).
    check clang --target=aarch64-unknown-linux-gnu -O2 -Wall -Werror -isystem /usr/aarch64-linux-gnu/include -ISources/Apply/CKernels/include \
        -c Sources/Apply/CKernels/dispatch.c -o "$T/dispatch-arm64.o"
else
    echo "FAILED: clang not found" >&2; fail=$((fail + 1))
fi

echo "qemu/arm64 checks: $pass passed, $fail failed"
[ "$fail" -eq 0 ]

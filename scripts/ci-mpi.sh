#!/usr/bin/env bash
# MPI check (issue #17), called from .ci/run: installs Open MPI, then under `mpirun -np 2`
#  1. data-parallel GS-LoRA, GS-LoRA++, pretrain and four baselines give the single-process weights within the
#     summation-order tolerance and the same evaluation counts, and a run interrupted under one number of ranks
#     resumes under another to the uninterrupted adapter (XCTest TrainTests.MPITrainCommandTests, 5 tests, which
#     must run here, not skip);
#  2. gslora-eval's report equals the single-process one byte for byte (sharded evaluation, identical counts);
#  3. a rank killed mid-run makes mpirun exit non-zero, naming the rank, and leaves no output file.
# Needs the Debian packages .ci/run installs (dataset-fashion-mnist among them).
set -euo pipefail
cd "$(dirname "$0")/.."
DEBIAN_FRONTEND=noninteractive apt-get install -y openmpi-bin libopenmpi-dev >/dev/null
# The XCTest below builds (or, after .ci/run's `swift test`, reuses) every product; a separate `swift build` would
# build them again in another configuration.
BIN=$(swift build -c release --show-bin-path)
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
# One BLAS/OpenMP thread per rank: two ranks on two cores.
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
MPIRUN=(mpirun --allow-run-as-root --oversubscribe -np 2)
pass=0 fail=0
check() { if "$@"; then pass=$((pass + 1)); else echo "FAILED: $*" >&2; fail=$((fail + 1)); fi; }

echo "== data-parallel training and resume across N: 1 process vs 2 ranks"
swift test -c release --disable-swift-testing --filter TrainTests.MPITrainCommandTests 2>&1 | tee "$T/xctest.log" || true
check grep -q "Executed 5 tests, with 0 failures" "$T/xctest.log"
check bash -c "! grep -q 'skipped' '$T/xctest.log'"

# A small trained backbone: the quick demo's pre-trained Fashion-MNIST ViT.
"$BIN/gslora-demo" --quick -o "$T/demo" >"$T/demo.log" 2>&1 || { cat "$T/demo.log" >&2; exit 1; }
MODEL=$T/demo/pretrained.gslr

echo "== sharded evaluation: 1 process vs 2 ranks"
"$BIN/gslora-eval" "$MODEL" --data fashion-mnist --forget 0,1 -o "$T/one.json" >/dev/null
"${MPIRUN[@]}" "$BIN/gslora-eval" "$MODEL" --data fashion-mnist --forget 0,1 -o "$T/two.json" >/dev/null
check cmp "$T/one.json" "$T/two.json"
check grep -q '"samples" : 10000' "$T/two.json"

echo "== a killed rank: every rank ends, non-zero, named; no output"
set +e
# One image per forward batch keeps the ranks busy for seconds (≈3.5 s idle here), well past the kill below.
"${MPIRUN[@]}" "$BIN/gslora-eval" "$MODEL" --data fashion-mnist --split train --forget 0 --batch-size 1 -o "$T/killed.json" \
    >"$T/killed.out" 2>"$T/killed.err" &
launcher=$!
victim=""
for _ in $(seq 1 300); do
    for p in $(pgrep -P "$launcher" 2>/dev/null; pgrep -f "$BIN/gslora-eval" 2>/dev/null); do
        if tr '\0' '\n' <"/proc/$p/environ" 2>/dev/null | grep -qx 'OMPI_COMM_WORLD_RANK=1'; then victim=$p; fi
    done
    [ -n "$victim" ] && break
    sleep 0.1
done
sleep 1
[ -n "$victim" ] && kill -9 "$victim"
wait "$launcher"
code=$?
set -e
check test -n "$victim"
check test "$code" -ne 0
check grep -qi 'rank 1' "$T/killed.err"
check test ! -e "$T/killed.json"
if [ "$fail" -ne 0 ]; then echo "--- killed-rank stderr:" >&2; cat "$T/killed.err" >&2; fi
sleep 1
check test -z "$(pgrep -f "$BIN/gslora-eval" || true)"

echo "mpi: $pass passed, $fail failed"
[ "$fail" -eq 0 ]

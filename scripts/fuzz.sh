#!/usr/bin/env bash
# Builds the libFuzzer targets in Fuzz/ (swiftc -sanitize=fuzzer,address) and runs each for SECONDS, seeded from
# the fixtures and the conformance corpus.
#
#   scripts/fuzz.sh [SECONDS] [TARGET ...]     targets: gslr torch zip pickle safetensors npy idx image (default all)
#
# CI runs 20 s per target (scripts/ci-fuzz.sh). A deeper local run: 3600 s per target (an hour each; a few million
# executions for the fast targets). A crash stops the run with exit 1 and leaves the input as
# .build/fuzz/<target>/crash-*; turn it into a regression test with that input before fixing the bug.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-20}"
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(gslr torch zip pickle safetensors npy idx image)
# Seeds: the repo's fixtures plus any folders GSLORA_FIXTURES names (colon-separated).
IFS=: read -r -a fixtures <<< "Tests/Fixtures/pytorch${GSLORA_FIXTURES:+:$GSLORA_FIXTURES}"
out=.build/fuzz
mkdir -p "$out/modules"

flags=(-sanitize=fuzzer,address -parse-as-library -O -g -enable-testing -I Sources/CLibraries/CGSLoRAZlib -I Sources/CLibraries/CGSLoRAPNG -I Sources/CLibraries/CGSLoRATurboJPEG -I "$out/modules")
module() {  # name, sources...: an instrumented module (object + .swiftmodule), rebuilt when a source is newer
    local name=$1; shift
    local obj="$out/modules/$name.o"
    if [ ! -f "$obj" ] || [ -n "$(find "$@" -newer "$obj" 2>/dev/null | head -1)" ]; then
        echo "fuzz: compiling module $name" >&2
        swiftc "${flags[@]}" -wmo -module-name "$name" -emit-module -emit-module-path "$out/modules/$name.swiftmodule" -c -o "$obj" "$@"
    fi
}
module GSLoRAFormat Sources/Format/*.swift
need_convert() { module GSLoRAConvert Sources/Convert/*.swift; }
need_data() { module GSLoRAData Sources/Apply/Data/*.swift; }

seeds() {  # target -> seed folder
    local dir="$out/$1/seeds"
    mkdir -p "$dir"
    case $1 in
        gslr) cp Tests/Fixtures/gslr-invalid/*.gslr "$dir/" ;;
        torch|zip) for d in "${fixtures[@]}"; do cp "$d"/*.pth "$dir/"; done ;;
        pickle) for f in ${fixtures[@]/%//*.pth}; do unzip -p "$f" '*/data.pkl' > "$dir/$(basename "$f").pkl" 2>/dev/null || true; done ;;
        safetensors) printf '\x20\x00\x00\x00\x00\x00\x00\x00{"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}\x00\x00\x80\x3f' > "$dir/min.safetensors" ;;
        npy) printf "\x93NUMPY\x01\x00v\x00{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }" > "$dir/a.npy"
             printf '%*s\n' $((117 - 60)) '' | tr -d '\n' >> "$dir/a.npy"; head -c 24 /dev/zero >> "$dir/a.npy" ;;
        idx) printf '\x00\x00\x08\x03\x00\x00\x00\x02\x00\x00\x00\x02\x00\x00\x00\x02' > "$dir/images.idx"; head -c 8 /dev/urandom >> "$dir/images.idx"
             printf '\x00\x00\x08\x01\x00\x00\x00\x03\x01\x02\x03' > "$dir/labels.idx" ;;
        image) { find /usr/share /usr/lib /opt \( -name '*.png' -o -name '*.jpg' \) -size -64k 2>/dev/null | head -20 | while read -r f; do cp "$f" "$dir/" || true; done; } || true ;;
    esac
}

status=0
for t in "${targets[@]}"; do
    case $t in
        gslr) mods=("$out/modules/GSLoRAFormat.o") ;;
        torch|zip|pickle|safetensors) need_convert; mods=("$out/modules/GSLoRAFormat.o" "$out/modules/GSLoRAConvert.o") ;;
        npy|idx|image) need_data; mods=("$out/modules/GSLoRAFormat.o" "$out/modules/GSLoRAData.o") ;;
        *) echo "fuzz: unknown target $t" >&2; exit 2 ;;
    esac
    bin="$out/$t/fuzz-$t"
    mkdir -p "$out/$t/corpus"
    # gold warns once per ASan helper symbol ("Cannot export local symbol"); show everything else.
    if ! swiftc "${flags[@]}" -module-name "Fuzz_$t" Fuzz/Support.swift "Fuzz/$t.swift" "${mods[@]}" -lz -lpng -lturbojpeg -o "$bin" 2> "$out/link-$t.txt"; then
        cat "$out/link-$t.txt" >&2; exit 1
    fi
    grep -v "Cannot export local symbol" "$out/link-$t.txt" >&2 || true
    seeds "$t"
    echo "fuzz: $t for $seconds s" >&2
    # -rss_limit_mb bounds memory (readers must refuse huge sizes before allocating); -timeout catches hangs.
    if ! (cd "$out/$t" && ASAN_OPTIONS=detect_leaks=0 "./fuzz-$t" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
            -print_final_stats=1 corpus seeds 2> log.txt); then
        echo "fuzz: $t FAILED; see $out/$t/log.txt and $out/$t/crash-*" >&2
        tail -30 "$out/$t/log.txt" >&2
        status=1
    fi
    grep -E "stat::number_of_executed_units|stat::peak_rss_mb" "$out/$t/log.txt" | sed "s/^/fuzz: $t /" >&2 || true
done
exit $status

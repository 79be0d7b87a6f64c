#!/usr/bin/env bash
# CI: other packages can depend on gslora's format library, and its documentation is sound.
# 1. Examples/ReadGSLR, a package of its own that depends on the GSLoRAFormat product by path, builds without compiling
#    any other gslora module; it accepts and prints every valid file of the conformance corpus and refuses every
#    invalid one with exit 1 and the error expected.json names.
# 2. The code and the transcripts in the DocC article are the example's own.
# 3. `swift package generate-documentation --target GSLoRAFormat` prints no warning.
set -euo pipefail
cd "$(dirname "$0")/.."
example=Examples/ReadGSLR
article=Sources/Format/GSLoRAFormat.docc/ReadingAGSLRFile.md
fail() {
    echo "ci-example: $*" >&2
    exit 1
}

swift build -c release --package-path "$example"
# SwiftPM makes a folder for every module of the graph but compiles only what the product needs.
compiled=$(find -H "$example/.build/release" -name '*.o' -path '*.build/*' | sed -E 's#.*/release/([^/]+)\.build/.*#\1#' | sort -u | tr '\n' ' ')
[ "$compiled" = "GSLoRAFormat ReadGSLR " ] || fail "the example compiled more than GSLoRAFormat and itself: $compiled"
echo "ci-example: the example compiled only: $compiled"
bin=$example/.build/release/read-gslr

"$bin" | grep -q '^  blocks\.0\.norm1\.weight  F32 \[4\]  \[1\.0, 2\.0, 3\.0, 4\.0\]$' || fail "read-gslr without an argument did not print the fixture's tensor"
set +e
"$bin" a.gslr b.gslr 2>/dev/null
[ $? -eq 2 ] || fail "read-gslr with two files did not exit 2"
set -e

# The whole corpus through the example: valid files print every tensor of their table (read here with Python,
# independently of the library), invalid ones exit 1 with the expected message on stderr.
python3 - "$bin" <<'EOF'
import json, struct, subprocess, sys
from pathlib import Path

binary, corpus = sys.argv[1], Path("Tests/Fixtures/gslr-invalid")
expected = json.loads((corpus / "expected.json").read_text())["files"]
valid = invalid = 0
for case in expected:
    path = corpus / case["file"]
    run = subprocess.run([binary, str(path)], capture_output=True, text=True)
    if case["error"] is None:
        data = path.read_bytes()
        (length,) = struct.unpack_from("<Q", data, 16)
        table = json.loads(data[32 : 32 + length])["tensors"]
        lines = run.stdout.splitlines()
        assert run.returncode == 0, f"{path}: exit {run.returncode}: {run.stderr}"
        assert "verified: the CRC32 of each of" in run.stdout, f"{path}: no verification line:\n{run.stdout}"
        for t in table:
            prefix = f"  {t['name']}  {t['dtype']} {t['shape']}  ["
            assert any(line.startswith(prefix) for line in lines), f"{path}: no line for tensor {t['name']}:\n{run.stdout}"
        valid += 1
    else:
        assert run.returncode == 1, f"{path}: exit {run.returncode}, expected 1 ({case['rule']})"
        assert str(path) in run.stderr and case["contains"] in run.stderr, f"{path}: stderr lacks the file or {case['contains']!r}: {run.stderr}"
        invalid += 1
assert valid and invalid, f"the corpus gave {valid} valid and {invalid} invalid files; both must be there"
print(f"ci-example: read-gslr accepted {valid} valid files and refused {invalid} invalid ones of {corpus}")
EOF

# The article's Swift blocks appear in the example's sources (indentation aside), and each transcript that starts
# with `$ read-gslr ARGS` is what the example prints (stdout and stderr) when run from the repository root.
python3 - "$bin" "$article" "$example" <<'EOF'
import re, shlex, subprocess, sys
from pathlib import Path

binary, article, example = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
source = [l.strip() for f in sorted(example.rglob("*.swift")) if ".build" not in f.parts for l in f.read_text().splitlines()]
blocks = re.findall(r"^```(\w+)\n(.*?)^```$", article.read_text(), re.S | re.M)
code = transcripts = 0
for lang, body in blocks:
    lines = body.splitlines()
    if lang == "swift":
        want = [l.strip() for l in lines]
        assert any(source[i : i + len(want)] == want for i in range(len(source))), f"{article}: this code is not in {example}:\n{body}"
        code += 1
    elif lang == "text" and lines[0].startswith("$ read-gslr "):
        run = subprocess.run([binary] + shlex.split(lines[0][len("$ read-gslr ") :]), capture_output=True, text=True)
        got = (run.stdout + run.stderr).splitlines()
        assert got == lines[1:], f"{article}: transcript differs from the example's output:\n" + "\n".join(got)
        transcripts += 1
assert code and transcripts, f"{article}: found {code} code blocks and {transcripts} transcripts; expected both"
print(f"ci-example: {article}: {code} code blocks and {transcripts} transcripts match the example")
EOF

log=$(mktemp)
swift package generate-documentation --target GSLoRAFormat 2>&1 | tee "$log"
if grep -q 'warning:' "$log"; then fail "DocC printed warnings (above); fix the doc comments or the catalog"; fi
rm -f "$log"
echo "ci-example: the example and the GSLoRAFormat documentation are fine"

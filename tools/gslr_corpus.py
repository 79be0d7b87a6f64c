#!/usr/bin/env python3
"""Writes the .gslr conformance corpus: one file per rule of spec/FORMAT.md, each with the error a reader must give,
plus a few valid edge files a reader must accept, and the table of expected results (expected.json).

    python3 tools/gslr_corpus.py [OUT_DIR]      (default Tests/Fixtures/gslr-invalid; pure Python, no packages)

Each table entry: file, rule (spec section), error (the reference reader's FormatError case; null: valid), contains
(a phrase both readers' messages hold), verify_only (true: found only when the tensor CRCs are checked).
The output is deterministic: running the script again rewrites the same bytes.
"""
import json
import os
import struct
import sys
import zlib

MAGIC = b"GSLORA\x00\x1a"
ZERO_FP = "gslr1.1-sha256:" + "0" * 64


def enc(v):
    return json.dumps(v, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def crc(b):
    return f"{zlib.crc32(b) & 0xFFFFFFFF:08x}"


def align_up(x, a):
    return -(-x // a) * a


def layout(tensors, alignment=64):
    """(table, data) for [(name, dtype, shape, bytes)] by the placement rule."""
    table, data, off = [], b"", 0
    for i, (name, dt, shape, b) in enumerate(tensors):
        if i:
            off = align_up(table[-1]["offset"] + table[-1]["length"], alignment)
        data += b"\0" * (off - len(data)) + b
        table.append({"name": name, "dtype": dt, "shape": shape, "offset": off, "length": len(b), "crc32": crc(b)})
    return table, data


def build(header, data=b"", *, major=1, minor=1, bom=0x01020304, reserved=0, hcrc=None, alignment=64, pad=True):
    h = header if isinstance(header, bytes) else enc(header)
    pre = MAGIC + struct.pack("<HHIQII", major, minor, bom, len(h), zlib.crc32(h) if hcrc is None else hcrc, reserved)
    body = pre + h
    return body + (b"\0" * ((-len(body)) % alignment) if pad else b"") + data


F4 = struct.pack("<4f", 1.0, 2.0, 3.0, 4.0)


def tensors_file(extra=None, tensors=None):
    table, data = layout(tensors if tensors is not None else [("x", "F32", [4], F4)])
    h = {"alignment": 64, "kind": "tensors", "metadata": {}, "tensors": table}
    h.update(extra or {})
    return h, data


MODEL = {"family": "timm_vit", "image_size": 8, "patch_size": 4, "channels": 3, "width": 4, "depth": 1, "heads": 1,
         "head_dim": 4, "mlp_width": 8, "num_classes": 2, "head": {"kind": "linear"}, "attention_scale": 0.5,
         "layer_norm_eps": 1e-6, "qkv_bias": True, "pooling": "cls"}


def backbone(model_changes=None, names=("blocks.0.norm1.weight",), extra=None):
    m = json.loads(json.dumps(MODEL))
    for k, v in (model_changes or {}).items():
        if v is None:
            m.pop(k, None)
        else:
            m[k] = v
    table, data = layout([(n, "F32", [4], F4) for n in names])
    h = {"alignment": 64, "kind": "backbone", "metadata": {}, "model": m, "tensors": table}
    h.update(extra or {})
    return h, data


A = struct.pack("<8f", *[0.5] * 8)     # lora_A [2, 4]
B = struct.pack("<8f", *[0.25] * 8)    # lora_B [4, 2]


def adapter(changes=None, task_changes=None, groups=None, tensors=None):
    names = ["blocks.0.mlp.fc1.lora_A", "blocks.0.mlp.fc1.lora_B"]
    tl = tensors if tensors is not None else [(names[0], "F32", [2, 4], A), (names[1], "F32", [4, 2], B)]
    table, data = layout(tl)
    task = {"index": 1, "forget": [0], "retain": [1], "old": [], "settings": {}, "metrics": {"acc_r": 1.0}}
    for k, v in (task_changes or {}).items():
        if v is None:
            task.pop(k)
        else:
            task[k] = v
    a = {"rank": 2, "alpha": 4, "scaling": 2.0, "scaling_rule": "alpha/rank", "targets": ["mlp.fc1"], "grouping": "block",
         "groups": groups if groups is not None else [{"name": "blocks.0", "members": names, "norm": 1.5, "state": "kept"}],
         "task": task, "base_fingerprint": ZERO_FP}
    for k, v in (changes or {}).items():
        if v is None:
            a.pop(k)
        else:
            a[k] = v
    return {"alignment": 64, "adapter": a, "kind": "adapter", "metadata": {}, "tensors": table}, data


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "Tests", "Fixtures", "gslr-invalid")
    os.makedirs(out, exist_ok=True)
    cases = []

    def case(name, blob, rule, error, contains, verify_only=False):
        cases.append((name, blob, {"file": name + ".gslr", "rule": rule, "error": error, "contains": contains,
                                   "verify_only": verify_only}))

    def hcase(name, header_and_data, rule, error, contains, **kw):
        h, d = header_and_data
        case(name, build(h, d, **kw), rule, error, contains)

    good_h, good_d = tensors_file()
    good = build(good_h, good_d)

    # §2 preamble, in the order a reader checks it.
    # gslora-inspect reads other formats too, so for a file that is no .gslr at all it says "not a checkpoint".
    case("preamble-empty", b"", "§2.1 magic", "notGSLR", "not a")
    case("preamble-magic-prefix-1", MAGIC[:1], "§2.1 magic (truncated prefix)", "truncated", "truncated")
    case("preamble-magic-prefix-5", MAGIC[:5], "§2.1 magic (truncated prefix)", "truncated", "truncated")
    case("preamble-magic-prefix-7", MAGIC[:7], "§2.1 magic (truncated prefix)", "truncated", "truncated")
    case("preamble-wrong-magic", b"GSLORB\x00\x1a" + good[8:], "§2.1 magic", "notGSLR", "not a")
    case("preamble-short", good[:20], "§2.2 32-byte preamble", "truncated", "truncated")
    case("preamble-major-0", build(good_h, good_d, major=0), "§2.3 major version 0", "unsupportedVersion", "0.1")
    case("preamble-major-2", build(good_h, good_d, major=2), "§2.3 newer major version", "unsupportedVersion", "newer reader")
    case("preamble-byte-order-mark", build(good_h, good_d, bom=0x04030201), "§2.4 byte-order mark", "badPreamble", "byte-order mark")
    case("preamble-reserved", build(good_h, good_d, reserved=7), "§2.5 reserved word", "badPreamble", "reserved")
    big = bytearray(good)
    struct.pack_into("<Q", big, 16, (100 << 20) + 1)
    case("preamble-header-over-100MiB", bytes(big), "§2.6 / §3 header length", "limitExceeded", "header length")
    big = bytearray(good)
    struct.pack_into("<Q", big, 16, len(good))
    case("preamble-header-past-eof", bytes(big), "§2.6 header within the file", "truncated", "truncated")
    case("preamble-header-crc", build(good_h, good_d, hcrc=0x12345678), "§2.7 header CRC", "headerChecksum", "CRC32 mismatch")

    # §4 header JSON rules (whole header, ignored keys included).
    raw = enc(good_h)
    case("json-utf8-bom", build(b"\xef\xbb\xbf" + raw, good_d), "§4 no byte-order mark", "badHeader", "byte-order mark")
    for tag, bad in (("invalid-byte", b"\xff"), ("overlong", b"\xc0\xaf"), ("surrogate", b"\xed\xa0\x80"),
                     ("above-10ffff", b"\xf4\x90\x80\x80"), ("cut-sequence", b"\xe2\x82")):
        h = raw.replace(b'"metadata":{}', b'"metadata":{},"zz_unknown":"' + bad + b'"')
        case(f"json-utf8-{tag}-in-ignored-key", build(h, good_d), "§4 valid UTF-8 everywhere", "badHeader", "not valid UTF-8")
    h = raw.replace(b'"metadata":{}', b'"metadata":{},"zz_unknown":1e400')
    case("json-number-beyond-binary64", build(h, good_d), "§4 numbers within binary64", "badHeader", "beyond the range of a binary64")
    h = raw.replace(b'"metadata":{}', b'"metadata":{"x":-2e308}')
    case("json-negative-number-beyond-binary64", build(h, good_d), "§4 numbers within binary64", "badHeader", "beyond the range of a binary64")
    case("json-broken", build(raw[:-3], good_d), "§4 one JSON object", "badHeader", "not valid JSON")
    case("json-trailing-garbage", build(raw + b"x", good_d), "§4 one JSON object", "badHeader", "not valid JSON")
    h = raw.replace(b'"metadata":{}', b'"metadata":{"x":NaN}')
    case("json-nan", build(h, good_d), "§4 NaN is not JSON", "badHeader", "not valid JSON")
    case("json-top-level-array", build(b"[" + raw + b"]", good_d), "§4.0 top level is an object", "badHeader", "wrong type at top level")
    deep = b"[" * 65 + b"]" * 65
    case("json-depth-65", build(raw.replace(b'"metadata":{}', b'"metadata":{},"zz":' + deep), good_d), "§3 / §4 nesting depth",
         "limitExceeded", "nesting depth")
    case("json-duplicate-key", build(raw[:-1] + b',"kind":"tensors"}', good_d), "§4 no repeated key", "badHeader", "appears twice")
    case("json-duplicate-key-escaped", build(raw[:-1] + b',"\\u006bind":"tensors"}', good_d), "§4 no repeated key (after escapes)",
         "badHeader", "appears twice")

    # §4.0 top-level keys: required, types, closed lists.
    for k in ("kind", "alignment", "tensors"):
        h = dict(good_h)
        del h[k]
        hcase(f"top-missing-{k}", (h, good_d), "§4.0 required key", "badHeader", f"missing key '{k}'")
    hcase("top-kind-wrong-type", tensors_file({"kind": 5}), "§4.0 type", "badHeader", "wrong type at kind")
    hcase("top-kind-unknown", tensors_file({"kind": "weights"}), "§4.0 closed list", "badHeader", "bad value at kind")
    hcase("top-alignment-fraction", tensors_file({"alignment": 64.5}), "§4.0 integer", "badHeader", "alignment")
    case("top-alignment-written-64.0", build(raw.replace(b'"alignment":64', b'"alignment":64.0'), good_d), "§4.0 integers are JSON integers",
         "badHeader", "alignment")
    case("top-alignment-exponent", build(raw.replace(b'"alignment":64', b'"alignment":6.4e1'), good_d), "§4.0 integers are JSON integers",
         "badHeader", "alignment")
    hcase("top-alignment-32", tensors_file({"alignment": 32}), "§3 alignment", "badHeader", "alignment 32")
    hcase("top-alignment-96", tensors_file({"alignment": 96}), "§3 alignment", "badHeader", "alignment 96")
    hcase("top-metadata-array", tensors_file({"metadata": []}), "§4.0 type", "badHeader", "wrong type at metadata")
    hcase("top-metadata-null", tensors_file({"metadata": None}), "§4.0 null is not a value", "badHeader", "metadata")
    hcase("top-classes-numbers", tensors_file({"classes": [1, 2]}), "§4.0 type", "badHeader", "classes")
    hcase("top-tensors-object", tensors_file({"tensors": {}}), "§4.0 type", "badHeader", "wrong type at tensors")

    # §4.2 the table, in the order a reader checks each entry.
    def table_case(name, rule, error, contains, mutate, tensors=None):
        h, d = tensors_file(tensors=tensors)
        r = mutate(h, d)
        d = r if isinstance(r, bytes) else d
        case(name, build(h, d), rule, error, contains)

    table_case("table-name-empty", "§4.2.1 name", "badTensor", "empty name", lambda h, d: h["tensors"][0].update(name=""))
    table_case("table-name-1025-bytes", "§4.2.1 / §3 name length", "limitExceeded", "name length",
               lambda h, d: h["tensors"][0].update(name="n" * 1025))
    table_case("table-name-control", "§4.2.1 name", "badTensor", "control character", lambda h, d: h["tensors"][0].update(name="a\tb"))
    table_case("table-name-del", "§4.2.1 name", "badTensor", "control character", lambda h, d: h["tensors"][0].update(name="a\x7fb"))
    table_case("table-rank-9", "§4.2.2 / §3 rank", "limitExceeded", "rank", lambda h, d: h["tensors"][0].update(shape=[1] * 9))
    table_case("table-negative-dim", "§4.2.3 dimension", "badTensor", "negative dimension", lambda h, d: h["tensors"][0].update(shape=[-4]))
    table_case("table-size-overflow", "§4.2.4 / §3 overflow", "badTensor", "overflows",
               lambda h, d: h["tensors"][0].update(shape=[1 << 31, 1 << 31, 4]))
    table_case("table-length-mismatch", "§4.2.5 length", "badTensor", "byte length", lambda h, d: h["tensors"][0].update(length=12))
    table_case("table-duplicate-name", "§4.2.6 unique names", "duplicateName", "appears twice", lambda h, d: h["tensors"][1].update(name="x"),
               tensors=[("x", "F32", [4], F4), ("y", "F32", [4], F4)])
    table_case("table-negative-offset", "§4.2.7 offset", "badLayout", "negative", lambda h, d: h["tensors"][0].update(offset=-64))
    table_case("table-misaligned", "§4.2.8 alignment", "badLayout", "not a multiple of the alignment",
               lambda h, d: h["tensors"][1].update(offset=16), tensors=[("x", "F32", [4], F4), ("y", "F32", [4], F4)])
    table_case("table-overlap", "§4.2.9 overlap", "badLayout", "overlaps", lambda h, d: h["tensors"][1].update(offset=0),
               tensors=[("x", "F32", [4], F4), ("y", "F32", [4], F4)])
    def gap(h, d):
        h["tensors"][1]["offset"] = 128
        return d + b"\0" * 64
    table_case("table-gap", "§4.2.10 gap", "badLayout", "gap", gap, tensors=[("x", "F32", [4], F4), ("y", "F32", [4], F4)])
    table_case("table-beyond-eof", "§4.2.11 bounds", "badLayout", "beyond the end of the file", lambda h, d: d[:-4])
    table_case("table-trailing-bytes", "§4.2 nothing after the last tensor", "badLayout", "after the end of the last tensor",
               lambda h, d: d + b"\0")
    table_case("table-empty-last-tensor-unpadded", "§4.2 empty last tensor", "badLayout", "beyond the end of the file",
               lambda h, d: d[:16], tensors=[("x", "F32", [4], F4), ("e", "F32", [0, 3], b"")])
    h = {"alignment": 64, "kind": "tensors", "metadata": {}, "tensors": []}
    case("table-no-padding-before-data", build(h, pad=False), "§5 data section starts at D", "truncated", "truncated")
    table_case("table-dtype-unknown", "§4.2 closed dtype list", "badHeader", "dtype", lambda h, d: h["tensors"][0].update(dtype="F8"))
    table_case("table-crc-uppercase", "§4.2 crc32 spelling", "badHeader", "crc32", lambda h, d: h["tensors"][0].update(crc32="ABCDEF01"))
    table_case("table-shape-fraction", "§4.2 shape of integers", "badHeader", "shape", lambda h, d: h["tensors"][0].update(shape=[4.5]))
    table_case("table-offset-beyond-int64", "§3 integers fit int64", "badHeader", "offset",
               lambda h, d: h["tensors"][0].update(offset=1 << 63))
    table_case("table-missing-crc32", "§4.2 required key", "badHeader", "missing key 'crc32'", lambda h, d: h["tensors"][0].pop("crc32"))
    hd, dd = tensors_file()
    case("data-crc-mismatch", build(hd, dd[:-1] + b"\x01"), "§6 tensor CRC (on verify)", "crcMismatch", "CRC32 mismatch", verify_only=True)

    # §4.3 model.
    hcase("model-backbone-without-model", tensors_file({"kind": "backbone"}), "§4.0 backbone needs model", "badHeader", "needs a 'model'")
    hcase("model-missing-depth", backbone({"depth": None}), "§4.3 required key", "badHeader", "missing key 'depth'")
    hcase("model-missing-pooling", backbone({"pooling": None}), "§4.3 required key", "badHeader", "missing key 'pooling'")
    hcase("model-family-unknown", backbone({"family": "deit"}), "§4.3 closed list", "badHeader", "model.family")
    hcase("model-head-kind-unknown", backbone({"head": {"kind": "softmax"}}), "§4.3 closed list", "badHeader", "model.head.kind")
    hcase("model-pooling-mean", backbone({"pooling": "mean"}), "§4.3 closed list", "badHeader", "model.pooling")
    hcase("model-cosface-without-s", backbone({"head": {"kind": "cosface", "m": 0.35}}), "§4.3 head s/m required", "badHeader", "s and m")
    h, d = backbone()
    h["model"]["head"]["s"] = None
    hcase("model-head-s-null", (h, d), "§4.0 null is not a value", "badHeader", "model.head.s")
    hcase("model-image-not-multiple", backbone({"image_size": 10}), "§4.3 image_size", "badHeader", "not a multiple of patch_size")
    hcase("model-width-0", backbone({"width": 0}), "§4.3 integer range", "badHeader", "model.width")
    hcase("model-attention-scale-0", backbone({"attention_scale": 0}), "§4.3 positive", "badHeader", "finite and positive")
    hcase("model-qkv-bias-string", backbone({"qkv_bias": "yes"}), "§4.3 type", "badHeader", "wrong type at model.qkv_bias")
    hcase("model-classes-count", backbone(extra={"classes": ["a", "b", "c"]}), "§4.0 classes length", "badHeader", "class names")
    hcase("model-depth-below-blocks", backbone(names=("blocks.0.norm1.weight", "blocks.1.norm1.weight")), "§4.3 blocks < depth",
          "badHeader", "belongs to block 1")
    hcase("model-depth-below-blocks-face", backbone({"family": "face_vit"}, names=("transformer.layers.0.0.fn.norm.weight",
                                                                                  "transformer.layers.3.0.fn.norm.weight")),
          "§4.3 blocks < depth", "badHeader", "belongs to block 3")

    # §4.4 adapter.
    hcase("adapter-without-record", tensors_file({"kind": "adapter"}), "§4.0 adapter needs adapter", "badHeader", "needs an 'adapter' record")
    for k in ("settings", "metrics", "old", "index"):
        hcase(f"adapter-task-missing-{k}", adapter(task_changes={k: None}), "§4.4 required key", "badHeader", f"missing key '{k}'")
    hcase("adapter-missing-base-fingerprint", adapter({"base_fingerprint": None}), "§4.4 required key", "badHeader", "missing key 'base_fingerprint'")
    hcase("adapter-rank-0", adapter({"rank": 0, "scaling": 4.0}), "§4.4 rank", "badHeader", "adapter.rank")
    hcase("adapter-scaling-rule-unknown", adapter({"scaling_rule": "alpha*rank"}), "§4.4 closed list", "badHeader", "adapter.scaling_rule")
    hcase("adapter-scaling-not-alpha-over-rank", adapter({"scaling": 1.0}), "§4.4 scaling = alpha/rank", "badHeader", "adapter.scaling")
    hcase("adapter-scaling-not-alpha-over-sqrt-rank", adapter({"scaling_rule": "alpha/sqrt(rank)"}), "§4.4 scaling = alpha/sqrt(rank)", "badHeader", "adapter.scaling")
    hcase("adapter-grouping-layer", adapter({"grouping": "layer"}), "§4.4 closed list", "badHeader", "adapter.grouping")
    hcase("adapter-base-fingerprint-malformed", adapter({"base_fingerprint": "sha256:XYZ"}), "§4.4 / §7 fingerprint spelling",
          "badHeader", "adapter.base_fingerprint")
    hcase("adapter-base-fingerprint-unknown-scheme", adapter({"base_fingerprint": "md5:" + "0" * 64}), "§7 fingerprint schemes",
          "badHeader", "adapter.base_fingerprint")
    hcase("adapter-task-index-negative", adapter(task_changes={"index": -1}), "§4.4 task.index ≥ 0", "badHeader", "adapter.task.index")
    hcase("adapter-task-forget-negative", adapter(task_changes={"forget": [-2]}), "§4.4 classes ≥ 0", "badHeader", "adapter.task.forget")
    hcase("adapter-task-metrics-string", adapter(task_changes={"metrics": {"acc_r": "high"}}), "§4.4 metrics are numbers", "badHeader",
          "adapter.task.metrics")
    names = ["blocks.0.mlp.fc1.lora_A", "blocks.0.mlp.fc1.lora_B"]
    hcase("adapter-group-state-unknown", adapter(groups=[{"name": "g", "members": names, "norm": 1.0, "state": "frozen"}]),
          "§4.4 closed list", "badHeader", "state")
    hcase("adapter-group-norm-negative", adapter(groups=[{"name": "g", "members": names, "norm": -1.0, "state": "kept"}]),
          "§4.4 norm ≥ 0", "badHeader", "has norm")
    hcase("adapter-group-member-twice", adapter(groups=[{"name": "g", "members": names, "norm": 1.0, "state": "kept"},
                                                        {"name": "h", "members": names[:1], "norm": 1.0, "state": "kept"}]),
          "§4.4 one group per tensor", "badHeader", "member of two groups")
    hcase("adapter-kept-member-absent", adapter(groups=[{"name": "g", "members": names + ["blocks.0.mlp.fc2.lora_A"], "norm": 1.0,
                                                         "state": "kept"}]), "§4.4 kept members present", "badHeader", "not in the table")
    hcase("adapter-pruned-member-present", adapter(groups=[{"name": "g", "members": names, "norm": 1.0, "state": "pruned"}]),
          "§4.4 pruned members absent", "badHeader", "still in the table")

    # §4.5 merged.
    def merged(entry):
        return backbone(extra={"merged": [entry]})
    hcase("merged-fingerprint-malformed", merged({"task": 1, "adapter_fingerprint": "sha256:1234", "scale": 1}), "§4.5 fingerprint spelling",
          "badHeader", "merged[0].adapter_fingerprint")
    hcase("merged-task-negative", merged({"task": -1, "adapter_fingerprint": ZERO_FP, "scale": 1}), "§4.5 task ≥ 0", "badHeader", "merged[0].task")
    hcase("merged-missing-scale", merged({"task": 1, "adapter_fingerprint": ZERO_FP}), "§4.5 required key", "badHeader", "missing key 'scale'")

    # Valid files every reader must accept.
    case("valid-spec-example", build(good_h, good_d), "§11", None, "")
    case("valid-version-1.0", build(good_h, good_d, minor=0), "§8 any minor", None, "")
    case("valid-version-1.9", build(good_h, good_d, minor=9), "§8 any minor", None, "")
    h, d = tensors_file(tensors=[("x", "F32", [4], F4), ("e", "F32", [0, 3], b"")])
    case("valid-empty-last-tensor", build(h, d), "§4.2 empty last tensor", None, "")
    h, d = tensors_file(tensors=[])
    case("valid-no-tensors", build(h, d), "§4.2 no tensors", None, "")
    h, d = tensors_file({"zz_unknown": {"nested": [1, 2.5, "é"]}})
    h["tensors"][0]["zz_note"] = "ignored"
    case("valid-unknown-keys", build(h, d), "§8 unknown keys ignored", None, "")
    h, d = tensors_file()
    case("valid-tiny-number", build(enc(h).replace(b'"metadata":{}', b'"metadata":{"x":1e-400}'), d), "§4 underflow allowed", None, "")
    h, d = adapter({"base_fingerprint": "sha256:" + "0" * 64})
    case("valid-adapter-1.0-fingerprint", build(h, d, minor=0), "§7 1.0 scheme", None, "")
    h, d = adapter(groups=[{"name": "g", "members": names, "norm": 0.5, "state": "pruned"}], tensors=[])
    case("valid-adapter-fully-pruned", build(h, d), "§4.4 pruned groups", None, "")
    h, d = adapter(task_changes={"index": 0, "forget": [], "retain": [], "metrics": {}})
    case("valid-adapter-task-0", build(h, d), "§4.4 task.index 0", None, "")
    hcase("valid-backbone-cosface", backbone({"head": {"kind": "cosface", "s": 64, "m": 0.35}},
                                               extra={"merged": [{"task": 1, "adapter_fingerprint": ZERO_FP, "scale": 1}]}),
          "§4.3", None, "")

    for f in os.listdir(out):
        if f.endswith(".gslr"):
            os.unlink(os.path.join(out, f))
    table = []
    for name, blob, entry in cases:
        with open(os.path.join(out, entry["file"]), "wb") as f:
            f.write(blob)
        table.append(entry)
    with open(os.path.join(out, "expected.json"), "w") as f:
        json.dump({"spec": "spec/FORMAT.md 1.1", "generator": "tools/gslr_corpus.py", "files": table}, f, indent=1, ensure_ascii=False)
        f.write("\n")
    print(f"{len(table)} files ({sum(e['error'] is None for e in table)} valid) in {out}")


if __name__ == "__main__":
    main()

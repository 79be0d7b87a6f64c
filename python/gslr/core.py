"""The .gslr format (spec/FORMAT.md 1.2) in pure Python: read and check a file, verify its CRCs, write one.

Every refusal raises GSLRError with `kind`, one of the reference reader's error kinds (the cases of Swift's
FormatError): notGSLR, truncated, unsupportedVersion, badPreamble, headerChecksum, badHeader, limitExceeded,
badTensor, badLayout, duplicateName, crcMismatch. Checks run in the order the spec gives, so both readers refuse a
file with one fault for the same reason.
"""
import hashlib
import json
import math
import mmap
import os
import struct
import tempfile
import zlib

MAGIC = b"GSLORA\x00\x1a"
MAJOR, MINOR = 1, 2
BOM = 0x01020304
PREAMBLE = 32
MAX_HEADER = 100 << 20
MAX_DEPTH = 64
MAX_TENSORS = 1_000_000
MAX_RANK = 8
MAX_NAME = 1024
MIN_ALIGN, MAX_ALIGN = 64, 1 << 20
INT64_MAX = 2**63 - 1
DTYPE_SIZES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1}
KINDS = ("backbone", "adapter", "tensors")
FAMILIES = ("face_vit", "torchvision_vit", "timm_vit")
HEAD_KINDS = ("cosface", "arcface", "linear")
POOLINGS = ("cls", "avg")
GROUPINGS = ("block", "lora", "matrix")
SCALING_RULES = ("alpha/rank", "alpha/sqrt(rank)")
STATES = ("kept", "pruned")
PREFIX = "gslr1.1-sha256:"
TABLE_ONLY_PREFIX = "sha256:"
BLOCK_PREFIXES = {"face_vit": ("transformer.layers.", "blocks."), "torchvision_vit": ("encoder.layers.encoder_layer_", "blocks."),
                  "timm_vit": ("blocks.",)}


class GSLRError(Exception):
    """A file the spec calls invalid (or a value `save` cannot store). `kind` names the rule family."""

    def __init__(self, kind, path, message):
        super().__init__(f"{path}: {message}")
        self.kind = kind
        self.path = path


def align_up(x, a):
    return -(-x // a) * a


# ---------------------------------------------------------------------------------------------------------------
# Header pre-scan (§4): UTF-8 without BOM, depth, duplicate keys, numbers within binary64 — over the whole header.

def _first_invalid_utf8(b):
    try:
        b.decode("utf-8")  # Python's decoder is strict RFC 3629 (no overlongs, surrogates or > U+10FFFF)
        return None
    except UnicodeDecodeError as e:
        return e.start


def _unescape(raw):
    try:
        s = json.loads(b'"' + raw + b'"')
    except ValueError:
        return raw
    return s.encode("utf-8", "surrogatepass")


_NUM = frozenset(b"0123456789+-.eE")


def _scan(h, bad, limit):
    if h.startswith(b"\xef\xbb\xbf"):
        bad("the header starts with a UTF-8 byte-order mark; it must be UTF-8 without one")
    at = _first_invalid_utf8(h)
    if at is not None:
        bad(f"the header is not valid UTF-8 (byte {at} of the header)")
    stack = []  # [is_object, expect_key, keys]
    i, n = 0, len(h)
    while i < n:
        c = h[i]
        if c == 0x22:
            j = i + 1
            escaped = False
            while j < n:
                d = h[j]
                if d == 0x5C:
                    escaped = True
                    j += 2
                    continue
                if d == 0x22:
                    break
                j += 1
            if stack and stack[-1][0] and stack[-1][1]:
                raw = h[i + 1:min(j, n)]
                key = _unescape(raw) if escaped else raw
                if key in stack[-1][2]:
                    bad(f"key \"{key.decode('utf-8', 'replace')[:100]}\" appears twice in one JSON object")
                stack[-1][2].add(key)
                stack[-1][1] = False
            i = j + 1
            continue
        if c in (0x7B, 0x5B):
            stack.append([c == 0x7B, c == 0x7B, set()])
            if len(stack) > MAX_DEPTH:
                limit("header JSON nesting depth", len(stack), MAX_DEPTH)
        elif c in (0x7D, 0x5D):
            if stack:
                stack.pop()
        elif c == 0x2C:
            if stack and stack[-1][0]:
                stack[-1][1] = True
        elif c == 0x2D or 0x30 <= c <= 0x39:
            j = i + 1
            while j < n and h[j] in _NUM:
                j += 1
            tok = h[i:j].decode("ascii")
            try:
                v = float(tok)
            except ValueError:
                v = 0.0
            if math.isinf(v):
                bad(f"the number {tok[:40]} (byte {i} of the header) is beyond the range of a binary64")
            i = j
            continue
        i += 1


# ---------------------------------------------------------------------------------------------------------------
# Typed access to the parsed header (§4): required keys, types, closed lists.

class _Schema:
    def __init__(self, bad):
        self.bad = bad

    def get(self, obj, key, where, typ, required=True):
        if key not in obj:
            if required:
                self.bad(f"missing key '{key}' at {where or 'top level'}")
            return None
        return self.check(obj[key], f"{where}.{key}" if where else key, typ)

    def check(self, v, path, typ):
        ok = {
            "string": isinstance(v, str),
            "integer": isinstance(v, int) and not isinstance(v, bool),
            "number": isinstance(v, (int, float)) and not isinstance(v, bool),
            "boolean": isinstance(v, bool),
            "object": isinstance(v, dict),
            "array": isinstance(v, list),
        }[typ]
        if not ok:
            if typ == "integer" and isinstance(v, float):
                self.bad(f"bad value at {path}: {v!r} is not written as an integer")
            self.bad(f"wrong type at {path}: expected {typ}, found {_json_type(v)}")
        if typ == "integer" and not -2**63 <= v <= INT64_MAX:
            self.bad(f"bad value at {path}: {v} does not fit in a signed 64-bit integer")
        return v

    def enum(self, obj, key, where, values, required=True):
        v = self.get(obj, key, where, "string", required)
        if v is not None and v not in values:
            self.bad(f"bad value at {where + '.' if where else ''}{key}: \"{v[:40]}\" is not one of {sorted(values)}")
        return v

    def array_of(self, obj, key, where, typ, required=True):
        a = self.get(obj, key, where, "array", required)
        if a is not None:
            for i, v in enumerate(a):
                self.check(v, f"{where}.{key}[{i}]" if where else f"{key}[{i}]", typ)
        return a


def _json_type(v):
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, (int, float)):
        return "number"
    return {str: "string", list: "array", dict: "object"}.get(type(v), type(v).__name__)


def _parse_header(raw, bad, limit):
    _scan(raw, bad, limit)

    def const(name):
        bad(f"not valid JSON: {name} is not a JSON number")

    try:
        h = json.loads(raw.decode("utf-8"), parse_constant=const)
    except GSLRError:
        raise
    except (ValueError, RecursionError) as e:
        bad(f"not valid JSON: {e}")
    S = _Schema(bad)
    if not isinstance(h, dict):
        bad(f"wrong type at top level: expected object, found {_json_type(h)}")
    # The order of the reference decoder: kind, alignment, model, classes, adapter, merged, metadata, tensors.
    S.enum(h, "kind", "", KINDS)
    S.get(h, "alignment", "", "integer")
    if "model" in h:
        m = S.get(h, "model", "", "object")
        S.enum(m, "family", "model", FAMILIES)
        for k in ("image_size", "patch_size", "channels", "width", "depth", "heads", "head_dim", "mlp_width", "num_classes"):
            S.get(m, k, "model", "integer")
        hd = S.get(m, "head", "model", "object")
        S.enum(hd, "kind", "model.head", HEAD_KINDS)
        S.get(hd, "s", "model.head", "number", required=False)
        S.get(hd, "m", "model.head", "number", required=False)
        S.get(m, "attention_scale", "model", "number")
        S.get(m, "layer_norm_eps", "model", "number")
        S.get(m, "qkv_bias", "model", "boolean")
        S.get(m, "pooling", "model", "string")
    if "classes" in h:
        S.array_of(h, "classes", "", "string")
    if "adapter" in h:
        a = S.get(h, "adapter", "", "object")
        S.get(a, "rank", "adapter", "integer")
        S.get(a, "alpha", "adapter", "number")
        S.get(a, "scaling", "adapter", "number")
        S.get(a, "scaling_rule", "adapter", "string")
        S.array_of(a, "targets", "adapter", "string")
        S.get(a, "grouping", "adapter", "string")
        groups = S.array_of(a, "groups", "adapter", "object")
        for i, g in enumerate(groups):
            w = f"adapter.groups[{i}]"
            S.get(g, "name", w, "string")
            S.array_of(g, "members", w, "string")
            S.get(g, "norm", w, "number")
            S.enum(g, "state", w, STATES)
        t = S.get(a, "task", "adapter", "object")
        S.get(t, "index", "adapter.task", "integer")
        for k in ("forget", "retain", "old"):
            S.array_of(t, k, "adapter.task", "integer")
        S.get(t, "settings", "adapter.task", "object")
        metrics = S.get(t, "metrics", "adapter.task", "object")
        for k, v in metrics.items():
            S.check(v, f"adapter.task.metrics.{k}", "number")
        S.get(a, "base_fingerprint", "adapter", "string")
    if "merged" in h:
        for i, e in enumerate(S.array_of(h, "merged", "", "object")):
            S.get(e, "task", f"merged[{i}]", "integer")
            S.get(e, "adapter_fingerprint", f"merged[{i}]", "string")
            S.get(e, "scale", f"merged[{i}]", "number")
    if "metadata" in h:
        S.get(h, "metadata", "", "object")
    table = S.get(h, "tensors", "", "array")
    if len(table) > MAX_TENSORS:
        limit("tensor count", len(table), MAX_TENSORS)
    for i, t in enumerate(table):
        w = f"tensors[{i}]"
        S.check(t, w, "object")
        S.get(t, "name", w, "string")
        S.enum(t, "dtype", w, tuple(DTYPE_SIZES))
        S.array_of(t, "shape", w, "integer")
        S.get(t, "offset", w, "integer")
        S.get(t, "length", w, "integer")
        crc = S.get(t, "crc32", w, "string")
        if len(crc) != 8 or any(c not in "0123456789abcdef" for c in crc):
            bad(f"bad value at {w}.crc32: crc32 must be 8 lowercase hex digits, got \"{crc[:20]}\"")
    return h


def _is_fingerprint(s):
    for p in (PREFIX, TABLE_ONLY_PREFIX):
        if s.startswith(p):
            hx = s[len(p):]
            return len(hx) == 64 and all(c in "0123456789abcdef" for c in hx)
    return False


def _check_table(h, path, data_bytes):
    """§4.2 placement and §3 limits, then §4.3-4.5. Returns the data length (end of the last entry)."""
    def bad(m):
        raise GSLRError("badHeader", path, f"invalid header: {m}")

    def limit(what, v, lim):
        raise GSLRError("limitExceeded", path, f"{what} is {v}, above the format's limit of {lim}")

    def tensor(kind, name, m):
        raise GSLRError(kind, path, f"tensor '{name}': {m}")

    a = h["alignment"]
    if not (MIN_ALIGN <= a <= MAX_ALIGN and a & (a - 1) == 0):
        bad(f"alignment {a} is not a power of two in [{MIN_ALIGN}, {MAX_ALIGN}]")
    table = h["tensors"]
    seen = set()
    expected = 0
    for i, t in enumerate(table):
        name = t["name"]
        nb = name.encode("utf-8", "surrogatepass")
        if not nb:
            tensor("badTensor", f"#{i}", "empty name")
        if len(nb) > MAX_NAME:
            limit(f"name length of tensor #{i} in bytes", len(nb), MAX_NAME)
        if any(c < 0x20 or c == 0x7F for c in nb):
            tensor("badTensor", repr(name), "name contains a control character")
        shape = t["shape"]
        if len(shape) > MAX_RANK:
            limit(f"rank of tensor '{name}'", len(shape), MAX_RANK)
        neg = [d for d in shape if d < 0]
        if neg:
            tensor("badTensor", name, f"negative dimension {neg[0]} in shape {shape}")
        n = DTYPE_SIZES[t["dtype"]]
        for d in shape:
            n *= d
            if n > INT64_MAX:
                tensor("badTensor", name, f"shape {shape} × {t['dtype']} overflows 64-bit size arithmetic")
        if t["length"] != n:
            tensor("badTensor", name, f"byte length {t['length']} but shape {shape} × {t['dtype']} needs {n}")
        if nb in seen:
            raise GSLRError("duplicateName", path, f"tensor name '{name}' appears twice")
        seen.add(nb)
        off = t["offset"]
        if off < 0:
            tensor("badLayout", name, f"offset {off} is negative")
        if off % a:
            tensor("badLayout", name, f"offset {off} is not a multiple of the alignment {a}")
        if off < expected:
            tensor("badLayout", name, f"offset {off} overlaps the previous tensor, which ends at {expected}")
        if off > expected:
            tensor("badLayout", name, f"offset {off} leaves a gap: the previous tensor's padded end is {expected}")
        end = off + n
        if data_bytes is not None and end > data_bytes:
            tensor("badLayout", name, f"bytes {off}..<{end} of the data section are beyond the end of the file (data section has {data_bytes} bytes)")
        if end > INT64_MAX or align_up(end, a) > INT64_MAX:
            tensor("badTensor", name, "offset + length overflows")
        expected = end if i == len(table) - 1 else align_up(end, a)
    _check_kind(h, bad)
    return expected


def _check_kind(h, bad):
    m = h.get("model")
    names = [t["name"] for t in h["tensors"]]
    if m is not None:
        for k in ("image_size", "patch_size", "channels", "width", "depth", "heads", "head_dim", "mlp_width", "num_classes"):
            if not 1 <= m[k] <= 1 << 20:
                bad(f"model.{k} is {m[k]}, outside 1...{1 << 20}")
        if m["image_size"] % m["patch_size"]:
            bad(f"model.image_size {m['image_size']} is not a multiple of patch_size {m['patch_size']}")
        if not (m["attention_scale"] > 0 and m["layer_norm_eps"] > 0):
            bad("model.attention_scale and model.layer_norm_eps must be finite and positive")
        if m["pooling"] not in POOLINGS:
            bad(f"model.pooling \"{m['pooling'][:40]}\" is not one of {sorted(POOLINGS)}")
        hd = m["head"]
        if hd["kind"] != "linear" and ("s" not in hd or "m" not in hd):
            bad(f"model.head of kind {hd['kind']} needs finite numbers s and m")
        if "classes" in h and len(h["classes"]) != m["num_classes"]:
            bad(f"{len(h['classes'])} class names for a model with {m['num_classes']} classes")
        if h["kind"] == "backbone":
            top = None
            for nm in names:
                for p in BLOCK_PREFIXES[m["family"]]:
                    if nm.startswith(p):
                        rest = nm[len(p):]
                        k = 0
                        while k < len(rest) and rest[k] in "0123456789":
                            k += 1
                        if k and rest[k:k + 1] == ".":
                            b = int(rest[:k])
                            if top is None or b > top[1]:
                                top = (nm, b)
            if top and top[1] >= m["depth"]:
                bad(f"tensor '{top[0]}' belongs to block {top[1]}, but model.depth is {m['depth']} (blocks 0...{m['depth'] - 1}); the config does not describe these weights")
    for i, e in enumerate(h.get("merged") or []):
        if e["task"] < 0:
            bad(f"merged[{i}].task is {e['task']}; task indices are ≥ 0")
        if not _is_fingerprint(e["adapter_fingerprint"]):
            bad(f"merged[{i}].adapter_fingerprint \"{e['adapter_fingerprint'][:80]}\" is not a fingerprint")
    kind = h["kind"]
    if kind == "backbone" and m is None:
        bad("a backbone file needs a 'model' config")
    if kind == "adapter":
        a = h.get("adapter")
        if a is None:
            bad("an adapter file needs an 'adapter' record")
        if not 1 <= a["rank"] <= 1 << 16:
            bad(f"adapter.rank {a['rank']} is outside 1...65536")
        if a["scaling_rule"] not in SCALING_RULES:
            bad(f"adapter.scaling_rule \"{a['scaling_rule'][:40]}\" is not one of {sorted(SCALING_RULES)}")
        rs = a["scaling_rule"] == "alpha/sqrt(rank)"
        expected = float(a["alpha"]) / (math.sqrt(a["rank"]) if rs else a["rank"])
        if float(a["scaling"]) != expected:
            bad(f"adapter.scaling {a['scaling']} is not {a['scaling_rule']} = {expected} for alpha {a['alpha']} and rank {a['rank']}")
        if a["grouping"] not in GROUPINGS:
            bad(f"adapter.grouping \"{a['grouping'][:40]}\" is not one of {sorted(GROUPINGS)}")
        if not _is_fingerprint(a["base_fingerprint"]):
            bad(f"adapter.base_fingerprint \"{a['base_fingerprint'][:80]}\" is not a fingerprint")
        t = a["task"]
        if t["index"] < 0:
            bad(f"adapter.task.index is {t['index']}; it is ≥ 1 in a chain, 0 outside one")
        for k in ("forget", "retain", "old"):
            if any(c < 0 for c in t[k]):
                bad(f"adapter.task.{k} holds a class < 0; class indices are ≥ 0")
        present = {n.encode("utf-8", "surrogatepass") for n in names}
        seen = set()
        for g in a["groups"]:
            if not (math.isfinite(g["norm"]) and g["norm"] >= 0):
                bad(f"group '{g['name']}' has norm {g['norm']}")
            for mb in g["members"]:
                k = mb.encode("utf-8", "surrogatepass")
                if k in seen:
                    bad(f"tensor '{mb}' is a member of two groups")
                seen.add(k)
                if g["state"] == "kept" and k not in present:
                    bad(f"kept group '{g['name']}' lists tensor '{mb}', which is not in the table")
                if g["state"] == "pruned" and k in present:
                    bad(f"pruned group '{g['name']}' lists tensor '{mb}', which is still in the table")


# ---------------------------------------------------------------------------------------------------------------
# Reading.

class GSLRFile:
    """A checked .gslr: `header` (dict), `major`, `minor`, `data_start`, the raw `buffer`, and tensors by name."""

    def __init__(self, path, header, major, minor, data_start, buffer):
        self.path, self.header, self.major, self.minor = path, header, major, minor
        self.data_start, self.buffer = data_start, buffer

    @property
    def tensors(self):
        return self.header["tensors"]

    def raw(self, name):
        for t in self.tensors:
            if t["name"] == name:
                return bytes(self.buffer[self.data_start + t["offset"]:self.data_start + t["offset"] + t["length"]])
        raise KeyError(name)

    def verify(self):
        """Recomputes every tensor CRC; raises crcMismatch at the first that differs."""
        for t in self.tensors:
            s = self.data_start + t["offset"]
            crc = zlib.crc32(self.buffer[s:s + t["length"]]) & 0xFFFFFFFF
            if crc != int(t["crc32"], 16):
                raise GSLRError("crcMismatch", self.path,
                                f"tensor '{t['name']}': data CRC32 mismatch (stored {t['crc32']}, computed {crc:08x})")

    @property
    def fingerprint(self):
        return fingerprint(self.header)


def open_file(path):
    """Reads and checks `path` (everything but the tensor CRCs). Returns a GSLRFile."""
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        buf = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) if size else b""
    if size == 0:
        raise GSLRError("notGSLR", path, "not a .gslr file (the file is empty)")
    if size < 8:
        if buf[:size] == MAGIC[:size]:
            raise GSLRError("truncated", path, f"file is truncated: the 32-byte preamble needs 32 bytes but only {size} are there")
        raise GSLRError("notGSLR", path, "not a .gslr file (wrong magic bytes)")
    if buf[:8] != MAGIC:
        raise GSLRError("notGSLR", path, "not a .gslr file (wrong magic bytes)")
    if size < PREAMBLE:
        raise GSLRError("truncated", path, f"file is truncated: the 32-byte preamble needs 32 bytes but only {size} are there")
    major, minor, bom, hlen, hcrc, reserved = struct.unpack_from("<HHIQII", buf, 8)
    if major < MAJOR:
        raise GSLRError("unsupportedVersion", path, f"the preamble says format version {major}.{minor}, but no .gslr version below {MAJOR}.0 exists")
    if major > MAJOR:
        raise GSLRError("unsupportedVersion", path, f"written by format version {major}.{minor}; this reader reads major version {MAJOR} only. A newer reader is needed")
    if bom != BOM:
        raise GSLRError("badPreamble", path, f"corrupt preamble: byte-order mark is 0x{bom:x}, expected 0x1020304 stored little-endian")
    if reserved:
        raise GSLRError("badPreamble", path, "corrupt preamble: reserved word at byte 28 is not zero")
    if hlen > MAX_HEADER:
        raise GSLRError("limitExceeded", path, f"header length is {hlen}, above the format's limit of {MAX_HEADER}")
    if PREAMBLE + hlen > size:
        raise GSLRError("truncated", path, f"file is truncated: the header of {hlen} bytes needs {PREAMBLE + hlen} bytes but only {size} are there")
    raw = bytes(buf[PREAMBLE:PREAMBLE + hlen])
    crc = zlib.crc32(raw) & 0xFFFFFFFF
    if crc != hcrc:
        raise GSLRError("headerChecksum", path, f"header CRC32 mismatch (stored {hcrc:08x}, computed {crc:08x})")

    def bad(m):
        raise GSLRError("badHeader", path, f"invalid header: {m}")

    def limit(what, v, lim):
        raise GSLRError("limitExceeded", path, f"{what} is {v}, above the format's limit of {lim}")

    h = _parse_header(raw, bad, limit)
    a = h["alignment"]
    if not (MIN_ALIGN <= a <= MAX_ALIGN and a & (a - 1) == 0):
        bad(f"alignment {a} is not a power of two in [{MIN_ALIGN}, {MAX_ALIGN}]")
    start = align_up(PREAMBLE + hlen, a)
    if start > size:
        raise GSLRError("truncated", path, f"file is truncated: the padding before the data section needs {start} bytes but only {size} are there")
    end = _check_table(h, path, size - start)
    if start + end != size:
        last = h["tensors"][-1]["name"] if h["tensors"] else "(none)"
        raise GSLRError("badLayout", path, f"tensor '{last}': the file has {size - start - end} bytes after the end of the last tensor; a .gslr ends exactly there")
    return GSLRFile(path, h, major, minor, start, buf)


def verify(path):
    """Checks everything the spec requires, tensor CRCs included. Returns the GSLRFile; raises GSLRError."""
    f = open_file(path)
    f.verify()
    return f


_NUMPY_DTYPES = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "I64": "<i8", "I32": "<i4", "I16": "<i2", "I8": "i1", "U8": "u1", "BOOL": "u1"}


def load(path, framework="numpy", verify_crc=True):
    """{name: array} for every tensor. framework "numpy" (default) or "torch". BF16 becomes float32 in numpy (exact) and
    torch.bfloat16 in torch; BOOL becomes bool (nonzero is true)."""
    f = verify(path) if verify_crc else open_file(path)
    import numpy as np
    out = {}
    for t in f.tensors:
        s = f.data_start + t["offset"]
        b = f.buffer[s:s + t["length"]]
        if t["dtype"] == "BF16":
            a = (np.frombuffer(b, dtype="<u2").astype(np.uint32) << 16).view(np.float32)
        else:
            a = np.frombuffer(b, dtype=_NUMPY_DTYPES[t["dtype"]]).copy()
            if t["dtype"] == "BOOL":
                a = a != 0
        a = a.reshape(t["shape"])
        if framework == "torch":
            import torch
            a = torch.from_numpy(np.ascontiguousarray(a))
            if t["dtype"] == "BF16":
                a = a.to(torch.bfloat16)
        out[t["name"]] = a
    return out


# ---------------------------------------------------------------------------------------------------------------
# Fingerprint (§7).

def _bits(x):
    return struct.pack(">d", float(x)).hex()


def binding_line(header):
    kind = header["kind"]
    if kind == "backbone":
        m = header["model"]
        hd = m["head"]
        f = ["#model", m["family"]] + [str(m[k]) for k in ("image_size", "patch_size", "channels", "width", "depth", "heads",
                                                              "head_dim", "mlp_width", "num_classes")]
        f += [hd["kind"], _bits(hd["s"]) if "s" in hd else "-", _bits(hd["m"]) if "m" in hd else "-",
              _bits(m["attention_scale"]), _bits(m["layer_norm_eps"]), "1" if m["qkv_bias"] else "0", m["pooling"]]
        return "\t".join(f) + "\n"
    if kind == "adapter":
        a = header["adapter"]
        return "#adapter\t" + _bits(a["scaling"]) + "\t" + a["base_fingerprint"] + "\n"
    return ""


def _table_text(table):
    lines = sorted(((t["name"].encode("utf-8", "surrogatepass"),
                     f"{t['name']}\t{t['dtype']}\t{','.join(str(d) for d in t['shape'])}\t{t['crc32']}\n") for t in table))
    return "".join(line for _, line in lines)


def fingerprint(header, scheme=PREFIX):
    """The fingerprint of a header's table and binding; scheme TABLE_ONLY_PREFIX gives the 1.0 (table-only) value."""
    text = _table_text(header["tensors"]) if scheme == TABLE_ONLY_PREFIX else binding_line(header) + _table_text(header["tensors"])
    return scheme + hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def matches(stored, header):
    """Whether a stored fingerprint names these weights, computed in the scheme it is spelled in."""
    return stored == fingerprint(header, TABLE_ONLY_PREFIX if stored.startswith(TABLE_ONLY_PREFIX) else PREFIX)


# ---------------------------------------------------------------------------------------------------------------
# Writing (§9): the reference writer's bytes — keys sorted, no whitespace, floats as the shortest round-trip
# decimal with a trailing ".0" dropped (what Swift's JSONEncoder writes).

def _encode(v):
    if v is None:
        return "null"
    if v is True:
        return "true"
    if v is False:
        return "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if not math.isfinite(v):
            raise ValueError("NaN and infinity are not JSON numbers")
        r = repr(v)
        return r[:-2] if r.endswith(".0") else r
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)
    if isinstance(v, (list, tuple)):
        return "[" + ",".join(_encode(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ",".join(json.dumps(k, ensure_ascii=False) + ":" + _encode(v[k]) for k in sorted(v)) + "}"
    raise TypeError(f"cannot store a {type(v).__name__} in the header")


def _as_bytes(value):
    """(dtype, shape, little-endian bytes) of a numpy array, a torch tensor or a (dtype, shape, bytes) triple."""
    if isinstance(value, tuple) and len(value) == 3:
        dt, shape, data = value
        return dt, list(shape), bytes(data)
    mod = type(value).__module__
    if mod.startswith("torch"):
        import torch
        t = value.detach().cpu().contiguous()
        if t.dtype == torch.bfloat16:
            return "BF16", list(t.shape), t.view(torch.int16).numpy().astype("<i2").tobytes()
        value = t.numpy()
    import numpy as np
    a = np.asarray(value)
    a = np.ascontiguousarray(a).reshape(a.shape)  # ascontiguousarray alone turns a 0-d array into shape [1]
    names = {np.dtype("float64"): "F64", np.dtype("float32"): "F32", np.dtype("float16"): "F16", np.dtype("int64"): "I64",
             np.dtype("int32"): "I32", np.dtype("int16"): "I16", np.dtype("int8"): "I8", np.dtype("uint8"): "U8",
             np.dtype("bool"): "BOOL"}
    dt = names.get(a.dtype.newbyteorder("=") if a.dtype.byteorder not in "=|" else a.dtype)
    if dt is None:
        raise GSLRError("invalidInput", "(output)", f"dtype {a.dtype} has no .gslr dtype")
    return dt, list(a.shape), a.astype(_NUMPY_DTYPES[dt] if dt != "BOOL" else "u1").tobytes()


def save(path, tensors, kind="tensors", model=None, adapter=None, classes=None, merged=None, metadata=None, alignment=64):
    """Writes `tensors` ({name: array} in order, or a list of (name, array)) atomically. Arrays may be numpy arrays,
    torch tensors or (DTYPE, shape, bytes) triples. The result is checked as a reader would check it before the
    file is renamed into place. Returns the fingerprint."""
    items = list(tensors.items()) if isinstance(tensors, dict) else list(tensors)
    header = {"kind": kind, "alignment": alignment, "metadata": metadata or {}}
    for k, v in (("model", model), ("adapter", adapter), ("classes", classes), ("merged", merged)):
        if v is not None:
            header[k] = v
    table, blobs, off = [], [], 0
    for i, (name, value) in enumerate(items):
        dt, shape, data = _as_bytes(value)
        if i:
            off = align_up(table[-1]["offset"] + table[-1]["length"], alignment)
        table.append({"name": name, "dtype": dt, "shape": shape, "offset": off, "length": len(data),
                      "crc32": f"{zlib.crc32(data) & 0xFFFFFFFF:08x}"})
        blobs.append(data)
    header["tensors"] = table
    hb = _encode(header).encode("utf-8")
    # Check the header as a reader would (schema and placement), against the data length it describes.
    def bad(m):
        raise GSLRError("invalidInput", path, f"cannot write: {m}")

    def limit(what, v, lim):
        raise GSLRError("invalidInput", path, f"cannot write: {what} is {v}, above the format's limit of {lim}")

    checked = _parse_header(hb, bad, limit)
    try:
        _check_table(checked, path, None)
    except GSLRError as e:
        raise GSLRError("invalidInput", path, f"cannot write: {e}") from None
    if len(hb) > MAX_HEADER:
        bad(f"header would be {len(hb)} bytes, above the {MAX_HEADER}-byte limit")
    pre = MAGIC + struct.pack("<HHIQII", MAJOR, MINOR, BOM, len(hb), zlib.crc32(hb) & 0xFFFFFFFF, 0)
    start = align_up(PREAMBLE + len(hb), alignment)
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".tmp-", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(pre + hb + b"\0" * (start - PREAMBLE - len(hb)))
            pos = start
            for t, data in zip(table, blobs):
                f.write(b"\0" * (start + t["offset"] - pos))
                f.write(data)
                pos = start + t["offset"] + len(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return fingerprint(header)

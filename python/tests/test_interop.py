"""Files the Swift side writes (converted fixtures, an adapter, a merge, a prune) are read identically by this
package — table, fingerprint, groups, norms, merged list, tensor values — and the package's writer gives the Swift
writer's bytes for the same tensors and header, accepted by `gslora-inspect --verify`."""
import hashlib
import json
import subprocess

import numpy as np
import pytest

import gslr


def run(bindir, tool, *args):
    r = subprocess.run([str(bindir / tool), *map(str, args)], capture_output=True, text=True)
    assert r.returncode == 0, f"{tool} {' '.join(map(str, args))}: {r.stderr}"
    return r.stdout


@pytest.fixture(scope="module")
def swift_files(bindir, fixtures, tmp_path_factory):
    d = tmp_path_factory.mktemp("swift")
    run(bindir, "gslora-convert", fixtures / "face_vit_tiny.pth", "-o", d / "face.gslr", "--adapter-out", d / "face.lora.gslr", "--heads", "4")
    run(bindir, "gslora-convert", fixtures / "torchvision_vit_tiny.pth", "-o", d / "torchvision.gslr", "--heads", "2")
    run(bindir, "gslora-convert", fixtures / "timm_vit_tiny.pth", "-o", d / "timm.gslr")
    run(bindir, "gslora-convert", fixtures / "dtypes.pth", "-o", d / "dtypes.gslr", "--raw")
    run(bindir, "gslora-convert", fixtures / "legacy.pth", "-o", d / "legacy.gslr", "--raw")
    run(bindir, "gslora-merge", d / "face.gslr", d / "face.lora.gslr", "-o", d / "face.merged.gslr")
    run(bindir, "gslora-prune", d / "face.lora.gslr", "-o", d / "face.pruned.gslr", "--keep", "1")
    files = sorted(d.glob("*.gslr"))
    assert len(files) == 8
    return files


def inspect(bindir, path):
    out = json.loads(run(bindir, "gslora-inspect", "--json", "--tensors", "--verify", path))
    return out[0] if isinstance(out, list) else out


def test_swift_files_read_identically(bindir, swift_files):
    for p in swift_files:
        f = gslr.verify(p)
        s = inspect(bindir, p)
        assert s["kind"] == f.header["kind"], p
        assert s["fingerprint"] == f.fingerprint, p
        cols = ("name", "dtype", "shape", "offset", "length", "crc32")
        assert [{k: t[k] for k in cols} for t in s["tensors"]] == [{k: t[k] for k in cols} for t in f.tensors], p
        if "adapter" in f.header:
            assert s["adapter"]["groups"] == f.header["adapter"]["groups"], p
            assert s["adapter"]["base_fingerprint"] == f.header["adapter"]["base_fingerprint"], p
        assert s.get("merged") == f.header.get("merged"), p
        assert s.get("model") == f.header.get("model"), p
        print(f"read identically: {p.name} ({len(f.tensors)} tensors, {f.fingerprint})")


def test_chain_binding(swift_files):
    by = {p.name: gslr.verify(p) for p in swift_files}
    base, lora, merged, pruned = by["face.gslr"], by["face.lora.gslr"], by["face.merged.gslr"], by["face.pruned.gslr"]
    assert lora.header["adapter"]["base_fingerprint"] == base.fingerprint
    assert merged.header["merged"] == [{"task": 0, "adapter_fingerprint": lora.fingerprint, "scale": 1}]
    assert pruned.header["adapter"]["base_fingerprint"] == base.fingerprint
    states = sorted(g["state"] for g in pruned.header["adapter"]["groups"])
    assert states == ["kept", "pruned"]


def test_values_match_pytorch_sidecar(fixtures, swift_files):
    """dtypes.pth converted --raw keeps the checkpoint's names: each tensor's element bytes hash to the SHA-256
    PyTorch recorded in dtypes.expected.json."""
    side = json.loads((fixtures / "dtypes.expected.json").read_text())
    want = {t["key"]: t["sha256"] for t in side["tensors"]}
    assert want, "dtypes.expected.json lists no tensors"
    f = gslr.verify(next(p for p in swift_files if p.name == "dtypes.gslr"))
    arrays = gslr.load(f.path)
    checked = 0
    for t in f.tensors:
        if t["name"] in want:
            assert hashlib.sha256(f.raw(t["name"])).hexdigest() == want[t["name"]], t["name"]
            if t["dtype"] not in ("BF16", "BOOL"):
                assert arrays[t["name"]].tobytes() == f.raw(t["name"]), t["name"]
            checked += 1
    assert checked >= 10, f"only {checked} tensors matched the sidecar's names"
    print(f"dtypes: {checked} tensors match PyTorch's SHA-256")


def test_python_writer_gives_swift_bytes(bindir, swift_files, tmp_path):
    for p in swift_files:
        f = gslr.verify(p)
        h = f.header
        tensors = [(t["name"], (t["dtype"], t["shape"], f.raw(t["name"]))) for t in f.tensors]
        out = tmp_path / p.name
        fp = gslr.save(out, tensors, kind=h["kind"], model=h.get("model"), adapter=h.get("adapter"), classes=h.get("classes"),
                       merged=h.get("merged"), metadata=h.get("metadata"), alignment=h["alignment"])
        assert out.read_bytes() == p.read_bytes(), f"{p.name}: Python's bytes differ from the Swift writer's"
        assert fp == f.fingerprint
        assert inspect(bindir, out)["fingerprint"] == fp
        print(f"byte-identical: {p.name}")


def test_python_file_accepted_by_inspect(bindir, tmp_path):
    p = tmp_path / "py.gslr"
    fp = gslr.save(p, {"a": np.arange(12, dtype=np.float32).reshape(3, 4), "b": np.array([1, 2], dtype=np.int64),
                       "e": np.zeros((0,), dtype=np.float16)}, metadata={"note": "é/ü", "x": 0.1, "n": 3})
    s = inspect(bindir, p)
    assert s["fingerprint"] == fp and [t["name"] for t in s["tensors"]] == ["a", "b", "e"]

"""The package on its own: the spec's example, round trips, fingerprints, refusals of save."""
import struct
import zlib

import numpy as np
import pytest

import gslr


def test_spec_example(tmp_path):
    p = tmp_path / "x.gslr"
    fp = gslr.save(p, {"x": np.array([1.0, 2.0], dtype=np.float32)})
    b = p.read_bytes()
    assert len(b) == 200
    assert b[:16] == bytes.fromhex("47534c4f5241001a0100020004030201")
    assert struct.unpack_from("<QI", b, 16) == (139, 0x3493463B)
    assert fp == "gslr1.1-sha256:280e827e625762f3c5c75d5d988356cf5e3ca0652aec10855a0a5a0b7fd678af"
    assert gslr.verify(p).fingerprint == fp




def test_round_trip_dtypes(tmp_path):
    arrays = {
        "f64": np.arange(6, dtype=np.float64).reshape(2, 3) / 7,
        "f32": np.array([[np.nan, -0.0], [np.inf, 1e-45]], dtype=np.float32),
        "f16": np.arange(5, dtype=np.float16),
        "i64": np.array([-(2**63), 2**63 - 1], dtype=np.int64),
        "i32": np.array([-5, 7], dtype=np.int32),
        "i16": np.array([-3], dtype=np.int16),
        "i8": np.array([-128, 127], dtype=np.int8),
        "u8": np.array([0, 255], dtype=np.uint8),
        "bool": np.array([True, False, True]),
        "scalar": np.array(3.5, dtype=np.float32),
        "empty": np.zeros((0, 3), dtype=np.float32),
        "bf16": ("BF16", [2], struct.pack("<2H", 0x3F80, 0xC000)),
        "last_empty": np.zeros((4, 0), dtype=np.int8),
    }
    p = tmp_path / "all.gslr"
    gslr.save(p, arrays)
    back = gslr.load(p)
    for k, v in arrays.items():
        if k == "bf16":
            np.testing.assert_array_equal(back[k], np.array([1.0, -2.0], dtype=np.float32))
            continue
        assert back[k].dtype == v.dtype and back[k].shape == v.shape, k
        np.testing.assert_array_equal(back[k], v)
    # The empty last tensor: the file ends at its aligned offset, padding included.
    f = gslr.verify(p)
    last = f.tensors[-1]
    assert p.stat().st_size == f.data_start + last["offset"] and last["offset"] % 64 == 0


def test_torch_load_and_save(tmp_path):
    torch = pytest.importorskip("torch")
    t = {"w": torch.randn(3, 4), "h": torch.randn(2).to(torch.bfloat16)}
    p = tmp_path / "t.gslr"
    gslr.save(p, t)
    back = gslr.load(p, framework="torch")
    assert torch.equal(back["w"], t["w"]) and back["h"].dtype == torch.bfloat16 and torch.equal(back["h"], t["h"])


def test_fingerprint_binds_config_and_scaling(tmp_path):
    model = {"family": "timm_vit", "image_size": 8, "patch_size": 4, "channels": 3, "width": 4, "depth": 1, "heads": 1,
             "head_dim": 4, "mlp_width": 8, "num_classes": 2, "head": {"kind": "linear"}, "attention_scale": 0.5,
             "layer_norm_eps": 1e-6, "qkv_bias": True, "pooling": "cls"}
    w = {"blocks.0.norm1.weight": np.ones(4, dtype=np.float32)}
    a = gslr.save(tmp_path / "a.gslr", w, kind="backbone", model=model)
    b = gslr.save(tmp_path / "b.gslr", w, kind="backbone", model=dict(model, attention_scale=0.25))
    assert a != b
    # Two fully pruned adapters of different bases differ.
    def adapter(base):
        return {"rank": 1, "alpha": 1, "scaling": 1.0, "scaling_rule": "alpha/rank", "targets": ["mlp.fc1"], "grouping": "block",
                "groups": [{"name": "g", "members": ["blocks.0.mlp.fc1.lora_A"], "norm": 0.0, "state": "pruned"}],
                "task": {"index": 1, "forget": [0], "retain": [1], "old": [], "settings": {}, "metrics": {}},
                "base_fingerprint": base}
    x = gslr.save(tmp_path / "x.gslr", {}, kind="adapter", adapter=adapter(a))
    y = gslr.save(tmp_path / "y.gslr", {}, kind="adapter", adapter=adapter(b))
    assert x != y
    assert gslr.matches(a, gslr.verify(tmp_path / "a.gslr").header)
    assert gslr.matches(gslr.fingerprint(gslr.verify(tmp_path / "a.gslr").header, gslr.TABLE_ONLY_PREFIX),
                        gslr.verify(tmp_path / "a.gslr").header)


@pytest.mark.parametrize("tensors,kw,why", [
    ({"": np.zeros(1, np.float32)}, {}, "empty name"),
    ({"x": np.zeros(1, np.float32)}, {"kind": "backbone"}, "needs a 'model'"),
    ({"x": np.zeros(1, np.complex64)}, {}, "no .gslr dtype"),
    ({"x": np.zeros(1, np.float32)}, {"metadata": {"v": float("nan")}}, "NaN"),
])
def test_save_refuses_what_a_reader_would(tmp_path, tensors, kw, why):
    with pytest.raises((gslr.GSLRError, ValueError)) as e:
        gslr.save(tmp_path / "bad.gslr", tensors, **kw)
    assert why in str(e.value)
    assert not (tmp_path / "bad.gslr").exists() and not list(tmp_path.glob(".bad.gslr.tmp-*"))


def test_header_crc_is_zlib(tmp_path):
    p = tmp_path / "c.gslr"
    gslr.save(p, {"x": np.zeros(2, np.float32)})
    b = p.read_bytes()
    (h,) = struct.unpack_from("<Q", b, 16)
    assert struct.unpack_from("<I", b, 24)[0] == zlib.crc32(b[32:32 + h])

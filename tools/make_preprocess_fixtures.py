#!/usr/bin/env python3
"""Writes Tests/Fixtures/preprocess/: images, small random-init ViTs with their family's real data config, and the
logits that timm's / torchvision's own eval pipeline + model give for each image; plus Pillow resize cases.

Pinned: torch 2.15.0, torchvision 0.29.2, timm 1.0.31, Pillow 13.0.0, numpy (any), safetensors (any).
Run from the repository root:

    .build/fixtures-venv/bin/python tools/make_preprocess_fixtures.py [OUT_DIR]   (default Tests/Fixtures/preprocess)

(the venv scripts/make-fixtures.sh makes, with Pillow 13.0.0 added)

Everything is seeded; a rerun with the same versions writes the same files.

What it writes (Tests/Fixtures/preprocess/README.md says the same):
- images/*.png|jpg: seeded gradients + noise, RGB and gray, square and not, smaller and larger than the crop.
- timm_vit_base/, timm_deit/: timm's HF-hub layout (model.safetensors + config.json, by timm's own save_for_hf)
  of timm.create_model('vit_base_patch16_224.augreg2_in21k_ft_in1k' / 'deit_tiny_patch16_224.fb_in1k',
  embed_dim=64, depth=1, num_heads=1): tiny widths, the real checkpoints' pretrained_cfg (mean/std,
  interpolation, crop_pct).
- torchvision_vit/model.pth: torchvision VisionTransformer (224, patch 16, width 64, one block, one head).
- *.case.json: one pipeline on one model: the pipeline's settings, where gslora must read them from
  ("config.json" beside the model, or "flags"), and per image: SHA-256 of PIL's decoded pixels, SHA-256 of the
  8-bit resized+cropped image (before ToTensor), and the logits of the reference pipeline + model (float32).
- resample.json: Pillow Image.resize cases (BILINEAR and BICUBIC, up and down, odd sizes) on seeded random images:
  source and expected 8-bit pixels, base64.
"""
import base64
import hashlib
import json
import math
import os
import sys

import numpy as np
import PIL
import timm
import torch
import torchvision
from PIL import Image
from timm.models import _hub
from torchvision.models import ViT_B_16_Weights
from torchvision.transforms import functional as TF

PINNED = {"torch": "2.15.0", "torchvision": "0.29.2", "timm": "1.0.31", "PIL": "13.0.0"}


def check_versions():
    got = {"torch": torch.__version__.split("+")[0], "torchvision": torchvision.__version__.split("+")[0],
           "timm": timm.__version__, "PIL": PIL.__version__}
    if got != PINNED:
        sys.exit(f"versions {got} differ from the pinned {PINNED}")
    return got


def sha(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def make_images(out):
    """Seeded smooth gradients with a little noise (so PNGs stay small), saved by PIL."""
    rng = np.random.default_rng(20261207)
    specs = [  # name, width, height, mode, format
        ("gradient_320x240.png", 320, 240, "RGB", "PNG"),
        ("portrait_250x333.png", 250, 333, "RGB", "PNG"),
        ("gray_200x150.png", 200, 150, "L", "PNG"),
        ("small_96x80.png", 96, 80, "RGB", "PNG"),
        ("photo_400x300.jpg", 400, 300, "RGB", "JPEG"),
        ("wide_300x180.jpg", 300, 180, "RGB", "JPEG"),
    ]
    os.makedirs(os.path.join(out, "images"), exist_ok=True)
    names = []
    for name, w, h, mode, fmt in specs:
        y, x = np.mgrid[0:h, 0:w].astype(np.float64)
        chans = []
        for c in range(3 if mode == "RGB" else 1):
            fx, fy, ph = rng.uniform(0.5, 3.0), rng.uniform(0.5, 3.0), rng.uniform(0, 2 * math.pi)
            base = 127.5 + 90 * np.sin(2 * math.pi * (fx * x / w + fy * y / h) + ph)
            # Sharp-edged blocks so resampling filters differ visibly, plus mild noise.
            blocks = 40 * (((x // 17 + y // 13 + c) % 2) - 0.5)
            chans.append(base + blocks + rng.normal(0, 6, size=(h, w)))
        arr = np.clip(np.rint(np.stack(chans, axis=-1)), 0, 255).astype(np.uint8)
        img = Image.fromarray(arr[..., 0] if mode == "L" else arr, mode)
        path = os.path.join(out, "images", name)
        if fmt == "JPEG":
            img.save(path, format="JPEG", quality=90)
        else:
            img.save(path, format="PNG", optimize=True)
        names.append("images/" + name)
    return names


def randomize(model, seed):
    """Weights large enough that every pixel matters to the logits (timm's init gives near-zero logits)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name or name.startswith("ln") or ".ln" in name:
                p.copy_(1 + 0.1 * torch.randn(p.shape, generator=g) if name.endswith("weight") else 0.1 * torch.randn(p.shape, generator=g))
            else:
                fan_in = p[0].numel() if p.dim() > 1 else 1
                p.copy_(torch.randn(p.shape, generator=g) * (1.0 / math.sqrt(fan_in) if p.dim() > 1 else 0.5))
    model.eval()
    return model


def pipeline_record(resize, crop, interpolation, mean, std, **extra):
    r = {"resize": resize, "crop": crop, "interpolation": interpolation, "mean": [float(v) for v in mean],
         "std": [float(v) for v in std]}
    r.update(extra)
    return r


def run_case(out, name, model, model_path, transform, record, pipeline_from, images, source, heads):
    """Logits of `transform` + `model` per image; the 8-bit crop is the transform minus ToTensor/Normalize."""
    resize_crop = [t for t in transform.transforms if type(t).__name__ in ("Resize", "CenterCrop")] \
        if hasattr(transform, "transforms") else None
    entries = []
    for rel in images:
        raw = Image.open(os.path.join(out, rel))
        raw.load()
        decoded = raw.tobytes()
        img = raw.convert("RGB")
        if resize_crop is not None:
            small = img
            for t in resize_crop:
                small = t(small)
        else:  # torchvision's ImageClassification preset
            small = TF.center_crop(TF.resize(img, transform.resize_size, interpolation=transform.interpolation,
                                             antialias=transform.antialias), transform.crop_size)
        x = transform(img).unsqueeze(0)
        with torch.no_grad():
            logits = model(x)[0].float()
        entries.append({"file": rel, "decoded_mode": raw.mode, "decoded_sha256": sha(decoded),
                        "crop_size": list(small.size), "crop_sha256": sha(small.tobytes()),
                        "logits": [float(v) for v in logits]})
    case = {"model": model_path, "heads": heads, "pipeline": record, "pipeline_from": pipeline_from,
            "source": source, "images": entries}
    with open(os.path.join(out, name + ".case.json"), "w") as f:
        json.dump(case, f, indent=1)
        f.write("\n")


def timm_cases(out, images):
    for folder, arch, seed in [("timm_vit_base", "vit_base_patch16_224.augreg2_in21k_ft_in1k", 11),
                               ("timm_deit", "deit_tiny_patch16_224.fb_in1k", 12)]:
        torch.manual_seed(seed)
        model = randomize(timm.create_model(arch, pretrained=False, embed_dim=64, depth=1, num_heads=1, mlp_ratio=2,
                                            num_classes=10), seed)
        d = os.path.join(out, folder)
        os.makedirs(d, exist_ok=True)
        _hub.save_for_hf(model, d, safe_serialization=True)
        for extra in ["pytorch_model.bin"]:
            if os.path.exists(os.path.join(d, extra)):
                os.remove(os.path.join(d, extra))
        cfg = timm.data.resolve_model_data_config(model)
        transform = timm.data.create_transform(**cfg, is_training=False)
        size = cfg["input_size"][-1]
        record = pipeline_record(math.floor(size / cfg["crop_pct"]), size, cfg["interpolation"], cfg["mean"], cfg["std"],
                                 crop_pct=cfg["crop_pct"])
        run_case(out, folder, model, folder + "/model.safetensors", transform, record, "config.json", images,
                 f"timm {arch}: resolve_model_data_config + create_transform(is_training=False)", 1)
        if folder == "timm_deit":
            # The same model through timm's transform with other settings, which gslora must take from flags.
            flags = dict(cfg, interpolation="bilinear", crop_pct=0.875)
            t2 = timm.data.create_transform(**flags, is_training=False)
            record2 = pipeline_record(math.floor(size / 0.875), size, "bilinear", cfg["mean"], cfg["std"], crop_pct=0.875)
            run_case(out, "timm_deit_flags", model, folder + "/model.safetensors", t2, record2, "flags", images,
                     f"timm {arch} with interpolation bilinear, crop_pct 0.875: create_transform(is_training=False)", 1)


def torchvision_cases(out, images):
    torch.manual_seed(13)
    model = randomize(torchvision.models.VisionTransformer(image_size=224, patch_size=16, num_layers=1, num_heads=1,
                                                           hidden_dim=64, mlp_dim=128, num_classes=10), 13)
    d = os.path.join(out, "torchvision_vit")
    os.makedirs(d, exist_ok=True)
    torch.save(model.state_dict(), os.path.join(d, "model.pth"))
    t = ViT_B_16_Weights.IMAGENET1K_V1.transforms()
    record = pipeline_record(t.resize_size[0], t.crop_size[0], "bilinear", t.mean, t.std)
    run_case(out, "torchvision_vit", model, "torchvision_vit/model.pth", t, record, "family", images,
             "torchvision ViT_B_16_Weights.IMAGENET1K_V1.transforms()", 1)
    t2 = ViT_B_16_Weights.IMAGENET1K_SWAG_LINEAR_V1.transforms()
    record2 = pipeline_record(t2.resize_size[0], t2.crop_size[0], "bicubic", t2.mean, t2.std)
    run_case(out, "torchvision_vit_swag_linear", model, "torchvision_vit/model.pth", t2, record2, "flags", images,
             "torchvision ViT_B_16_Weights.IMAGENET1K_SWAG_LINEAR_V1.transforms()", 1)


def resample_cases(out):
    rng = np.random.default_rng(7)
    sizes = [(1, 1), (2, 3), (5, 4), (7, 9), (13, 6), (16, 16), (23, 31), (40, 17), (57, 48), (64, 9), (9, 70),
             (120, 5), (5, 120), (61, 37)]
    cases = []
    for filt_name, filt in [("bilinear", Image.Resampling.BILINEAR), ("bicubic", Image.Resampling.BICUBIC)]:
        for (w, h) in sizes:
            for mode in ["RGB", "L"]:
                c = 3 if mode == "RGB" else 1
                kind = rng.integers(3)
                if kind == 0:
                    arr = rng.integers(0, 256, size=(h, w, c), dtype=np.uint8)
                elif kind == 1:  # extremes only, where bicubic's negative lobes clip
                    arr = (rng.integers(0, 2, size=(h, w, c)) * 255).astype(np.uint8)
                else:
                    y, x = np.mgrid[0:h, 0:w]
                    arr = np.clip((x * 255 / max(w - 1, 1))[..., None] * 0.6 + rng.integers(0, 100, size=(h, w, c)), 0, 255).astype(np.uint8)
                img = Image.fromarray(arr[..., 0] if c == 1 else arr, mode)
                for _ in range(3):
                    ow = int(rng.choice([1, 2, 3, max(1, w // 3), max(1, w // 2 + 1), w, w + 1, 2 * w + 3]))
                    oh = int(rng.choice([1, 2, 3, max(1, h // 3), max(1, h // 2 + 1), h, h + 1, 2 * h + 3]))
                    res = img.resize((ow, oh), filt)
                    cases.append({"filter": filt_name, "channels": c, "width": w, "height": h, "out_width": ow,
                                  "out_height": oh, "source": base64.b64encode(img.tobytes()).decode(),
                                  "expected": base64.b64encode(res.tobytes()).decode()})
    with open(os.path.join(out, "resample.json"), "w") as f:
        json.dump({"pillow": PIL.__version__, "cases": cases}, f, separators=(",", ":"))
        f.write("\n")
    return len(cases)


def main():
    versions = check_versions()
    out = sys.argv[1] if len(sys.argv) > 1 else "Tests/Fixtures/preprocess"
    os.makedirs(out, exist_ok=True)
    torch.set_num_threads(1)
    images = make_images(out)
    timm_cases(out, images)
    torchvision_cases(out, images)
    n = resample_cases(out)
    with open(os.path.join(out, "versions.json"), "w") as f:
        json.dump(versions, f, indent=1, sort_keys=True)
        f.write("\n")
    print(f"wrote {out}: {len(images)} images, 5 cases, {n} resample cases")


if __name__ == "__main__":
    main()

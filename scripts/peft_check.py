#!/usr/bin/env python3
"""gslora against the real Hugging Face `peft` library, both ways, for a small random timm and torchvision ViT.

gslora → PEFT: a loralib-style checkpoint is split by gslora-convert into a backbone and an adapter, the adapter is
exported as a PEFT folder, and PeftModel.from_pretrained(model, folder) must give the logits gslora-infer gives with
that adapter (from the .gslr adapter and from the folder itself, via --adapter folder/).
PEFT → gslora: get_peft_model + save_pretrained writes a folder (plain and rsLoRA scaling); gslora-infer --adapter
folder/ and the .gslr gslora-convert makes of it must give PeftModel's logits, and that .gslr exported as a PEFT
folder again must load into PEFT with the same logits.

Each comparison: max |gslora − PyTorch| ≤ 1e-5 (absolute; the logits here are of order 1) over the whole
[N, classes] batch, and each adapter must move PyTorch's logits by more than 1e-2, so a dropped adapter fails.
Prints one line per check and a JSON summary last; exits 0 only when every check passed.
Needs torch, torchvision, timm, peft, safetensors, numpy (scripts/peft-venv.sh) and built gslora commands:
  python scripts/peft_check.py --bin .build/release [--work DIR]
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch

TOL = 1e-5


def run(cmd):
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        raise SystemExit(f"command failed ({p.returncode}): {' '.join(cmd)}\n{p.stdout}{p.stderr}")
    return p


def timm_model():
    from timm.models.vision_transformer import VisionTransformer
    return VisionTransformer(img_size=32, patch_size=8, embed_dim=64, depth=2, num_heads=2, mlp_ratio=2, num_classes=5)


def torchvision_model():
    from torchvision.models import VisionTransformer
    return VisionTransformer(image_size=32, patch_size=8, num_layers=2, num_heads=2, hidden_dim=64, mlp_dim=128, num_classes=5)


FAMILIES = {
    # name: (constructor, FFN linear module names of block i)
    "timm": (timm_model, lambda i: [f"blocks.{i}.mlp.fc1", f"blocks.{i}.mlp.fc2"]),
    "torchvision": (torchvision_model, lambda i: [f"encoder.layers.encoder_layer_{i}.mlp.0", f"encoder.layers.encoder_layer_{i}.mlp.3"]),
}
DEPTH, RANK, ALPHA, HEADS = 2, 4, 8.0, 2


def base_model(family, seed):
    torch.manual_seed(seed)
    m = FAMILIES[family][0]()
    # Non-trivial LayerNorms and biases, and a head that is not zero (torchvision starts it at zero, which would make
    # every logit the bias), so a wrong mapping shows in the logits.
    with torch.no_grad():
        for n, p in m.named_parameters():
            if p.dim() == 1:
                p.add_(0.1 * torch.randn_like(p))
            elif n.startswith("head"):
                p.copy_(0.2 * torch.randn_like(p))
    return m.eval()


def check_adapter_matters(name, base_logits, adapted, results):
    """The comparisons mean something only if the adapter moves the logits far beyond the tolerance."""
    moved = float(np.max(np.abs(adapted - base_logits)))
    ok = moved > 1e3 * TOL
    results.append({"check": name, "max_abs_diff": moved, "limit": None, "ok": ok})
    print(f"{'ok  ' if ok else 'FAIL'} {name}: the adapter moves the logits by {moved:.3g}", flush=True)


def compare(name, got, want, results):
    err = float(np.max(np.abs(got - want)))
    limit = TOL
    ok = got.shape == want.shape and err <= limit
    results.append({"check": name, "max_abs_diff": err, "limit": limit, "ok": ok})
    print(f"{'ok  ' if ok else 'FAIL'} {name}: max |Δ| {err:.3g} (limit {limit:.3g})", flush=True)


def infer(bin_dir, model, x_path, out, adapter):
    run([os.path.join(bin_dir, "gslora-infer"), model, x_path, "--adapter", adapter, "-o", out, "--top", "1", "--force"])
    return np.load(out)


def check_family(family, bin_dir, work, results):
    from peft import LoraConfig, PeftModel, get_peft_model

    d = os.path.join(work, family)
    os.makedirs(d, exist_ok=True)
    conv = os.path.join(bin_dir, "gslora-convert")
    torch.manual_seed(1)
    x = torch.randn(3, 3, 32, 32)
    x_path = os.path.join(d, "x.npy")
    np.save(x_path, x.numpy())

    # gslora → PEFT. A loralib-style checkpoint: base weights plus lora_A [r, in] / lora_B [out, r] per FFN linear.
    model = base_model(family, 0)
    sd = dict(model.state_dict())
    g = torch.Generator().manual_seed(2)
    for i in range(DEPTH):
        for mod in FAMILIES[family][1](i):
            w = sd[mod + ".weight"]
            sd[mod + ".lora_A"] = 0.2 * torch.randn(RANK, w.shape[1], generator=g)
            sd[mod + ".lora_B"] = 0.2 * torch.randn(w.shape[0], RANK, generator=g)
    ckpt = os.path.join(d, "lora.pth")
    torch.save(sd, ckpt)
    backbone, adapter, peft_out = (os.path.join(d, n) for n in ("base.gslr", "adapter.gslr", "peft_out/"))
    run([conv, ckpt, "-o", backbone, "--adapter-out", adapter, "--lora-alpha", str(ALPHA), "--heads", str(HEADS), "--force"])
    run([conv, adapter, "-o", peft_out, "--base", backbone, "--force"])
    peft_model = PeftModel.from_pretrained(base_model(family, 0), peft_out).eval()
    with torch.no_grad():
        want = peft_model(x).numpy()
        plain = base_model(family, 0)(x).numpy()
    check_adapter_matters(f"{family}: exported adapter changes PyTorch's logits", plain, want, results)
    compare(f"{family}: gslora adapter.gslr vs PeftModel(exported folder)", infer(bin_dir, backbone, x_path, os.path.join(d, "a.npy"), adapter), want, results)
    compare(f"{family}: gslora --adapter exported folder vs PeftModel", infer(bin_dir, backbone, x_path, os.path.join(d, "b.npy"), peft_out), want, results)

    # PEFT → gslora, with PEFT's default scaling and with rsLoRA.
    for rslora in (False, True):
        torch.manual_seed(3)
        cfg = LoraConfig(r=RANK, lora_alpha=ALPHA, target_modules=[m for i in range(DEPTH) for m in FAMILIES[family][1](i)],
                         init_lora_weights=False, use_rslora=rslora)
        pm = get_peft_model(base_model(family, 0), cfg).eval()
        folder = os.path.join(d, f"peft_saved{'_rslora' if rslora else ''}/")
        pm.save_pretrained(folder)
        with torch.no_grad():
            want = pm(x).numpy()
        tag = "rsLoRA " if rslora else ""
        check_adapter_matters(f"{family}: PEFT-saved {tag}adapter changes PyTorch's logits", plain, want, results)
        compare(f"{family}: gslora --adapter PEFT-saved {tag}folder vs PeftModel", infer(bin_dir, backbone, x_path, os.path.join(d, "c.npy"), folder), want, results)
        converted = os.path.join(d, f"from_peft{'_rslora' if rslora else ''}.gslr")
        run([conv, folder, "-o", converted, "--base", backbone, "--force"])
        compare(f"{family}: gslora adapter converted from PEFT-saved {tag}folder vs PeftModel", infer(bin_dir, backbone, x_path, os.path.join(d, "d.npy"), converted), want, results)
        # And out again: the converted adapter exported as a PEFT folder loads into PEFT with the same scaling.
        again = os.path.join(d, f"peft_again{'_rslora' if rslora else ''}/")
        run([conv, converted, "-o", again, "--base", backbone, "--force"])
        with torch.no_grad():
            back = PeftModel.from_pretrained(base_model(family, 0), again).eval()(x).numpy()
        compare(f"{family}: PeftModel(re-exported {tag}folder) vs PeftModel(PEFT-saved folder)", back, want, results)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", required=True, help="folder with the built gslora-convert and gslora-infer")
    ap.add_argument("--work", help="scratch folder (default: a temporary one)")
    a = ap.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        work = a.work or tmp
        for family in FAMILIES:
            check_family(family, a.bin, work, results)
    ok = bool(results) and all(r["ok"] for r in results)
    print(json.dumps({"ok": ok, "tolerance": TOL, "checks": results}))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()

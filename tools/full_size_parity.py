"""Forward parity at the sizes people run, by hand (the fixtures in Tests/Fixtures/pytorch are tiny models of the
same families; these checkpoints are 0.3-1.2 GB, too big for the repo and CI).

Each model is built in PyTorch with random weights (norm weights 1 + 0.2*randn, biases and the class token
0.2*randn, so that a missing bias or a wrong norm shows), saved as a .pth, and run by `gslora-infer` on the same
4 random 224x224 images (an .npy batch, taken as preprocessed); PyTorch's eval-mode logits against gslora's, as the tests
measure them: max |gslora - PyTorch| / max |PyTorch| <= 1e-4.

    /work/venv/bin/python tools/full_size_parity.py --gslora .build/release
    /work/venv/bin/python tools/full_size_parity.py --gslora .build/release --models timm-b16-avg --keep /tmp/parity

Models: timm-b16 (vit_base_patch16_224), timm-l16 (vit_large_patch16_224), timm-b16-avg (vit_base_patch16_224 with
global_pool='avg': fc_norm, no table entry, so --heads 12), torchvision-b16 (vit_b_16: packed in_proj). Exit 1 when
any model misses the tolerance.
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch

TOLERANCE = 1e-4


def build(name):
    if name == "torchvision-b16":
        from torchvision.models import vit_b_16
        return vit_b_16(), []
    import timm
    arch = {"timm-b16": "vit_base_patch16_224", "timm-l16": "vit_large_patch16_224", "timm-b16-avg": "vit_base_patch16_224"}[name]
    kw = {"global_pool": "avg"} if name.endswith("-avg") else {}
    return timm.create_model(arch, pretrained=False, **kw), (["--heads", "12"] if name.endswith("-avg") else [])


def randomise(m, g):
    with torch.no_grad():
        for n, p in m.named_parameters():
            if p.dim() == 1 and n.endswith("weight"):  # the LayerNorms: a ViT's only 1-D weights
                p.copy_(1 + 0.2 * torch.randn(p.shape, generator=g))
            elif n.endswith("bias") or "class_token" in n or "cls_token" in n:
                p.copy_(0.2 * torch.randn(p.shape, generator=g))
            elif n.startswith("head") and n.endswith("weight") or n == "heads.head.weight":
                p.copy_(0.05 * torch.randn(p.shape, generator=g))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gslora", required=True, help="folder holding gslora-infer (e.g. .build/release)")
    ap.add_argument("--models", default="timm-b16,torchvision-b16,timm-b16-avg,timm-l16")
    ap.add_argument("--keep", help="write the checkpoints and outputs here and keep them (default: a temp folder)")
    a = ap.parse_args()
    infer = os.path.join(a.gslora, "gslora-infer")
    if not os.access(infer, os.X_OK):
        sys.exit(f"error: {infer} is not an executable; build with swift build -c release")
    work = a.keep or tempfile.mkdtemp(prefix="gslora-parity-")
    os.makedirs(work, exist_ok=True)
    torch.set_num_threads(os.cpu_count() or 1)
    x = torch.rand(4, 3, 224, 224, generator=torch.Generator().manual_seed(7))
    np.save(os.path.join(work, "x.npy"), x.numpy())
    failed = 0
    print("| model | parameters | max abs error | of max abs logit | tolerance | result |")
    print("|---|---|---|---|---|---|")
    try:
        for name in a.models.split(","):
            torch.manual_seed(11)
            m, flags = build(name)
            randomise(m, torch.Generator().manual_seed(12))
            m.eval()
            with torch.inference_mode():
                ref = m(x).double().numpy()
            pth = os.path.join(work, f"{name}.pth")
            torch.save(m.state_dict(), pth)
            out = os.path.join(work, f"{name}.logits.npy")
            t0 = time.time()
            r = subprocess.run([infer, pth, os.path.join(work, "x.npy"), "-o", out, "--force", *flags],
                               capture_output=True, text=True)
            if r.returncode != 0:
                print(f"| {name} | | | | | gslora-infer exit {r.returncode}: {r.stderr.strip().splitlines()[-1:]} |")
                failed += 1
                continue
            got = np.load(out).astype(np.float64)
            err = float(np.abs(got - ref).max())
            rel = err / float(np.abs(ref).max())
            ok = got.shape == ref.shape and rel <= TOLERANCE
            failed += not ok
            params = sum(p.numel() for p in m.parameters())
            print(f"| {name} | {params / 1e6:.1f} M | {err:.3g} | {rel:.3g} | {TOLERANCE:g} | {'ok' if ok else 'FAIL'} ({time.time() - t0:.0f} s) |",
                  flush=True)
            del m
            if not a.keep:
                os.remove(pth)
    finally:
        if not a.keep:
            shutil.rmtree(work, ignore_errors=True)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()

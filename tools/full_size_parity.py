"""Parity at the sizes people run, by hand (the fixtures in Tests/Fixtures/pytorch are tiny models of the same
families; these checkpoints are 0.3-1.2 GB, too big for the repository and CI).

Forward: each model is built in PyTorch with random weights (make_fixtures.randomise_vit: norm weights 1 + 0.2*randn,
biases, the class token and the head 0.2*randn, so that a missing bias or a wrong norm shows), saved as a .pth, and
run by `gslora-infer` on the same 4 random 224x224 images (an .npy batch, taken as preprocessed); PyTorch's eval-mode
logits against gslora's, as the tests measure them: max |gslora - PyTorch| / max |PyTorch| <= 1e-4.

LoRA gradients: make_fixtures.lora_linear_parity writes a timm ViT-B/16 with rank-8 LoRA on every fc1/fc2 and
PyTorch's gradients of every factor for L = sum(logits * R) on 2 images, and the test that checks the tiny fixture
(`ParameterGradientParityTests.testLoRAGradientsMatchPyTorch`, tolerance 1e-3 of the largest gradient) is run on it
through GSLORA_FIXTURES.

    /work/venv/bin/python tools/full_size_parity.py --gslora .build/release
    /work/venv/bin/python tools/full_size_parity.py --gslora .build/release --models timm-b16-avg --no-lora-gradients

Models: timm-b16 (vit_base_patch16_224), timm-l16 (vit_large_patch16_224), timm-b16-avg (vit_base_patch16_224 with
global_pool='avg': fc_norm, no table entry, so --heads 12), torchvision-b16 (vit_b_16: packed in_proj). Exit 1 when
any check fails.
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

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_fixtures  # noqa: E402

TOLERANCE = 1e-4


def build(name):
    if name == "torchvision-b16":
        from torchvision.models import vit_b_16
        return vit_b_16(), []
    import timm
    arch = {"timm-b16": "vit_base_patch16_224", "timm-l16": "vit_large_patch16_224", "timm-b16-avg": "vit_base_patch16_224"}[name]
    kw = {"global_pool": "avg"} if name.endswith("-avg") else {}
    return timm.create_model(arch, pretrained=False, **kw), (["--heads", "12"] if name.endswith("-avg") else [])


def lora_gradients(work):
    """The ViT-B/16 LoRA fixture in its own folder, and the Swift test that checks the tiny one run on it."""
    import timm
    folder = os.path.join(work, "lora")
    os.makedirs(folder, exist_ok=True)
    torch.manual_seed(21)
    config = {"img_size": 224, "patch_size": 16, "embed_dim": 768, "depth": 12, "num_heads": 12, "mlp_ratio": 4.0, "num_classes": 1000}
    m = timm.create_model("vit_base_patch16_224", pretrained=False)
    make_fixtures.randomise_vit(m, torch.Generator().manual_seed(22))
    x = torch.rand(2, 3, 224, 224, generator=torch.Generator().manual_seed(23))
    make_fixtures.lora_linear_parity(
        folder, "vit_b16_lora", m, config, x, rank=8, seed=24,
        description="timm vit_base_patch16_224 (num_heads=12), random weights, rank-8 LoRA on every fc1/fc2, eval() mode",
        notes=["written by tools/full_size_parity.py"])
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    t0 = time.time()
    r = subprocess.run(["swift", "test", "-c", "release", "--disable-swift-testing", "--filter",
                        "ParameterGradientParityTests/testLoRAGradientsMatchPyTorch"],
                       cwd=root, env={**os.environ, "GSLORA_FIXTURES": folder}, capture_output=True, text=True)
    checked = [line for line in r.stdout.splitlines() if line.startswith("checked LoRA gradients")]
    ok = r.returncode == 0 and any("vit_b16_lora" in line for line in checked)
    print(f"\nLoRA gradients, timm ViT-B/16, rank 8, 48 factors: {'ok' if ok else 'FAIL'} ({time.time() - t0:.0f} s; {checked[-1] if checked else 'no checked line'})")
    if not ok:
        print("\n".join(line for line in (r.stdout + r.stderr).splitlines() if "error" in line)[:4000])
    return ok


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gslora", required=True, help="folder holding gslora-infer (e.g. .build/release)")
    ap.add_argument("--models", default="timm-b16,torchvision-b16,timm-b16-avg,timm-l16")
    ap.add_argument("--keep", help="write the checkpoints and outputs here and keep them (default: a temp folder)")
    ap.add_argument("--no-lora-gradients", action="store_true", help="leave out the ViT-B/16 LoRA gradient check (it builds the tests)")
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
            make_fixtures.randomise_vit(m, torch.Generator().manual_seed(12))
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
        if not a.no_lora_gradients:
            failed += not lora_gradients(work)
    finally:
        if not a.keep:
            shutil.rmtree(work, ignore_errors=True)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()

"""PyTorch side of `gslora-bench sizes`: one case of one model per process, printed as one JSON line.

    python bench/pytorch_vit.py --model vit-b16 --case gslora --steps 3

Models: p8s8 (GS-LoRA's face ViT, tools/fixturegen/face_vit.py, CosFace head), vit-s16 / vit-b16 / vit-l16 (timm's
vit_{small,base,large}_patch16_224, linear head, 1000 classes). Random initialisation, float32,
torch.set_num_threads(cores). Cases (the same work as gslora-bench's):

- forward: batch 32, eval mode, torch.inference_mode().
- gslora: 4 retain + 4 forget images in one batch, train mode (dropout 0.1), LoRA rank 8 on every block's fc1 and
  fc2 (loralib's form: A kaiming-uniform, B zeros, scaling 1), frozen backbone and head;
  L = CE_r + beta*relu(BND - CE_f) + alpha*sum_blocks ||LoRA factors of the block||_2 (spec/TRAINING.md §2),
  backward, AdamW (weight decay 0.05) on the LoRA factors.
- allparams: the same 8 images, every parameter trained with AdamW, CE.

Output: {"model", "case", "seconds": median of the timed steps, "times": [...], "peak_rss_bytes": getrusage's
ru_maxrss of this process, "cpu_seconds": process CPU time (all threads) per timed step, "threads", "torch", "timm"}. One untimed warm-up step first.
"""
import argparse
import json
import math
import os
import resource
import statistics
import sys
import time

import torch
import torch.nn.functional as F
from torch import nn

TIMM_NAMES = {"vit-s16": "vit_small_patch16_224", "vit-b16": "vit_base_patch16_224", "vit-l16": "vit_large_patch16_224"}


class LoRA(nn.Module):
    """y = base(x) + (x Aᵀ Bᵀ)·scaling around a frozen nn.Linear (loralib's Linear, unmerged)."""

    def __init__(self, base, rank):
        super().__init__()
        self.base = base
        self.lora_A = nn.Parameter(torch.empty(rank, base.in_features))
        self.lora_B = nn.Parameter(torch.zeros(base.out_features, rank))
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))
        self.scaling = 1.0

    def forward(self, x):
        return self.base(x) + (x @ self.lora_A.t() @ self.lora_B.t()) * self.scaling


def build(name, dropout, lora_rank):
    """The model and a function images, labels → logits, plus the LoRA groups (one list of factors per block)."""
    groups = []
    if name == "p8s8":
        sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
        from fixturegen.face_vit import FaceViT
        model = FaceViT(num_class=100, image_size=112, patch_size=8, dim=512, depth=6, heads=8, dim_head=64,
                        mlp_dim=2048, dropout=dropout, emb_dropout=dropout, lora_rank=lora_rank)
        for layer in model.transformer.layers:
            ff = layer[1].fn.fn.net
            if lora_rank:
                groups.append([ff[0].lora_A, ff[0].lora_B, ff[3].lora_A, ff[3].lora_B])
        return model, (lambda x, y: model(x, y)[0] if y is not None else model.loss.cosine(model(x)) * model.loss.s), groups, 112
    import timm
    model = timm.create_model(TIMM_NAMES[name], pretrained=False, num_classes=1000,
                              proj_drop_rate=dropout, pos_drop_rate=dropout)
    if lora_rank:
        for blk in model.blocks:
            blk.mlp.fc1 = LoRA(blk.mlp.fc1, lora_rank)
            blk.mlp.fc2 = LoRA(blk.mlp.fc2, lora_rank)
            groups.append([blk.mlp.fc1.lora_A, blk.mlp.fc1.lora_B, blk.mlp.fc2.lora_A, blk.mlp.fc2.lora_B])
    return model, (lambda x, y: model(x)), groups, 224


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, choices=["p8s8"] + list(TIMM_NAMES))
    ap.add_argument("--case", required=True, choices=["forward", "gslora", "allparams"])
    ap.add_argument("--steps", type=int, default=3, help="timed steps or forward calls (after one warm-up)")
    ap.add_argument("--batch", type=int, default=None, help="forward: images per call (32); steps: retain = forget images (4)")
    ap.add_argument("--rank", type=int, default=8)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    a = ap.parse_args()
    if a.steps < 1 or a.rank < 1 or a.threads < 1 or (a.batch is not None and a.batch < 1):
        ap.error("steps, rank, threads and batch must be positive")
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)

    if a.case == "forward":
        model, logits_of, _, size = build(a.model, 0.0, 0)
        model.eval()
        batch = a.batch or 32
        x = torch.rand(batch, 3, size, size)

        def step():
            with torch.inference_mode():
                logits_of(x, None)
    else:
        per = a.batch or 4
        lora = a.rank if a.case == "gslora" else 0
        model, logits_of, groups, size = build(a.model, 0.1, lora)
        model.train()
        x = torch.rand(2 * per, 3, size, size)
        y = torch.tensor([i % 80 for i in range(per)] + [80 + i % 20 for i in range(per)])
        if a.case == "gslora":
            params = [p for g in groups for p in g]
            for p in model.parameters():
                p.requires_grad_(False)
            for p in params:
                p.requires_grad_(True)
            beta, bound, alpha = 0.2, 105.0, 1e-4
        else:
            params = list(model.parameters())
        opt = torch.optim.AdamW(params, lr=1e-2 if a.case == "gslora" else 1e-4, weight_decay=0.05)

        def step():
            logits = logits_of(x, y)
            if a.case == "gslora":
                ce_r = F.cross_entropy(logits[:per], y[:per])
                ce_f = F.cross_entropy(logits[per:], y[per:])
                lasso = sum(torch.sqrt(sum((p * p).sum() for p in g)) for g in groups)
                loss = ce_r + beta * F.relu(bound - ce_f) + alpha * lasso
            else:
                loss = F.cross_entropy(logits, y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

    step()  # warm-up
    times = []
    cpu0 = time.process_time()
    for _ in range(a.steps):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    cpu = (time.process_time() - cpu0) / a.steps
    import timm
    print(json.dumps({
        "model": a.model, "case": a.case, "seconds": statistics.median(times), "times": times, "cpu_seconds": cpu,
        "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "threads": torch.get_num_threads(), "torch": torch.__version__, "timm": timm.__version__}))


if __name__ == "__main__":
    main()

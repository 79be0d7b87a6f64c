#!/usr/bin/env python3
"""Rebuilds the PyTorch-written fixtures of Tests/Fixtures/pytorch into a folder (README there says what each holds).

Run it with scripts/make-fixtures.sh, which makes the pinned venv (torch 2.15.0, torchvision 0.29.2, timm 1.0.31):
    scripts/make-fixtures.sh /tmp/fixtures             # then: GSLORA_FIXTURES=/tmp/fixtures swift test ...
    scripts/make-fixtures.sh Tests/Fixtures/pytorch --force

Seeds are fixed, so a run gives the same files every time except legacy.pth, whose storage keys are memory addresses.
Every .pth gets its NAME.expected.json sidecar; the model files get NAME.parity.json with PyTorch's numbers.
baselines_tiny.parity.json (eleven baseline methods) is computed on face_vit_tiny.pth by make_baseline_fixtures.py,
not here, so rebuilding face_vit_tiny.pth in a folder that holds it is refused: write into another folder, then
    make_baseline_fixtures.py --model OUT/face_vit_tiny.pth -o OUT/baselines_tiny.parity.json
"""
import argparse
import collections
import hashlib
import io
import json
import math
import os
import subprocess
import sys
import tempfile
import zipfile

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fixturegen import gslora, jsonfmt, sidecar  # noqa: E402
from fixturegen.face_vit import FaceViT  # noqa: E402

PINS = {"torch": "2.15.0", "torchvision": "0.29.2", "timm": "1.0.31"}

FACE_CONFIG = {"loss_type": "CosFace", "GPU_ID": None, "num_class": 10, "image_size": 40, "patch_size": 8, "dim": 64,
               "depth": 2, "heads": 4, "dim_head": 16, "mlp_dim": 128, "channels": 3, "dropout": 0.0,
               "emb_dropout": 0.0, "lora_rank": 4, "lora_pos": "FFN"}
FACE_SEED = 20240601


def save(obj, path, **kw):
    """torch.save into a temporary folder, then renamed into place: torch names the zip's top folder after the file,
    so the temporary file already has the final name."""
    tmpdir = tempfile.mkdtemp(dir=os.path.dirname(os.path.abspath(path)), prefix=".tmp-")
    tmp = os.path.join(tmpdir, os.path.basename(path))
    torch.save(obj, tmp, **kw)
    os.replace(tmp, path)
    os.rmdir(tmpdir)


def write_sidecar(out, stem, notes):
    jsonfmt.write(os.path.join(out, stem + ".expected.json"),
                  sidecar.describe(os.path.join(out, stem + ".pth"), stem + ".pth", notes), indent=1)


def face_model(lora_rank=4):
    c = {k: v for k, v in FACE_CONFIG.items() if k not in ("loss_type", "GPU_ID", "lora_pos")}
    c["lora_rank"] = lora_rank
    return FaceViT(**c)


def face(out):
    """face_vit_tiny.pth, its parity file (one GS-LoRA step, two AdamW steps) and checkpoint_nested.pth."""
    torch.manual_seed(FACE_SEED)
    model = face_model()
    g = torch.Generator().manual_seed(FACE_SEED + 1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("lora_B"):
                p.copy_(torch.randn(p.shape, generator=g) * 0.02)
    model.train()
    save(model.state_dict(), os.path.join(out, "face_vit_tiny.pth"))
    write_sidecar(out, "face_vit_tiny", [
        "state_dict of the GS-LoRA face ViT (tiny config in the parity file), saved in train mode (LoRA unmerged) with torch.save defaults (zip format)",
        "lora_B tensors are randn*0.02, not loralib's zero init"])

    g = torch.Generator().manual_seed(FACE_SEED + 2)
    forget_classes = [0, 1]
    yf = torch.randint(0, 2, (3,), generator=g)
    yr = torch.randint(2, 10, (3,), generator=g)
    yp = torch.cat([torch.arange(10), torch.randint(0, 10, (10,), generator=g)])[torch.randperm(20, generator=g)]
    xf, xr, xp = (torch.rand(n, 3, 40, 40, generator=g) for n in (3, 3, 20))

    trainable = [n for n, _ in model.named_parameters() if "lora_" in n]
    for n, p in model.named_parameters():
        p.requires_grad_(n in trainable)
    table, proto_emb = gslora.prototypes(model, xp, yp, 10)
    groups = gslora.lora_groups(model)
    with torch.no_grad():
        ce0 = F.cross_entropy(model(xf, yf)[0], yf).item()
    hyper = {"BND": gslora.bound_for(ce0), "beta": 0.15, "alpha": 0.01, "prototype_weight_forget": 0.017,
             "prototype_margin": 18.0, "prototype_weight_retain": 0.0,
             "BND_rule": "10.0 unless CE_forget >= 9, then ceil(CE_forget)+5; must satisfy BND > CE_forget",
             "optimizer": {"type": "torch.optim.AdamW", "lr": 0.01, "betas": [0.9, 0.999], "eps": 1e-08,
                           "weight_decay": 0.05, "amsgrad": False, "params": "only LoRA tensors, in named_parameters order"}}
    batch = ((xf, yf), (xr, yr))

    def forward(x, y):
        with torch.no_grad():
            st = model.stages(x)
            margin = model.loss(st["embedding"], y)
            plain = model.loss.s * model.loss.cosine(st["embedding"])
        rec = {"labels": y.tolist(), **{k: jsonfmt.arr(v) for k, v in st.items()},
               "logits_margin": jsonfmt.arr(margin), "logits_plain": jsonfmt.arr(plain),
               "pred_margin": margin.argmax(1).tolist(), "pred_plain": plain.argmax(1).tolist()}
        return rec

    fwd = {"forget": forward(xf, yf), "retain": forward(xr, yr)}
    params = dict(model.named_parameters())
    before = {n: params[n].detach().clone() for n in trainable}
    opt = torch.optim.AdamW([params[n] for n in trainable], lr=0.01, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.05)
    L = gslora.losses(model, batch, hyper, table, groups)
    L["total"].backward()
    grads = {n: params[n].grad.detach().clone() for n in trainable}
    opt.step()
    after = {n: params[n].detach().clone() for n in trainable}
    state = {n: {k: v.clone() for k, v in opt.state[params[n]].items()} for n in trainable}
    opt.zero_grad()
    L2 = gslora.losses(model, batch, hyper, table, groups)
    L2["total"].backward()
    grads2 = {n: params[n].grad.detach().clone() for n in trainable}
    opt.step()
    after2 = {n: params[n].detach().clone() for n in trainable}
    S = jsonfmt.scalar
    parity = {
        "description": "GS-LoRA numeric reference for face_vit_tiny.pth (the face ViT of spec/MODELS.md, CosFace head, LoRA on the two FFN linears of every block). All tensors are computed with the model in train() mode (dropout 0, so deterministic) with LoRA unmerged, i.e. exactly the weights in the .pth.",
        "versions": jsonfmt.versions(), "seed": FACE_SEED,
        "number_format": "float32 arrays: shortest decimal that gives back the same float32 when parsed as a double and rounded to float32; scalars: float64 repr of the float32 result",
        "model_config": FACE_CONFIG,
        "model_notes": ["pool='cls'; final embedding = LayerNorm (mlp_head.0) of the CLS token after the transformer",
                        "patches: rearrange 'b c (h p1) (w p2) -> b (h w) (p1 p2 c)' (channel fastest inside a patch)",
                        "tokens = cat(cls_token, patch_to_embedding(patches)) + pos_embedding (input of block 0)",
                        "attention scale is dim**-0.5 (model dim), not dim_head**-0.5",
                        "to_qkv is a plain linear without bias (LoRA only on the FFN)",
                        "each block: x = x + Attn(LN(x)); x = x + FFN(LN(x)); FFN = Linear, GELU(exact erf), Dropout, Linear, Dropout"],
        "lora": {"rank": 4, "lora_alpha": 1, "scaling": 0.25,
                 "formula": "y = x W^T + b + ((x A^T) B^T) * scaling, scaling = lora_alpha / r",
                 "init": "A: kaiming_uniform a=sqrt(5); B: randn*0.02 (generator seed+1, in named_parameters order) so gradients reach A",
                 "merge_note": "the .pth holds unmerged weights (saved in train mode)"},
        "cosface": {"s": 64.0, "m": 0.35, "margin_logits": "s * (cos - m on the label column, cos elsewhere)", "plain_logits": "s * cos"},
        "hyper": hyper, "trainable": trainable,
        "inputs": {"forget_labels": yf.tolist(), "retain_labels": yr.tolist(), "forget_images": jsonfmt.arr(xf),
                   "retain_images": jsonfmt.arr(xr), "proto_labels": yp.tolist(), "proto_images": jsonfmt.arr(xp),
                   "note": f"uniform [0,1) float32 from torch.rand; forget classes {forget_classes}"},
        "prototypes": {"how": "per-class mean of the final embedding over proto_images (train mode, LoRA unmerged, no grad); row c = class c",
                       "table": jsonfmt.arr(table), "proto_embeddings": jsonfmt.arr(proto_emb)},
        "forward": fwd,
        "losses": {"ce_forget_raw": S(L["ce_forget"]), "bounded_forget": S(L["bounded"]),
                   "bounded_forget_active": bool(L["bounded"].item() > 0), "loss_remain": S(L["ce_retain"]),
                   "structure": S(L["structure"]), "structure_block_norms": [S(n) for n in L["norms"]],
                   "structure_groups": groups, "kl_forget": S(L["kl_forget"]), "kl_retain": S(L["kl_retain"]),
                   "prototype_forget_term": S(L["proto_forget"]), "prototype_term": S(L["proto"]), "total": S(L["total"]),
                   "total_formula": "beta*bounded_forget + loss_remain + alpha*structure + (w_f*relu(18 - kl_forget) + w_r*kl_retain)",
                   "ce_forget_per_sample": jsonfmt.arr(L["ce_forget_per_sample"]),
                   "ce_retain_per_sample": jsonfmt.arr(L["ce_retain_per_sample"]),
                   "ce_definition": "nn.CrossEntropyLoss (mean) on the margin (training) logits",
                   "kl_definition": "sum_b sum_j p_j (log p_j - log q_j) / B with log p = log_softmax(prototype[label]), log q = log_softmax(embedding)"},
        "lora_params": [{"name": n, "shape": list(before[n].shape), "before": jsonfmt.arr(before[n]), "grad": jsonfmt.arr(grads[n]),
                         "after": jsonfmt.arr(after[n]), "exp_avg": jsonfmt.arr(state[n]["exp_avg"]),
                         "exp_avg_sq": jsonfmt.arr(state[n]["exp_avg_sq"]), "grad2": jsonfmt.arr(grads2[n]),
                         "after2": jsonfmt.arr(after2[n])} for n in trainable],
        "step2": {"total": S(L2["total"]), "note": "second AdamW step on the same batch; grads2/after2 in lora_params"},
    }
    jsonfmt.write(os.path.join(out, "face_vit_tiny.parity.json"), parity, indent=1)
    nested(out, batch, hyper, table, groups)


def nested(out, batch, hyper, table, groups):
    """A training checkpoint: DataParallel state_dict after one AdamW step built by timm, optimizer state, args."""
    from timm.optim import create_optimizer_v2

    model = face_model()
    model.load_state_dict(torch.load(os.path.join(out, "face_vit_tiny.pth"), weights_only=True))
    model.train()
    opt = create_optimizer_v2(model, "adamw", lr=0.01, weight_decay=0.05)
    for n, p in model.named_parameters():
        p.requires_grad_("lora_" in n)
    gslora.losses(model, batch, hyper, table, groups)["total"].backward()
    opt.step()
    ckpt = {"epoch": 3, "best_acc": 71.5, "arch": "ViT-P8S8", "state_dict": torch.nn.DataParallel(model).state_dict(),
            "optimizer": opt.state_dict(), "args": {"lr": 0.01, "rank": 4, "tags": ["a", "b"], "pair": (1, 2)}}
    save(ckpt, os.path.join(out, "checkpoint_nested.pth"))
    write_sidecar(out, "checkpoint_nested", [
        "state_dict = nn.DataParallel(model).state_dict() of the face_vit_tiny model after one AdamW step on the LoRA tensors: every key has the 'module.' prefix; LoRA tensors differ from face_vit_tiny.pth, the rest is identical",
        "optimizer = torch.optim.AdamW built by timm.optim.create_optimizer_v2(model, 'adamw', lr=0.01, weight_decay=0.05) before only the LoRA tensors are made trainable: two param groups (no-decay for 1-d params/biases, decay for the rest); only LoRA tensors got gradients, so 'state' has entries only for their indices; 'step' is a float32 0-d tensor",
        "args.pair is a tuple, args.tags a list"])


def torchvision_vit(out):
    from torchvision.models.vision_transformer import VisionTransformer

    torch.manual_seed(1001)
    m = VisionTransformer(image_size=32, patch_size=8, num_layers=2, num_heads=2, hidden_dim=32, mlp_dim=64, num_classes=10)
    with torch.no_grad():
        m.heads.head.weight.copy_(torch.randn(m.heads.head.weight.shape) * 0.1)
        m.heads.head.bias.copy_(torch.randn(m.heads.head.bias.shape) * 0.1)
    m.eval()
    save(m.state_dict(), os.path.join(out, "torchvision_vit_tiny.pth"))
    write_sidecar(out, "torchvision_vit_tiny", ["torchvision VisionTransformer tiny config, same key layout as vit_b_16"])
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(1002))
    with torch.no_grad():
        logits = m(x)
    jsonfmt.write(os.path.join(out, "torchvision_vit_tiny.parity.json"), {
        "description": "torchvision VisionTransformer(image_size=32, patch_size=8, num_layers=2, num_heads=2, hidden_dim=32, mlp_dim=64, num_classes=10) in eval() mode; weights = torchvision_vit_tiny.pth",
        "versions": jsonfmt.versions(), "seed": 1001,
        "notes": ["heads.head.weight/bias were overwritten with randn*0.1 (torchvision initialises them to zero)",
                  "eval() mode; dropout/attention_dropout are 0 anyway",
                  "no input normalisation is applied: the input goes straight into conv_proj",
                  "LayerNorm eps 1e-6; MLP GELU is exact (erf); attention is nn.MultiheadAttention with packed in_proj"],
        "input": jsonfmt.arr(x), "logits": jsonfmt.arr(logits)}, indent=1)


def timm_vit(out):
    import timm

    torch.manual_seed(2001)
    m = timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=10).eval()
    save(m.state_dict(), os.path.join(out, "timm_vit_tiny.pth"))
    write_sidecar(out, "timm_vit_tiny", ["timm vit_tiny_patch16_224 random init with a 10-class head"])
    x = torch.rand(1, 3, 224, 224, generator=torch.Generator().manual_seed(2002))
    with torch.no_grad():
        feats = m.forward_features(x)
        logits = m.forward_head(feats)
    jsonfmt.write(os.path.join(out, "timm_vit_tiny.parity.json"), {
        "description": "timm.create_model('vit_tiny_patch16_224', pretrained=False, num_classes=10), random init, eval() mode; weights = timm_vit_tiny.pth",
        "versions": jsonfmt.versions(), "seed": 2001,
        "notes": ["timm default init (trunc_normal std .02 for Linear, cls_token std 1e-6)",
                  "no input normalisation applied; global_pool='token' (CLS), fc_norm is Identity, final norm before head",
                  "LayerNorm eps 1e-6; GELU exact (erf); qkv packed in blocks.N.attn.qkv; attention scale head_dim**-0.5"],
        "input": jsonfmt.arr(x), "logits": jsonfmt.arr(logits), "cls_features_after_norm": jsonfmt.arr(feats[:, 0])}, indent=1)


TIMM_AVG_CONFIG = {"img_size": 32, "patch_size": 8, "embed_dim": 64, "depth": 2, "num_heads": 4, "mlp_ratio": 4.0,
                   "num_classes": 10, "global_pool": "avg"}


def timm_avg_vit(out):
    """timm_vit_avg_tiny: a timm VisionTransformer with global_pool='avg' (mean of the patch tokens, then fc_norm),
    its eval logits and the gradient of every parameter for L = sum(logits * R)."""
    from timm.models.vision_transformer import VisionTransformer

    torch.manual_seed(2101)
    m = VisionTransformer(**TIMM_AVG_CONFIG).eval()
    assert m.num_prefix_tokens == 1 and isinstance(m.norm, torch.nn.Identity) and not isinstance(m.fc_norm, torch.nn.Identity)
    randomise_vit(m, torch.Generator().manual_seed(2102))
    save(m.state_dict(), os.path.join(out, "timm_vit_avg_tiny.pth"))
    write_sidecar(out, "timm_vit_avg_tiny", ["timm VisionTransformer with global_pool='avg': fc_norm after pooling, no final norm"])
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(2103))
    r = torch.randn(2, TIMM_AVG_CONFIG["num_classes"], generator=torch.Generator().manual_seed(2104))
    with torch.no_grad():
        feats = m.forward_features(x)
        pooled = m.pool(feats)
        logits = m.forward_head(feats)
    m.zero_grad()
    (m(x) * r).sum().backward()
    grads = [{"name": n, "grad": jsonfmt.arr(p.grad)} for n, p in m.named_parameters() if not n.startswith("head.")]
    jsonfmt.write(os.path.join(out, "timm_vit_avg_tiny.parity.json"), {
        "description": "timm VisionTransformer(img_size=32, patch_size=8, embed_dim=64, depth=2, num_heads=4, mlp_ratio=4, num_classes=10, global_pool='avg'), eval() mode; weights = timm_vit_avg_tiny.pth",
        "versions": jsonfmt.versions(), "seed": 2101, "timm_config": TIMM_AVG_CONFIG,
        "notes": ["global_pool='avg': pooled = mean of the transformer output over the patch tokens (the class token, num_prefix_tokens=1, excluded), then fc_norm (LayerNorm), then head; the final norm is Identity",
                  "norm1/norm2/fc_norm weights are 1+0.2*randn, every bias, the class token and the head weight 0.2*randn (timm's init would leave them trivial)",
                  "no input normalisation applied; LayerNorm eps 1e-6; GELU exact (erf); attention scale head_dim**-0.5"],
        "input": jsonfmt.arr(x), "logits": jsonfmt.arr(logits), "pooled_features_after_norm": jsonfmt.arr(m.fc_norm(pooled)),
        "backward": {"loss": "sum(logits * R), the model in eval() mode (no dropout)", "R": jsonfmt.arr(r),
                     "parameter_gradients": grads,
                     "note": "every parameter but the head's, by its timm name"}}, indent=1)


TIMM_LORA_CONFIG = {"img_size": 32, "patch_size": 8, "embed_dim": 64, "depth": 2, "num_heads": 4, "mlp_ratio": 4.0,
                    "num_classes": 10}


def randomise_vit(m, g):
    """timm and torchvision start LayerNorms at 1/0, biases at 0 and the class token near 0 (torchvision's head at 0):
    made random so that a wrong norm, a missing bias or a wrongly pooled token shows."""
    with torch.no_grad():
        for name, p in m.named_parameters():
            if p.dim() == 1 and name.endswith("weight"):  # LayerNorms, a ViT's only 1-D weights
                p.copy_(1 + 0.2 * torch.randn(p.shape, generator=g))
            elif name.endswith(".bias") or name in ("cls_token", "class_token"):
                p.copy_(0.2 * torch.randn(p.shape, generator=g))
            elif name in ("head.weight", "heads.head.weight"):
                p.copy_(0.2 * torch.randn(p.shape, generator=g))


def lora_linear_parity(out, stem, m, timm_config, x, rank, seed, description, notes):
    """STEM.pth (a timm ViT's state dict plus LoRA factors `blocks.{i}.mlp.fc{1,2}.lora_{A,B}`, loralib's shapes and
    alpha 1, so scaling 1/rank), its sidecar, and STEM.parity.json: eval-mode logits with LoRA applied unmerged and
    the gradient of L = sum(logits * R) with respect to every LoRA factor. `timm_config` (the VisionTransformer
    arguments) is recorded for the tests. Used for the tiny fixture and, by tools/full_size_parity.py, for ViT-B/16."""
    g = torch.Generator().manual_seed(seed)
    scaling = 1.0 / rank
    factors = {}
    for i, blk in enumerate(m.blocks):
        for j, lin in ((1, blk.mlp.fc1), (2, blk.mlp.fc2)):
            # Both factors random (loralib starts B at 0, which would leave A's gradient 0).
            a = (0.1 * torch.randn(rank, lin.in_features, generator=g)).requires_grad_()
            b = (0.1 * torch.randn(lin.out_features, rank, generator=g)).requires_grad_()
            factors[f"blocks.{i}.mlp.fc{j}.lora_A"], factors[f"blocks.{i}.mlp.fc{j}.lora_B"] = a, b
            lin.register_forward_hook(lambda mod, inp, y, a=a, b=b: y + scaling * (inp[0] @ a.t()) @ b.t())
    m.eval()
    for p in m.parameters():
        p.requires_grad_(False)
    # loralib's order: a LoRA Linear's state dict is weight, bias, lora_A, lora_B.
    state = collections.OrderedDict()
    for k, v in m.state_dict().items():
        state[k] = v
        lora = k.removesuffix(".bias") + ".lora_A"
        if k.endswith(".bias") and lora in factors:
            state[lora] = factors[lora].detach().clone()
            state[lora[:-1] + "B"] = factors[lora[:-1] + "B"].detach().clone()
    save(state, os.path.join(out, stem + ".pth"))
    write_sidecar(out, stem, notes)
    r = torch.randn(x.shape[0], m.num_classes, generator=g)
    logits = m(x)
    (logits * r).sum().backward()
    jsonfmt.write(os.path.join(out, stem + ".parity.json"), {
        "description": description, "versions": jsonfmt.versions(), "seed": seed, "timm_config": timm_config,
        "lora": {"rank": rank, "lora_alpha": 1.0, "scaling": scaling, "targets": "blocks.{i}.mlp.fc1 and fc2",
                 "formula": "y = x W^T + b + ((x A^T) B^T) * scaling, A [rank, in], B [out, rank] (loralib)"},
        "notes": notes, "input": jsonfmt.arr(x), "logits": jsonfmt.arr(logits),
        "losses": {"structure_block_norms": [
            math.sqrt(sum(float((factors[f"blocks.{i}.mlp.fc{j}.lora_{f}"].detach().double() ** 2).sum()) for j in (1, 2) for f in "AB"))
            for i in range(len(m.blocks))],
            "note": "per block, the 2-norm of all four factors together (GS-LoRA's group)"},
        "backward": {"loss": "sum(logits * R), the model in eval() mode (no dropout), LoRA unmerged", "R": jsonfmt.arr(r),
                     "lora_gradients": [{"name": k, "grad": jsonfmt.arr(v.grad)} for k, v in factors.items()],
                     "note": "every LoRA factor by its name in the .pth; the backbone and head are frozen"}}, indent=1)


def timm_lora_vit(out):
    """timm_vit_lora_tiny: a class-token timm ViT with rank-4 LoRA on every fc1/fc2, the gradients of its factors."""
    from timm.models.vision_transformer import VisionTransformer

    torch.manual_seed(2201)
    m = VisionTransformer(**TIMM_LORA_CONFIG)
    randomise_vit(m, torch.Generator().manual_seed(2202))
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(2203))
    lora_linear_parity(
        out, "timm_vit_lora_tiny", m, TIMM_LORA_CONFIG, x, rank=4, seed=2204,
        description="timm VisionTransformer(img_size=32, patch_size=8, embed_dim=64, depth=2, num_heads=4, mlp_ratio=4, num_classes=10) with rank-4 LoRA on every fc1/fc2, eval() mode; weights and LoRA factors = timm_vit_lora_tiny.pth",
        notes=["class-token pooling, final norm before the head; norm weights 1+0.2*randn, every bias, the class token and the head weight 0.2*randn",
               "LoRA factors A and B both 0.1*randn, alpha 1 (scaling 1/rank); no input normalisation; LayerNorm eps 1e-6; GELU exact (erf)"])


def dtypes(out):
    g = torch.Generator().manual_seed(3001)
    base = torch.arange(100.0)
    d = {"float32": torch.randn(2, 3, generator=g), "float16": torch.randn(2, 3, generator=g).half(),
         "bfloat16": torch.randn(2, 3, generator=g).bfloat16(), "float64": torch.randn(2, 3, generator=g, dtype=torch.float64),
         "int64": torch.randint(-10**12, 10**12, (2, 3), generator=g), "int32": torch.randint(-2**31, 2**31 - 1, (5,), generator=g, dtype=torch.int32),
         "int16": torch.randint(-2**15, 2**15 - 1, (5,), generator=g, dtype=torch.int16),
         "int8": torch.randint(-128, 127, (6,), generator=g, dtype=torch.int8), "uint8": torch.randint(0, 255, (7,), generator=g, dtype=torch.uint8),
         "bool": torch.rand(5, generator=g) > 0.5, "scalar": torch.tensor(3.25), "empty": torch.zeros(0, 3),
         "transposed": (torch.arange(12.0) / 2).reshape(3, 4).t(), "view_a": base[10:30].view(4, 5), "view_b": base[50:60],
         "parameter": torch.nn.Parameter(torch.randn(2, 2, generator=g)),
         "float32_special": torch.tensor([float("nan"), float("inf"), float("-inf"), -0.0, 1.401298464324817e-45, 3.4028234663852886e38])}
    save(d, os.path.join(out, "dtypes.pth"))
    write_sidecar(out, "dtypes", [
        "plain dict (not OrderedDict)",
        "'transposed' is m.t() of a contiguous 3x4 tensor: saved as a view (stride [1,4]) over the full 12-element storage",
        "'view_a' = base[10:30].view(4,5) and 'view_b' = base[50:60] with base = arange(100.): one shared 100-element storage, storage offsets 10 and 50 (base itself is not in the dict)",
        "'parameter' is an nn.Parameter (pickled via torch._utils._rebuild_parameter, requires_grad=True)",
        "'float32_special' holds nan, inf, -inf, -0.0, the smallest subnormal and FLT_MAX; non-finite first_values are written as strings"])


def legacy(out):
    torch.manual_seed(4001)
    net = torch.nn.Sequential(torch.nn.Linear(8, 4), torch.nn.BatchNorm1d(4), torch.nn.Linear(4, 2)).train()
    with torch.no_grad():
        for _ in range(2):
            net(torch.randn(5, 8))
    save(net.state_dict(), os.path.join(out, "legacy.pth"), _use_new_zipfile_serialization=False)
    write_sidecar(out, "legacy", [
        "torch.save(..., _use_new_zipfile_serialization=False): legacy format = 5 consecutive pickles (magic number, protocol version, sys_info, the object with persistent ids ('storage', StorageType, key, location, numel, view_metadata), the list of storage keys) followed by, per key in that order, an int64 little-endian element count and the raw little-endian bytes",
        "state_dict of nn.Sequential(Linear(8,4), BatchNorm1d(4), Linear(4,2)) after two BN updates; includes an int64 0-d tensor (num_batches_tracked)"])


class _Payload:
    def __reduce__(self):
        return (os.system, ("echo pwned > /tmp/gslora_pwned",))


def malicious(out):
    """A torch.save zip whose data.pkl also calls os.system: pickled as posix.system, then renamed to os.system."""
    buf = io.BytesIO()
    torch.save({"weight": torch.tensor([1.0, 2.0, 3.0, 4.0]), "payload": _Payload()}, buf, pickle_protocol=2)
    path = os.path.join(out, "malicious_os_system.pth")
    src = zipfile.ZipFile(io.BytesIO(buf.getvalue()))
    tmpdir = tempfile.mkdtemp(dir=out, prefix=".tmp-")
    tmp = os.path.join(tmpdir, "malicious_os_system.pth")
    writer = torch._C.PyTorchFileWriter(tmp)
    for info in src.infolist():
        name = info.filename.split("/", 1)[1]
        data = src.read(info)
        if name == "data.pkl":
            assert data.count(b"cposix\nsystem\n") == 1, "expected one GLOBAL posix.system"
            data = data.replace(b"cposix\nsystem\n", b"cos\nsystem\n")
        writer.write_record(name, data, len(data))
    writer.write_end_of_file()
    del writer
    os.replace(tmp, path)
    os.rmdir(tmpdir)
    data = open(path, "rb").read()
    probe = ("import torch, os, json\n"
             "r = {'loaded': False, 'exception': None, 'message': None}\n"
             f"try:\n    torch.load({path!r}, weights_only=True); r['loaded'] = True\n"
             "except Exception as e:\n    r['exception'] = type(e).__name__\n"
             "    lines = [l.strip() for l in str(e).splitlines() if 'GLOBAL' in l] or [str(e).splitlines()[0]]\n"
             "    r['message'] = lines[0]\n"
             "print(json.dumps(r))\n")
    marker = "/tmp/gslora_pwned"
    existed = os.path.exists(marker)
    p = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    result = {"returncode": p.returncode, **json.loads(p.stdout.strip().splitlines()[-1])}
    result["marker_files_created"] = [marker] if os.path.exists(marker) and not existed else []
    jsonfmt.write(os.path.join(out, "malicious_os_system.expected.json"), {
        "file": "malicious_os_system.pth", "file_sha256": hashlib.sha256(data).hexdigest(),
        "what": "zip-format .pth (torch's own zip writer, same records as torch.save) whose data.pkl is a dict {'weight': a real 4-element float32 tensor from data/0, 'payload': os.system('echo pwned > /tmp/gslora_pwned')} (GLOBAL 'os system', protocol 2)",
        "expected": "a safe loader refuses the file with a clear error naming the disallowed global (os.system) and never executes anything; /tmp/gslora_pwned must not appear",
        "torch_weights_only_result": result, "written_by": {"torch": torch.__version__}}, indent=1)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", help="folder to write the fixtures into (created if missing)")
    ap.add_argument("--force", action="store_true", help="overwrite fixture files already in the folder")
    ap.add_argument("--only", nargs="*", choices=["face", "torchvision", "timm", "timm_avg", "timm_lora", "dtypes", "legacy", "malicious"],
                    help="rebuild only these fixtures (face includes checkpoint_nested)")
    a = ap.parse_args()
    import timm
    import torchvision

    got = {"torch": torch.__version__.split("+")[0], "torchvision": torchvision.__version__.split("+")[0], "timm": timm.__version__}
    if got != PINS:
        sys.exit(f"make_fixtures: needs {PINS}, found {got}; run scripts/make-fixtures.sh, which makes that venv")
    os.makedirs(a.out, exist_ok=True)
    existing = [n for n in os.listdir(a.out) if n.endswith((".pth", ".json"))]
    if existing and not a.force:
        sys.exit(f"make_fixtures: {a.out} already holds fixture files ({', '.join(sorted(existing)[:3])}, ...); pass --force to overwrite")
    if os.path.exists(os.path.join(a.out, "baselines_tiny.parity.json")) and (not a.only or "face" in a.only):
        sys.exit("make_fixtures: the folder holds baselines_tiny.parity.json, computed on its face_vit_tiny.pth; rebuilding "
                 "face_vit_tiny.pth here would leave it stale. Write into another folder and run tools/make_baseline_fixtures.py "
                 "--model OUT/face_vit_tiny.pth -o OUT/baselines_tiny.parity.json there, or pass --only with the other fixtures")
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    steps = {"face": face, "torchvision": torchvision_vit, "timm": timm_vit, "timm_avg": timm_avg_vit, "timm_lora": timm_lora_vit, "dtypes": dtypes,
             "legacy": legacy, "malicious": malicious}
    for name in a.only or steps:
        print(f"make_fixtures: {name}", file=sys.stderr)
        steps[name](a.out)


if __name__ == "__main__":
    main()

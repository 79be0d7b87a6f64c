#!/usr/bin/env python3
"""Recomputes Tests/Fixtures/pytorch/baselines_tiny.parity.json: two optimiser steps (SCRUB: one super-epoch) of each
of the eleven baseline methods of spec/TRAINING.md §7 on face_vit_tiny.pth, in PyTorch.

The inputs are the ones the file records (its `inputs`, `batches`, `hyper`, `lr_schedules`, `optimizer_notes`,
`record_format`), so the file is both this script's input and its output: the model is face_vit_tiny.pth loaded into
a lora_rank=0 face ViT (fixturegen/face_vit.py; its lora_* tensors are ignored), dropout 0, and every number of
`forward_initial`, `lr_schedules` and `methods` is recomputed; the prose and the inputs are carried over.

    /work/venv/bin/python tools/make_baseline_fixtures.py --check          # compare with the committed file
    /work/venv/bin/python tools/make_baseline_fixtures.py -o OUT.json      # write the recomputed file
    /work/venv/bin/python tools/make_baseline_fixtures.py -o Tests/Fixtures/pytorch/baselines_tiny.parity.json --force

It reproduces all eleven methods: l2, ewc, mas, retrain, lwf, der, derpp, fdr, lirf, scrub, scrub_s.
--check compares every number with the file (relative 1e-5 on floats, exact on ints, labels and names; `versions`
and the prose are not compared) and prints per method the largest |Δ| and whether it matches; it exits 1 if any
method differs. Writing is refused unless every method matches the file it reads, so the committed copy is never
replaced by a divergent one; after a deliberate change of the checkpoint (--model), --accept-changes writes anyway.
Needs torch 2.15.0, torchvision 0.29.2, timm 1.0.31 (scripts/make-fixtures.sh makes that venv).
"""
import argparse
import copy
import json
import math
import os
import random
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fixturegen import jsonfmt  # noqa: E402
from fixturegen.face_vit import FaceViT  # noqa: E402

PINS = {"torch": "2.15.0", "torchvision": "0.29.2", "timm": "1.0.31"}
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_FILE = os.path.join(REPO, "Tests", "Fixtures", "pytorch", "baselines_tiny.parity.json")
METHODS = ["l2", "ewc", "mas", "retrain", "lwf", "der", "derpp", "fdr", "lirf", "scrub", "scrub_s"]
RTOL = 1e-5
SCHEDULES = {"lr1e-4_warmup0": (1e-4, 0), "lr1e-3_warmup0": (1e-3, 0), "lr3e-4_warmup5": (3e-4, 5)}


# ---- model and data ------------------------------------------------------------------------------------------------

def tensor(a):
    return torch.tensor(a["data"], dtype=torch.float32).reshape(a["shape"])


def official_order(names):
    """The official ViT_face registers cls_token right after pos_embedding; our module after patch_to_embedding."""
    names = [n for n in names if n != "cls_token"]
    return names[:1] + ["cls_token"] + names[1:] if "pos_embedding" in names else names


def build(doc, state, depth=None):
    c = {k: v for k, v in doc["model_config"].items() if k not in ("loss_type", "GPU_ID", "lora_pos")}
    if depth is not None:
        c["depth"] = depth
    m = FaceViT(**c)
    missing, _ = m.load_state_dict(state, strict=False)
    if missing:
        raise SystemExit(f"make_baseline_fixtures: {doc['model_file']} lacks {missing}")
    return m.train()


def tokens(model, img):
    """The token sequence after the model's own blocks (ViT_face_low's output)."""
    p = model.patches(img)
    pe = model.patch_to_embedding(p)
    x = torch.cat([model.cls_token.expand(img.shape[0], -1, -1), pe], dim=1) + model.pos_embedding[:, :pe.shape[1] + 1]
    return model.transformer(model.dropout(x))


def upper(model, x, y, split):
    """ViT_face_up: blocks split.. of `model`, the final LayerNorm on the class token and CosFace (margin on y)."""
    for attn, ff in model.transformer.layers[split:]:
        x = ff(attn(x))
    emb = model.mlp_head(x[:, 0])
    return model.loss(emb, y)


def slice_of(t, spec):
    idx = []
    for part in spec.strip("[]").split(","):
        if ":" in part:
            a, b = part.split(":")
            idx.append(slice(int(a), int(b)))
        else:
            idx.append(int(part))
    return t[tuple(idx)]


# ---- what the file records per step --------------------------------------------------------------------------------

class Recorder:
    def __init__(self, model, slices):
        self.model, self.slices = model, slices
        self.params = dict(model.named_parameters())
        self.trainable = official_order([n for n, p in model.named_parameters() if p.requires_grad])

    def slices_now(self):
        return {n: jsonfmt.arr(slice_of(self.params[n].detach(), s)) for n, s in self.slices.items()}

    def before(self):
        return {n: self.params[n].detach().clone() for n in self.trainable}

    def step(self, before, lr):
        grads = {n: self.params[n].grad for n in self.trainable if self.params[n].grad is not None}
        return {"lr": lr,
                "grad_norm": {n: g.double().norm().item() for n, g in grads.items()},
                "update_norm": {n: (self.params[n].detach() - before[n]).norm().item() for n in self.trainable},
                "param_sum": {n: self.params[n].detach().double().sum().item() for n in self.trainable},
                "slices": self.slices_now()}


def timm_adamw(model, lr, epoch, warmup):
    from timm.optim import create_optimizer_v2
    from timm.scheduler import create_scheduler_v2
    opt = create_optimizer_v2(model, opt="adamw", lr=lr, weight_decay=0.05, eps=1e-8, betas=(0.9, 0.999))
    sched, _ = create_scheduler_v2(opt, sched="cosine", num_epochs=100, min_lr=1e-5, warmup_lr=1e-6,
                                   warmup_epochs=warmup)
    sched.step(epoch)
    return opt, opt.param_groups[0]["lr"]


def lr_table(lr, warmup):
    from timm.scheduler import create_scheduler_v2
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.AdamW([p], lr=lr)
    sched, _ = create_scheduler_v2(opt, sched="cosine", num_epochs=100, min_lr=1e-5, warmup_lr=1e-6,
                                   warmup_epochs=warmup)
    out = []
    for e in range(100):
        sched.step(e)
        out.append(opt.param_groups[0]["lr"])
    return out


def ce(model, x, y):
    return F.cross_entropy(model(x, y)[0], y)


def freeze_head(model):
    for n, p in model.named_parameters():
        if "loss" in n:
            p.requires_grad_(False)


def teacher_of(model):
    t = copy.deepcopy(model).eval()
    for p in t.parameters():
        p.requires_grad_(False)
    return t


def run_steps(model, rec, opt, lr, n, loss_fn, terms):
    """n optimiser steps; loss_fn(k) returns (total, {term: value}) and the terms go to the per-step lists."""
    steps = []
    for k in range(n):
        before = rec.before()
        opt.zero_grad(set_to_none=True)
        total, logged = loss_fn(k)
        total.backward()
        opt.step()
        for name, v in logged.items():
            terms.setdefault(name, []).append(jsonfmt.scalar(v))
        steps.append(rec.step(before, lr))
    return steps


# ---- methods -------------------------------------------------------------------------------------------------------

class Data:
    def __init__(self, doc):
        i = doc["inputs"]
        self.xf, self.xr, self.xp = (tensor(i[k]) for k in ("forget_images", "retain_images", "replay_images"))
        self.yf_true = torch.tensor(i["forget_labels"])
        self.yf = torch.tensor(i["forget_labels_rewritten"])
        self.yr = torch.tensor(i["retain_labels"])
        self.yp = torch.tensor(i["replay_labels"])


def rewrite_labels(labels, k, seed):
    """The official CLDatasetWrapper once per sample: (y + randint(1,100)) mod K, +1 (mod K) if unchanged."""
    rng = random.Random(seed)
    out = []
    for y in labels:
        z = (y + rng.randint(1, 100)) % k
        out.append((y + 1) % k if z == y else z)
    return out


def importance(model, kind, d):
    """EWC: Fisher Σ_b n_b g_b² / N; MAS: Σ_b |∇ mean z²| / N; retain+replay in batches of 3, eval mode."""
    x, y = torch.cat([d.xr, d.xp]), torch.cat([d.yr, d.yp])
    batches = [(x[i:i + 3], y[i:i + 3]) for i in range(0, len(x), 3)]
    params = {n: p for n, p in model.named_parameters() if p.requires_grad}
    omega = {n: torch.zeros_like(p) for n, p in params.items()}
    model.eval()
    for xb, yb in batches:
        model.zero_grad(set_to_none=True)
        logits = model(xb, yb)[0]
        loss = F.cross_entropy(logits, yb) if kind == "ewc" else logits.pow(2).mean()
        loss.backward()
        for n, p in params.items():
            omega[n] += (p.grad ** 2 * len(xb) if kind == "ewc" else p.grad.abs()) / len(batches)
    model.zero_grad(set_to_none=True)
    model.train()
    return omega


def regularised(doc, state, d, slices, method):
    h = doc["hyper"][method]
    model = build(doc, state)
    freeze_head(model)
    rec = Recorder(model, slices)
    initial = rec.slices_now()
    anchor = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    if method == "l2":
        omega = {n: torch.ones_like(a) for n, a in anchor.items()}
    else:
        omega = importance(model, method, d)
    params = dict(model.named_parameters())

    def reg():
        return sum((omega[n] * (params[n] - anchor[n]) ** 2).sum() for n in anchor)

    x, y = torch.cat([d.xf, d.xr]), torch.cat([d.yf, d.yr])
    opt, lr = timm_adamw(model, h["lr"], h["lr_epoch"], h["warmup_epochs"])

    def loss(_):
        c = ce(model, x, y)
        r = h["reg_lambda"] * reg()
        return c + r, {"CE": c, "regularization": r, "total": c + r}

    terms = {}
    steps = run_steps(model, rec, opt, lr, 2, loss, terms)
    out = {"loss_terms_per_step": terms, "initial_slices": initial, "steps": steps, "trainable": rec.trainable}
    if method != "l2":
        names = official_order(list(omega))
        out["importance"] = {"tensors": names,
                             "sum": {n: omega[n].double().sum().item() for n in names},
                             "max": {n: omega[n].max().item() for n in names},
                             "slices": {n: jsonfmt.arr(slice_of(omega[n], s)) for n, s in slices.items() if n in omega},
                             "data": doc["methods"][method]["importance"]["data"]}
    with torch.no_grad():
        out["reg_loss_after_step2"] = jsonfmt.scalar(h["reg_lambda"] * reg())
    return out


def retrain(doc, state, d, slices):
    h = doc["hyper"]["retrain"]
    model = build(doc, state)
    rec = Recorder(model, slices)
    initial = rec.slices_now()
    opt, lr = timm_adamw(model, h["lr"], h["lr_epoch"], h["warmup_epochs"])

    def loss(_):
        c = ce(model, d.xr, d.yr)
        return c, {"CE": c, "regularization": torch.zeros(()), "total": c}

    terms = {}
    steps = run_steps(model, rec, opt, lr, 2, loss, terms)
    return {"loss_terms_per_step": terms, "initial_slices": initial, "steps": steps, "trainable": rec.trainable}


def lwf_official_kd(zs, zt, T):
    """The official L_old_kd_loss: log of a log-softmax (NaN everywhere), NaNs set to 0: identically 0, no gradient."""
    s = torch.log(F.log_softmax(F.softmax(zs, dim=1).pow(1 / T), dim=1))
    t = F.softmax(zt, dim=1).pow(1 / T)
    t = t / t.sum(dim=1, keepdim=True)
    v = t * s
    return -v.masked_fill(torch.isnan(v), 0).sum(dim=1).mean()


def distilling(doc, state, d, slices, method):
    """LwF, DER, DER++ and FDR: the forget batch drives; the remain iterator cycles over [retain] ([retain, replay])."""
    h = doc["hyper"][method]
    model = build(doc, state)
    freeze_head(model)
    teacher = teacher_of(model)
    rec = Recorder(model, slices)
    initial = rec.slices_now()
    opt, lr = timm_adamw(model, h["lr"], h["lr_epoch"], h["warmup_epochs"])
    remain = [(d.xr, d.yr), (d.xp, d.yp)] if method == "derpp" else [(d.xr, d.yr)]
    pos = [0]
    pre = []

    def next_remain():
        b = remain[pos[0] % len(remain)]
        pos[0] += 1
        return b

    def loss(_):
        xr, yr = next_remain()
        ce_f = ce(model, d.xf, d.yf)
        if method == "lwf":
            zs = model(xr, yr)[0]
            with torch.no_grad():
                zt = teacher(xr, yr)[0]
            ce_r = F.cross_entropy(zs, yr)
            kd = lwf_official_kd(zs, zt, h["T"])
            total = ce_f + h["lambda_kd"] * kd + h["lambda_remain"] * ce_r
            return total, {"CE": ce_f, "KD": kd, "remain": ce_r, "total": total}
        if method == "fdr":
            zs = model(xr, yr)[0]
            with torch.no_grad():
                zt = teacher(xr, yr)[0]
            fdr = torch.linalg.vector_norm(zs - zt, dim=1).mean()
            total = ce_f + h["reg_lambda"] * fdr
            return total, {"CE": ce_f, "FDR": fdr, "total": total}
        es = model(xr)
        with torch.no_grad():
            et = teacher(xr)
        der = (es - et).pow(2).sum()
        total = ce_f + h["lambda_der"] * der
        if h["plus"]:
            xn, yn = next_remain()
            ce_next = ce(model, xn, yn)
            pre.append({"CE_next_recomputed": jsonfmt.scalar(ce_next)})
            total = total + h["lambda_plus"] * ce_next
        return total, {"CE": ce_f, "DER": der, "total": total}

    terms = {}
    steps = run_steps(model, rec, opt, lr, 2, loss, terms)
    for s, p in zip(steps, pre):
        s["pre_step"] = p
    out = {"loss_terms_per_step": terms, "initial_slices": initial, "steps": steps, "trainable": rec.trainable}
    if method == "lwf":
        with torch.no_grad():
            out["L_old_kd_loss_initial_official"] = jsonfmt.scalar(
                lwf_official_kd(teacher(d.xr, d.yr)[0], teacher(d.xr, d.yr)[0], h["T"]))
    return out


def attention(m):
    a = F.normalize(m.pow(2).mean(1))
    return a.masked_fill(a < 0.005, 0)


def lirf(doc, state, d, slices):
    h = doc["hyper"]["lirf"]
    rec_doc = doc["methods"]["lirf"]
    depth = doc["model_config"]["depth"]
    split = depth // 2
    S = len(doc["inputs"]["forget_classes"])
    T, alpha = h["LIRF_T"], h["LIRF_alpha"]
    student = build(doc, state, depth=split)
    deposit = build(doc, state, depth=split)
    teacher_low = teacher_of(build(doc, state, depth=split))
    teacher_up = teacher_of(build(doc, state))
    rec = Recorder(student, doc["record_format"]["lirf_slices"])
    initial = rec.slices_now()
    opt, lr = timm_adamw(student, h["lr"], h["lr_epoch"], h["warmup_epochs"])
    dep_params = dict(deposit.named_parameters())
    dep_before = {n: p.detach().clone() for n, p in dep_params.items()}
    dep_norms = []

    def kl(o_t, o, cols):
        return alpha * T * T * F.kl_div(F.log_softmax(o[:, cols] / T, dim=1), F.softmax(o_t[:, cols] / T, dim=1),
                                        reduction="batchmean")

    def loss(_):
        m_s = tokens(student, d.xf)
        o_s = upper(teacher_up, m_s, d.yf, split)
        o_d = upper(teacher_up, tokens(deposit, d.xf), d.yf, split)
        with torch.no_grad():
            m_t = tokens(teacher_low, d.xf)
            o_t = upper(teacher_up, m_t, d.yf, split)
        c = (1 - alpha) * F.cross_entropy(o_s, d.yf)
        at = (attention(m_s) - attention(m_t)).pow(2).mean()
        kp = kl(o_t, o_s, slice(S, None))
        pt_re = kl(o_t, o_d, slice(None, S)) + (1 - alpha) * F.cross_entropy(o_d, d.yf)
        replay = F.cross_entropy(upper(teacher_up, tokens(student, d.xr), d.yr, split), d.yr)
        total = c - 300 * at + 10 * kp + 0.05 * pt_re + 5 * replay
        return total, {"CE": c, "AT": at, "KP": kp, "pt_re": pt_re, "total": total, "remain": replay}

    terms = {}
    steps = []
    for k in range(2):
        steps += run_steps(student, rec, opt, lr, 1, loss, terms)
        # the deposit is in no optimiser: its gradients accumulate, its values never change
        dep_norms.append({n: p.grad.double().norm().item() for n, p in dep_params.items() if p.grad is not None})
    change = max((dep_params[n].detach() - dep_before[n]).abs().max().item() for n in dep_params)
    return {"loss_terms_per_step": terms, "initial_slices": initial, "steps": steps, "trainable": rec.trainable,
            "deposit_grad_norm_per_step": [{n: v[n] for n in official_order(list(v))} for v in dep_norms],
            "deposit_max_abs_change": change, "split": S, "T": T, "alpha": alpha,
            "student_is": rec_doc["student_is"]}


def scrub(doc, state, d, slices, method):
    from torch.optim.swa_utils import AveragedModel
    h = doc["hyper"][method]
    model = build(doc, state)
    freeze_head(model)
    teacher = teacher_of(model)
    beta = h["swa_beta"]
    swa = AveragedModel(model, avg_fn=lambda avg, cur, n: (1 - beta) * avg + beta * cur)
    rec = Recorder(model, slices)
    initial = rec.slices_now()
    lr = h["sgda_learning_rate"]
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=h["sgda_weight_decay"])
    T, sigma = h["kd_T"], h["sgda_smoothing"]

    def kd(zs, zt):
        return F.kl_div(F.log_softmax(zs / T, dim=1), F.softmax(zt / T, dim=1), reduction="sum") * T * T / zs.shape[0]

    def dist():
        return sum(torch.norm(p1 - p2, p="fro") for p1, p2 in zip(model.parameters(), swa.module.parameters()))

    kinds = [k for _ in range(5) for k in ("forget", "remain")] + ["remain"] * 5
    terms, steps, pre = {}, [], []
    for i, kind in enumerate(kinds):
        before = rec.before()
        opt.zero_grad(set_to_none=True)
        D = dist()
        pre.append({"loss_sgda_recomputed": jsonfmt.scalar(sigma * D), "param_dist_unscaled": jsonfmt.scalar(D)})
        if kind == "forget":
            zs = model(d.xf, d.yf_true)[0]
            with torch.no_grad():
                zt = teacher(d.xf, d.yf_true)[0]
            k = kd(zs, zt)
            total = -k + sigma * D
            logged = {"total_forget": total, "kd_forget": k}
        else:
            zs = model(d.xr, d.yr)[0]
            with torch.no_grad():
                zt = teacher(d.xr, d.yr)[0]
            c = F.cross_entropy(zs, d.yr)
            k = kd(zs, zt)
            total = h["sgda_gamma"] * c + h["sgda_alpha"] * k + sigma * D
            logged = {"CE": c, "total_remain": total, "kd_remain": k}
        total.backward()
        opt.step()
        for name, v in logged.items():
            terms.setdefault(name, []).append(jsonfmt.scalar(v))
        if i < 2:
            s = rec.step(before, lr)
            s["pre_step"] = pre[-1]
            steps.append(s)
    final_slices = rec.slices_now()
    final_sum = {n: rec.params[n].detach().double().sum().item() for n in rec.trainable}
    swa.update_parameters(model)
    sp = dict(swa.module.named_parameters())
    order = ["CE", "total_forget", "total_remain", "kd_forget", "kd_remain"]
    return {"loss_terms_per_step": {k: terms[k] for k in order}, "initial_slices": initial, "steps": steps,
            "trainable": rec.trainable, "step_kinds": kinds, "steps_recorded": doc["methods"][method]["steps_recorded"],
            "pre_step_per_step": pre, "final_slices": final_slices, "final_param_sum": final_sum,
            "swa_after_superepoch_slices": {n: jsonfmt.arr(slice_of(sp[n].detach(), s)) for n, s in slices.items()},
            "swa_n_averaged": int(swa.n_averaged.item())}


def forward_initial(doc, state, d):
    model = build(doc, state)
    out = {}
    with torch.no_grad():
        for key, x, y in (("forget_true_labels", d.xf, d.yf_true), ("forget_rewritten_labels", d.xf, d.yf),
                          ("retain", d.xr, d.yr), ("replay", d.xp, d.yp)):
            logits, emb = model(x, y)
            out[key] = {"labels": y.tolist(), "embedding": jsonfmt.arr(emb), "logits_margin": jsonfmt.arr(logits)}
    return out


def compute(doc, state, methods):
    d = Data(doc)
    slices = doc["record_format"]["steps[k].slices / initial_slices"]
    run = {"l2": lambda: regularised(doc, state, d, slices, "l2"),
           "ewc": lambda: regularised(doc, state, d, slices, "ewc"),
           "mas": lambda: regularised(doc, state, d, slices, "mas"),
           "retrain": lambda: retrain(doc, state, d, slices),
           "lwf": lambda: distilling(doc, state, d, slices, "lwf"),
           "der": lambda: distilling(doc, state, d, slices, "der"),
           "derpp": lambda: distilling(doc, state, d, slices, "derpp"),
           "fdr": lambda: distilling(doc, state, d, slices, "fdr"),
           "lirf": lambda: lirf(doc, state, d, slices),
           "scrub": lambda: scrub(doc, state, d, slices, "scrub"),
           "scrub_s": lambda: scrub(doc, state, d, slices, "scrub_s")}
    new = dict(doc)
    new["versions"] = jsonfmt.versions()
    new["inputs"] = dict(doc["inputs"], forget_labels_rewritten=rewrite_labels(
        doc["inputs"]["forget_labels"], len(doc["inputs"]["forget_classes"]), doc["seed"]))
    new["lr_schedules"] = dict(doc["lr_schedules"], **{k: lr_table(*v) for k, v in SCHEDULES.items()})
    new["forward_initial"] = forward_initial(doc, state, d)
    new["methods"] = {}
    for m in methods:
        torch.manual_seed(doc["seed"])
        new["methods"][m] = run[m]()
    return new


# ---- comparison ----------------------------------------------------------------------------------------------------

def compare(a, b, path, diffs):
    """Appends (path, |Δ|, ok) for every number; structural differences are (path, inf, False)."""
    if isinstance(b, dict):
        if not isinstance(a, dict) or list(a) != list(b):
            diffs.append((path + f" keys {sorted(set(b) ^ set(a)) if isinstance(a, dict) else type(a).__name__}",
                          math.inf, False))
            return
        for k in b:
            compare(a[k], b[k], f"{path}.{k}", diffs)
    elif isinstance(b, list):
        if not isinstance(a, list) or len(a) != len(b):
            diffs.append((path + " length", math.inf, False))
            return
        for i, (x, y) in enumerate(zip(a, b)):
            compare(x, y, f"{path}[{i}]", diffs)
    elif isinstance(b, bool) or isinstance(b, int) and isinstance(a, int) or isinstance(b, str) or b is None:
        diffs.append((path, 0.0 if a == b else math.inf, a == b))
    else:
        delta = abs(float(a) - float(b))
        diffs.append((path, delta, delta <= RTOL * abs(float(b))))


def check_report(new, doc, methods):
    """Per method: max |Δ|, the worst entry, and whether every number matches; returns the set of matching methods."""
    ok_methods = set()
    shared = []
    for key in ("inputs", "lr_schedules", "forward_initial"):
        compare(new[key], doc[key], key, shared)
    bad = [x for x in shared if not x[2]]
    print(f"{'inputs/lr/forward':18s} max|Δ| {max(x[1] for x in shared):.3e}  {'match' if not bad else 'DIFFERS'}"
          + (f"  first: {bad[0][0]}" if bad else ""))
    for m in METHODS:
        if m not in methods:
            continue
        diffs = []
        compare(new["methods"][m], doc["methods"][m], m, diffs)
        bad = [x for x in diffs if not x[2]]
        worst = max(diffs, key=lambda x: x[1])
        print(f"{m:18s} max|Δ| {worst[1]:.3e} (at {worst[0]})  {len(diffs)} values  "
              + ("match" if not bad else f"DIFFERS at {len(bad)}: {', '.join(p for p, _, _ in bad[:4])}"))
        if not bad:
            ok_methods.add(m)
    return ok_methods, not [x for x in shared if not x[2]]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--file", default=DEFAULT_FILE,
                    help="the parity file to read inputs from (default: the committed one)")
    ap.add_argument("--model", help="the checkpoint (default: the file's model_file beside it)")
    ap.add_argument("--check", action="store_true", help="recompute in memory and compare with --file; writes nothing")
    ap.add_argument("-o", "--output",
                    help="write the recomputed file here (refused unless every method matches --file)")
    ap.add_argument("--force", action="store_true", help="overwrite --output if it exists")
    ap.add_argument("--only", nargs="+", choices=METHODS, help="with --check: only these methods")
    ap.add_argument("--accept-changes", action="store_true",
                    help="with -o: write even where the numbers differ from --file (the checkpoint changed on purpose)")
    a = ap.parse_args()
    if a.check == bool(a.output):
        ap.error("give exactly one of --check or -o OUTPUT")
    if a.only and a.output:
        ap.error("--only works with --check only: a written file holds every method")
    if a.output and os.path.exists(a.output) and not a.force:
        print(f"make_baseline_fixtures: {a.output} exists; pass --force to overwrite", file=sys.stderr)
        sys.exit(2)
    import timm
    import torchvision
    got = {"torch": torch.__version__.split("+")[0], "torchvision": torchvision.__version__.split("+")[0],
           "timm": timm.__version__}
    if got != PINS:
        print(f"make_baseline_fixtures: needs {PINS}, found {got}; run scripts/make-fixtures.sh, which makes that venv",
              file=sys.stderr)
        sys.exit(1)
    try:
        with open(a.file) as f:
            doc = json.load(f)
        model_path = a.model or os.path.join(os.path.dirname(os.path.abspath(a.file)), doc["model_file"])
    except (OSError, ValueError, KeyError, TypeError) as e:
        print(f"make_baseline_fixtures: cannot read {a.file}: {e!r}", file=sys.stderr)
        sys.exit(1)
    try:
        state = torch.load(model_path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch.load raises pickle, EOF, zip and runtime errors alike
        print(f"make_baseline_fixtures: cannot load {model_path}: {e!r}", file=sys.stderr)
        sys.exit(1)
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    methods = a.only or METHODS
    try:
        new = compute(doc, state, methods)
    except (KeyError, TypeError, ValueError, IndexError, RuntimeError) as e:
        print(f"make_baseline_fixtures: {a.file} or {model_path} is not what the baselines need: {e!r}",
              file=sys.stderr)
        sys.exit(1)
    ok, shared_ok = check_report(new, doc, methods)
    missing = [m for m in methods if m not in ok]
    if a.check:
        print(f"make_baseline_fixtures: {len(ok)}/{len(methods)} methods match {a.file} (rtol {RTOL})"
              + (f"; differ: {', '.join(missing)}" if missing else ""), file=sys.stderr)
        sys.exit(0 if not missing and shared_ok else 1)
    if (missing or not shared_ok) and not a.accept_changes:
        print(f"make_baseline_fixtures: not writing {a.output}: {', '.join(missing) or 'inputs/forward'} differ "
              f"from {a.file}; pass --accept-changes if the checkpoint changed on purpose", file=sys.stderr)
        sys.exit(1)
    jsonfmt.write(a.output, new, indent=1)
    print(f"make_baseline_fixtures: wrote {a.output}", file=sys.stderr)


if __name__ == "__main__":
    main()

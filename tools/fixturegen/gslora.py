"""One GS-LoRA step (spec/TRAINING.md §2–§5): the bounded forget loss, the retain loss, the group-lasso structure
loss with one group per block, the prototype KL terms and their total; gradients by autograd, updates by
torch.optim.AdamW."""
import math

import torch
import torch.nn.functional as F


def bound_for(ce_forget):
    """BND: 10, unless the forget cross-entropy is already ≥ 9; then ceil(CE)+5, so BND > CE holds."""
    return 10.0 if ce_forget < 9 else float(math.ceil(ce_forget) + 5)


def lora_groups(model):
    """Per block, the names of its LoRA tensors (one structure group per transformer block)."""
    groups = {}
    for name, _ in model.named_parameters():
        if "lora_" in name:
            groups.setdefault(int(name.split(".")[2]), []).append(name)
    return [groups[k] for k in sorted(groups)]


def structure(model, groups):
    """Σ over groups of ‖group‖₂, the norm over all elements of the group's tensors; returns (sum, per-group)."""
    params = dict(model.named_parameters())
    norms = [torch.sqrt(sum((params[n] ** 2).sum() for n in g)) for g in groups]
    return sum(norms), norms


def prototype_kl(embedding, labels, table):
    """Σ_b Σ_j p_j (log p_j − log q_j) / B with p = softmax(prototype[label]), q = softmax(embedding)."""
    log_p = F.log_softmax(table[labels], dim=1)
    log_q = F.log_softmax(embedding, dim=1)
    return (log_p.exp() * (log_p - log_q)).sum() / embedding.shape[0]


def losses(model, batch, hyper, table, groups):
    """Every loss term of one step on (forget, retain) batches; the caller backpropagates `total`."""
    (xf, yf), (xr, yr) = batch
    logits_f, emb_f = model(xf, yf)
    logits_r, emb_r = model(xr, yr)
    ce_f = F.cross_entropy(logits_f, yf)
    ce_r = F.cross_entropy(logits_r, yr)
    bounded = F.relu(hyper["BND"] - ce_f)
    struct, norms = structure(model, groups)
    kl_f = prototype_kl(emb_f, yf, table)
    kl_r = prototype_kl(emb_r, yr, table)
    proto_f = hyper["prototype_weight_forget"] * F.relu(hyper["prototype_margin"] - kl_f)
    proto = proto_f + hyper["prototype_weight_retain"] * kl_r
    total = hyper["beta"] * bounded + ce_r + hyper["alpha"] * struct + proto
    return {"ce_forget": ce_f, "ce_retain": ce_r, "bounded": bounded, "structure": struct, "norms": norms,
            "kl_forget": kl_f, "kl_retain": kl_r, "proto_forget": proto_f, "proto": proto, "total": total,
            "ce_forget_per_sample": F.cross_entropy(logits_f, yf, reduction="none"),
            "ce_retain_per_sample": F.cross_entropy(logits_r, yr, reduction="none")}


def prototypes(model, images, labels, classes):
    """Row c: the mean embedding of class c's images (train mode, LoRA unmerged, no gradient)."""
    with torch.no_grad():
        emb = model(images)
    return torch.stack([emb[labels == c].mean(dim=0) for c in range(classes)]), emb

"""The face ViT of GS-LoRA (spec/MODELS.md "face ViT"), written here with the same module tree, so its state_dict
has the official key layout: pos_embedding, cls_token, patch_to_embedding, transformer.layers.N.{0,1}.fn.{norm,fn},
mlp_head.0 and the CosFace weight as loss.weight. LoRA follows loralib's Linear: y = xWᵀ + b + (x Aᵀ Bᵀ)·alpha/r."""
import math

import torch
import torch.nn.functional as F
from torch import nn


class LoRALinear(nn.Linear):
    """nn.Linear with loralib's factor names (lora_A [r, in], lora_B [out, r]); the product is never merged here."""

    def __init__(self, fan_in, fan_out, r=0, lora_alpha=1, bias=True):
        super().__init__(fan_in, fan_out, bias=bias)
        self.r = r
        if r > 0:
            self.lora_A = nn.Parameter(torch.zeros(r, fan_in))
            self.lora_B = nn.Parameter(torch.zeros(fan_out, r))
            self.scaling = lora_alpha / r
            nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))

    def forward(self, x):
        y = F.linear(x, self.weight, self.bias)
        if self.r > 0:
            y = y + (x @ self.lora_A.t() @ self.lora_B.t()) * self.scaling
        return y


class Residual(nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, x):
        return x + self.fn(x)


class PreNorm(nn.Module):
    def __init__(self, dim, fn):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.fn = fn

    def forward(self, x):
        return self.fn(self.norm(x))


class Attention(nn.Module):
    """Multi-head self-attention; the scale is dim^-0.5 of the model width, as the face model defines it."""

    def __init__(self, dim, heads, dim_head, dropout):
        super().__init__()
        inner = heads * dim_head
        self.heads = heads
        self.scale = dim ** -0.5
        self.to_qkv = nn.Linear(dim, inner * 3, bias=False)
        self.to_out = nn.Sequential(nn.Linear(inner, dim), nn.Dropout(dropout))

    def forward(self, x):
        b, n, _ = x.shape
        q, k, v = (t.reshape(b, n, self.heads, -1).transpose(1, 2) for t in self.to_qkv(x).chunk(3, dim=-1))
        attn = (q @ k.transpose(-1, -2) * self.scale).softmax(dim=-1)
        return self.to_out((attn @ v).transpose(1, 2).reshape(b, n, -1))


class FeedForward(nn.Module):
    def __init__(self, dim, hidden, dropout, lora_rank):
        super().__init__()
        self.net = nn.Sequential(LoRALinear(dim, hidden, r=lora_rank), nn.GELU(), nn.Dropout(dropout),
                                 LoRALinear(hidden, dim, r=lora_rank), nn.Dropout(dropout))

    def forward(self, x):
        return self.net(x)


class Transformer(nn.Module):
    def __init__(self, dim, depth, heads, dim_head, mlp_dim, dropout, lora_rank):
        super().__init__()
        self.layers = nn.ModuleList([
            nn.ModuleList([Residual(PreNorm(dim, Attention(dim, heads, dim_head, dropout))),
                           Residual(PreNorm(dim, FeedForward(dim, mlp_dim, dropout, lora_rank)))])
            for _ in range(depth)])

    def forward(self, x):
        for attn, ff in self.layers:
            x = ff(attn(x))
        return x


class CosFace(nn.Module):
    """logits = s·(cos θ − m on the label column); without labels s·cos θ."""

    def __init__(self, dim, classes, s=64.0, m=0.35):
        super().__init__()
        self.s, self.m = s, m
        self.weight = nn.Parameter(torch.empty(classes, dim))
        nn.init.xavier_uniform_(self.weight)

    def cosine(self, emb):
        return F.linear(F.normalize(emb), F.normalize(self.weight))

    def forward(self, emb, label):
        cos = self.cosine(emb)
        one_hot = torch.zeros_like(cos).scatter_(1, label.view(-1, 1).long(), 1.0)
        return self.s * (one_hot * (cos - self.m) + (1.0 - one_hot) * cos)


class FaceViT(nn.Module):
    def __init__(self, *, num_class, image_size, patch_size, dim, depth, heads, dim_head, mlp_dim, channels=3,
                 dropout=0.0, emb_dropout=0.0, lora_rank=0):
        super().__init__()
        n = (image_size // patch_size) ** 2
        self.patch_size = patch_size
        self.pos_embedding = nn.Parameter(torch.randn(1, n + 1, dim))
        self.patch_to_embedding = nn.Linear(channels * patch_size ** 2, dim)
        self.cls_token = nn.Parameter(torch.randn(1, 1, dim))
        self.dropout = nn.Dropout(emb_dropout)
        self.transformer = Transformer(dim, depth, heads, dim_head, mlp_dim, dropout, lora_rank)
        self.to_latent = nn.Identity()
        self.mlp_head = nn.Sequential(nn.LayerNorm(dim))
        self.loss = CosFace(dim, num_class)

    def patches(self, img):
        """b c (h p1) (w p2) -> b (h w) (p1 p2 c): channel fastest inside a patch."""
        b, c, hh, ww = img.shape
        p = self.patch_size
        x = img.reshape(b, c, hh // p, p, ww // p, p).permute(0, 2, 4, 3, 5, 1)
        return x.reshape(b, (hh // p) * (ww // p), p * p * c)

    def stages(self, img):
        """Every intermediate the parity file records, as a dict."""
        patches = self.patches(img)
        pe = self.patch_to_embedding(patches)
        tokens = torch.cat([self.cls_token.expand(img.shape[0], -1, -1), pe], dim=1) + self.pos_embedding[:, :pe.shape[1] + 1]
        x = self.transformer(self.dropout(tokens))
        cls = self.to_latent(x[:, 0])
        return {"patches": patches, "patch_embed": pe, "tokens": tokens, "pre_layernorm_cls": cls, "embedding": self.mlp_head(cls)}

    def forward(self, img, label=None):
        emb = self.stages(img)["embedding"]
        return (self.loss(emb, label), emb) if label is not None else emb

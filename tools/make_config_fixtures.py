#!/usr/bin/env python3
"""Writes Tests/Fixtures/config/: small timm and torchvision ViTs with 4 heads of 80 (width 320, the head size of
vit_huge / vit_h_14), whose width a width÷64 guess would run as 5 heads of 64, plus PyTorch's eval-mode logits.

Pinned: Python 3.11, torch 2.15.0, torchvision 0.29.2, timm 1.0.31 (the venv scripts/make-fixtures.sh makes in .build/fixtures-venv).
Run: .build/fixtures-venv/bin/python tools/make_config_fixtures.py

Weights are stored as float16 to keep the files small; the reference runs the float32 model holding exactly those
values (gslora widens float16 to float32 on load), in eval mode, on a [2, 3, 8, 8] input uniform in [0, 1).
Files: NAME.pth (state_dict), NAME.parity.json ({"config": ..., "input": ..., "logits": ...}), and for timm
timm_vit_4x80.config.json, the config.json timm's save_config_for_hf writes for the model (tests copy it beside a
copy of the .pth as config.json).
"""
import json
import os

import torch
import timm
import torchvision
from timm.models._hub import save_config_for_hf
from torchvision.models.vision_transformer import VisionTransformer

assert torch.__version__.startswith("2.15.0") and timm.__version__ == "1.0.31" and torchvision.__version__.startswith("0.29.2")
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Tests", "Fixtures", "config")
os.makedirs(OUT, exist_ok=True)


def arr(t):
    return {"shape": list(t.shape), "dtype": "float32", "data": t.tolist()}


def finish(name, model, config):
    # Round every weight to float16 and run the float32 model holding exactly those values.
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(p.half().float())
    model.eval()
    torch.save({k: v.half() for k, v in model.state_dict().items()}, os.path.join(OUT, name + ".pth"))
    g = torch.Generator().manual_seed(7)
    x = torch.rand(2, 3, 8, 8, generator=g)
    with torch.no_grad():
        logits = model(x)
    with open(os.path.join(OUT, name + ".parity.json"), "w") as f:
        json.dump({"config": config, "input": arr(x), "logits": arr(logits)}, f)


torch.manual_seed(0)
timm_model = timm.models.vision_transformer.VisionTransformer(img_size=8, patch_size=4, embed_dim=320, depth=1, num_heads=4,
                                                              mlp_ratio=0.1, num_classes=5)
finish("timm_vit_4x80", timm_model, {"family": "timm_vit", "heads": 4, "head_dim": 80, "width": 320, "depth": 1, "mlp_width": 32,
                                     "patch_size": 4, "image_size": 8, "num_classes": 5})
# timm's own config.json for the model, with the constructor arguments a hub upload carries in model_args.
timm_model.pretrained_cfg = {"architecture": "vit_4x80_fixture", "num_classes": 5, "input_size": [3, 8, 8]}
save_config_for_hf(timm_model, os.path.join(OUT, "timm_vit_4x80.config.json"),
                   model_args={"img_size": 8, "patch_size": 4, "embed_dim": 320, "depth": 1, "num_heads": 4, "mlp_ratio": 0.1})

torch.manual_seed(1)
tv = VisionTransformer(image_size=8, patch_size=4, num_layers=1, num_heads=4, hidden_dim=320, mlp_dim=32, num_classes=5)
with torch.no_grad():  # torchvision starts the classifier at zero
    tv.heads.head.weight.copy_(torch.randn_like(tv.heads.head.weight) * 0.1)
finish("torchvision_vit_4x80", tv, {"family": "torchvision_vit", "heads": 4, "head_dim": 80, "width": 320, "depth": 1,
                                    "mlp_width": 32, "patch_size": 4, "image_size": 8, "num_classes": 5})

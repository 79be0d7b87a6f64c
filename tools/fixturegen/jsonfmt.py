"""How fixture JSON writes numbers (Tests/Fixtures/pytorch/README.md): a float32 value as the shortest decimal that
gives the same float32 back, arrays as {shape, dtype, data} with data nested row-major."""
import json
import os
import tempfile

import numpy as np
import torch


def f32(x):
    """The Python float whose repr is the shortest decimal of float32 x (so json.dumps writes that decimal)."""
    return float(np.format_float_positional(np.float32(x), unique=True, trim="-")) if np.isfinite(x) else float(x)


def arr(t):
    """A float32 tensor as {shape, dtype, data}."""
    a = t.detach().to(torch.float32).cpu().numpy()
    data = np.vectorize(f32, otypes=[object])(a).tolist() if a.size else []
    if a.ndim == 0:
        data = f32(a)
    return {"shape": list(a.shape), "dtype": "float32", "data": data}


def scalar(t):
    """A 0-d float32 result as the exact float64 value of that float32."""
    return float(t.detach().to(torch.float32).item()) if torch.is_tensor(t) else float(np.float32(t))


def write(path, obj, indent=None):
    """Writes JSON through a temporary file renamed into place."""
    d = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=d, prefix=".tmp-")
    with os.fdopen(fd, "w") as f:
        json.dump(obj, f, indent=indent, allow_nan=False)
        f.write("\n")
    os.replace(tmp, path)


def versions():
    import platform

    import safetensors
    import timm
    import torchvision

    return {"torch": torch.__version__, "numpy": np.__version__, "python": platform.python_version(),
            "torchvision": torchvision.__version__, "timm": timm.__version__, "safetensors": safetensors.__version__}

"""Read, verify and write .gslr files (gslora's tensor format, spec/FORMAT.md 1.2) in pure Python.

    import gslr
    tensors = gslr.load("model.gslr")             # {name: numpy array}; framework="torch" for tensors
    f = gslr.verify("model.gslr")                 # every rule of the spec, CRCs included; raises gslr.GSLRError
    print(f.header["kind"], f.fingerprint)
    gslr.save("out.gslr", {"x": array}, kind="tensors")

numpy is needed only by `load` and for saving arrays; torch only for framework="torch" and torch tensors.
"""
from .core import (GSLRError, GSLRFile, MAJOR, MINOR, PREFIX, TABLE_ONLY_PREFIX, binding_line, fingerprint, load,
                   matches, open_file, save, verify)

__all__ = ["GSLRError", "GSLRFile", "MAJOR", "MINOR", "PREFIX", "TABLE_ONLY_PREFIX", "binding_line", "fingerprint", "load",
           "matches", "open_file", "save", "verify"]
__version__ = "1.2.0"

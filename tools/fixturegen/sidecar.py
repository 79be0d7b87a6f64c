"""NAME.expected.json: what a loader must find in NAME.pth (Tests/Fixtures/pytorch/README.md "Sidecar files"):
every reachable tensor with dtype, shape, stride, storage offset and group, SHA-256 of its row-major bytes and
first values; plain leaves; containers; the zip records or legacy storage layout; and each tensor as the pickle
describes it."""
import collections
import hashlib
import io
import math
import pickle
import struct
import zipfile

import torch

CONVENTIONS = {
    "key": "path components joined with '.'; list/tuple indices and int dict keys appear as numbers in 'path'",
    "sha256": "SHA-256 of the tensor's elements in logical row-major order (contiguous copy), little-endian; bfloat16 as raw 16-bit patterns; bool as one byte 0/1",
    "first_values": "first up to 8 elements in row-major order, converted to float64",
    "storage_group": "tensors with the same number share one storage in the loaded object (null for empty storages)",
    "stride/storage_offset": "as torch.load returns them, in elements",
    "ordered_dict_metadata": "state_dict() OrderedDicts carry a '_metadata' attribute, pickled as BUILD state; it is not a dict item",
}
INT_DTYPES = {torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8, torch.bool}


def _key(path):
    return ".".join(str(p) for p in path)


def _number(v):
    return v if math.isfinite(v) else ("nan" if math.isnan(v) else ("inf" if v > 0 else "-inf"))


def tensor_bytes(t):
    """The tensor's elements, row-major, little-endian; bfloat16 as its 16-bit patterns, bool as one byte."""
    t = t.detach().contiguous()
    if t.dtype == torch.bfloat16:
        t = t.view(torch.int16)
    elif t.dtype == torch.bool:
        t = t.to(torch.uint8)
    return t.numpy().astype(t.numpy().dtype.newbyteorder("<")).tobytes()


def _walk(obj, path, out):
    """Collects (path, value) for tensors, leaves and containers, depth first in the object's own order."""
    if torch.is_tensor(obj):
        out["tensors"].append((path, obj))
    elif isinstance(obj, dict):
        out["containers"].append((path, obj))
        if isinstance(obj, collections.OrderedDict) and hasattr(obj, "_metadata"):
            out["metadata"].append((path, obj._metadata))
        for k, v in obj.items():
            _walk(v, path + [k], out)
    elif isinstance(obj, (list, tuple)):
        out["containers"].append((path, obj))
        for i, v in enumerate(obj):
            _walk(v, path + [i], out)
    else:
        out["leaves"].append((path, obj))


def _tensor_entry(path, t, groups):
    ptr = t.untyped_storage().data_ptr()
    nbytes = t.untyped_storage().nbytes()
    group = None if nbytes == 0 else groups.setdefault(ptr, len(groups))
    flat = t.detach().reshape(-1)[:8]
    e = {"key": _key(path), "path": path, "storage_group": group, "dtype": str(t.dtype).replace("torch.", ""),
         "shape": list(t.shape), "stride": list(t.stride()), "storage_offset": t.storage_offset(), "numel": t.numel(),
         "is_parameter": isinstance(t, torch.nn.Parameter), "requires_grad": t.requires_grad,
         "is_contiguous": t.is_contiguous(), "sha256": hashlib.sha256(tensor_bytes(t)).hexdigest(),
         "first_values": [_number(v) for v in flat.to(torch.float64).tolist()]}
    if t.dtype in INT_DTYPES:
        e["first_values_int"] = [int(v) for v in flat.to(torch.int64).tolist()]
    if t.dtype == torch.bfloat16:
        e["first_bits_hex"] = ["%04x" % (v & 0xFFFF) for v in flat.view(torch.int16).tolist()]
    e["storage_nbytes"] = nbytes
    return e


class _Record:
    """A tensor as the pickle states it, before torch rebuilds it."""

    def __init__(self, storage, offset, size, stride, parameter=False):
        self.storage, self.offset, self.size, self.stride, self.parameter = storage, offset, list(size), list(stride), parameter


class _Recorder(pickle.Unpickler):
    """Unpickles a checkpoint's object without torch: storages and tensors become records."""

    def persistent_load(self, pid):
        # ('storage', storage type, key, location, numel[, view metadata])
        return {"type": pid[1], "key": str(pid[2]), "numel": pid[4]}

    def find_class(self, module, name):
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return lambda storage, offset, size, stride, *rest: _Record(storage, offset, size, stride)
        if (module, name) == ("torch._utils", "_rebuild_parameter"):
            return lambda rec, requires_grad, hooks, *rest: _Record(rec.storage, rec.offset, rec.size, rec.stride, True)
        if module == "torch" and name.endswith("Storage"):
            return name
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        raise pickle.UnpicklingError(f"unexpected global {module}.{name}")


def _records(obj, path, out):
    if isinstance(obj, _Record):
        out.append({"key": _key(path), "storage_key": obj.storage["key"], "storage_type": obj.storage["type"],
                    "storage_numel": obj.storage["numel"], "storage_offset": obj.offset, "size": obj.size,
                    "stride": obj.stride, "is_parameter": obj.parameter})
    elif isinstance(obj, dict):
        for k, v in obj.items():
            _records(v, path + [k], out)
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            _records(v, path + [i], out)


def _zip_layout(path):
    with zipfile.ZipFile(path) as z:
        infos = z.infolist()
        raw = open(path, "rb").read()
        entries = []
        for i in infos:
            name_len, extra_len = struct.unpack_from("<HH", raw, i.header_offset + 26)
            off = i.header_offset + 30 + name_len + extra_len
            entries.append({"name": i.filename, "size": i.file_size, "compress_type": i.compress_type,
                            "data_offset": off, "data_offset_mod_64": off % 64})
        prefix = infos[0].filename.split("/")[0]
        pkl = z.read(f"{prefix}/data.pkl")
    return {"archive_prefix": prefix, "entries": entries}, pkl


def _legacy_layout(path):
    """The legacy format: magic, protocol, sys_info, the object, the storage keys; then per key an int64 count and
    the raw bytes."""
    raw = open(path, "rb").read()
    f = io.BytesIO(raw)
    magic = pickle.load(f)
    protocol = pickle.load(f)
    sys_info = pickle.load(f)
    obj_start = f.tell()
    obj = _Recorder(f).load()
    keys = pickle.load(f)
    storages = []
    sizes = {}
    _sizes(obj, sizes)
    for k in keys:
        at = f.tell()
        (numel,) = struct.unpack("<q", f.read(8))
        storages.append({"key": k, "numel_field": numel, "header_offset": at})
        f.seek(numel * sizes[k], 1)
    layout = {"magic_number": magic, "protocol_version": protocol, "sys_info": sys_info, "storage_keys": keys,
              "storages": storages, "end_of_data": f.tell(), "file_size": len(raw)}
    return layout, raw[obj_start:]


ELEMENT_SIZE = {"FloatStorage": 4, "DoubleStorage": 8, "HalfStorage": 2, "BFloat16Storage": 2, "LongStorage": 8,
                "IntStorage": 4, "ShortStorage": 2, "CharStorage": 1, "ByteStorage": 1, "BoolStorage": 1}


def _sizes(obj, out):
    if isinstance(obj, _Record):
        out[obj.storage["key"]] = ELEMENT_SIZE[obj.storage["type"]]
    elif isinstance(obj, dict):
        for v in obj.values():
            _sizes(v, out)
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            _sizes(v, out)


def describe(path, name, notes):
    """The sidecar of the checkpoint at `path` (loaded with torch.load(weights_only=True))."""
    raw = open(path, "rb").read()
    is_zip = zipfile.is_zipfile(path)
    obj = torch.load(path, weights_only=True)
    found = {"tensors": [], "leaves": [], "containers": [], "metadata": []}
    _walk(obj, [], found)
    groups = {}
    side = {"file": name, "file_size": len(raw), "file_sha256": hashlib.sha256(raw).hexdigest(),
            "format": "zip" if is_zip else "legacy", "written_by": {"torch": torch.__version__},
            "root_type": type(obj).__name__,
            "conventions": {k: v for k, v in CONVENTIONS.items() if k != "ordered_dict_metadata" or found["metadata"]}, "tensor_count": len(found["tensors"]),
            "tensors": [_tensor_entry(p, t, groups) for p, t in found["tensors"]],
            "leaves": [{"key": _key(p), "path": p, "type": type(v).__name__ if v is not None else "NoneType", "value": v}
                       for p, v in found["leaves"]],
            "containers": [{"key": _key(p), "path": p, "type": type(c).__name__, "len": len(c),
                            **({"keys": [str(k) for k in c.keys()]} if isinstance(c, dict) else {})}
                           for p, c in found["containers"]]}
    if found["metadata"]:
        side["ordered_dict_metadata"] = [{"key": _key(p), "path": p, "metadata": dict(m)} for p, m in found["metadata"]]
    if is_zip:
        side["zip"], pkl = _zip_layout(path)
        recorded = _Recorder(io.BytesIO(pkl)).load()
    else:
        side["legacy"], rest = _legacy_layout(path)
        recorded = _Recorder(io.BytesIO(rest)).load()
    side["pickle_tensor_records"] = []
    _records(recorded, [], side["pickle_tensor_records"])
    side["notes"] = notes
    return side

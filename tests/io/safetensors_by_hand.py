#!/usr/bin/env python3
"""A tiny safetensors writer and reader in numpy and the standard library (the `safetensors`
package is not needed): the byte layout of https://github.com/huggingface/safetensors, as
`safetensors.torch.save_file` writes it:

    u64 little-endian N | N bytes of JSON header, padded with spaces to a multiple of 8 | data

The header maps each name to {"dtype", "shape", "data_offsets": [begin, end]} (offsets into the
data section) and "__metadata__" to a map of strings ({"format": "pt"} from safetensors.torch).
Tensors are laid out as the Rust library does: by element size, largest first, then by name.

    write(path, {"0.weight": array, ...}, metadata={"format": "pt"})
    meta, arrays = read(path)       # BF16 comes back as float32 (exact)

Arrays may be numpy arrays (float64, float32, float16, int64, ...) or torch tensors (bfloat16
included: its bits are written as they are)."""
import json
import struct

import numpy as np

_NP = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "I64": "<i8", "I32": "<i4", "I16": "<i2", "I8": "i1",
       "U8": "u1", "U16": "<u2", "U32": "<u4", "U64": "<u8", "BOOL": "?"}
_FROM_NP = {np.dtype(v).newbyteorder("<") if v not in ("i1", "u1", "?") else np.dtype(v): k for k, v in _NP.items()}
_SIZE = {"F64": 8, "I64": 8, "U64": 8, "F32": 4, "I32": 4, "U32": 4, "F16": 2, "BF16": 2, "I16": 2, "U16": 2,
         "I8": 1, "U8": 1, "BOOL": 1}


def _dtype_and_bytes(value):
    """(safetensors dtype, shape, little-endian C-order bytes) of a numpy array or torch tensor."""
    if type(value).__module__.startswith("torch"):
        import torch
        t = value.detach().contiguous().cpu()
        if t.dtype == torch.bfloat16:
            return "BF16", list(t.shape), t.view(torch.int16).numpy().astype("<i2").tobytes()
        value = t.numpy()
    a = np.ascontiguousarray(value)
    a = a.astype(a.dtype.newbyteorder("<")) if a.dtype.byteorder == ">" else a
    key = a.dtype.newbyteorder("<") if a.dtype.itemsize > 1 else a.dtype
    return _FROM_NP[key], list(a.shape), a.tobytes()


def encode(tensors, metadata=None, raw=None):
    """The bytes of a safetensors file. `raw`: {name: (dtype, shape, bytes)} added as they are."""
    items = {name: _dtype_and_bytes(v) for name, v in tensors.items()}
    items.update(raw or {})
    order = sorted(items, key=lambda n: (-_SIZE.get(items[n][0], 1), n))
    header, data, pos = {}, bytearray(), 0
    if metadata is not None:
        header["__metadata__"] = dict(metadata)
    for name in order:
        dtype, shape, payload = items[name]
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [pos, pos + len(payload)]}
        data += payload
        pos += len(payload)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    return struct.pack("<Q", len(text)) + text + bytes(data)


def write(path, tensors, metadata=None, raw=None):
    with open(path, "wb") as f:
        f.write(encode(tensors, metadata, raw))


def read(path):
    """(metadata, {name: numpy array}) of a safetensors file; BF16 as float32 (exact)."""
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    data = raw[8 + n:]
    meta = header.pop("__metadata__", {})
    arrays = {}
    for name, info in header.items():
        begin, end = info["data_offsets"]
        chunk = data[begin:end]
        if info["dtype"] == "BF16":
            bits = np.frombuffer(chunk, dtype="<u2").astype(np.uint32) << 16
            a = bits.view(np.float32)
        else:
            a = np.frombuffer(chunk, dtype=_NP[info["dtype"]])
        arrays[name] = a.reshape(info["shape"]).copy()
    return meta, arrays

#!/usr/bin/env python3
"""Reads a flowmatch checkpoint (format 2: a safetensors file) with numpy and Python's standard
library only (json, struct, zlib), checks it as flowmatch does (layout, both CRC-32 checksums), and
prints its metadata and tensors. docs/checkpoint_format.md describes the format.

    python3 tests/io/read_flowmatch.py model.safetensors
    python3 tests/io/read_flowmatch.py model.safetensors --expect model.safetensors.expected.json

With --expect, every tensor (dtype, shape, values) and metadata entry of the JSON file must match
exactly (the ctest test io.numpy_reads_checkpoint). Exits 77 (ctest's "skipped") when numpy is not
installed, saying so loudly."""
import json
import struct
import sys
import zlib

try:
    import numpy as np
except ImportError:
    print("*" * 78 + "\n*** SKIPPED: numpy is not installed for " + sys.executable +
          " (Debian: apt-get install python3-numpy):\n*** the test that numpy reads a flowmatch checkpoint did NOT run\n" +
          "*" * 78, file=sys.stderr)
    sys.exit(77)

DTYPES = {"BOOL": "?", "U8": "u1", "I8": "i1", "U16": "<u2", "I16": "<i2", "F16": "<f2", "U32": "<u4",
          "I32": "<i4", "F32": "<f4", "U64": "<u8", "I64": "<i8", "F64": "<f8"}


def read_flowmatch(path):
    """Returns (metadata dict, {name: numpy array}) of a flowmatch checkpoint, fully checked."""
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    data = raw[8 + n:]
    meta = header.pop("__metadata__")
    assert meta["format"] == "flowmatch" and meta["flowmatch.format_version"] == "2", meta
    # The checksums: of the data section, and of the header without its own checksum, dumped with
    # sorted keys and no spaces (what nlohmann::json's dump() writes).
    assert "%08x" % zlib.crc32(data) == meta["flowmatch.data_crc32"], "data checksum"
    whole = dict(header, __metadata__={k: v for k, v in meta.items() if k != "flowmatch.header_crc32"})
    canonical = json.dumps(whole, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    assert "%08x" % zlib.crc32(canonical) == meta["flowmatch.header_crc32"], "header checksum"
    tensors, end = {}, 0
    for name, info in sorted(header.items(), key=lambda item: item[1]["data_offsets"]):
        begin, stop = info["data_offsets"]
        assert begin == end, f"{name}: a gap or an overlap"
        array = np.frombuffer(data[begin:stop], dtype=DTYPES[info["dtype"]]).reshape(info["shape"])
        tensors[name], end = array, stop
    assert end == len(data), "trailing bytes"
    return meta, tensors


def main(argv):
    if len(argv) not in (2, 4) or (len(argv) == 4 and argv[2] != "--expect"):
        print(__doc__, file=sys.stderr)
        return 2
    meta, tensors = read_flowmatch(argv[1])
    for key in sorted(meta):
        print(f"metadata {key} = {meta[key]!r}")
    for name in sorted(tensors):
        t = tensors[name]
        print(f"tensor {name} {t.dtype} {list(t.shape)} {t.ravel()[:4].tolist()}{' ...' if t.size > 4 else ''}")
    if len(argv) == 4:
        with open(argv[3]) as f:
            expected = json.load(f)
        want_meta = expected.pop("__metadata__")
        for key, value in want_meta.items():
            assert meta.get(key) == value, f"metadata {key}: {meta.get(key)!r} != {value!r}"
        assert set(tensors) == set(expected), f"tensors {sorted(tensors)} != {sorted(expected)}"
        for name, want in expected.items():
            t = tensors[name]
            assert t.dtype == np.dtype(DTYPES[want["dtype"]]), f"{name}: dtype {t.dtype}"
            assert list(t.shape) == want["shape"], f"{name}: shape {t.shape}"
            values = np.array([int(v) if isinstance(v, str) else v for v in want["values"]], dtype=t.dtype)
            assert np.array_equal(t.ravel(), values), f"{name}: {t.ravel()} != {values}"
        # The model rebuilt from the file alone: an MLP whose input is [x; t] (time last).
        widths = json.loads(meta["model.widths"])
        x = np.ones((widths[0], 1), dtype=np.float32)
        for layer in range(len(widths) - 1):
            x = tensors[f"model.{2 * layer}.weight"] @ x + tensors[f"model.{2 * layer}.bias"][:, None]
            if layer < len(widths) - 2:
                x = x / (1 + np.exp(-x))  # SiLU
        assert x.shape == (widths[-1], 1) and np.isfinite(x).all()
        print(f"OK: {len(tensors)} tensors and {len(want_meta)} metadata entries match; "
              f"the {meta['model.activation']} MLP {widths} runs in numpy: {x.ravel().tolist()}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

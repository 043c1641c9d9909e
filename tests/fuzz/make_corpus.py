#!/usr/bin/env python3
"""Writes the fuzzers' seed corpora (tests/fuzz/corpus/): small valid checkpoints of both formats,
format 1 (v1_*.fmck, include/flowmatch/io/checkpoint_v1.hpp, and their bare payloads, for the
harness's payload path) and format 2 (v2_*.safetensors, include/flowmatch/io/safetensors.hpp), each
written here by an encoder independent of the C++ one (tests/io/checkpoint_v1_test.cpp loads them),
small CSV files, each prefixed with the option byte csv_fuzzer.cpp reads, and small IDX files, plain and
gzip'd, each prefixed with the mode byte idx_fuzzer.cpp reads. Deterministic; rerun
after a format change: python3 tests/fuzz/make_corpus.py"""
import gzip
import json
import os
import random
import struct
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
MAGIC = b"\x89FMCKPT\n"
random.seed(1)


def model_section(scalar, activation, widths):
    fmt = "<f" if scalar == 4 else "<d"
    n = sum(widths[l + 1] * (widths[l] + 1) for l in range(len(widths) - 1))
    out = struct.pack("<I", scalar) + struct.pack("<I", len(activation)) + activation.encode()
    out += struct.pack("<I", len(widths)) + b"".join(struct.pack("<Q", w) for w in widths)
    out += struct.pack("<Q", n) + b"".join(struct.pack(fmt, random.uniform(-1, 1)) for _ in range(n))
    return out, n, fmt


def scalars(fmt, n, lo=-1.0, hi=1.0):
    return b"".join(struct.pack(fmt, random.uniform(lo, hi)) for _ in range(n))


def wrap(payload):
    head = MAGIC + struct.pack("<IIQI", 1, 32, len(payload), zlib.crc32(payload))
    return head + struct.pack("<I", zlib.crc32(head)) + payload


def trainer_section(steps):
    return struct.pack("<Iq", 1, steps) + b"".join(struct.pack("<Q", random.getrandbits(64) | 1) for _ in range(4))


def checkpoints():
    # The gmm2d trainer shape at its smallest: float SiLU MLP 3-2-2, Adam, trainer state.
    m, n, fmt = model_section(4, "silu", [3, 2, 2])
    adam = struct.pack("<I", 1) + struct.pack("<ddddq", 1e-3, 0.9, 0.999, 1e-8, 3) + struct.pack("<Q", n)
    adam += scalars(fmt, n) + scalars(fmt, n, 0.0, 1.0)
    yield "adam_trainer", m + adam + trainer_section(3)
    yield "model_only", m + struct.pack("<II", 0, 0)
    sgd = struct.pack("<I", 2) + struct.pack("<ddIq", 0.01, 0.9, 1, 2) + struct.pack("<Q", n) + scalars(fmt, n)
    yield "sgd_nesterov", m + sgd + struct.pack("<I", 0)
    d, _, _ = model_section(8, "tanh", [2, 3, 1])
    yield "double_tanh_model", d + struct.pack("<II", 0, 0)


def safetensors(tensors, attributes):
    """A format-2 file: tensors is a list of (name, dtype, shape, bytes); attributes a dict."""
    header, data = {}, b""
    for name, dtype, shape, raw in sorted(tensors):
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    meta = dict(attributes)
    meta.update({"format": "flowmatch", "flowmatch.format_version": "2",
                 "flowmatch.data_crc32": "%08x" % zlib.crc32(data)})
    header["__metadata__"] = meta
    canonical = json.dumps(header, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    meta["flowmatch.header_crc32"] = "%08x" % zlib.crc32(canonical.encode())
    text = json.dumps(header, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + data


def floats(fmt, n, lo=-1.0, hi=1.0):
    return b"".join(struct.pack(fmt, random.uniform(lo, hi)) for _ in range(n))


def mlp(prefix, scalar, activation, widths):
    dtype, fmt = ("F32", "<f") if scalar == "float" else ("F64", "<d")
    tensors = []
    for l in range(len(widths) - 1):
        fan_in, fan_out = widths[l], widths[l + 1]
        tensors.append((f"{prefix}{2 * l}.weight", dtype, [fan_out, fan_in], floats(fmt, fan_out * fan_in)))
        tensors.append((f"{prefix}{2 * l}.bias", dtype, [fan_out], floats(fmt, fan_out)))
    attributes = {prefix + "type": "mlp_vector_field", prefix + "scalar": scalar, prefix + "activation": activation,
                  prefix + "widths": json.dumps(widths, separators=(",", ":")), prefix + "time": "last"}
    n = sum(widths[l + 1] * (widths[l] + 1) for l in range(len(widths) - 1))
    return tensors, attributes, n, dtype, fmt


def checkpoints_v2():
    tensors, attributes, n, dtype, fmt = mlp("model.", "float", "silu", [3, 2, 2])
    tensors += [("optimizer.exp_avg", dtype, [n], floats(fmt, n)),
                ("optimizer.exp_avg_sq", dtype, [n], floats(fmt, n, 0.0, 1.0)),
                ("trainer.rng", "U64", [4], b"".join(struct.pack("<Q", random.getrandbits(64) | 1) for _ in range(4)))]
    attributes.update({"optimizer.type": "adam", "optimizer.lr": "0.001", "optimizer.beta1": "0.9",
                       "optimizer.beta2": "0.999", "optimizer.eps": "1e-08", "optimizer.steps": "3",
                       "trainer.steps_done": "3"})
    yield "v2_trainer", safetensors(tensors, attributes)
    tensors, attributes, _, _, _ = mlp("model.", "double", "tanh", [2, 3, 1])
    yield "v2_double_tanh_model", safetensors(tensors, attributes)
    yield "v2_empty", safetensors([], {})
    yield "v2_odd_shapes", safetensors([("a", "I32", [], struct.pack("<i", -5)), ("b", "U8", [0, 3], b""),
                                        ("c", "I64", [2, 1], struct.pack("<qq", -1, 7))], {"note": "\u00e9\n"})


def idx_file(dims, data):
    return bytes([0, 0, 8, len(dims)]) + b"".join(struct.pack(">I", d) for d in dims) + bytes(data)


def idx_samples():
    """(name, mode byte, file bytes); mode bits as in idx_fuzzer.cpp. gzip with mtime 0: deterministic."""
    images = idx_file([3, 2, 2], range(0, 240, 20))
    labels = idx_file([5], [0, 3, 7, 1, 2])
    yield "images_plain", 0x44, images
    yield "images_gzip_by_harness", 0x45, images
    yield "images_gzip", 0x44, gzip.compress(images, mtime=0)
    yield "images_prefix_1", 0x0A, images
    yield "labels_plain", 0x7E, labels
    yield "labels_gzip", 0x7E, gzip.compress(labels, mtime=0)
    yield "array_2x3", 0x00, idx_file([2, 3], [9, 8, 7, 6, 5, 4])


def main():
    ck = os.path.join(HERE, "corpus", "checkpoint")
    os.makedirs(ck, exist_ok=True)
    for name in os.listdir(ck):
        os.remove(os.path.join(ck, name))
    for name, payload in checkpoints():
        with open(os.path.join(ck, "v1_" + name + ".fmck"), "wb") as f:
            f.write(wrap(payload))
        with open(os.path.join(ck, "v1_" + name + ".payload"), "wb") as f:
            f.write(payload)
    for name, data in checkpoints_v2():
        with open(os.path.join(ck, name + ".safetensors"), "wb") as f:
            f.write(data)
    csv = os.path.join(HERE, "corpus", "csv")
    os.makedirs(csv, exist_ok=True)
    samples = {
        "header_2d": (0, "x,y\n1,2\n3.5,-4e2\n+5,  6 \n"),
        "no_header_3d_crlf": (4, "1,2,3\r\n4,5,6\r\n"),
        "semicolon_float": (1 | 16, "a;b\n# comment\n\n1.5;2\n-0;1e-3\n"),
        "ragged": (0, "1,2\n3\n"),
        "bad_number": (2, "x,y\n1,nan\n2,abc\n"),
        "one_column": (8, "0.25\n-1\n2"),
    }
    for name, (mode, text) in samples.items():
        with open(os.path.join(csv, name + ".csv"), "wb") as f:
            f.write(bytes([mode]) + text.encode())
    idx = os.path.join(HERE, "corpus", "idx")
    os.makedirs(idx, exist_ok=True)
    for name, mode, data in idx_samples():
        with open(os.path.join(idx, name + ".idx"), "wb") as f:
            f.write(bytes([mode]) + data)


if __name__ == "__main__":
    main()

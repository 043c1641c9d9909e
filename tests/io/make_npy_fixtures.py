#!/usr/bin/python3
"""Writes the .npy fixtures of tests/io/npy_test.cpp into tests/io/data/npy/ (run with a Python that
has numpy, e.g. /usr/bin/python3; the files are committed, so the tests need neither).

Every good fixture holds the same values, a(i, j) = 10 i + j + 0.5 (i < 3 rows, j < 2 columns, or
the 1-D a(i) = i + 0.25 for 4 values), in a different dtype, byte order, memory order or format
version; the bad ones each break one field. Also seeds tests/fuzz/corpus/npy/ with the good files.
"""
import os

import numpy as np

here = os.path.dirname(os.path.abspath(__file__))
out = os.path.join(here, "data", "npy")
corpus = os.path.join(here, "..", "fuzz", "corpus", "npy")
os.makedirs(out, exist_ok=True)
os.makedirs(corpus, exist_ok=True)

a = np.array([[10 * i + j + 0.5 for j in range(2)] for i in range(3)])
v = np.arange(4) + 0.25


def save(name, arr, version=None, fortran=False):
    path = os.path.join(out, name)
    arr = np.asfortranarray(arr) if fortran else np.ascontiguousarray(arr)
    with open(path, "wb") as f:
        if version is None:
            np.lib.format.write_array(f, arr)
        else:
            np.lib.format.write_array(f, arr, version=version)
    # The fuzzer reads its first byte as the mode (bit 0: float, bit 1: allow non-finite values).
    data = open(path, "rb").read()
    for mode in (0, 1):
        with open(os.path.join(corpus, f"{mode}_{name}"), "wb") as f:
            f.write(bytes([mode]) + data)


save("f8_le_c.npy", a.astype("<f8"))
save("f4_le_c.npy", a.astype("<f4"))
save("f8_be_c.npy", a.astype(">f8"))
save("f4_be_fortran.npy", a.astype(">f4"), fortran=True)
save("f8_le_fortran.npy", a.astype("<f8"), fortran=True)
save("f8_v2.npy", a.astype("<f8"), version=(2, 0))
save("f8_v3.npy", a.astype("<f8"), version=(3, 0))
save("f8_1d.npy", v.astype("<f8"))
save("f4_1d_be.npy", v.astype(">f4"))


def raw(name, data):
    with open(os.path.join(out, name), "wb") as f:
        f.write(data)


def header(text, version=1):
    text = text + " " * ((64 - (10 + len(text) + 1) % 64) % 64) + "\n"
    b = text.encode("latin1")
    if version == 1:
        return b"\x93NUMPY\x01\x00" + len(b).to_bytes(2, "little") + b
    return b"\x93NUMPY" + bytes([version, 0]) + len(b).to_bytes(4, "little") + b


body = a.astype("<f8").tobytes()
raw("bad_int.npy", header("{'descr': '<i8', 'fortran_order': False, 'shape': (3, 2), }") + body)
raw("bad_3d.npy", header("{'descr': '<f8', 'fortran_order': False, 'shape': (3, 1, 2), }") + body)
raw("bad_0d.npy", header("{'descr': '<f8', 'fortran_order': False, 'shape': (), }") + body[:8])
raw("bad_truncated.npy", header("{'descr': '<f8', 'fortran_order': False, 'shape': (3, 2), }") + body[:40])
raw("bad_trailing.npy", header("{'descr': '<f8', 'fortran_order': False, 'shape': (3, 2), }") + body + b"\0" * 8)
raw("bad_magic.npy", b"\x93NUMPX\x01\x00" + header("{'descr': '<f8', 'fortran_order': False, 'shape': (3, 2), }")[8:] + body)
raw("bad_version.npy", b"\x93NUMPY\x04\x00" + header("{'descr': '<f8', 'fortran_order': False, 'shape': (3, 2), }")[8:] + body)
raw("bad_no_shape.npy", header("{'descr': '<f8', 'fortran_order': False, }") + body)
raw("bad_header_len.npy", b"\x93NUMPY\x01\x00\xff\x7f{'descr'")
raw("bad_nan.npy", header("{'descr': '<f8', 'fortran_order': False, 'shape': (3, 2), }") +
    np.array([0.5, np.nan, 1, 2, 3, 4]).astype("<f8").tobytes())
raw("bad_object.npy", header("{'descr': '|O', 'fortran_order': False, 'shape': (3, 2), }") + body)
raw("bad_order.npy", header("{'descr': '<f8', 'fortran_order': 0, 'shape': (3, 2), }") + body)
print(f"wrote {len(os.listdir(out))} files to {out}")

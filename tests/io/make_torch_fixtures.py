#!/usr/bin/env python3
"""Writes the PyTorch fixtures of tests/io/torch_import_test.cpp into tests/io/data/torch/ (run once,
by hand, with a Python that has torch and numpy; the files are committed, so the C++ tests need
neither):

    /usr/bin/python3 tests/io/make_torch_fixtures.py

For each good case: <name>.safetensors, the state_dict of a small nn.Sequential of nn.Linear layers
(as safetensors.torch.save_file writes it; see safetensors_by_hand.py), and <name>.io.safetensors
with x [n, d], t [n] (float64 holding float32 values, so a float model sees the same inputs) and
out [n, d]: PyTorch's forward in float64 on the weights as stored in the file (F16/BF16/F32
weights are exact in float64). Bad cases: files the importer must refuse, with the key its message
must name. manifest.json lists them all. Deterministic (torch.manual_seed)."""
import json
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import safetensors_by_hand as st  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "torch")

# flowmatch's names of PyTorch's activations (defaults of each module's parameters).
ACTIVATIONS = {
    "silu": torch.nn.SiLU, "relu": torch.nn.ReLU, "tanh": torch.nn.Tanh, "gelu": torch.nn.GELU,
    "gelu_tanh": lambda: torch.nn.GELU(approximate="tanh"), "elu": torch.nn.ELU, "selu": torch.nn.SELU,
    "leaky_relu": torch.nn.LeakyReLU, "softplus": torch.nn.Softplus,
}
DTYPES = {"F32": torch.float32, "F64": torch.float64, "F16": torch.float16, "BF16": torch.bfloat16}


def sequential(widths, act, gap=False):
    layers = []
    for i in range(len(widths) - 1):
        layers.append(torch.nn.Linear(widths[i], widths[i + 1]))
        if i < len(widths) - 2:
            layers.append(ACTIVATIONS[act]())
            if gap:
                layers.append(torch.nn.Dropout(0.0))  # no parameters: the Linear indices jump by 3
    return torch.nn.Sequential(*layers)


def state(net, prefix, dtype):
    return {prefix + k: v.detach().to(DTYPES[dtype]) for k, v in net.state_dict().items()}


def good(manifest, name, widths, act, prefix="", dtype="F32", time_first=False, gap=False, metadata=None, n=7):
    torch.manual_seed(len(manifest["good"]) + 1)
    net = sequential(widths, act, gap)
    with torch.no_grad():  # larger weights than the default init: the activations' curvature shows
        for p in net.parameters():
            p.mul_(1.5)
    sd = state(net, prefix, dtype)
    st.write(os.path.join(OUT, name + ".safetensors"), sd, {"format": "pt"} if metadata is None else metadata)
    # The float64 reference on the stored (rounded) weights.
    ref = sequential(widths, act, gap).double()
    ref.load_state_dict({k[len(prefix):]: v.double() for k, v in sd.items()})
    d = widths[-1]
    g = torch.Generator().manual_seed(100 + len(manifest["good"]))
    x = (torch.randn(n, d, generator=g) * 1.5).float().double()
    t = torch.rand(n, generator=g).float().double()
    inp = torch.cat([t[:, None], x], 1) if time_first else torch.cat([x, t[:, None]], 1)
    with torch.no_grad():
        out = ref(inp)
    st.write(os.path.join(OUT, name + ".io.safetensors"), {"x": x.numpy(), "t": t.numpy(), "out": out.numpy()})
    manifest["good"].append({"name": name, "activation": act, "prefix": prefix, "dtype": dtype, "widths": widths,
                             "time_first": time_first, "indices": [k for k in range(len(ref)) if
                                                                   isinstance(ref[k], torch.nn.Linear)]})


def bad(manifest, name, key, tensors=None, raw=None, activation="silu", data=None, note=""):
    path = os.path.join(OUT, name + ".safetensors")
    if data is not None:
        with open(path, "wb") as f:
            f.write(data)
    else:
        st.write(path, tensors or {}, {"format": "pt"}, raw)
    manifest["bad"].append({"name": name, "key": key, "activation": activation, "note": note})


def main():
    os.makedirs(OUT, exist_ok=True)
    for f in os.listdir(OUT):
        os.remove(os.path.join(OUT, f))
    manifest = {"good": [], "bad": []}
    prefixes = ["", "net.", "main."]
    for i, act in enumerate(ACTIVATIONS):
        widths = [3, 12, 10, 2] if i % 3 else [4, 9, 3]
        good(manifest, "act_" + act, widths, act, prefix=prefixes[i % 3])
    good(manifest, "dtype_f64", [3, 16, 16, 2], "silu", prefix="net.", dtype="F64")
    good(manifest, "dtype_f16", [3, 16, 16, 2], "tanh", prefix="", dtype="F16")
    good(manifest, "dtype_bf16", [3, 16, 16, 2], "relu", prefix="main.", dtype="BF16")
    good(manifest, "dtype_f16_selu", [4, 8, 8, 3], "selu", prefix="net.", dtype="F16")
    good(manifest, "time_first", [3, 12, 12, 2], "silu", prefix="net.", time_first=True)
    good(manifest, "time_first_wide_x", [6, 10, 5], "tanh", prefix="", time_first=True)
    good(manifest, "gaps_nested_prefix", [3, 8, 8, 8, 2], "silu", prefix="model.net.", gap=True, metadata={})
    good(manifest, "single_layer", [3, 2], "relu", prefix="lin.", metadata={"note": "one Linear, no activation"})

    torch.manual_seed(7)
    base = state(sequential([3, 8, 8, 2], "silu"), "net.", "F32")  # net.0, net.2, net.4
    drop = lambda k: {a: b for a, b in base.items() if a != k}  # noqa: E731
    bad(manifest, "bad_missing_bias", "net.2.bias", drop("net.2.bias"))
    bad(manifest, "bad_missing_weight", "net.4.weight", drop("net.4.weight"))
    bad(manifest, "bad_chain_gap", "net.2.weight", drop("net.2.weight") | {"net.2.weight": torch.zeros(8, 7)},
        note="layer 2 takes 7 inputs, layer 0 gives 8")
    bad(manifest, "bad_missing_middle_layer", "net.4.weight",
        {k: v for k, v in base.items() if not k.startswith("net.2.")} | {"net.4.weight": torch.zeros(2, 5)},
        note="a layer missing: widths no longer chain")
    bad(manifest, "bad_bias_shape", "net.2.bias", drop("net.2.bias") | {"net.2.bias": torch.zeros(7)})
    bad(manifest, "bad_extra_key", "net.2.running_mean", base | {"net.2.running_mean": torch.zeros(8)})
    bad(manifest, "bad_other_prefix", "other.6.bias", base | {"other.6.weight": torch.zeros(2, 2),
                                                                 "other.6.bias": torch.zeros(2)})
    bad(manifest, "bad_3d_weight", "net.0.weight", drop("net.0.weight") | {"net.0.weight": torch.zeros(8, 3, 1)})
    bad(manifest, "bad_2d_bias", "net.4.bias", drop("net.4.bias") | {"net.4.bias": torch.zeros(2, 1)})
    bad(manifest, "bad_output_width", "net.4.weight",
        drop("net.4.weight") | drop("net.4.bias") | {"net.4.weight": torch.zeros(3, 8), "net.4.bias": torch.zeros(3)},
        note="3 outputs from 3 inputs: not a vector field with time last")
    nan = {k: v.clone() for k, v in base.items()}
    nan["net.2.weight"].view(-1)[5] = float("nan")
    bad(manifest, "bad_nan", "net.2.weight", nan, note="element 5 is NaN")
    inf16 = {k: v.to(torch.float16) for k, v in base.items()}
    inf16["net.0.bias"][3] = float("inf")
    bad(manifest, "bad_inf_f16", "net.0.bias", inf16, note="element 3 is +inf")
    bad(manifest, "bad_int_dtype", "net.0.bias", drop("net.0.bias") | {"net.0.bias": torch.zeros(8, dtype=torch.int64)})
    bad(manifest, "bad_mixed_dtype", "net.2.weight", drop("net.2.weight") | {"net.2.weight": base["net.2.weight"].double()})
    bad(manifest, "bad_leading_zero", "net.02.bias",
        {("net.02" + k[5:] if k.startswith("net.2.") else k): v for k, v in base.items()})
    bad(manifest, "bad_no_index", "net.bias", {"net.weight": torch.zeros(2, 3), "net.bias": torch.zeros(2)})
    bad(manifest, "bad_zero_width", "net.0.weight",
        {"net.0.weight": torch.zeros(0, 3), "net.0.bias": torch.zeros(0), "net.2.weight": torch.zeros(2, 0),
         "net.2.bias": torch.zeros(2)})
    bad(manifest, "bad_f64_overflow", "net.2.weight",
        drop("net.2.weight") | {"net.2.weight": torch.full((8, 8), 1e300, dtype=torch.float64)}
        | {k: v.double() for k, v in drop("net.2.weight").items()}, note="finite in F64, beyond float")
    bad(manifest, "bad_empty", "", {}, note="no tensor at all")
    good_bytes = st.encode(base, {"format": "pt"})
    bad(manifest, "bad_truncated", "", data=good_bytes[:-5], note="the file ends 5 bytes early")
    bad(manifest, "bad_trailing", "", data=good_bytes + b"\0" * 4, note="bytes after the last tensor")
    with open(os.path.join(OUT, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)
        f.write("\n")
    total = sum(os.path.getsize(os.path.join(OUT, f)) for f in os.listdir(OUT))
    print(f"{len(manifest['good'])} good and {len(manifest['bad'])} bad cases, {total} bytes in {OUT}")


if __name__ == "__main__":
    main()

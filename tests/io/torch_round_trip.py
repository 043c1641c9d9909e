#!/usr/bin/env python3
"""The ctest io.torch_round_trip: flowmatch -> file -> PyTorch -> file -> flowmatch.

    python3 tests/io/torch_round_trip.py path/to/flowmatch_torch_round_trip_tool WORKDIR

1. the tool writes an MLPVectorField of every built-in activation with save_checkpoint;
2. here, PyTorch reads each with numpy (safetensors_by_hand.read: the few lines of
   docs/torch_interop.md), loads it into nn.Sequential(Linear, act, ..., Linear) with
   load_state_dict(strict=True), evaluates it in float32 and float64 on random [x, t], and saves
   the state_dict of a module that holds it as `self.net` (keys "net.0.weight", ...) as safetensors;
3. the tool imports those files and checks bit-identical parameters and PyTorch's outputs.
Exits 77 (ctest's "skipped"), loudly, where torch is not installed."""
import json
import os
import subprocess
import sys

try:
    import numpy as np
    import torch
except ImportError as e:
    print("*" * 78 + "\n*** SKIPPED: " + str(e) + " for " + sys.executable +
          " (Debian: apt-get install python3-torch):\n*** the flowmatch -> PyTorch -> flowmatch round trip did NOT run\n" +
          "*" * 78, file=sys.stderr)
    sys.exit(77)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import safetensors_by_hand as st  # noqa: E402

ACTIVATIONS = {
    "silu": torch.nn.SiLU, "relu": torch.nn.ReLU, "tanh": torch.nn.Tanh, "gelu": torch.nn.GELU,
    "gelu_tanh": lambda: torch.nn.GELU(approximate="tanh"), "elu": torch.nn.ELU, "selu": torch.nn.SELU,
    "leaky_relu": torch.nn.LeakyReLU, "softplus": torch.nn.Softplus,
}


class Field(torch.nn.Module):
    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, xt):
        return self.net(xt)


def main(tool, work):
    os.makedirs(work, exist_ok=True)
    subprocess.run([tool, "write", work], check=True)
    names = sorted(f[3:-12] for f in os.listdir(work) if f.startswith("fm_") and f.endswith(".safetensors"))
    assert names, "the tool wrote no model"
    torch.manual_seed(0)
    for name in names:
        # --- the lines of docs/torch_interop.md
        meta, arrays = st.read(os.path.join(work, f"fm_{name}.safetensors"))
        state = {k[len("model."):]: torch.from_numpy(a.copy()) for k, a in arrays.items() if k.startswith("model.")}
        widths = json.loads(meta["model.widths"])  # "[3,16,12,2]"
        layers = []
        for l in range(len(widths) - 1):
            layers.append(torch.nn.Linear(widths[l], widths[l + 1]))
            if l < len(widths) - 2:
                layers.append(ACTIVATIONS[meta["model.activation"]]())
        net = torch.nn.Sequential(*layers)
        net.load_state_dict(state, strict=True)
        # ---
        assert meta["model.activation"] == name and meta["model.time"] == "last"
        model = Field(net)
        n, d = 33, widths[-1]
        x = torch.randn(n, d).double()
        t = torch.rand(n).double()
        xt = torch.cat([x, t[:, None]], 1)
        with torch.no_grad():
            out32 = model(xt.float()).double()
            out64 = Field(net).double()(xt)
        st.write(os.path.join(work, f"pt_{name}.safetensors"),
                 {k: v.float() for k, v in model.state_dict().items()}, {"format": "pt"})
        st.write(os.path.join(work, f"pt_{name}.io.safetensors"),
                 {"x": x.float().double().numpy(), "t": t.float().double().numpy(), "out32": out32.numpy(),
                  "out64": out64.numpy()})
    print(f"PyTorch {torch.__version__} loaded {len(names)} flowmatch models: {', '.join(names)}")
    return subprocess.run([tool, "check", work]).returncode


if __name__ == "__main__":
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    sys.exit(main(sys.argv[1], sys.argv[2]))

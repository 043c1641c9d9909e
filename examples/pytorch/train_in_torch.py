#!/usr/bin/env python3
"""Bring your PyTorch model (README): train a small flow-matching MLP on two moons in PyTorch, save
its state_dict as safetensors, and integrate 1000 noise points with Euler, 100 steps, so that
`flowmatch import` + `flowmatch sample --x0 noise.csv` can be compared with PyTorch's own samples.

    /usr/bin/python3 examples/pytorch/train_in_torch.py [OUTDIR]      # needs torch and numpy
    /usr/bin/python3 examples/pytorch/train_in_torch.py OUTDIR --compare flowmatch_samples.csv

Writes OUTDIR/torch_moons.safetensors, noise.csv (the start points) and torch_samples.csv. The file
is written with `safetensors.torch.save_file` when the safetensors package is installed, else with
tests/io/safetensors_by_hand.py (the same bytes; the package is not in Debian)."""
import os, sys
import numpy as np
import torch

out = sys.argv[1] if len(sys.argv) > 1 and not sys.argv[1].startswith("--") else "."
os.makedirs(out, exist_ok=True)
if "--compare" in sys.argv:  # max |flowmatch - PyTorch| over the same start points
    theirs = np.loadtxt(sys.argv[sys.argv.index("--compare") + 1], delimiter=",", skiprows=1)
    ours = np.loadtxt(os.path.join(out, "torch_samples.csv"), delimiter=",", skiprows=1)
    print(f"max |flowmatch - pytorch| = {np.abs(theirs - ours).max():.2e} over {len(ours)} points")
    sys.exit(0)

# --- the 20 lines: data, network, conditional flow matching (x_t = t z + (1 - t) eps), save ----
torch.manual_seed(0)
def moons(n):
    a = torch.rand(n) * torch.pi
    upper = torch.rand(n) < 0.5
    x = torch.where(upper, torch.cos(a), 1 - torch.cos(a))
    y = torch.where(upper, torch.sin(a), 0.5 - torch.sin(a))
    return torch.stack([x, y], 1) + 0.05 * torch.randn(n, 2)
net = torch.nn.Sequential(torch.nn.Linear(3, 256), torch.nn.SiLU(), torch.nn.Linear(256, 256),
                          torch.nn.SiLU(), torch.nn.Linear(256, 2))          # input [x, t], time last
opt = torch.optim.Adam(net.parameters(), lr=1e-3)
for step in range(3000):
    z, eps, t = moons(512), torch.randn(512, 2), torch.rand(512, 1)
    loss = ((net(torch.cat([t * z + (1 - t) * eps, t], 1)) - (z - eps)) ** 2).mean()
    opt.zero_grad(); loss.backward(); opt.step()
path = os.path.join(out, "torch_moons.safetensors")
try:
    from safetensors.torch import save_file
except ImportError:  # the same bytes, from numpy and the standard library
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "io"))
    from safetensors_by_hand import write as _write
    save_file = lambda sd, p: _write(p, {k: v.numpy() for k, v in sd.items()}, {"format": "pt"})
save_file(net.state_dict(), path)
# ------------------------------------------------------------------------------------------------

x = torch.randn(1000, 2, dtype=torch.float64)  # start points, and PyTorch's own Euler samples
np.savetxt(os.path.join(out, "noise.csv"), x.numpy(), delimiter=",", header="x0,x1", comments="")
net = net.double()
with torch.no_grad():
    for k in range(100):
        x = x + 0.01 * net(torch.cat([x, torch.full((len(x), 1), k / 100, dtype=x.dtype)], 1))
np.savetxt(os.path.join(out, "torch_samples.csv"), x.numpy(), delimiter=",", header="x0,x1", comments="")
print(f"final loss {loss.item():.3f}; wrote {path}, noise.csv, torch_samples.csv in {out}")

#!/usr/bin/python3
"""The reference PyTorch flow-matching recipe, trained on a CSV data set.

Adapted from the seed workload's faithful PyTorch port (torch_seed.py, "Flow Matching: A Gentle
Intro", itself from the MIT 6.S184 lab code), with p_data = the rows of a CSV file instead of the
11-mode Gaussian mixture; everything else is the recipe as it stands:

  path   : alpha_t = t, beta_t = sqrt(1-t), d/dt beta = -0.5/(sqrt(1-t)+1e-4)
           x = alpha_t z + beta_t eps,  u_ref = (alpha' - beta'/beta alpha) z + beta'/beta x
  model  : Linear(d+1,1024) SiLU Linear(1024,16) SiLU Linear(16,d), input cat[x,t]
  loss   : mean((u_theta - u_ref)^2)
  optim  : Adam(lr=1e-3), batch 1000, t ~ U(0,1) per sample, 5000 steps
  sample : Euler, ts = linspace(0,1,300) (299 steps), samples from N(0,I)

z is drawn uniformly with replacement from the CSV's rows. Needs numpy and torch (/usr/bin/python3
on the project's machine has both); without torch it says so and exits with status 2.

  torch_csv_reference.py --data moons.csv --out samples.csv [--steps 5000 --nsamples 2000 --seed 0]
"""
import argparse
import sys
import time

try:
    import numpy as np
    import torch
    import torch.nn as nn
except ImportError as e:  # pragma: no cover
    print(f"torch_csv_reference.py: needs numpy and torch ({e}); run it with a Python that has them "
          "(e.g. /usr/bin/python3)", file=sys.stderr)
    sys.exit(2)


class MLPVectorField(nn.Module):
    def __init__(self, dim, hiddens):
        super().__init__()
        dims = [dim + 1] + hiddens + [dim]
        mlp = []
        for i in range(len(dims) - 1):
            mlp.append(nn.Linear(dims[i], dims[i + 1]))
            if i < len(dims) - 2:
                mlp.append(nn.SiLU())
        self.net = nn.Sequential(*mlp)

    def forward(self, x, t):
        return self.net(torch.cat([x, t], dim=-1))


def load_csv(path):
    with open(path) as f:
        first = f.readline()
    try:
        [float(v) for v in first.split(",")]
        skip = 0
    except ValueError:
        skip = 1
    return np.loadtxt(path, delimiter=",", skiprows=skip, ndmin=2)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--out", default="samples.csv")
    ap.add_argument("--steps", type=int, default=5000)
    ap.add_argument("--batch", type=int, default=1000)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--nsamples", type=int, default=1000)
    ap.add_argument("--nts", type=int, default=300)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=0)
    args = ap.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)

    data = torch.tensor(load_csv(args.data), dtype=torch.float32)
    n, d = data.shape
    model = MLPVectorField(dim=d, hiddens=[1024, 16])
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)

    t0 = time.perf_counter()
    losses = []
    for _ in range(args.steps):
        opt.zero_grad()
        z = data[torch.randint(0, n, (args.batch,))]
        t = torch.rand(args.batch, 1)
        x = t * z + torch.sqrt(1 - t) * torch.randn_like(z)
        dt_beta = -0.5 / (torch.sqrt(1 - t) + 1e-4)
        u_ref = (1.0 - dt_beta / torch.sqrt(1 - t) * t) * z + dt_beta / torch.sqrt(1 - t) * x
        loss = torch.mean((model(x, t) - u_ref) ** 2)
        losses.append(loss.item())
        loss.backward()
        opt.step()
    train_s = time.perf_counter() - t0

    with torch.no_grad():
        x = torch.randn(args.nsamples, d)
        ts = torch.linspace(0.0, 1.0, args.nts).view(1, -1, 1).expand(args.nsamples, -1, 1)
        for i in range(args.nts - 1):
            x = x + model(x, ts[:, i]) * (ts[:, i + 1] - ts[:, i])
    np.savetxt(args.out, x.numpy().astype(np.float64), delimiter=",", fmt="%.7g")
    print(f"torch reference: {n} points of dimension {d}, {args.steps} steps in {train_s:.1f} s, "
          f"final loss {float(np.mean(losses[-100:])):.4f}; wrote {args.out}")


if __name__ == "__main__":
    sys.exit(main())

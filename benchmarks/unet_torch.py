#!/usr/bin/python3
"""The PyTorch peer of flowmatch's UNetVectorField (include/flowmatch/nn/unet_vector_field.hpp).

The same network, layer for layer (widths, blocks, GroupNorm groups, FiLM, Fourier time features,
label embedding with an extra "no label" row, PyTorch's default initialisation; with --attention H
the middle's res block, self-attention with H heads, res block), the same batch
and optimizer (Adam, lr 1e-3), timed as benchmarks/unet_step.cpp times flowmatch: a training step
(forward, the CFM loss, backward, Adam) at --batch and one evaluation of the field at
--sample-batch (no_grad), medians over --steps after --warmup. Prints one RESULT line in
unet_step's format. Needs Debian's python3-torch (run with /usr/bin/python3).

  /usr/bin/python3 benchmarks/unet_torch.py --threads 1 --batch 128 --steps 10
"""

from __future__ import annotations

import argparse
import math
import statistics
import time

import torch
from torch import nn


class ResBlock(nn.Module):
    def __init__(self, cin: int, cout: int, emb: int, groups: int):
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.film = nn.Linear(emb, 2 * cout)
        self.norm2 = nn.GroupNorm(groups, cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x, e):
        h = self.conv1(nn.functional.silu(self.norm1(x)))
        scale, shift = self.film(e)[:, :, None, None].chunk(2, dim=1)
        h = self.norm2(h) * (1 + scale) + shift
        h = self.conv2(nn.functional.silu(h))
        return h + self.skip(x)


class Attention(nn.Module):
    """x + proj(MHA(GroupNorm(x))) over the pixels of each image, q, k, v from one 1x1 conv, proj
    starting at zero: flowmatch's detail::unet::Attention."""

    def __init__(self, c: int, heads: int, groups: int):
        super().__init__()
        self.heads = heads
        self.norm = nn.GroupNorm(groups, c)
        self.qkv = nn.Conv2d(c, 3 * c, 1)
        self.proj = nn.Conv2d(c, c, 1)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def forward(self, x):
        b, c, h, w = x.shape
        d = c // self.heads
        q, k, v = self.qkv(self.norm(x)).reshape(b, 3, self.heads, d, h * w).unbind(1)
        a = torch.softmax(torch.matmul(q.transpose(-1, -2), k) / math.sqrt(d), dim=-1)  # query x key
        o = torch.matmul(v, a.transpose(-1, -2)).reshape(b, c, h, w)
        return x + self.proj(o)


class UNet(nn.Module):
    def __init__(self, channels=1, widths=(16, 32, 64), blocks=1, groups=8, emb=128, freqs=8, classes=10,
                 attention=0):
        super().__init__()
        self.freqs = freqs
        self.time = nn.Sequential(nn.Linear(2 * freqs, emb), nn.SiLU(), nn.Linear(emb, emb))
        self.label = nn.Embedding(classes + 1, emb)
        self.stem = nn.Conv2d(channels, widths[0], 3, padding=1)
        self.down = nn.ModuleList()
        self.downsample = nn.ModuleList()
        c = widths[0]
        skip_channels = []
        for level, w in enumerate(widths):
            blocks_here = nn.ModuleList()
            for _ in range(blocks):
                blocks_here.append(ResBlock(c, w, emb, groups))
                c = w
                skip_channels.append(c)
            self.down.append(blocks_here)
            if level + 1 < len(widths):
                self.downsample.append(nn.Conv2d(c, c, 3, stride=2, padding=1))
        self.mid = ResBlock(c, c, emb, groups)
        self.mid_attn = Attention(c, attention, groups) if attention > 0 else None
        self.mid2 = ResBlock(c, c, emb, groups) if attention > 0 else None
        self.up = nn.ModuleList()
        self.upsample = nn.ModuleList()
        for level in reversed(range(len(widths))):
            w = widths[level]
            blocks_here = nn.ModuleList()
            for _ in range(blocks):
                s = skip_channels.pop()
                blocks_here.append(ResBlock(c + s, w, emb, groups))
                c = w
            self.up.append(blocks_here)
            if level > 0:
                self.upsample.append(nn.Conv2d(c, widths[level - 1], 3, padding=1))
                c = widths[level - 1]
        self.head_norm = nn.GroupNorm(groups, c)
        self.head = nn.Conv2d(c, channels, 3, padding=1)

    def forward(self, x, t, y):
        k = torch.arange(self.freqs, dtype=x.dtype)
        a = math.pi * (2.0 ** k)[None, :] * t[:, None]
        f = torch.stack([torch.sin(a), torch.cos(a)], dim=2).flatten(1)
        e = nn.functional.silu(self.time(f) + self.label(y))
        h = self.stem(x)
        skips = []
        for level, blocks_here in enumerate(self.down):
            for b in blocks_here:
                h = b(h, e)
                skips.append(h)
            if level < len(self.downsample):
                h = self.downsample[level](h)
        h = self.mid(h, e)
        if self.mid_attn is not None:
            h = self.mid2(self.mid_attn(h), e)
        for i, blocks_here in enumerate(self.up):
            for b in blocks_here:
                h = b(torch.cat([h, skips.pop()], dim=1), e)
            if i < len(self.upsample):
                h = self.upsample[i](nn.functional.interpolate(h, scale_factor=2, mode="nearest"))
        return self.head(nn.functional.silu(self.head_norm(h)))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--sample-batch", type=int, default=256)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--widths", default="16,32,64")
    p.add_argument("--blocks", type=int, default=1)
    p.add_argument("--embedding", type=int, default=128)
    p.add_argument("--attention", type=int, default=0, help="heads of the middle's self-attention (0: none)")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    net = UNet(widths=tuple(int(w) for w in a.widths.split(",")), blocks=a.blocks, emb=a.embedding,
               attention=a.attention)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    params = sum(q.numel() for q in net.parameters())
    train_ms = []
    for k in range(a.warmup + a.steps):
        x = torch.randn(a.batch, 1, 28, 28)
        target = torch.randn(a.batch, 1, 28, 28)
        t = torch.rand(a.batch)
        y = torch.randint(0, 10, (a.batch,))
        y[torch.rand(a.batch) < 0.1] = 10
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss = torch.mean((net(x, t, y) - target) ** 2)
        loss.backward()
        opt.step()
        ms = 1e3 * (time.perf_counter() - t0)
        if k >= a.warmup:
            train_ms.append(ms)
    sample_ms = []
    y = torch.arange(a.sample_batch) % 10
    with torch.no_grad():
        for k in range(a.warmup + a.steps):
            x = torch.randn(a.sample_batch, 1, 28, 28)
            t = torch.full((a.sample_batch,), 0.5)
            t0 = time.perf_counter()
            net(x, t, y)
            ms = 1e3 * (time.perf_counter() - t0)
            if k >= a.warmup:
                sample_ms.append(ms)
    print(f"RESULT program=torch threads={a.threads} batch={a.batch} sample_batch={a.sample_batch} params={params} "
          f"train_ms={statistics.median(train_ms):.2f} sample_ms={statistics.median(sample_ms):.2f}", flush=True)


if __name__ == "__main__":
    main()

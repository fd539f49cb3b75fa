#!/usr/bin/python3
"""Trains srrun's default SRPGAN generator (torchlite layout, 64 channels,
4 residual blocks) with an L1 loss on HR/LR pairs: random crops of real
photographs, flipped and rotated, downscaled bicubically (Pillow, as the
evaluation does).

    /usr/bin/python3 models/srpgan/train.py --scale 4 --minutes 45 \\
        --init-interpolating -o x4.pth

--init-interpolating starts from a bilinear upscale (see interpolating_init);
--init FILE from a state dict (every tensor whose name and shape match).
The photo lists live in photos.py; the held-out ones are never read here. Runs on the CPU with Debian's python3-torch (or any PyTorch).
"""
import argparse
import math
import os
import random
import sys
import time

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from photos import TRAIN, photo  # noqa: E402
from srpgan import Generator  # noqa: E402


def load_photos():
    """Every training photo at three sizes: the smaller copies have more
    detail per pixel, a multi-scale augmentation."""
    return [np.asarray(photo(name, scale)) for name in TRAIN for scale in (1.0, 0.75, 0.5)]


KNOTS = 21  # ramps per colour in the last upsample block: 3 x 21 of 64 channels
Z = 3.5  # |atanh| is clipped here: (tanh(3.5) + 1) / 2 rounds to 255/255


def bilinear_phases():
    """3x3 kernels of the four output phases (i, j) of a bilinear x2 upscale
    (half-pixel centres, as Pillow and torch's align_corners=False)."""
    taps = {0: np.array([0.25, 0.75, 0.0]), 1: np.array([0.0, 0.75, 0.25])}
    return {(i, j): torch.from_numpy(np.outer(taps[i], taps[j])) for i in (0, 1) for j in (0, 1)}


def atanh_ramps():
    """Knots t_k and ramp weights a_k with -Z + sum_k a_k relu(u - t_k)
    = clip(atanh(2u - 1), -Z, Z) at every knot, linear between."""
    z = np.linspace(-Z, Z, KNOTS)
    t = (np.tanh(z) + 1) / 2
    slopes = np.diff(z) / np.diff(t)
    return t, np.diff(np.concatenate([[0.0], slopes, [0.0]]))


def interpolating_init(net, scale):
    """Weights under which the network starts as a bilinear upscale, so
    that training starts from an interpolation instead of grey (without a
    skip connection around the network, reproducing the input takes it
    thousands of steps). Channels 0-2 carry the colours, centred (v - 0.5,
    so that zero padding reads as mid-grey): block1 copies them; each
    upsample block but the last upscales them bilinearly x2; the last does
    it into 21 copies per colour minus knots t_k, which its ReLU (PReLU
    slope 0) turns into ramps that block4 sums into atanh(2u - 1), undoing
    the final tanh. The other channels start as PyTorch initialises them,
    cut off from the colours: the residual blocks' conv2 and block3 write
    nothing into channels 0-2, and the upsample blocks read only those."""
    own = net.state_dict()
    f = own["block1.0.weight"].shape[0]
    n_up = int(math.log2(scale))
    phases = bilinear_phases()
    t, a = atanh_ramps()
    with torch.no_grad():
        own["block1.0.weight"][:3] = 0.0
        for c in range(3):
            own["block1.0.weight"][c, c, 4, 4] = 1.0
        own["block1.0.bias"][:3] = -0.5
        own["block1.1.weight"].fill_(1.0)
        for k in own:
            if k.endswith("conv2.weight") or k.endswith("conv2.bias") or k.startswith("block3.0."):
                own[k][:3] = 0.0
        for u in range(n_up):
            w, b = torch.zeros(4 * f, f, 3, 3), torch.zeros(4 * f)
            last = u == n_up - 1
            for c in range(3):
                for k in range(KNOTS if last else 1):
                    out = c * KNOTS + k if last else c
                    for (i, j), kern in phases.items():
                        w[out * 4 + i * 2 + j, c] = kern
                        if last:
                            b[out * 4 + i * 2 + j] = 0.5 - t[k]
            own[f"up_blocks.{u}.conv.weight"], own[f"up_blocks.{u}.conv.bias"] = w, b
            own[f"up_blocks.{u}.prelu.weight"] = torch.full((1,), 0.0 if last else 1.0)
        w = torch.zeros(3, f, 9, 9)
        for c in range(3):
            for k in range(KNOTS):
                w[c, c * KNOTS + k, 4, 4] = float(a[k])
        own["block4.weight"], own["block4.bias"] = w, torch.full((3,), -Z)
    net.load_state_dict(own)


def random_pair(photos, hr_size, scale, rng):
    img = photos[rng.randrange(len(photos))]
    y = rng.randrange(img.shape[0] - hr_size + 1)
    x = rng.randrange(img.shape[1] - hr_size + 1)
    hr = img[y:y + hr_size, x:x + hr_size]
    if rng.random() < 0.5:
        hr = hr[:, ::-1]
    hr = np.rot90(hr, rng.randrange(4))
    hr_img = Image.fromarray(np.ascontiguousarray(hr))
    lr_img = hr_img.resize((hr_size // scale,) * 2, Image.BICUBIC)
    to_chw = lambda a: np.asarray(a, dtype=np.float32).transpose(2, 0, 1) / 255
    return to_chw(lr_img), to_chw(hr_img)


def batch(photos, n, hr_size, scale, rng):
    pairs = [random_pair(photos, hr_size, scale, rng) for _ in range(n)]
    lr = torch.from_numpy(np.stack([p[0] for p in pairs]))
    hr = torch.from_numpy(np.stack([p[1] for p in pairs]))
    return lr, hr


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scale", type=int, choices=(2, 4), required=True)
    ap.add_argument("--minutes", type=float, required=True,
                    help="training time; the learning rate decays over it")
    ap.add_argument("--init", help="state dict to start from")
    ap.add_argument("--init-interpolating", action="store_true",
                    help="start as a bilinear upscale (see interpolating_init)")
    ap.add_argument("--lr", type=float, default=5e-4)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--lr-patch", type=int, default=24, help="LR crop side")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("-o", "--output", required=True)
    args = ap.parse_args()

    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    rng = random.Random(args.seed)
    photos = load_photos()
    print(f"{len(photos)} photos and sizes", flush=True)

    net = Generator(args.scale, 4)
    if args.init_interpolating:
        interpolating_init(net, args.scale)
    if args.init:
        own = net.state_dict()
        init = torch.load(args.init, map_location="cpu")
        same = {k: v for k, v in init.items() if k in own and own[k].shape == v.shape}
        own.update(same)
        net.load_state_dict(own)
        print(f"initialised {len(same)} of {len(own)} tensors from {args.init}")
    opt = torch.optim.Adam(net.parameters(), lr=args.lr)

    budget = args.minutes * 60
    start = last_log = last_save = time.monotonic()
    step, loss_sum, loss_n = 0, 0.0, 0
    while True:
        elapsed = time.monotonic() - start
        if elapsed >= budget:
            break
        # Cosine decay over the time budget, after a short warm-up.
        t = elapsed / budget
        lr = args.lr * min(1.0, (step + 1) / 100) * 0.5 * (1 + math.cos(math.pi * t))
        for g in opt.param_groups:
            g["lr"] = lr
        lr_img, hr_img = batch(photos, args.batch, args.lr_patch * args.scale,
                               args.scale, rng)
        loss = (net(lr_img) - hr_img).abs().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        step += 1
        loss_sum += loss.item()
        loss_n += 1
        now = time.monotonic()
        if now - last_log > 60:
            print(f"{elapsed / 60:5.1f} min  step {step:6d}  lr {lr:.2e}  "
                  f"L1 {loss_sum / loss_n:.5f}", flush=True)
            loss_sum, loss_n, last_log = 0.0, 0, now
        if now - last_save > 300:
            torch.save(net.state_dict(), args.output)
            last_save = now
    torch.save(net.state_dict(), args.output)
    print(f"{step} steps in {(time.monotonic() - start) / 60:.1f} min -> {args.output}")


if __name__ == "__main__":
    main()

#!/usr/bin/python3
"""Writes srpgan_default_x4.pth, the placeholder default model: an SRPGAN x4
state dict in torchlite's layout whose weights are set by hand, not trained,
so that the network computes a smooth (twice bilinear x2) upscale.

It exists so that `srrun photo.png` gives a sensible picture before the
trained default model lands; it adds no detail. Run with Debian's python3
(python3-torch, python3-numpy):  /usr/bin/python3 models/srpgan/make_placeholder.py

How the fixed weights work, layer by layer (F = 64 channels, one residual
block):
- block1 copies the RGB input into channels 0-2, centred: f = v - 0.5, so the
  zero padding of later layers reads as mid-grey rather than black.
- the residual block and block3 have zero weights and contribute nothing
  (InstanceNorm of a zero plane is zero).
- up_blocks.0: for each colour, the four sub-pixel phases of a bilinear x2
  upscale as 3x3 kernels; PixelShuffle interleaves them; PReLU slope 1.
- up_blocks.1: the same upscale again, written into K copies per colour with
  biases 0.5 - t_k, and PReLU slope 0 (a ReLU) makes relu(u - t_k).
- block4 sums those ramps into a piecewise-linear atanh(2u - 1), so that the
  network's final (tanh(x) + 1) / 2 gives u back.
"""
import math
import os

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
F = 64
KNOTS = 21  # ramps per colour: 3 x 21 of the 64 channels
Z = 3.5  # |atanh| is clipped here: (tanh(3.5) + 1) / 2 rounds to 255/255


def bilinear_phases():
    """3x3 kernels of the four output phases (i, j) of a bilinear x2 upscale
    (half-pixel centres, as PIL and torch's align_corners=False)."""
    taps = {0: np.array([0.25, 0.75, 0.0]), 1: np.array([0.0, 0.75, 0.25])}
    return {(i, j): np.outer(taps[i], taps[j]) for i in (0, 1) for j in (0, 1)}


def atanh_ramps():
    """Knots t_k and ramp weights a_k with -Z + sum_k a_k relu(u - t_k)
    = clip(atanh(2u - 1), -Z, Z) at every knot, linear between."""
    z = np.linspace(-Z, Z, KNOTS)
    t = (np.tanh(z) + 1) / 2
    slopes = np.diff(z) / np.diff(t)
    a = np.diff(np.concatenate([[0.0], slopes, [0.0]]))
    return t, a


def placeholder_state_dict():
    sd = {}
    zeros = lambda *shape: torch.zeros(*shape)
    w = zeros(F, 3, 9, 9)
    b = zeros(F)
    for c in range(3):
        w[c, c, 4, 4] = 1.0
        b[c] = -0.5
    sd["block1.0.weight"], sd["block1.0.bias"] = w, b
    sd["block1.1.weight"] = torch.ones(1)
    for name in ("conv1", "conv2"):
        sd[f"res_blocks.0.{name}.weight"] = zeros(F, F, 3, 3)
        sd[f"res_blocks.0.{name}.bias"] = zeros(F)
    sd["res_blocks.0.prelu.weight"] = torch.full((1,), 0.25)
    sd["block3.0.weight"], sd["block3.0.bias"] = zeros(F, F, 3, 3), zeros(F)
    sd["block3.1.weight"] = torch.full((1,), 0.25)

    phases = bilinear_phases()
    t, a = atanh_ramps()
    # up_blocks.0: bilinear x2 of the centred colours into channels 0-2.
    w, b = zeros(4 * F, F, 3, 3), zeros(4 * F)
    for c in range(3):
        for (i, j), k in phases.items():
            w[c * 4 + i * 2 + j, c] = torch.from_numpy(k)
    sd["up_blocks.0.conv.weight"], sd["up_blocks.0.conv.bias"] = w, b
    sd["up_blocks.0.prelu.weight"] = torch.ones(1)
    # up_blocks.1: bilinear x2 again, as ramps relu(u - t_k), u = f + 0.5.
    w, b = zeros(4 * F, F, 3, 3), zeros(4 * F)
    for c in range(3):
        for k in range(KNOTS):
            out = c * KNOTS + k
            for (i, j), kern in phases.items():
                w[out * 4 + i * 2 + j, c] = torch.from_numpy(kern)
                b[out * 4 + i * 2 + j] = 0.5 - t[k]
    sd["up_blocks.1.conv.weight"], sd["up_blocks.1.conv.bias"] = w, b
    sd["up_blocks.1.prelu.weight"] = torch.zeros(1)
    # block4: the ramps summed into atanh(2u - 1), centre tap only.
    w, b = zeros(3, F, 9, 9), torch.full((3,), -Z)
    for c in range(3):
        for k in range(KNOTS):
            w[c, c * KNOTS + k, 4, 4] = float(a[k])
    sd["block4.weight"], sd["block4.bias"] = w, b
    return {k: v.float().contiguous() for k, v in sd.items()}


def main():
    t, a = atanh_ramps()
    u = np.linspace(0, 1, 100001)
    ramps = np.maximum(u[:, None] - t[None, :], 0) @ a - Z
    err = np.abs((np.tanh(ramps) + 1) / 2 - u).max()
    print(f"piecewise-linear atanh: max error {err * 255:.3f}/255 over [0, 1]")
    path = os.path.join(HERE, "srpgan_default_x4.pth")
    torch.save(placeholder_state_dict(), path)
    print(f"wrote {path} ({os.path.getsize(path)} bytes)")


if __name__ == "__main__":
    main()

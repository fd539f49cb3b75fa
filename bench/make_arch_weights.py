#!/usr/bin/env python3
"""Full-size random-weight state dicts laid out as the released files are,
for timing srrun and its peers on the architectures of issue 16 (the time
does not depend on the weights' values). Seeded: the same files every run.

    python3 bench/make_arch_weights.py OUT_DIR [NAME...]

Names (default: all), each written as OUT_DIR/NAME.pth:
  RealESRGAN_x4plus      RRDBNet, 23 blocks, 64 features, growth 32, in
                         {'params_ema': ...} (64 MB)
  RealESRGAN_x2plus      the same at x2: the input pixel-unshuffled by 2
                         (conv_first takes 12 channels)
  realesr-animevideov3   SRVGGNetCompact, 16 convs, 64 features, x4, {'params': ...}
  realesr-general-x4v3   SRVGGNetCompact, 32 convs, 64 features, x4, {'params': ...}
  EDSR_x4                EDSR baseline, 16 blocks, 64 features, x4, a plain
                         state dict as EDSR-PyTorch saves it
  MSRResNet_x4           MSRResNet, 16 blocks, 64 features, x4, {'params': ...}

The networks are tests/fixtures/sr_archs.py's, imported. Weights are
PyTorch's default initialisation scaled down where a deep stack would
otherwise overflow (RRDBNet's trunk), so that outputs stay finite; srrun and
the peers then see ordinary numbers, not infinities or NaNs.
"""
import os
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "fixtures"))
import sr_archs  # noqa: E402

# name -> (constructor, how the release wraps its state dict)
NETWORKS = {
    "RealESRGAN_x4plus": (lambda: sr_archs.RRDBNet(blocks=23, feat=64, grow=32), "params_ema"),
    "RealESRGAN_x2plus": (lambda: sr_archs.RRDBNet(blocks=23, feat=64, grow=32, scale=2),
                          "params_ema"),
    "realesr-animevideov3": (lambda: sr_archs.SRVGGNetCompact(64, 16, 4), "params"),
    "realesr-general-x4v3": (lambda: sr_archs.SRVGGNetCompact(64, 32, 4), "params"),
    "EDSR_x4": (lambda: sr_archs.EDSR(blocks=16, feat=64, scale=4), None),
    "MSRResNet_x4": (lambda: sr_archs.MSRResNet(blocks=16, feat=64, scale=4), "params"),
}


def build(name, seed=2026):
    """The network `name` with seeded random weights, eval mode."""
    make, _ = NETWORKS[name]
    torch.manual_seed(seed)
    net = make().eval()
    with torch.no_grad():
        for mname, m in net.named_modules():
            if isinstance(m, torch.nn.PReLU):
                m.weight.uniform_(0.05, 0.5)
            elif isinstance(m, torch.nn.Conv2d) and ".rdb" in mname:
                m.weight.mul_(0.1)  # as BasicSR's default_init_weights(scale=0.1)
    return net


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    out = sys.argv[1]
    names = sys.argv[2:] or list(NETWORKS)
    os.makedirs(out, exist_ok=True)
    for name in names:
        if name not in NETWORKS:
            sys.exit(f"make_arch_weights.py: unknown network {name!r}; known: {', '.join(NETWORKS)}")
        sd = build(name).state_dict()
        wrap = NETWORKS[name][1]
        path = os.path.join(out, name + ".pth")
        torch.save({wrap: sd} if wrap else sd, path)
        n = sum(v.numel() for v in sd.values())
        print(f"{path}: {n / 1e6:.2f} M parameters, {os.path.getsize(path) / 1e6:.1f} MB")


if __name__ == "__main__":
    main()

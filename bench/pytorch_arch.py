#!/usr/bin/env python3
"""The PyTorch peer for issue 16's architectures (RRDBNet, SRVGGNetCompact,
EDSR, MSRResNet): upscales an image with a released state dict the way a
PyTorch user would, from loading the weights to the PNG written, and prints
the JSON line of bench/pytorch_srpgan.py (time without the import, peak RSS).

    python3 bench/pytorch_arch.py MODEL.pth INPUT OUTPUT.png [--threads N]

The network is tests/fixtures/sr_archs.py's (bench/arch_net.py reads the
hyper-parameters from the keys); run with the python3 that has torch (here
pyenv's, torch 2.x).
"""
import argparse
import os
import time

import torch
from PIL import Image

from arch_net import load
from peer_io import network_input, report, write_png


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("input")
    ap.add_argument("output")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    a = ap.parse_args()
    torch.set_num_threads(a.threads)

    t0 = time.perf_counter()
    net, _ = load(a.model)
    x = network_input(Image.open(a.input))
    t1 = time.perf_counter()
    with torch.inference_mode():
        y = net(torch.from_numpy(x)[None])[0].numpy()
    t2 = time.perf_counter()
    write_png(y, a.output)
    report("pytorch " + torch.__version__, a.threads, x, y, t0, t1, t2, time.perf_counter())


if __name__ == "__main__":
    main()

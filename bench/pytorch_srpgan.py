#!/usr/bin/python3
"""The PyTorch peer: upscales an image with an SRPGAN state dict the way a
PyTorch user would, from loading the weights to the PNG written, and prints
one JSON line with the time (import excluded) and the peak RSS.

    /usr/bin/python3 bench/pytorch_srpgan.py MODEL.pth INPUT OUTPUT.png [--threads N]
"""
import argparse
import json
import os
import resource
import sys
import time

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "models", "srpgan"))
from srpgan import Generator, to_network_input  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("input")
    ap.add_argument("output")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    a = ap.parse_args()
    torch.set_num_threads(a.threads)

    t0 = time.perf_counter()
    sd = torch.load(a.model, map_location="cpu")
    n_up = sum(1 for k in sd if k.startswith("up_blocks.") and k.endswith(".conv.weight"))
    n_res = sum(1 for k in sd if k.startswith("res_blocks.") and k.endswith(".conv1.weight"))
    g = Generator(2 ** n_up, n_res).eval()
    g.load_state_dict(sd)
    x = to_network_input(Image.open(a.input))
    t1 = time.perf_counter()
    with torch.no_grad():
        y = g(x)[0]
    t2 = time.perf_counter()
    levels = (y.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    Image.fromarray(np.ascontiguousarray(levels), "RGB").save(a.output, compress_level=3)
    t3 = time.perf_counter()
    print(json.dumps({
        "peer": "pytorch " + torch.__version__, "threads": a.threads,
        "width": x.shape[3], "height": x.shape[2], "scale": 2 ** n_up,
        "network_s": round(t2 - t1, 4), "total_s": round(t3 - t0, 4),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }))


if __name__ == "__main__":
    main()

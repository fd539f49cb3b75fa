#!/usr/bin/env python3
"""The ncnn peer, in two steps like bench/onnxruntime_srpgan.py (Debian's
python3-torch reads the weights; pip's ncnn runs them):

    /usr/bin/python3 bench/ncnn_srpgan.py export MODEL.pth OUT_PREFIX
    python3 bench/ncnn_srpgan.py run OUT_PREFIX INPUT OUTPUT.png [--threads N] [--no-sgemm]

export writes OUT_PREFIX.param (ncnn's text graph) and OUT_PREFIX.bin (its
raw weights) straight from the state dict, with no converter: the block
count, width and scale (2, 4, 8) come from the keys. Layers: Input,
Convolution, PReLU (one slope), InstanceNorm (affine off, eps 1e-5 as
PyTorch's; ncnn's default eps is 1e-3), Split where a blob has two
consumers, BinaryOp (the residual adds; (tanh(x) + 1) / 2 as scalar add 1
then scalar multiply 0.5), PixelShuffle (mode 0, PyTorch's channel order),
TanH. The input blob is "in", the output "out".

run upscales an image from loading the net to the PNG written and prints one
JSON line like bench/pytorch_srpgan.py (import excluded). Options: threads
from --threads; everything else at ncnn's defaults (packing layout, Winograd
for the 3x3 convolutions, im2col+sgemm for the others, lightmode), except
--no-sgemm, which sets opt.use_sgemm_convolution = False only: the 9x9 input
and output convolutions then run ncnn's direct (packed) convolution, and the
3x3 ones stay on Winograd, which that switch does not govern. Why it
matters: with sgemm on, ncnn runs the 64->3 9x9 output convolution through a
whole-image im2col buffer, 64*81 floats per output pixel (637 MB for a
192x160 output, about 21 GB for 1024x1024), so the default runner's peak
memory grows by about 20 KB per output pixel; with it off that convolution
needs no such buffer and is also faster. ncnn's fp16 and bf16 storage
options change nothing on this fp32 net on x86 (bit-identical outputs) and
are left at their defaults.
"""
import argparse
import os
import struct
import sys
import time

from peer_io import network_input, report, write_png

HERE = os.path.dirname(os.path.abspath(__file__))


def export(model, prefix):
    import numpy as np
    import torch

    sd = torch.load(model, map_location="cpu")
    n_up = sum(1 for k in sd if k.startswith("up_blocks.") and k.endswith(".conv.weight"))
    n_res = sum(1 for k in sd if k.startswith("res_blocks.") and k.endswith(".conv1.weight"))
    c = sd["block1.0.weight"].shape[0]

    layers = []  # param lines
    blobs = set()
    weights = bytearray()

    def raw(t):  # a weight without the storage flag (bias, slope): fp32
        weights.extend(np.ascontiguousarray(t.detach().numpy(), dtype="<f4").tobytes())

    def layer(kind, name, inputs, outputs, params=""):
        layers.append(f"{kind:<14} {name:<28} {len(inputs)} {len(outputs)} "
                      + " ".join(inputs + outputs) + (" " + params if params else ""))
        blobs.update(outputs)
        return outputs[0] if len(outputs) == 1 else outputs

    def conv(prefix_, x, pad):
        w, b = sd[prefix_ + ".weight"], sd[prefix_ + ".bias"]
        out_c, in_c, kh, kw = w.shape
        assert kh == kw == 2 * pad + 1
        # Convolution loads its weight with a storage flag word (0: float32),
        # then the bias without one.
        weights.extend(struct.pack("<I", 0))
        raw(w)  # out, in, kh, kw: ncnn's order too
        raw(b)
        return layer("Convolution", prefix_, [x], [prefix_],
                     f"0={out_c} 1={kw} 4={pad} 5=1 6={w.numel()}")

    def prelu(key, x, name):
        assert sd[key].numel() == 1, key
        raw(sd[key])
        return layer("PReLU", name, [x], [name], "0=1")

    def inorm(x, name):  # affine off: no weights
        return layer("InstanceNorm", name, [x], [name], f"0={c} 1=1.0e-05 2=0")

    def split(x, name):
        return layer("Split", name, [x], [name + "_0", name + "_1"])

    x = layer("Input", "in", [], ["in"])
    x = prelu("block1.1.weight", conv("block1.0", x, 4), "block1.1")
    x, block1 = split(x, "block1_split")
    for i in range(n_res):
        p = f"res_blocks.{i}"
        r, skip = split(x, p + ".split")
        r = prelu(p + ".prelu.weight", inorm(conv(p + ".conv1", r, 1), p + ".in1"), p + ".prelu")
        r = inorm(conv(p + ".conv2", r, 1), p + ".in2")
        x = layer("BinaryOp", p + ".add", [skip, r], [p + ".add"], "0=0")
    x = prelu("block3.1.weight", conv("block3.0", x, 1), "block3.1")
    x = layer("BinaryOp", "block1_add_block3", [block1, x], ["block1_add_block3"], "0=0")
    for i in range(n_up):
        p = f"up_blocks.{i}"
        x = conv(p + ".conv", x, 1)
        x = layer("PixelShuffle", p + ".pixel_shuffle", [x], [p + ".pixel_shuffle"], "0=2 1=0")
        x = prelu(p + ".prelu.weight", x, p + ".prelu")
    x = conv("block4", x, 4)
    x = layer("TanH", "tanh", [x], ["tanh"])
    x = layer("BinaryOp", "plus_one", [x], ["plus_one"], "0=0 1=1 2=1.0")
    layer("BinaryOp", "half", [x], ["out"], "0=2 1=1 2=0.5")

    with open(prefix + ".param", "w") as f:
        f.write(f"7767517\n{len(layers)} {len(blobs)}\n" + "\n".join(layers) + "\n")
    with open(prefix + ".bin", "wb") as f:
        f.write(weights)


def run(prefix, image, output, threads, no_sgemm):
    import ncnn
    import numpy as np
    from PIL import Image

    t0 = time.perf_counter()
    net = ncnn.Net()
    net.opt.num_threads = threads
    if no_sgemm:
        net.opt.use_sgemm_convolution = False
    if net.load_param(prefix + ".param") != 0 or net.load_model(prefix + ".bin") != 0:
        sys.exit(f"ncnn_srpgan.py: cannot load {prefix}.param / {prefix}.bin")
    x = network_input(Image.open(image))
    t1 = time.perf_counter()
    ex = net.create_extractor()
    ex.input("in", ncnn.Mat(x))
    ret, out = ex.extract("out")
    if ret != 0:
        sys.exit(f"ncnn_srpgan.py: extract failed ({ret})")
    y = np.array(out)
    t2 = time.perf_counter()
    write_png(y, output)
    report("ncnn " + ncnn.__version__ + (" no-sgemm" if no_sgemm else ""), threads, x, y,
           t0, t1, t2, time.perf_counter())


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    e = sub.add_parser("export")
    e.add_argument("model")
    e.add_argument("prefix")
    r = sub.add_parser("run")
    r.add_argument("prefix")
    r.add_argument("input")
    r.add_argument("output")
    r.add_argument("--threads", type=int, default=os.cpu_count())
    r.add_argument("--no-sgemm", action="store_true")
    a = ap.parse_args()
    if a.cmd == "export":
        export(a.model, a.prefix)
    else:
        run(a.prefix, a.input, a.output, a.threads, a.no_sgemm)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Exports issue 16's architectures for the peers that run without torch;
their run steps are the SRPGAN peers' (same input and output names):

    python3 bench/export_arch.py onnx MODEL.pth MODEL.onnx
    python3 bench/onnxruntime_srpgan.py run MODEL.onnx INPUT OUT.png --threads 2
    python3 bench/export_arch.py ncnn MODEL.pth PREFIX
    python3 bench/ncnn_srpgan.py run PREFIX INPUT OUT.png --threads 2

onnx: bench/arch_net.py's network (any of the four), dynamic height and
width, opset 17, TorchScript exporter (dynamo=False), input "x", output "y".
ncnn: RRDBNet and SRVGGNetCompact only (the two networks of the speed
targets; Real-ESRGAN's ncnn release runs these), written straight from the
state dict as bench/ncnn_srpgan.py does: Convolution, ReLU with slope 0.2
(LeakyReLU), Concat, BinaryOp (scale by 0.2, the residual adds), Interp
(nearest x2 / x4), PReLU per channel, PixelShuffle; Split where a blob has
several consumers. Input blob "in", output "out".
"""
import argparse
import struct
import sys
from collections import defaultdict

import numpy as np
import torch

from arch_net import load


def export_onnx(model, path):
    net, what = load(model)
    x = torch.rand(1, 3, 32, 32)
    torch.onnx.export(net, x, path, opset_version=17, input_names=["x"], output_names=["y"],
                      dynamic_axes={"x": {2: "h", 3: "w"}, "y": {2: "H", 3: "W"}}, dynamo=False)
    print(f"{path}: {what}")


class NcnnGraph:
    """Layers in order and their weights; Splits added where written."""

    def __init__(self, sd):
        self.sd, self.layers, self.weights = sd, [], bytearray()

    def _raw(self, t):
        self.weights.extend(np.ascontiguousarray(t.detach().numpy(), dtype="<f4").tobytes())

    def layer(self, kind, name, inputs, params=""):
        self.layers.append([kind, name, list(inputs), [name], params])
        return name

    def conv(self, key, x):
        w, b = self.sd[key + ".weight"], self.sd[key + ".bias"]
        out_c, _, k, _ = w.shape
        self.weights.extend(struct.pack("<I", 0))  # float32 storage flag, then raw
        self._raw(w)
        self._raw(b)
        return self.layer("Convolution", key, [x], f"0={out_c} 1={k} 4={k // 2} 5=1 6={w.numel()}")

    def lrelu(self, x):
        return self.layer("ReLU", x + ".lrelu", [x], "0=2.000000e-01")

    def scale(self, x, s):
        return self.layer("BinaryOp", x + ".scale", [x], f"0=2 1=1 2={s:e}")

    def add(self, a, b, name):
        return self.layer("BinaryOp", name, [a, b], "0=0")

    def prelu(self, key, x):
        self._raw(self.sd[key])
        return self.layer("PReLU", key, [x], f"0={self.sd[key].numel()}")

    def write(self, prefix):
        uses = defaultdict(int)
        for _, _, inputs, _, _ in self.layers:
            for blob in inputs:
                uses[blob] += 1
        out, taken = [], defaultdict(int)
        for kind, name, inputs, outputs, params in self.layers:
            for i, blob in enumerate(inputs):  # the n-th consumer reads split output n
                if uses[blob] > 1:
                    inputs[i] = f"{blob}_{taken[blob]}"
                    taken[blob] += 1
            out.append((kind, name, inputs, outputs, params))
            if uses[name] > 1:
                out.append(("Split", name + "_split", [name],
                            [f"{name}_{i}" for i in range(uses[name])], ""))
        blobs = {b for _, _, _, outputs, _ in out for b in outputs}
        lines = [f"{k:<12} {n:<28} {len(i)} {len(o)} " + " ".join(i + o) + (" " + p if p else "")
                 for k, n, i, o, p in out]
        with open(prefix + ".param", "w") as f:
            f.write(f"7767517\n{len(out)} {len(blobs)}\n" + "\n".join(lines) + "\n")
        with open(prefix + ".bin", "wb") as f:
            f.write(self.weights)


def export_ncnn(model, prefix):
    sd = torch.load(model, map_location="cpu", weights_only=True)
    sd = sd.get("params_ema", sd.get("params", sd))
    net, what = load(model)
    g = NcnnGraph(sd)
    x = g.layer("Input", "in", [])
    if what.startswith("rrdbnet"):
        feat = g.conv("conv_first", x)
        h = feat
        for n in range(len(net.body)):
            block_in = h
            for k in (1, 2, 3):
                p, rdb_in = f"body.{n}.rdb{k}", h
                seen = [h]
                for j in range(1, 5):
                    cat = seen[0] if len(seen) == 1 else g.layer("Concat", f"{p}.cat{j}", seen, "0=0")
                    seen.append(g.lrelu(g.conv(f"{p}.conv{j}", cat)))
                h = g.conv(f"{p}.conv5", g.layer("Concat", f"{p}.cat5", seen, "0=0"))
                h = g.add(g.scale(h, 0.2), rdb_in, p + ".add")
            h = g.add(g.scale(h, 0.2), block_in, f"body.{n}.add")
        h = g.add(feat, g.conv("conv_body", h), "trunk_add")
        for up in ("conv_up1", "conv_up2"):
            h = g.layer("Interp", up + ".up", [h], "0=1 1=2.0 2=2.0")
            h = g.lrelu(g.conv(up, h))
        h = g.conv("conv_last", g.lrelu(g.conv("conv_hr", h)))
        g.layers[-1][1] = g.layers[-1][3][0] = "out"
    elif what.startswith("srvgg"):
        h, last = x, len(net.body) - 1
        for i in range(0, last, 2):
            h = g.prelu(f"body.{i + 1}.weight", g.conv(f"body.{i}", h))
        h = g.conv(f"body.{last}", h)
        h = g.layer("PixelShuffle", "shuffle", [h], f"0={net.scale} 1=0")
        up = g.layer("Interp", "base", [x], f"0=1 1={net.scale:.1f} 2={net.scale:.1f}")
        g.add(h, up, "out")
    else:
        sys.exit(f"export_arch.py: ncnn export knows RRDBNet and SRVGGNetCompact, not {what}")
    g.write(prefix)
    print(f"{prefix}.param: {what}, {len(g.layers)} layers")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("format", choices=("onnx", "ncnn"))
    ap.add_argument("model")
    ap.add_argument("out")
    a = ap.parse_args()
    (export_onnx if a.format == "onnx" else export_ncnn)(a.model, a.out)


if __name__ == "__main__":
    main()

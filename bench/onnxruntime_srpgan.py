#!/usr/bin/env python3
"""The ONNX Runtime peer, in two steps (torch and onnxruntime may live in
different Pythons):

    python3 bench/onnxruntime_srpgan.py export MODEL.pth MODEL.onnx
    python3 bench/onnxruntime_srpgan.py run MODEL.onnx INPUT OUTPUT.png [--threads N]

export writes the SRPGAN graph with dynamic height and width (opset 13);
run upscales an image from loading the session to the PNG written and
prints one JSON line like bench/pytorch_srpgan.py (import excluded).
"""
import argparse
import os
import sys
import time

from peer_io import network_input, report, write_png

HERE = os.path.dirname(os.path.abspath(__file__))


def export(model, path):
    import torch
    sys.path.insert(0, os.path.join(HERE, "..", "models", "srpgan"))
    from srpgan import Generator

    sd = torch.load(model, map_location="cpu")
    n_up = sum(1 for k in sd if k.startswith("up_blocks.") and k.endswith(".conv.weight"))
    n_res = sum(1 for k in sd if k.startswith("res_blocks.") and k.endswith(".conv1.weight"))
    g = Generator(2 ** n_up, n_res).eval()
    g.load_state_dict(sd)
    x = torch.rand(1, 3, 32, 32)
    torch.onnx.export(g, x, path, opset_version=13, input_names=["x"], output_names=["y"],
                      dynamic_axes={"x": {2: "h", 3: "w"}, "y": {2: "H", 3: "W"}}, dynamo=False)


def run(model, image, output, threads):
    import onnxruntime as ort
    from PIL import Image

    t0 = time.perf_counter()
    opt = ort.SessionOptions()
    opt.intra_op_num_threads = threads
    opt.inter_op_num_threads = 1
    opt.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(model, opt, providers=["CPUExecutionProvider"])
    x = network_input(Image.open(image))
    t1 = time.perf_counter()
    y = session.run(None, {"x": x[None]})[0][0]
    t2 = time.perf_counter()
    write_png(y, output)
    report("onnxruntime " + ort.__version__, threads, x, y, t0, t1, t2, time.perf_counter())


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    e = sub.add_parser("export")
    e.add_argument("model")
    e.add_argument("onnx")
    r = sub.add_parser("run")
    r.add_argument("onnx")
    r.add_argument("input")
    r.add_argument("output")
    r.add_argument("--threads", type=int, default=os.cpu_count())
    a = ap.parse_args()
    if a.cmd == "export":
        export(a.model, a.onnx)
    else:
        run(a.onnx, a.input, a.output, a.threads)


if __name__ == "__main__":
    main()

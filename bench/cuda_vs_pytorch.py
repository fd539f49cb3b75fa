#!/usr/bin/env python3
"""srrun's CUDA backend against PyTorch eager on the same GPU, in one script
(issue 6's figures): SRPGAN, or one of issue 16's architectures (RRDBNet,
SRVGGNetCompact, EDSR, MSRResNet, read by bench/arch_net.py), at each size
(the photo resized to N x N), srrun
at each --precision (fp32, tf32, fp16, bf16) and PyTorch in float32 (TF32
off), TF32 (its default on a GPU) and float16, run alternately, medians of
the repeats. Prints a Markdown table and writes the rows as CSV.

    python3 bench/cuda_vs_pytorch.py MODEL.pth PHOTO [--sizes 700 2000 4000]
        [--srrun build/srrun] [--repeats 3] [--csv out.csv] [--device cuda]

- Time, warm, two ways. Network: the layers alone (srrun: srbench's
  layers' seconds in its median run, each timed to its end on the device;
  PyTorch: the forward pass between CUDA events, after one warm-up). Host
  to host: the image in host memory to the output in host memory (srrun:
  srbench's median sr_session_run, the float32 conversions and output rows
  included; PyTorch: the upload, the forward pass and the download).
  srrun's process wall time, a cold start (the CUDA context, the weights'
  upload, cuBLAS loading its kernels) and the PNG written, beside them.
  Without --srbench (bench/srbench, built with -DSR_BENCH=ON) srrun's times
  are the CLI's --stats of that cold process.
- Peak device memory: nvidia-smi's memory.used, sampled every 20 ms while
  each runs, less the idle reading (the CUDA context included for both);
  PyTorch's max_memory_reserved beside it.
- Difference: each 8-bit output against PyTorch float32's, in levels.
- A size PyTorch cannot fit says so (out of memory) and the script goes on.

`--device cpu` runs the same comparison on the CPU (srrun --backend cpu,
PyTorch on the CPU, no memory sampling): a check of the script itself where
no GPU is. Needs PyTorch, numpy and Pillow.
"""
import argparse
import copy
import csv
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np
import torch
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "models", "srpgan"))
from srpgan import Generator, to_network_input  # noqa: E402
from arch_net import load as load_arch  # noqa: E402


class DeviceMemory:
    """nvidia-smi's memory.used (MiB), its largest reading while open."""

    def __init__(self, enabled):
        self.enabled, self.peak, self.proc = enabled, 0, None

    def __enter__(self):
        if self.enabled:
            self.proc = subprocess.Popen(
                ["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits", "-lms", "20"],
                stdout=subprocess.PIPE, text=True)
            self.reader = threading.Thread(target=self._read, daemon=True)
            self.reader.start()
            time.sleep(0.2)
        return self

    def _read(self):
        for line in self.proc.stdout:
            if line.strip().isdigit():
                self.peak = max(self.peak, int(line))

    def __exit__(self, *exc):
        if self.enabled:
            time.sleep(0.1)
            self.proc.terminate()
            self.proc.wait()


def idle_memory(enabled):
    if not enabled:
        return 0
    out = subprocess.run(["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits"],
                         capture_output=True, text=True, check=True).stdout
    return int(out.split()[0])


def run_srrun(a, model, image, output, backend, precision, gpu):
    with DeviceMemory(gpu) as mem, tempfile.NamedTemporaryFile(suffix=".json") as stats:
        t = time.perf_counter()
        r = subprocess.run([a.srrun, "-q", "--backend", backend, "--precision", precision,
                            "--stats", stats.name, model, image, "-o", output],
                           capture_output=True, text=True)
        wall = time.perf_counter() - t
        if r.returncode != 0:
            return {"error": r.stderr.strip()}
        s = json.load(open(stats.name))
    r = {"network_s": sum(layer["seconds"] for layer in s["layers"]),
         "run_s": s["seconds"]["run"], "wall_s": wall, "device_mb": mem.peak}
    if a.srbench:
        r.update(run_srbench(a, model, s["width"], s["height"], backend, precision))
    return r


def run_srbench(a, model, width, height, backend, precision):
    """srrun warm: srbench's median run (one warm-up first)."""
    out = subprocess.run([a.srbench, "--model", model, "--backends", backend, "--precision",
                          precision, "--sizes", f"{width}x{height}", "--repeats", "3", "--json"],
                         capture_output=True, text=True, check=True).stdout
    run = json.loads(out)["runs"][0]
    return {"network_s": sum(layer["seconds"] for layer in run["layers"]),
            "run_s": run["median_s"]}


def run_pytorch(model, x, half, tf32, device, gpu):
    """Warm forward passes: the median of the repeats (seconds), the peak
    reserved (MiB), the float output on the host. tf32: let cuDNN round
    float32 convolutions to TF32, as PyTorch does by default."""
    torch.backends.cudnn.allow_tf32 = tf32
    torch.backends.cuda.matmul.allow_tf32 = tf32
    times, runs, y = [], [], None
    if gpu:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    with DeviceMemory(gpu) as mem, torch.no_grad():
        for i in range(2):
            t = time.perf_counter()
            inp = x.to(device).half() if half else x.to(device)
            if gpu:
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                start.record()
                y = model(inp)
                end.record()
                host = y[0].float().cpu()
                seconds = start.elapsed_time(end) / 1000
            else:
                t0 = time.perf_counter()
                y = model(inp)
                seconds = time.perf_counter() - t0
                host = y[0].float()
            if i > 0:  # the first is the warm-up
                times.append(seconds)
                runs.append(time.perf_counter() - t)
            del inp
        y = host
    reserved = torch.cuda.max_memory_reserved() / 2**20 if gpu else 0
    return {"network_s": statistics.median(times), "run_s": statistics.median(runs),
            "device_mb": mem.peak, "reserved_mb": reserved}, y


def load_network(path):
    """The file's network in eval mode, [0, 1] in and out: SRPGAN by its
    res_blocks keys, else one of arch_net's."""
    sd = torch.load(path, map_location="cpu")
    if not any(k.startswith("res_blocks.") for k in sd):
        return load_arch(path)[0]
    n_up = sum(1 for k in sd if k.startswith("up_blocks.") and k.endswith(".conv.weight"))
    n_res = sum(1 for k in sd if k.startswith("res_blocks.") and k.endswith(".conv1.weight"))
    g = Generator(2 ** n_up, n_res).eval()
    g.load_state_dict(sd)
    return g


def to_levels(y):
    """A network output (3 x H x W float) as PyTorch's 8-bit image (H x W x 3)."""
    return (y.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("photo")
    ap.add_argument("--sizes", type=int, nargs="+", default=[700, 2000, 4000])
    ap.add_argument("--srrun", default=os.path.join(os.path.dirname(__file__), "..", "build", "srrun"))
    ap.add_argument("--srbench", help="bench/srbench, for srrun's warm times")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--csv", default="cuda_vs_pytorch.csv")
    ap.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    a = ap.parse_args()
    gpu = a.device == "cuda"
    backend = "cuda" if gpu else "cpu"

    g = load_network(a.model)
    models = {False: g.to(a.device), True: copy.deepcopy(g).half().to(a.device) if gpu else None}
    if gpu:
        print(f"device: {torch.cuda.get_device_name()}, PyTorch {torch.__version__}, "
              f"cuDNN {torch.backends.cudnn.version()}", flush=True)
    base = idle_memory(gpu)
    rows = []
    work = tempfile.mkdtemp()
    photo = Image.open(a.photo).convert("RGB")
    for size in a.sizes:
        image = os.path.join(work, f"in_{size}.png")
        photo.resize((size, size), Image.BICUBIC).save(image, compress_level=1)
        x = to_network_input(Image.open(image))
        # srrun at each precision its backend has, PyTorch in float32 and
        # (on a GPU) float16; each output's largest difference from
        # PyTorch float32's, in 8-bit levels.
        precisions = ["fp32", "tf32", "fp16", "bf16"] if gpu else ["fp32"]
        runs = {f"srrun {p}": [] for p in precisions}
        pytorch = [("pytorch fp32", False, False)]
        if gpu:  # PyTorch's default for float32 on a GPU is TF32 convolutions
            pytorch += [("pytorch tf32", False, True), ("pytorch fp16", True, False)]
        runs.update({name: [] for name, _, _ in pytorch})
        outputs, reference = {}, None
        for _ in range(a.repeats):
            for p in precisions:
                out = os.path.join(work, f"sr_{size}_{p}.png")
                runs[f"srrun {p}"].append(run_srrun(a, a.model, image, out, backend, p, gpu))
                if os.path.exists(out):
                    outputs[f"srrun {p}"] = out
            for name, half, tf32 in pytorch:
                try:
                    r, y = run_pytorch(models[half], x, half, tf32, a.device, gpu)
                    outputs[name] = to_levels(y)
                    if name == "pytorch fp32":
                        reference = outputs[name]
                except torch.cuda.OutOfMemoryError:
                    r = {"error": "out of memory"}
                    torch.cuda.empty_cache()
                runs[name].append(r)
        diffs = {}
        for name, out in outputs.items():
            if reference is not None:
                got = np.asarray(Image.open(out).convert("RGB")) if isinstance(out, str) else out
                diffs[name] = int(np.abs(reference.astype(int) - got.astype(int)).max())
        for name, rs in runs.items():
            ok = [r for r in rs if "error" not in r]
            if not rs:
                continue
            if not ok:
                rows.append({"size": size, "runner": name, "error": rs[0]["error"]})
                continue
            med = lambda k: statistics.median(r[k] for r in ok)  # noqa: E731
            rows.append({
                "size": size, "runner": name, "network_s": round(med("network_s"), 4),
                "run_s": round(med("run_s"), 4),
                "wall_s": round(med("wall_s"), 3) if "wall_s" in ok[0] else "",
                "device_mb": max(0, med("device_mb") - base) if gpu else "",
                "reserved_mb": round(med("reserved_mb")) if "reserved_mb" in ok[0] and gpu else "",
                "max_levels_vs_fp32": diffs.get(name, ""),
            })
        for r in rows[-len([n for n in runs if runs[n]]):]:
            print(r, flush=True)
    fields = ["size", "runner", "network_s", "run_s", "wall_s", "device_mb", "reserved_mb", "max_levels_vs_fp32", "error"]
    with open(a.csv, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        w.writerows(rows)
    print("\n| size | runner | network s | host to host s | device MB | PyTorch reserved MB | max levels vs fp32 |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['size']} | {r['runner']} | {r.get('network_s', r.get('error'))} | {r.get('run_s', '')} | "
              f"{r.get('device_mb', '')} | {r.get('reserved_mb', '')} | {r.get('max_levels_vs_fp32', '')} |")


if __name__ == "__main__":
    main()

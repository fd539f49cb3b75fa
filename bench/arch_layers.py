#!/usr/bin/env python3
"""Where an RRDBNet run's time goes, from `srrun --stats FILE.json`: the
layers grouped by role (first conv; the dense blocks' convs by input width;
their concatenations; the residual scale-and-adds; the trunk, upsampling and
output layers), seconds, share, GFLOP/s and the conv algorithms each group
got; and whether LeakyReLU was folded into the convs (no standalone
leaky_relu layers left).

    python3 bench/arch_layers.py STATS.json [--fma-peak GFLOPS]
"""
import argparse
import json
import re
from collections import defaultdict


def group(layer):
    name, op = layer["name"], layer["op"]
    m = re.fullmatch(r"body\.\d+\.rdb\d\.conv(\d)", name)
    if m:
        j = int(m.group(1))
        return f"dense conv{j} (c_in {64 + 32 * (j - 1)}, c_out {64 if j == 5 else 32})"
    if name.startswith("body."):
        return f"dense blocks: {op}"
    return f"{name}: {op}" if op == "conv2d" else f"outside the trunk: {op}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("stats")
    ap.add_argument("--fma-peak", type=float)
    a = ap.parse_args()
    s = json.load(open(a.stats))
    groups = defaultdict(lambda: [0, 0.0, 0.0, set()])
    for layer in s["layers"]:
        g = groups[group(layer)]
        g[0] += 1
        g[1] += layer["seconds"]
        g[2] += layer["gflop"]
        if layer["algorithm"]:
            g[3].add(layer["algorithm"])
    total = sum(g[1] for g in groups.values())
    print(f"{s['width']}x{s['height']}, {s['threads']} threads: run {s['seconds']['run']} s, "
          f"plan {s['seconds']['plan']} s, {s['gflop']} GFLOP, {s['gflops']} GFLOP/s; "
          f"layers sum to {total:.3f} s")
    print(f"{'group':<44} {'n':>4} {'seconds':>8} {'share':>6} {'GFLOP':>8} {'GFLOP/s':>8}"
          + ("  of peak" if a.fma_peak else "") + "  algorithms")
    for name, (n, sec, gf, algos) in sorted(groups.items(), key=lambda kv: -kv[1][1]):
        rate = gf / sec if sec else 0
        peak = f"  {rate / a.fma_peak:6.0%}  " if a.fma_peak and gf else ("          " if a.fma_peak else "")
        print(f"{name:<44} {n:>4} {sec:>8.3f} {sec / total:>6.1%} {gf:>8.2f} {rate:>8.1f}"
              + peak + "  " + ",".join(sorted(algos)))
    ops = {layer["op"] for layer in s["layers"]}
    print("ops:", ", ".join(sorted(ops)))
    print("standalone leaky_relu layers:", sum(1 for layer in s["layers"] if "leaky" in layer["op"]))


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Medians of bench/arch_speed.sh's CSV (one or more files), one markdown
row per model and size: each runner's median seconds and peak RSS, the
rounds, the load average range, and srrun against the fastest peer (its
time over srrun's: above 1, srrun is faster) and the leanest (its peak
RSS over srrun's).

    python3 bench/arch_summary.py runs.csv [more.csv ...]
"""
import csv
import statistics
import sys
from collections import defaultdict

RUNNERS = ("srrun", "pytorch", "onnxruntime", "ncnn")


def main():
    runs = defaultdict(list)  # (model, size, runner) -> [(seconds, rss, load)]
    order = []
    for path in sys.argv[1:]:
        for row in csv.DictReader(open(path)):
            if row["seconds"] == "failed":
                continue
            key = (row["model"], row["size"])
            if key not in order:
                order.append(key)
            runs[key + (row["runner"],)].append(
                (float(row["seconds"]), float(row["peak_rss_mb"]), float(row["load"])))
    print("| model | size | " + " | ".join(RUNNERS) + " | rounds | load | fastest peer's time / srrun's | leanest peer's RSS / srrun's |")
    print("|---|---|" + "---|" * (len(RUNNERS) + 4))
    for model, size in order:
        cells, med, loads, rounds = [], {}, [], set()
        for r in RUNNERS:
            got = runs.get((model, size, r))
            if not got:
                cells.append("not run")
                continue
            t = statistics.median(g[0] for g in got)
            m = statistics.median(g[1] for g in got)
            med[r] = (t, m)
            loads += [g[2] for g in got]
            rounds.add(len(got))
            cells.append(f"{t:.2f} s, {m:.0f} MB")
        peers = {r: v for r, v in med.items() if r != "srrun"}
        ratio = "no peer | no peer"
        if "srrun" in med and peers:
            fast = min(peers, key=lambda r: peers[r][0])
            lean = min(peers, key=lambda r: peers[r][1])
            ratio = (f"{peers[fast][0] / med['srrun'][0]:.2f}x ({fast}) | "
                     f"{peers[lean][1] / med['srrun'][1]:.1f}x ({lean})")
        print(f"| {model} | {size} | " + " | ".join(cells)
              + f" | {'/'.join(map(str, sorted(rounds)))} | {min(loads):.1f}-{max(loads):.1f} | {ratio} |")


if __name__ == "__main__":
    main()

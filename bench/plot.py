#!/usr/bin/env python3
"""Plots bench/memory.sh's CSV: wall time and peak RSS against input size,
side by side, one line per runner, log-scale y axes.

    python3 bench/plot.py RUNS.csv OUT.png "TITLE"

The CSV is memory.sh's stdout: header size,runner,seconds,peak_rss_mb, one
line per run, "failed" or "skipped" for the seconds of a run without a
result. Those get no point; the legend lists the sizes where a runner has none. Needs
matplotlib (pip install matplotlib); draws with the Agg backend.
"""
import argparse
import csv

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib import ticker  # noqa: E402


def read_runs(path):
    """{runner: [(size, seconds or None, peak_mb or None)]}, runners in the
    order they first appear, sizes sorted."""
    runs = {}
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            size = int(row["size"])
            secs = row["seconds"].strip()
            mb = (row.get("peak_rss_mb") or "").strip()
            ok = secs not in ("", "failed", "skipped")
            runs.setdefault(row["runner"], []).append(
                (size, float(secs) if ok else None, float(mb) if ok and mb else None))
    for points in runs.values():
        points.sort()
    return runs


def plot(runs, output, title):
    fig, (ax_t, ax_m) = plt.subplots(1, 2, figsize=(12, 4.8))
    markers = "osD^v<>ph*"
    sizes = sorted({s for points in runs.values() for s, _, _ in points})
    for i, (runner, points) in enumerate(runs.items()):
        failed = [s for s, secs, _ in points if secs is None]
        label = runner + (" (no result at " + ", ".join(map(str, failed)) + ")" if failed else "")
        style = dict(marker=markers[i % len(markers)], color=f"C{i % 10}", label=label)
        t = [(s, v) for s, v, _ in points if v is not None]
        m = [(s, v) for s, _, v in points if v is not None]
        ax_t.plot([s for s, _ in t], [v for _, v in t], **style)
        ax_m.plot([s for s, _ in m], [v for _, v in m], **style)
    for ax, ylabel, name in ((ax_t, "wall time (s)", "Time"),
                             (ax_m, "peak RSS (MB)", "Peak memory")):
        ax.set_yscale("log")
        ax.yaxis.set_major_locator(ticker.LogLocator(subs=(1, 2, 5)))
        ax.yaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
        ax.yaxis.set_minor_formatter(ticker.NullFormatter())
        ax.set_xlabel("input size (N for an N x N crop, px)")
        ax.set_ylabel(ylabel)
        ax.set_title(name)
        ax.set_xticks(sizes)
        ax.grid(True, which="both", alpha=0.3)
    handles, labels = ax_t.get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 4), frameon=False)
    fig.suptitle(title)
    rows = (len(labels) + 3) // 4
    fig.tight_layout(rect=(0, 0.05 * rows + 0.03, 1, 1))
    fig.savefig(output, dpi=120)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("csv")
    ap.add_argument("output")
    ap.add_argument("title")
    a = ap.parse_args()
    plot(read_runs(a.csv), a.output, a.title)


if __name__ == "__main__":
    main()

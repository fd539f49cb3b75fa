"""Wall time of `python -m srrun.ray upscale` (a local Ray started once,
joined with --address as a cluster would be) against srrun's own batch mode
on the same folder, the runners alternating within each round so that a
loaded machine's drift falls on all alike; and the peak RSS of the Ray
workers (VmHWM of the processes Ray titles ray::Upscaler, polled).

    python bench/ray_batch.py PHOTOS_DIR ROUNDS [MODEL]

Run with the Python that has srrun[ray]; SRRUN names the CLI (default
build/srrun). MODEL: a model file (default: the shipped x4). Prints one
line per run and the medians."""

import os
import pathlib
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = pathlib.Path(__file__).resolve().parent
CLI = os.environ.get("SRRUN", str(HERE.parent / "build" / "srrun"))


def worker_peaks(stop, peaks):
    """VmHWM (KB) of each ray::Upscaler process until stop is set."""
    while not stop.is_set():
        for entry in pathlib.Path("/proc").iterdir():
            try:
                if entry.name.isdigit() and (entry / "cmdline").read_bytes().startswith(
                        b"ray::Upscaler"):
                    for line in (entry / "status").read_text().splitlines():
                        if line.startswith("VmHWM:"):
                            pid = int(entry.name)
                            peaks[pid] = max(peaks.get(pid, 0), int(line.split()[1]))
            except OSError:
                pass
        time.sleep(0.2)


def timed(command, env=None):
    start = time.monotonic()
    subprocess.run(command, check=True, env=env, stdout=subprocess.DEVNULL)
    return time.monotonic() - start


def main():
    photos, rounds = sys.argv[1], int(sys.argv[2])
    model = sys.argv[3:] and ["--model", sys.argv[3]]
    cli_model = sys.argv[3:4]
    work = pathlib.Path(tempfile.mkdtemp())
    subprocess.run(["ray", "start", "--head", "--num-cpus", "2", "--include-dashboard",
                    "false", "--port", "6390"], check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    runners = {
        "srrun -t 2 (CLI batch)": ("cli", 2),
        "srrun -t 1 (CLI batch)": ("cli", 1),
        "ray 1 worker x 1 thread": ("ray", 1, 1),
        "ray 2 workers x 1 thread": ("ray", 2, 1),
        "ray 1 worker x 2 threads": ("ray", 1, 2),
    }
    times = {name: [] for name in runners}
    peaks_of = {name: [] for name in runners}
    try:
        for round_ in range(rounds):
            for name, spec in runners.items():
                out = work / "out"
                shutil.rmtree(out, ignore_errors=True)
                if spec[0] == "cli":
                    seconds = timed([CLI, "-q", "-t", str(spec[1]), *cli_model, photos,
                                     "-o", str(out)])
                else:
                    stop, peaks = threading.Event(), {}
                    poller = threading.Thread(target=worker_peaks, args=(stop, peaks))
                    poller.start()
                    try:
                        seconds = timed([sys.executable, "-m", "srrun.ray", "upscale", photos,
                                         str(out), *model, "--address", "auto",
                                         "--workers", str(spec[1]),
                                         "--threads-per-worker", str(spec[2])])
                    finally:
                        stop.set()
                        poller.join()
                    peaks_of[name].append(max(peaks.values(), default=0) / 1024)
                times[name].append(seconds)
                n = len(list(out.rglob("*.png")))
                print(f"round {round_} {name}: {seconds:.1f} s, {n} images", flush=True)
    finally:
        subprocess.run(["ray", "stop"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        shutil.rmtree(work, ignore_errors=True)
    base = statistics.median(times["srrun -t 2 (CLI batch)"])
    for name in runners:
        median = statistics.median(times[name])
        peak = f", worker peak RSS {max(peaks_of[name]):.0f} MB" if peaks_of[name] else ""
        print(f"{name}: median {median:.1f} s (x{median / base:.2f} of srrun -t 2){peak}")


if __name__ == "__main__":
    main()

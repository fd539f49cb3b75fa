"""python -m srrun.ray upscale: a folder of images on a pool of Ray actors.

Plain actors, not Ray Data: each file is one task whose outcome (bytes, or
the line that says why not) comes back to this driver, which writes the
outputs and reports each failure as it happens; Ray restarts a worker
process that dies and retries its tasks. Images differ in size, so nothing
is batched: an actor has at most two files at a time (one running, the next
already sent), which bounds what is in flight to two inputs (each at most
--max-input-size) and two outputs per actor. The driver reads the inputs
and writes the outputs, so on a cluster only this machine needs to see IN
and OUT, but all the images' bytes pass through it; with --shared-storage (IN and OUT mounted at the
same paths on every node) the workers read and write the files and only
names pass. The workers read the model's bytes from an actor that holds
them (_worker.SharedModel).
"""

import argparse
import collections
import json
import logging
import os
import sys
import time

import ray

import srrun

from ._files import MAX_INPUT_BYTES, Listing, read_input, write_whole
from ._worker import SharedModel, Upscaler

PROGRAM = "srrun.ray"
# A file whose worker dies this many times more is reported, not retried.
TASK_RETRIES = 2
IN_FLIGHT_PER_WORKER = 2


_C1 = {chr(c) for c in range(0x80, 0xa0)}


def printable(text):
    """text as the CLI shows names from outside (tools/report.c): control
    characters (C0, DEL, C1) as \\xNN, so that a file name cannot retitle
    the terminal or forge a line; other characters as they are."""
    def escape(c):
        if c < " " or c == "\x7f":
            return f"\\x{ord(c):02x}"
        if c in _C1:  # the CLI's bytes: UTF-8's two
            return "".join(f"\\x{b:02x}" for b in c.encode())
        return c
    return "".join(escape(c) for c in text)


def say(message):
    print(f"{PROGRAM}: {printable(message)}", file=sys.stderr, flush=True)


def parse_args(argv):
    parser = argparse.ArgumentParser(
        prog=f"python -m {PROGRAM}",
        description="srrun on a Ray cluster (or a local Ray).")
    commands = parser.add_subparsers(dest="command", required=True)
    up = commands.add_parser(
        "upscale", help="upscale every PNG and JPEG under a folder",
        description="Upscales every PNG and JPEG under IN (found by content, walked as "
                    "srrun walks a folder) into OUT/<path below IN>/<name>_x<scale>.png "
                    "(.jpg with --format jpg) on a pool of Ray actors, each holding the "
                    "model once. Outputs that exist are skipped (resumable). A file that "
                    "fails is reported on stderr (one line) and the rest go on; the exit "
                    "status is 1 when any failed, else 0.")
    up.add_argument("input", metavar="IN", help="the folder of images")
    up.add_argument("output", metavar="OUT", help="the folder of results (made if missing)")
    up.add_argument("--model", metavar="MODEL",
                    help="model file (torch.save state dict or model.bin); read by this "
                         "process and sent to the workers. Default: the shipped model of "
                         "--scale")
    up.add_argument("--address", metavar="ADDR",
                    help="join this Ray cluster (every node needs srrun installed); "
                         "default: start a local Ray")
    up.add_argument("--scale", type=int, choices=(2, 4),
                    help="the default model's scale (default 4); with --model, checked")
    up.add_argument("--max-memory", metavar="SIZE",
                    help="srrun's memory budget per worker (300M, 2G), reserved with Ray; "
                         "default: the worker's share of its node (its CPUs' share of the "
                         "node's memory)")
    up.add_argument("--workers", type=int, metavar="N",
                    help="CPU workers (actors); default: as many as the cluster's CPUs "
                         "hold at --threads-per-worker each")
    up.add_argument("--threads-per-worker", type=int, default=1, metavar="N",
                    help="srrun threads (and Ray CPUs) per worker (default 1)")
    up.add_argument("--format", choices=("png", "jpg", "jpeg"), default="png",
                    help="output format (default png)")
    up.add_argument("--shared-storage", action="store_true",
                    help="IN and OUT are at the same paths on every node (a shared mount): "
                         "the workers read and write the files themselves, and only names "
                         "cross the network (default: this process reads and writes them)")
    up.add_argument("--overwrite", action="store_true",
                    help="redo the outputs that exist (default: skip them), as srrun does: "
                         "a file is replaced whole (its mode kept), a symbolic link written "
                         "through (its target replaced, the link kept), a FIFO or device "
                         "written into")
    up.add_argument("--max-input-size", metavar="SIZE", default=f"{MAX_INPUT_BYTES >> 20}M",
                    help="refuse an input file larger than SIZE (a failed file), before "
                         "reading it: each is read whole into memory and sent through Ray's "
                         "object store (default %(default)s)")
    up.add_argument("--report", metavar="FILE",
                    help="write a JSON summary: counts, seconds, workers, each failure")
    args = parser.parse_args(argv)
    if args.workers is not None and args.workers < 1:
        parser.error("--workers needs at least 1")
    if args.threads_per_worker < 1:
        parser.error("--threads-per-worker needs at least 1")
    if args.max_memory is not None:
        try:
            srrun._parse_memory(args.max_memory)
        except ValueError as error:
            parser.error(f"--max-memory: {error}")
    try:
        args.max_input_bytes = srrun._parse_memory(args.max_input_size)
    except ValueError:
        parser.error(f"--max-input-size needs a size like 512M or 2G, not "
                     f"{args.max_input_size!r}")
    return args


class Progress:
    """A line on stderr, when it is a terminal: files done of those to do,
    images per second and the time left."""

    def __init__(self, total):
        self.total = total
        self.start = None  # when the first worker started: the rate is theirs
        self.shown = sys.stderr.isatty() and total > 0
        self.last = 0.0

    def update(self, finished, force=False):
        now = time.monotonic()
        if not self.shown or (not force and now - self.last < 0.2):
            return
        self.last = now
        busy = now - self.start if self.start else 0.0
        rate = finished / busy if busy > 0 else 0.0
        eta = "?"
        if rate > 0:
            left = round((self.total - finished) / rate)
            eta = f"{left // 3600}:{left // 60 % 60:02d}:{left % 60:02d}"
        width = 20
        bar = "#" * (width * finished // self.total)
        sys.stderr.write(f"\r[{bar:<{width}}] {finished}/{self.total}  {rate:.2f} images/s  "
                         f"ETA {eta}\x1b[K")
        sys.stderr.flush()

    def finish(self):
        if self.shown:
            sys.stderr.write("\n")
            sys.stderr.flush()


def worker_plan(threads, max_memory, workers, use_gpus):
    """The actors to start: how many CPU workers (of `threads` CPUs, and
    max_memory bytes when given) and GPU workers fit the cluster's nodes,
    or raise SystemExit saying why none does."""
    nodes = [n["Resources"] for n in ray.nodes() if n["Alive"]]
    gpu_workers = sum(int(n.get("GPU", 0)) for n in nodes) if use_gpus else 0
    fits = 0
    for node in nodes:
        cpus = node.get("CPU", 0) - (int(node.get("GPU", 0)) if use_gpus else 0)
        fit = int(cpus // threads)
        if max_memory:
            fit = min(fit, int(node.get("memory", 0) // max_memory))
        fits += fit
    if fits < 1 and gpu_workers < 1:
        most = max((n.get("CPU", 0) for n in nodes), default=0)
        say(f"no node of the cluster has {threads} CPUs"
            f"{' and --max-memory' if max_memory else ''} for a worker (the largest has "
            f"{most:g} CPUs)")
        raise SystemExit(1)
    if workers is not None and workers > fits:
        say(f"note: {fits} workers fit the cluster, not {workers}")
    return (fits if workers is None else min(workers, fits)), gpu_workers


def start_workers(model_file, scale, threads, max_memory, cpu_workers, gpu_workers):
    """The actors, each restarted when its process dies (its tasks retried);
    an explicit max_memory is reserved with Ray so that no node gets more
    workers than its memory holds."""
    worker = ray.remote(Upscaler)
    restarts = {"max_restarts": -1, "max_task_retries": TASK_RETRIES}
    memory = {"memory": srrun._parse_memory(max_memory)} if max_memory else {}
    actors = [worker.options(num_cpus=threads, **memory, **restarts).remote(
        model_file, scale=scale, threads=threads, max_memory=max_memory, backend="cpu")
        for _ in range(cpu_workers)]
    actors += [worker.options(num_cpus=1, num_gpus=1, **restarts).remote(
        model_file, scale=scale, threads=1, max_memory=max_memory, backend="cuda")
        for _ in range(gpu_workers)]
    return actors


class Run:
    """The driver's loop: files to actors, outcomes to the disk and stderr."""

    def __init__(self, files, actors, jpeg, shared_storage, max_input_bytes):
        self.todo = collections.deque(files)
        self.total = len(files)
        self.format = "jpeg" if jpeg else "png"
        self.shared_storage = shared_storage
        self.max_input_bytes = max_input_bytes
        self.starting = {actor.describe.remote(): actor for actor in actors}
        self.in_flight = {}  # task -> (file, actor)
        self.load = collections.Counter()  # actor -> files sent, not back
        self.workers = []  # describe() of those that started
        self.done, self.failed = [], []
        self.progress = Progress(self.total)

    def run(self):
        while self.todo or self.in_flight:
            if not self.starting and not self.workers:
                for file in self.todo:
                    self.fail(file, f"{file.input}: no worker started")
                self.todo.clear()
                break
            ready, _ = ray.wait(list(self.starting) + list(self.in_flight), num_returns=1,
                                timeout=0.25)
            for ref in ready:
                if ref in self.starting:
                    self.started(ref, self.starting.pop(ref))
                else:
                    self.finished(ref, *self.in_flight.pop(ref))
            self.progress.update(len(self.done) + len(self.failed))
        self.progress.update(len(self.done) + len(self.failed), force=True)
        self.progress.finish()

    def started(self, ref, actor):
        try:
            self.workers.append(ray.get(ref))
        except ray.exceptions.RayError as error:
            say(f"note: a worker did not start: {one_line(error)}")
            ray.kill(actor)
            return
        self.progress.start = self.progress.start or time.monotonic()
        self.send(actor)

    def send(self, actor):
        while self.todo and self.load[actor] < IN_FLIGHT_PER_WORKER:
            file = self.todo.popleft()
            if self.shared_storage:
                task = actor.file_to_file.remote(file.input, file.output, self.max_input_bytes,
                                                 format=self.format)
            else:
                data = read_input(file.input, self.max_input_bytes)
                if isinstance(data, str):
                    self.fail(file, data)
                    continue
                task = actor.file.remote(data, format=self.format)
            self.in_flight[task] = (file, actor)
            self.load[actor] += 1

    def finished(self, task, file, actor):
        self.load[actor] -= 1
        try:
            result = ray.get(task)
        except ray.exceptions.RayTaskError as error:  # srrun's, or the worker's code
            cause = error.cause if isinstance(error.cause, Exception) else error
            self.fail(file, f"{file.input}: {one_line(cause)}")
        except ray.exceptions.RayError as error:  # the worker died, each retry too
            self.fail(file, f"{file.input}: its worker died {TASK_RETRIES + 1} times "
                            f"upscaling it ({one_line(error)})")
        else:
            if not self.shared_storage:  # the bytes, to write here
                result = write_whole(file.output, result)
            if result:
                self.fail(file, result)
            else:
                self.done.append(file)
        self.send(actor)

    def fail(self, file, message):
        file.failed = message
        self.failed.append(file)
        if self.progress.shown:
            sys.stderr.write("\r\x1b[K")
        say(message)


def one_line(error):
    """An exception's message, its first line (Ray's carry tracebacks)."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def init_ray(address):
    """Joins the cluster at address, or starts a local Ray of this
    machine's cores (not joining one `ray start` made), quietly."""
    options = {"logging_level": logging.ERROR, "configure_logging": True}
    if address:
        ray.init(address=address, **options)
    else:
        ray.init(address="local", include_dashboard=False, **options)


def main(argv=None):
    args = parse_args(argv)
    jpeg = args.format != "png"
    start = time.monotonic()
    # The model's file is read once, here: the workers load the very bytes
    # checked (a training script may save the file again meanwhile).
    model_bytes = read_input(args.model, sys.maxsize) if args.model else None
    if isinstance(model_bytes, str):
        say(model_bytes)
        return 1
    try:
        model = srrun.Model(model_bytes) if args.model else srrun.Model(scale=args.scale or 4)
    except (srrun.Error, OSError) as error:
        say(f"{args.model}: {error}" if args.model else str(error))
        return 1
    if args.model and args.scale and model.scale != args.scale:
        say(f"{args.model}: the model upscales x{model.scale}, not x{args.scale} as --scale asks")
        return 1
    if not os.path.isdir(args.input):
        say(f"{args.input}: not a folder")
        return 1
    try:
        os.makedirs(args.output, exist_ok=True)
        listing = Listing(args.input, args.output, model.scale, jpeg,
                          lambda path, why: say(f"note: {path}: {why}; skipped"))
    except OSError as error:
        say(f"{error.filename}: {error.strerror}")
        return 1

    todo, failed, skipped = [], [], 0
    for file in listing.files:
        if not file.failed and not args.overwrite and os.path.lexists(file.output):
            skipped += 1
            continue
        replaced = None if file.failed else listing.replaces(file.output, args.model)
        if replaced:
            file.failed = f"{file.output}: is {replaced}; the output must be another file"
        if file.failed:
            failed.append(file)
            say(file.failed)
        else:
            todo.append(file)

    done, workers = [], []
    if todo:
        try:
            init_ray(args.address)
        except Exception as error:  # noqa: BLE001 - Ray's start-up errors have no common type
            where = f"--address {args.address}" if args.address else "starting a local Ray"
            say(f"{where}: {one_line(error)}")
            return 1
        try:
            use_gpus = ray.cluster_resources().get("GPU", 0) > 0
            max_memory = args.max_memory and srrun._parse_memory(args.max_memory)
            cpu_workers, gpu_workers = worker_plan(args.threads_per_worker, max_memory,
                                                   args.workers, use_gpus)
            model_file = SharedModel(model_bytes) if args.model else None
            model_bytes = None  # the holder actor's now
            actors = start_workers(model_file, model.scale, args.threads_per_worker,
                                   args.max_memory, cpu_workers, gpu_workers)
            run = Run(todo, actors, jpeg, args.shared_storage, args.max_input_bytes)
            run.run()
            done, workers = run.done, run.workers
            failed += run.failed
        finally:
            ray.shutdown()

    seconds = time.monotonic() - start
    say(f"{len(done)} done, {skipped} skipped, {len(failed)} failed")
    if args.report:
        report = {
            "done": len(done), "skipped": skipped, "failed": len(failed),
            "seconds": round(seconds, 3),
            "images_per_second": round(len(done) / seconds, 3) if seconds > 0 else None,
            "workers": workers,
            "failures": [{"input": f.input, "output": f.output, "error": f.failed}
                         for f in failed],
        }
        why = write_whole(args.report, (json.dumps(report, indent=2) + "\n").encode())
        if why:
            say(why)
            return 1
    return 1 if failed else 0

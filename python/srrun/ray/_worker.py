"""What runs inside an actor (a batch worker, a Ray Data actor, a Serve
replica): the model loaded once, on the share of the node it was given."""

import os
import uuid

import numpy as np
import ray

import srrun
from srrun import _parse_memory

from ._files import MAX_INPUT_BYTES, read_input, write_whole

# srrun's plan counts the process it runs in as this much beside the model
# and images (runtime/session.c PROCESS_BASE_BYTES); a Ray worker holds more
# before srrun runs, which its share of memory must leave room for.
_SRRUN_PROCESS_BYTES = 48 << 20


def resident_bytes():
    """This process's resident memory now (Linux)."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def node_resources():
    """(CPUs, memory bytes) of the node this worker runs on, as Ray counts them."""
    node_id = ray.get_runtime_context().get_node_id()
    for node in ray.nodes():
        if node["NodeID"] == node_id:
            return node["Resources"].get("CPU", 0), node["Resources"].get("memory", 0)
    raise RuntimeError(f"Ray does not list this worker's node {node_id}")


def memory_share(threads, max_memory):
    """srrun's max_memory for a worker on `threads` CPUs: max_memory as
    given, else as much of the node's memory as its CPUs are of the node's,
    less what this process already holds beyond what srrun counts for it."""
    if max_memory is not None:
        return _parse_memory(max_memory)
    cpus, memory = node_resources()
    share = memory * min(threads, cpus) / cpus if cpus else memory
    held = max(0, resident_bytes() - _SRRUN_PROCESS_BYTES)
    return max(1, int(share - held))


class ModelFile:
    """A model file's bytes, held by an actor of its own for the workers
    to read, and a restarted worker to read again. Not the workers' own
    argument: Ray cannot promise an argument in its object store to an
    actor restarted later (nor one that holds an actor handle), and says
    so on every run."""

    def __init__(self, data):
        self.data = data

    def read(self):
        return self.data


class SharedModel:
    """What a worker is given to load the model that a ModelFile actor
    holds: that actor's name. The driver keeps `holder` (its handle), which
    is not sent: the actor lives as long as the driver keeps it."""

    def __init__(self, model):
        if not isinstance(model, (bytes, bytearray)):
            with open(model, "rb") as f:
                model = f.read()
        self.name = f"srrun-model-{uuid.uuid4().hex}"
        self.holder = ray.remote(ModelFile).options(name=self.name, num_cpus=0).remote(
            bytes(model))

    def __getstate__(self):
        return {"name": self.name, "holder": None}

    def read(self):
        return ray.get(ray.get_actor(self.name).read.remote())


def load_model(model, scale):
    """A srrun.Model from a path, a file's bytes, a SharedModel, or None
    (the default of that scale)."""
    if isinstance(model, SharedModel):
        model = model.read()
    if model is None:
        return srrun.Model(scale=scale)
    return srrun.Model(model)


class Upscaler:
    """The model and the session options of one worker. backend "cuda": its
    GPU (Ray's num_gpus=1 makes it the only one it sees), with max_memory
    bounding device memory (None: srrun's default, 9/10 of what is free)."""

    def __init__(self, model, *, scale=4, threads=1, max_memory=None, backend="cpu"):
        on_gpu = backend == "cuda"
        self.threads = threads
        self.max_memory = (_parse_memory(max_memory) if on_gpu and max_memory is not None
                           else None if on_gpu else memory_share(threads, max_memory))
        self.backend = backend
        self.model = load_model(model, scale)
        if on_gpu:  # refused here, with the CUDA backend's reason, when unusable
            self.model.upscale(np.zeros((1, 1, 3), np.uint8), backend="cuda",
                               max_memory=self.max_memory)

    def describe(self):
        """What this worker runs with, for the log and the report."""
        return {"backend": self.backend, "threads": self.threads,
                "max_memory": self.max_memory, "pid": os.getpid()}

    def file(self, data, **options):
        """An image file's bytes upscaled into an image file's bytes
        (srrun.Model.upscale_bytes; options: format, alpha, depth, quality,
        max_pixels)."""
        return self.model.upscale_bytes(data, max_memory=self.max_memory, threads=self.threads,
                                        backend=self.backend, **options)

    def file_to_file(self, source, target, max_input_bytes=MAX_INPUT_BYTES, **options):
        """The file source (refused over max_input_bytes) upscaled into the
        file target (written whole, as the driver writes): for IN and OUT
        on storage every node mounts. None, or the line that says why
        source or target failed."""
        data = read_input(source, max_input_bytes)
        if isinstance(data, str):
            return data
        return write_whole(target, self.file(data, **options))

    def pixels(self, image, alpha="white"):
        """An image array upscaled (srrun.Model.upscale)."""
        return self.model.upscale(image, max_memory=self.max_memory, threads=self.threads,
                                  backend=self.backend, alpha=alpha)

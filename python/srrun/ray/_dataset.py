"""srrun.ray.upscale_dataset: a Ray Dataset of images mapped to upscaled
ones by a pool of actors (Ray Data's map_batches with a callable class),
each holding the model once. Images differ in size: batches of one."""

import os
import sys

import numpy as np
import ray
import ray.data

import srrun

from ._files import read_input
from ._worker import SharedModel, Upscaler, load_model


class _DatasetUpscaler:
    """Ray Data's callable class: one batch (one row) at a time."""

    def __init__(self, model, scale, threads, max_memory, backend, column, options):
        self.upscaler = Upscaler(model, scale=scale, threads=threads, max_memory=max_memory,
                                 backend=backend)
        self.column = column
        self.options = options

    def __call__(self, batch):
        column = self.column or ("image" if "image" in batch else "bytes")
        if column not in batch:
            raise ValueError(f"upscale_dataset: no column {column!r} (the dataset has "
                             f"{', '.join(sorted(batch))}); name the images' with column=")
        images = batch[column]
        out = np.empty(len(images), dtype=object)
        for i, image in enumerate(images):
            if isinstance(image, (bytes, bytearray, memoryview)):
                out[i] = self.upscaler.file(image, **self.options)
            else:
                out[i] = self.upscaler.pixels(image, alpha=self.options["alpha"])
        if out.size and all(isinstance(o, np.ndarray) for o in out):
            shapes = {o.shape for o in out}
            if len(shapes) == 1:  # one shape: a tensor column, as Ray Data makes
                out = np.stack(list(out))
        return {**batch, column: out}


def upscale_dataset(ds, model=None, *, scale=4, column=None, format="png", alpha="white",
                    quality=90, max_memory=None, workers=None, threads_per_worker=1,
                    backend="cpu"):
    """ds with its images upscaled, lazily, as Ray Data maps: a pool of
    actors each holding the model once, one image at a time.

    model: a path or a model file's bytes (read here, and held for the
    workers by an actor), or None for the shipped model of
    `scale`. column: the images' column, by default "image" (numpy arrays,
    as ray.data.read_images makes: upscaled with srrun.Model.upscale into
    arrays of the input's dtype and channels) or else "bytes" (PNG/JPEG file
    contents, as ray.data.read_binary_files makes: upscaled into `format`
    file bytes equal to the CLI's, with alpha and quality as its options).
    The other columns pass through. workers: the pool's size (default: 1 to
    as many as the cluster's CPUs hold at threads_per_worker each).
    max_memory: srrun's budget per worker, reserved with Ray (default: the
    worker's share of its node). backend "cuda": a GPU per worker.

    A file srrun refuses fails the dataset's task with srrun.Error, as Ray
    Data fails on an exception in a map; `python -m srrun.ray upscale`
    reports such files one by one instead."""
    if isinstance(model, (str, os.PathLike)):
        # Read once, so that the check below and the workers see the same
        # bytes even if the file is replaced meanwhile.
        data = read_input(os.fspath(model), sys.maxsize)
        if isinstance(data, str):
            load_model(model, scale)  # raises srrun.Error with srrun's own line
            raise srrun.Error(data)
        model = data
    if isinstance(model, (bytes, bytearray)):
        load_model(model, scale)  # refused here, at once, not in every actor
        model = SharedModel(model)
    elif model is not None:
        raise TypeError(f"model must be a path, a file's bytes or None, "
                        f"not {type(model).__name__}")
    if workers is None:
        most = max(1, int(ray.cluster_resources().get("CPU", 1) // threads_per_worker))
        compute = ray.data.ActorPoolStrategy(min_size=1, max_size=most)
    else:
        compute = ray.data.ActorPoolStrategy(size=workers)
    resources = {"num_cpus": threads_per_worker}
    if backend == "cuda":
        resources["num_gpus"] = 1
    if max_memory is not None:
        from srrun import _parse_memory
        resources["memory"] = _parse_memory(max_memory)
    options = {"format": format, "alpha": alpha, "quality": quality}
    return ds.map_batches(
        _DatasetUpscaler, batch_size=1, batch_format="numpy", compute=compute,
        fn_constructor_args=(model, scale, threads_per_worker, max_memory, backend, column,
                             options),
        **resources)

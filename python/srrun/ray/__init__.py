"""srrun on Ray: many images on a cluster's cores, and an HTTP service.

    python -m srrun.ray upscale IN OUT --model MODEL [--address ADDR] ...

upscales every PNG and JPEG under IN on a pool of Ray actors, each holding
the model once (see `python -m srrun.ray upscale --help`). In a program:

    import ray, srrun.ray
    ds = ray.data.read_binary_files("photos/")         # or read_images(...)
    ds = srrun.ray.upscale_dataset(ds, "model.pth")    # PNG bytes (or arrays)

and `srrun.ray.app(model=...)` is a Ray Serve application answering
`POST /v1/upscale` as `srrun serve` does (`serve run srrun.ray:build_app
model=model.pth`).

Every actor is given its share of its node: `threads_per_worker` of the
node's CPUs (Ray reserves them: num_cpus) and as much of the node's memory
(as Ray counts it) as those CPUs are of the node's, less what the worker
process already holds, as srrun's max_memory; so the actors on a node never
take more cores or memory than it has. An explicit max_memory is reserved
with Ray (the actor's memory resource) and given to srrun as it is.
"""

try:
    import ray  # noqa: F401  (the dependency this module exists for)
except ImportError as error:
    raise ImportError('srrun.ray needs Ray: pip install "srrun[ray]"') from error

__all__ = ["upscale_dataset", "app", "build_app"]

# Ray Data and Ray Serve take seconds to import: only when asked for (the
# batch command needs neither).
_LAZY = {"upscale_dataset": "._dataset", "app": "._serve", "build_app": "._serve"}


def __getattr__(name):
    if name not in _LAZY:
        raise AttributeError(f"module 'srrun.ray' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(_LAZY[name], __name__), name)

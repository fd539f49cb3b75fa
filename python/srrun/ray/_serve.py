"""srrun.ray.app: a Ray Serve application with srrun serve's synchronous
API (tools/serve_http.c): POST /v1/upscale, GET /v1/models, GET /healthz.
Replicas load the model once and upscale one image at a time (on their
share of the node, as the batch's workers); images differ in size, so
nothing is batched. Serve's proxy spreads requests over the replicas and
autoscaling adds and removes them. The asynchronous jobs API (/v1/jobs) is
not here: a job's state would live in one replica."""

import asyncio
import concurrent.futures
import json
import os
import threading

from ray import serve
from starlette.responses import Response

from srrun import Error, _parse_memory

from ._worker import Upscaler

# srrun serve's answers for a srrun.Error of each status; others are 500.
_STATUS_OF = {"format": 400, "invalid_argument": 400, "limit": 413}


class _Abandoned(Exception):
    """Raised by a run's progress callback once its request was cancelled."""


def _error(status, message):
    return Response(json.dumps({"error": message}) + "\n", status_code=status,
                    media_type="application/json")


def _read_options(query, accept):
    """The query's alpha, depth and quality and the Accept header as
    upscale_bytes options, or the reason they are refused (srrun serve's
    words)."""
    alpha, depth, quality = query.get("alpha"), query.get("depth"), query.get("quality")
    jpeg = "image/jpeg" in accept and "image/png" not in accept
    if alpha is not None and alpha not in ("white", "keep"):
        return "alpha needs white or keep"
    if depth is not None and depth not in ("8", "16"):
        return "depth needs 8 or 16"
    if quality is not None:
        if not (quality.isascii() and quality.isdigit() and 1 <= int(quality) <= 100):
            return "quality needs a number from 1 to 100"
    if jpeg and alpha == "keep":
        return "alpha=keep needs a PNG result (JPEG has no alpha)"
    if jpeg and depth == "16":
        return "depth=16 needs a PNG result (JPEG is 8-bit)"
    return {"format": "jpeg" if jpeg else "png", "alpha": alpha or "white",
            "depth": int(depth) if depth else None,
            "quality": int(quality) if quality else 90}


@serve.deployment
class SrrunServer:
    """One replica: the model, and one upscale at a time on its share."""

    def __init__(self, model, name, scale, threads, max_memory, max_body, max_pixels, backend):
        self.upscaler = Upscaler(model, scale=scale, threads=threads, max_memory=max_memory,
                                 backend=backend)
        info = self.upscaler.model.info
        self.models = [{"name": name, "architecture": info["architecture"],
                        "scale": info["scale"]}]
        # As srrun serve: a body of up to a quarter of the memory budget.
        budget = self.upscaler.max_memory or 1 << 30
        self.max_body = max_body if max_body is not None else budget // 4
        self.max_pixels = max_pixels
        # One thread runs the upscales, one after another: a request whose
        # client went away is cancelled, but its run goes on in the thread
        # until its next progress call, and a lock released by the
        # cancelled await would let the next run start beside it, both
        # planned to the whole budget.
        self.runner = concurrent.futures.ThreadPoolExecutor(1)

    async def __call__(self, request):
        path = request.url.path[len(request.scope.get("root_path", "")):] or "/"
        method = request.method
        if path == "/v1/upscale":
            if method != "POST":
                return Response(status_code=405, headers={"Allow": "POST"})
            return await self.upscale(request)
        if path in ("/healthz", "/v1/models"):
            if method not in ("GET", "HEAD"):
                return Response(status_code=405, headers={"Allow": "GET"})
            if path == "/healthz":
                return Response("ok\n", media_type="text/plain")
            return Response(json.dumps(self.models) + "\n", media_type="application/json")
        return _error(404, "no such resource")

    async def upscale(self, request):
        options = _read_options(request.query_params, request.headers.get("accept", ""))
        if isinstance(options, str):
            return _error(400, options)
        name = request.query_params.get("model")
        if name is not None and name != self.models[0]["name"]:
            return _error(400, f"no model named '{name}' (GET /v1/models lists them)")
        too_big = _error(413, f"the body is over the {self.max_body >> 20}M this server reads")
        length = request.headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_body):
            return too_big
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > self.max_body:
                return too_big
        if not body:
            return _error(400, "the body is empty: POST the image's bytes")
        abandoned = threading.Event()

        def progress(fraction):
            if abandoned.is_set():
                raise _Abandoned()

        run = self.runner.submit(self.upscaler.file, bytes(body), max_pixels=self.max_pixels,
                                 progress=progress, **options)
        try:
            result = await asyncio.wrap_future(run)
        except asyncio.CancelledError:
            run.cancel()  # one still waiting never starts;
            abandoned.set()  # one running stops at its next band
            raise
        except Error as error:
            return _error(_STATUS_OF.get(getattr(error, "status", ""), 500), str(error))
        media = "image/jpeg" if options["format"] == "jpeg" else "image/png"
        return Response(result, media_type=media)


def app(model=None, *, scale=4, name=None, max_memory=None, threads=1, num_replicas=1,
        autoscaling_config=None, max_body=None, max_pixels=None, backend="cpu"):
    """A Ray Serve application answering POST /v1/upscale as `srrun serve`
    does: an image's bytes in; PNG out, JPEG for `Accept: image/jpeg`; the
    query's alpha (white, keep), depth (8, 16) and quality (1-100); errors
    as {"error": "..."} with 400 (a bad request or image), 413 (a body
    over max_body, an image over max_pixels or one that does not fit
    max_memory) or 500. Also GET /v1/models and GET /healthz.

        from ray import serve
        serve.run(srrun.ray.app(model="model.pth", num_replicas=2))

    model: a path (which every node running a replica must see) or a model
    file's bytes; None: the shipped model of `scale`. name: the model's in
    /v1/models (default: the file's stem, as srrun serve names it).
    threads: srrun threads per replica (and the Ray CPUs it takes).
    max_memory: srrun's budget per replica, reserved with Ray (default:
    the replica's share of its node). max_body: the largest body read
    (default: a quarter of the budget, as srrun serve's). num_replicas and
    autoscaling_config: as Serve's deployment options (autoscaling_config
    replaces num_replicas). backend "cuda": a GPU per replica."""
    if name is None:
        name = (os.path.splitext(os.path.basename(os.fspath(model)))[0]
                if isinstance(model, (str, os.PathLike)) else
                f"srpgan_x{scale}" if model is None else "model")
    if isinstance(model, os.PathLike):
        model = os.fspath(model)
    actor_options = {"num_cpus": threads}
    if max_memory is not None:
        actor_options["memory"] = _parse_memory(max_memory)
    if backend == "cuda":
        actor_options["num_gpus"] = 1
    scaling = ({"autoscaling_config": autoscaling_config} if autoscaling_config is not None
               else {"num_replicas": num_replicas})
    deployment = SrrunServer.options(ray_actor_options=actor_options, **scaling)
    return deployment.bind(model, name, scale, threads, max_memory, max_body, max_pixels,
                           backend)


def build_app(args):
    """`serve run srrun.ray:build_app model=PATH max_memory=1G ...`: app()
    from the command line's key=value arguments (strings)."""
    args = dict(args)
    numbers = ("scale", "threads", "num_replicas", "max_body", "max_pixels")
    for key in numbers:
        if key in args:
            args[key] = int(args[key])
    if "autoscaling_config" in args and isinstance(args["autoscaling_config"], str):
        args["autoscaling_config"] = json.loads(args["autoscaling_config"])
    return app(**args)

"""srrun: image super-resolution networks from PyTorch weights, run in C.

    import srrun
    from PIL import Image

    model = srrun.Model()                      # the shipped x4 model
    model.upscale(Image.open("photo.png")).save("photo_x4.png")

A Model is loaded once and may be shared by threads; each upscale runs on a
session of its own, without the GIL. numpy arrays go in and come out (HxW
gray, HxWx3 RGB, HxWx4 RGBA; uint8, uint16 or float32 in [0, 1]), PIL images
too. Failures srrun reports raise srrun.Error with its one-line message.
Image files' bytes go in and come out too (Model.upscale_bytes), decoded and
encoded by srrun itself: the bytes the CLI would write.
"""

import os
import re
import sys

import numpy as np

from . import _srrun
from ._srrun import Error

__version__ = _srrun.version()
__all__ = ["Model", "Error", "__version__"]

_PIXEL_DTYPES = (np.dtype(np.uint8), np.dtype(np.uint16), np.dtype(np.float32))

# ITU-R 601-2 luma, as Pillow's convert("L"): how a gray image's upscale,
# which the network makes in RGB, becomes gray again.
_LUMA = np.array([0.299, 0.587, 0.114], np.float32)

# The CLI's --max-memory sizes (tools/cli.c parse_size): a number, then k, M
# or G (powers of 1024, any case), then an optional B.
_SIZE = re.compile(r"\s*([+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)([kKmMgG]?)[bB]?")
_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}


def _parse_memory(max_memory):
    """Bytes from None (srrun's default: 0), an int or a string like "300M"."""
    if max_memory is None:
        return 0
    if isinstance(max_memory, str):
        match = _SIZE.fullmatch(max_memory)
        size = float(match[1]) * _UNITS[match[2].lower()] if match else 0
        if not 1 <= size <= 9e18:
            raise ValueError(f"max_memory needs a size of at least one byte, like 300M or "
                             f"2G, not {max_memory!r}")
        return int(size)
    if isinstance(max_memory, bool) or not isinstance(max_memory, int):
        raise TypeError(f"max_memory must be an int or a string like '300M', "
                        f"not {type(max_memory).__name__}")
    if not 1 <= max_memory <= 2**63 - 1:
        raise ValueError(f"max_memory must be at least one byte, not {max_memory}")
    return max_memory


def _parse_threads(threads):
    """0 (srrun's default: all cores) for None, else a positive int."""
    if threads is None:
        return 0
    if isinstance(threads, bool) or not isinstance(threads, int):
        raise TypeError(f"threads must be an int, not {type(threads).__name__}")
    if not 1 <= threads <= 2**31 - 1:
        raise ValueError(f"threads must be at least 1, not {threads}")
    return threads


def _pixels(image):
    """The image as an array srrun can read in place: a numpy array of a
    supported dtype, in native byte order, each row's pixels packed (copied
    only when they are not)."""
    if not isinstance(image, np.ndarray):
        raise TypeError(f"image must be a numpy array or a PIL image, "
                        f"not {type(image).__name__}")
    if image.dtype.newbyteorder("=") not in _PIXEL_DTYPES:
        raise TypeError(f"image must be uint8, uint16 or float32, not {image.dtype}")
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (1, 2, 3, 4)):
        raise ValueError(f"image must be HxW, HxWx3 or HxWx4 (or HxWx1, HxWx2), "
                         f"not of shape {image.shape}")
    if image.shape[0] < 1 or image.shape[1] < 1:
        raise ValueError(f"image must be at least 1x1, not of shape {image.shape}")
    if not image.dtype.isnative:
        image = image.astype(image.dtype.newbyteorder("="))
    pixel = image.itemsize * (image.shape[2] if image.ndim == 3 else 1)
    packed = (image.strides[-1] == image.itemsize or image.shape[-1] == 1) and (
        image.ndim == 2 or image.strides[1] == pixel or image.shape[1] == 1) and (
        image.strides[0] >= pixel * image.shape[1] or image.shape[0] == 1)
    return image if packed else np.ascontiguousarray(image)


def _quantise(values, dtype):
    """float32 in [0, 1] to dtype, rounded as srrun rounds (halves to even)."""
    if dtype == np.float32:
        return values
    top = np.iinfo(dtype).max
    return np.rint(values * np.float32(top)).astype(dtype)


def _pil_image_type():
    """PIL.Image.Image when Pillow is loaded, else None (nothing is then a
    PIL image, and srrun does not import Pillow itself)."""
    module = sys.modules.get("PIL.Image")
    return module.Image if module else None


# PIL modes srrun reads as they are, and those it converts first.
_PIL_AS_IS = ("L", "LA", "RGB", "RGBA", "I;16", "F")
_PIL_CONVERT = {"1": "L", "La": "LA", "RGBa": "RGBA", "PA": "RGBA", "CMYK": "RGB",
                "YCbCr": "RGB", "LAB": "RGB", "HSV": "RGB", "RGBX": "RGB"}


def _from_pil(image):
    """A PIL image's pixels as an array, and the mode to give the output."""
    mode = image.mode
    if mode == "P":
        mode = "RGBA" if "transparency" in image.info else "RGB"
    elif mode in _PIL_CONVERT:
        mode = _PIL_CONVERT[mode]
    elif mode == "I":  # 16-bit gray PNGs in older Pillow
        pixels = np.asarray(image)
        if pixels.size and (pixels.min() < 0 or pixels.max() > 65535):
            raise ValueError("a PIL image of mode I must hold 0..65535")
        return pixels.astype(np.uint16), "I"
    elif mode not in _PIL_AS_IS:
        raise TypeError(f"PIL images of mode {mode} are not supported")
    if mode != image.mode:
        image = image.convert(mode)
    return np.asarray(image), mode


def _to_pil(pixels, mode, source):
    """The output array as a PIL image of the input's mode, with its ICC
    profile (carried, never applied, as srrun's CLI does)."""
    from PIL import Image

    out = Image.fromarray(pixels.astype(np.int32) if mode == "I" else pixels)
    if "icc_profile" in source.info:
        out.info["icc_profile"] = source.info["icc_profile"]
    return out


def _patch_options(patch):
    """Model's patch as sr_model_options takes it: (patch, patch_margin)."""
    if patch is None:
        return 0, 0
    size, margin = patch if isinstance(patch, tuple) else (patch, 0)
    for v in (size, margin):
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise ValueError(f"patch must be None, 0, N or (N, M) with N, M >= 0, not {patch!r}")
    return (-1, 0) if size == 0 else (size, margin)


class Model:
    """A network loaded from a model file, srrun's own model.bin or a
    PyTorch state dict saved by torch.save.

    source: a path (str or os.PathLike); bytes holding such a file; or None
    for the shipped default model of `scale` (2 or 4; ignored for a source).
    strict: refuse a file holding tensors the network does not use (else
    they are listed in info["notices"]).
    patch: run the network on patches of the image rather than on all of
    it: N or (N, M) for NxN patches each with M pixels of context (cut
    off; default 0); 0 for whole images; None (the default) as the file
    says (the default models run on the 96x96 patches they were trained
    on, M = 8; see the C API's sr_model_options.patch).

    A model is immutable: share one between threads.
    """

    def __init__(self, source=None, *, scale=4, strict=False, patch=None):
        strict = bool(strict)
        patch = _patch_options(patch)
        if source is None:
            if isinstance(scale, bool) or scale not in (2, 4):
                raise ValueError(f"the default models have scale 2 or 4, not {scale!r}")
            self._model = _srrun.load_default(scale, strict, *patch)
        elif isinstance(source, (bytes, bytearray, memoryview)):
            self._model = _srrun.load_memory(source, strict, *patch)
        elif isinstance(source, (str, os.PathLike)):
            self._model = _srrun.load_file(source, strict, *patch)
        else:
            raise TypeError(f"source must be a path, bytes or None, "
                            f"not {type(source).__name__}")

    @property
    def scale(self):
        """Output pixels per input pixel, per axis."""
        return self._model.scale

    @property
    def info(self):
        """A dict: architecture, scale, n_blocks, n_params,
        n_input_pixel_flops, format ("pth" or "model.bin"), dtype, file_size,
        has_checksum, header_crc32, data_crc32 (model.bin), notices (lines
        about the file that did not stop loading)."""
        return self._model.info()

    def __repr__(self):
        info = self.info
        return (f"<srrun.Model {info['architecture']} x{info['scale']}, "
                f"{info['n_blocks']} blocks, {info['format']}>")

    def upscale(self, image, *, max_memory=None, threads=None, backend="auto",
                progress=None, alpha="white"):
        """The image upscaled `scale` times, of the same kind: a numpy array
        of the input's dtype and channels, or a PIL image of its mode (a
        palette image comes back RGB or RGBA, CMYK and YCbCr RGB, "1" L).

        image: a numpy array HxW (gray), HxWx3 (RGB) or HxWx4 (RGBA) of
        uint8, uint16 or float32 in [0, 1], or a PIL image. Gray goes
        through the network as RGB and comes back as its luma (ITU-R 601,
        as Pillow's convert("L")).
        max_memory: the most memory the process may use for the run, bytes
        (int) or a string like "300M" or "2G" (as the CLI's --max-memory);
        None: three quarters of the machine's (on a GPU: nine tenths of
        its free memory). srrun plans the run to fit, or raises Error
        naming the least that would do.
        threads: worker threads; None: all cores.
        backend: "auto" (a GPU when one is usable, else the CPU), "cpu",
        "cuda" or "reference" (the plain kernels: slow, the oracle).
        progress: called as progress(fraction) from this thread as the run
        advances; an exception it raises cancels the run and is raised here.
        alpha: for an image with alpha, "white" composites it on white
        before the network (the output's alpha is then opaque) and "keep"
        upscales it beside the network (bicubic).

        Raises Error for what srrun refuses, TypeError or ValueError for an
        unusable image or argument.
        """
        if alpha not in ("white", "keep"):
            raise ValueError(f"alpha must be 'white' or 'keep', not {alpha!r}")
        pil_type = _pil_image_type()
        source = image
        if pil_type is not None and isinstance(image, pil_type):
            image, mode = _from_pil(image)
        else:
            mode = None
        pixels = _pixels(image)
        max_memory = _parse_memory(max_memory)
        threads = _parse_threads(threads)

        channels = pixels.shape[2] if pixels.ndim == 3 else 1
        has_alpha = channels in (2, 4)
        keep_alpha = has_alpha and alpha == "keep"
        gray = channels <= 2
        height, width = pixels.shape[0] * self.scale, pixels.shape[1] * self.scale
        # srrun makes RGB or RGBA; gray is made in float32 and then reduced.
        out = np.empty((height, width, 4 if keep_alpha else 3),
                       np.float32 if gray else pixels.dtype)
        self._model.run(pixels, out, max_memory=max_memory, threads=threads,
                        backend=backend, progress=progress)

        if gray:
            luma = _quantise(np.clip(out[:, :, :3] @ _LUMA, 0, 1), pixels.dtype)
            if has_alpha:
                opacity = (_quantise(out[:, :, 3], pixels.dtype) if keep_alpha
                           else _opaque(pixels.dtype))
                out = np.empty((height, width, 2), pixels.dtype)
                out[:, :, 0] = luma
                out[:, :, 1] = opacity
            else:
                out = luma if pixels.ndim == 2 else luma[:, :, None]
        elif has_alpha and not keep_alpha:
            rgb = out
            out = np.empty((height, width, 4), pixels.dtype)
            out[:, :, :3] = rgb
            out[:, :, 3] = _opaque(pixels.dtype)
        return _to_pil(out, mode, source) if mode else out


    def upscale_bytes(self, data, *, format="png", alpha="white", depth=None, quality=90,
                      max_pixels=None, max_memory=None, threads=None, backend="auto",
                      progress=None):
        """A PNG or JPEG file's bytes (recognised by content) upscaled into
        the bytes of a PNG or JPEG file, decoded and encoded by srrun: the
        bytes `srrun MODEL INPUT -o OUTPUT` writes with the same options.
        EXIF orientation is applied and the colour metadata carried, as the
        CLI does. The header is read and the run planned within max_memory
        before any pixel is decoded.

        format: "png" or "jpeg" ("jpg"). alpha: as upscale's ("keep" needs
        PNG). depth: 8 or 16 bits per PNG sample; None: the input's.
        quality: JPEG quality 1..100 (90, srrun's default). max_pixels: the
        largest image read (None: srrun's default, Pillow's bomb limit).
        max_memory, threads, backend, progress: as upscale's.

        Raises Error for what srrun refuses (its status attribute says what
        kind: "format" for bytes that are no image it reads, "limit" for an
        image over max_pixels or a run that does not fit max_memory, ...),
        TypeError or ValueError for an unusable argument.
        """
        if format not in ("png", "jpeg", "jpg"):
            raise ValueError(f"format must be 'png' or 'jpeg', not {format!r}")
        if alpha not in ("white", "keep"):
            raise ValueError(f"alpha must be 'white' or 'keep', not {alpha!r}")
        jpeg = format != "png"
        if jpeg and alpha == "keep":
            raise ValueError("alpha='keep' needs a PNG (JPEG has no alpha)")
        if depth not in (None, 8, 16) or isinstance(depth, bool):
            raise ValueError(f"depth must be 8, 16 or None, not {depth!r}")
        if jpeg and depth == 16:
            raise ValueError("depth=16 needs a PNG (JPEG is 8-bit)")
        if isinstance(quality, bool) or not isinstance(quality, int) or not 1 <= quality <= 100:
            raise ValueError(f"quality must be an int from 1 to 100, not {quality!r}")
        if max_pixels is not None and (isinstance(max_pixels, bool) or
                                       not isinstance(max_pixels, int) or max_pixels < 1):
            raise ValueError(f"max_pixels must be a positive int or None, not {max_pixels!r}")
        return self._model.run_file(
            data, jpeg=jpeg, keep_alpha=alpha == "keep", depth=depth or 0, quality=quality,
            max_pixels=max_pixels or 0, max_memory=_parse_memory(max_memory),
            threads=_parse_threads(threads), backend=backend, progress=progress)


def _opaque(dtype):
    """The alpha of an opaque pixel in dtype."""
    return 1.0 if dtype == np.float32 else np.iinfo(dtype).max

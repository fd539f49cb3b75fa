"""The srrun Python package as a user installs it (tests/python/run.sh builds
it with pip into a fresh venv). SRRUN_CLI names the build's srrun: the
package's outputs must equal the CLI's byte for byte on the same pixels."""

import os
import pathlib
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from PIL import Image

import srrun
from png import read_png, write_png

FIXTURES = pathlib.Path(__file__).resolve().parents[1] / "fixtures"
CLI = os.environ.get("SRRUN_CLI")
needs_cli = pytest.mark.skipif(not CLI, reason="SRRUN_CLI (the build's srrun) is not set")

# What would make the CLI or the package load other default models.
DEFAULT_MODEL_VARIABLES = ("SRRUN_DEFAULT_MODEL", "SRRUN_MODEL_DIR")

PHOTOS = ["dot_1x1.png", "kite_41x27.jpg", "leaves_37x29.png", "path_rgba_30x21.png",
          "water_gray_23x31.png"]


def photo(name):
    return np.asarray(Image.open(FIXTURES / name))


def model_path(scale):
    return FIXTURES / f"srpgan_x{scale}.pth"


@pytest.fixture(scope="module")
def models():
    return {scale: srrun.Model(model_path(scale)) for scale in (2, 4)}


def cli_upscale(tmp_path, pixels, *args):
    """The CLI's output for these pixels (written as a PNG for it)."""
    src, out = tmp_path / "in.png", tmp_path / "out.png"
    write_png(src, pixels)
    env = {k: v for k, v in os.environ.items() if k not in DEFAULT_MODEL_VARIABLES}
    subprocess.run([CLI, "-q", *map(str, args), str(src), "-o", str(out)], check=True, env=env)
    return read_png(out)


def rgb(gray):
    return np.repeat(gray[:, :, None], 3, axis=2)


# ---- Equal to the CLI ------------------------------------------------------

@needs_cli
@pytest.mark.parametrize("scale", [2, 4])
@pytest.mark.parametrize("name", PHOTOS)
def test_equals_cli(tmp_path, models, name, scale):
    pixels = photo(name)
    if pixels.ndim == 2:  # the CLI writes a gray image's upscale as RGB
        pixels = rgb(pixels)
    expected = cli_upscale(tmp_path, pixels, model_path(scale))
    got = models[scale].upscale(pixels)
    assert got.dtype == np.uint8 and got.shape[2] == pixels.shape[2]
    if pixels.shape[2] == 4:  # composited on white: opaque
        assert (got[:, :, 3] == 255).all()
        got = got[:, :, :3]
    np.testing.assert_array_equal(got, expected)


@needs_cli
def test_alpha_keep_equals_cli(tmp_path, models):
    pixels = photo("path_rgba_30x21.png")
    expected = cli_upscale(tmp_path, pixels, "--alpha", "keep", model_path(2))
    np.testing.assert_array_equal(models[2].upscale(pixels, alpha="keep"), expected)


@needs_cli
@pytest.mark.parametrize("channels", [3, 4])
def test_16_bit_equals_cli(tmp_path, models, channels):
    pixels = photo("path_rgba_30x21.png")[:, :, :channels].astype(np.uint16) * 257
    pixels[1::2, ::3] += 99  # levels no 8-bit image has
    expected = cli_upscale(tmp_path, pixels, "--alpha", "keep", model_path(2))
    got = models[2].upscale(pixels, alpha="keep")
    assert got.dtype == np.uint16
    np.testing.assert_array_equal(got, expected)


@needs_cli
@pytest.mark.parametrize("scale", [2, 4])
def test_default_models_equal_cli(tmp_path, monkeypatch, scale):
    for name in DEFAULT_MODEL_VARIABLES:  # the package's own copies
        monkeypatch.delenv(name, raising=False)
    model = srrun.Model(scale=scale)
    assert model.scale == scale and model.info["format"] == "model.bin"
    pixels = photo("leaves_37x29.png")
    expected = cli_upscale(tmp_path, pixels, "-s", scale)
    np.testing.assert_array_equal(model.upscale(pixels), expected)


@needs_cli
def test_patches_equal_cli_and_pytorch(tmp_path):
    pixels = np.asarray(Image.open(FIXTURES / "path_rgba_30x21.png").convert("RGBA"))
    model = srrun.Model(model_path(2), patch=(12, 1))
    got = model.upscale(pixels)[:, :, :3]
    np.testing.assert_array_equal(got, cli_upscale(tmp_path, pixels, "--patch", "12:1",
                                                   model_path(2))[:, :, :3])
    want = np.asarray(Image.open(FIXTURES / "path_rgba_30x21.srpgan_x2.patch12m1.png"))
    assert np.abs(got.astype(int) - want).max() <= 1
    whole = srrun.Model(model_path(2), patch=0).upscale(pixels)
    np.testing.assert_array_equal(whole, srrun.Model(model_path(2)).upscale(pixels))
    assert np.abs(whole.astype(int)[:, :, :3] - want).max() > 1


@pytest.mark.parametrize("patch", [-1, (12, -1), "96", (12.0, 1), True])
def test_bad_patches(patch):
    with pytest.raises(ValueError, match="patch"):
        srrun.Model(model_path(2), patch=patch)


def test_patch_the_library_refuses():
    with pytest.raises(srrun.Error, match="more than twice the margin"):
        srrun.Model(model_path(2), patch=(10, 5))


@needs_cli
def test_version_is_the_cli_s():
    from importlib.metadata import version

    cli = subprocess.run([CLI, "--version"], capture_output=True, text=True, check=True)
    assert cli.stdout.split() == ["srrun", srrun.__version__]
    assert version("srrun") == srrun.__version__


@needs_cli
def test_numpy_openblas_loaded_first(tmp_path):
    """numpy brings its own OpenBLAS; loaded (and used) before srrun's, it
    must not change srrun's output."""
    pixels = photo("kite_41x27.jpg")
    expected = cli_upscale(tmp_path, pixels, model_path(2))
    script = f"""
import numpy as np
np.ones((64, 64)) @ np.ones((64, 64))
import srrun, sys
pixels = np.load({str(tmp_path / 'in.npy')!r})
out = srrun.Model({str(model_path(2))!r}).upscale(pixels)
np.save({str(tmp_path / 'out.npy')!r}, out)
maps = open('/proc/self/maps').read().split()
print(sorted({{m.rsplit('/', 1)[-1] for m in maps if 'blas' in m}}))
"""
    np.save(tmp_path / "in.npy", pixels)
    ran = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert ran.returncode == 0, ran.stderr
    print("BLAS libraries loaded:", ran.stdout.strip())
    np.testing.assert_array_equal(np.load(tmp_path / "out.npy"), expected)


# ---- Sources ---------------------------------------------------------------

def test_bytes_source_equals_path(models):
    pixels = photo("leaves_37x29.png")
    expected = models[2].upscale(pixels)
    data = model_path(2).read_bytes()
    for source in (data, bytearray(data), memoryview(data)):
        np.testing.assert_array_equal(srrun.Model(source).upscale(pixels), expected)


def test_path_like_and_info():
    model = srrun.Model(pathlib.Path(model_path(4)), strict=True)
    assert model.scale == 4
    info = model.info
    assert info["architecture"] == "srpgan" and info["scale"] == 4 and info["format"] == "pth"
    assert info["n_params"] > 0 and info["file_size"] == model_path(4).stat().st_size
    assert info["notices"] == []
    assert "srpgan x4" in repr(model)


def test_notices():
    model = srrun.Model(FIXTURES / "weights" / "old_stats.pth")
    assert len(model.info["notices"]) == 1
    assert "running statistics" in model.info["notices"][0]


def test_default_model_scale_must_be_2_or_4():
    for scale in (3, 8, True, "4"):
        with pytest.raises(ValueError):
            srrun.Model(scale=scale)


# ---- Kinds of image --------------------------------------------------------

def luma(pixels):
    return pixels[:, :, :3].astype(np.float64) @ [0.299, 0.587, 0.114]


def test_gray_comes_back_gray(models):
    gray = photo("water_gray_23x31.png")
    out = models[2].upscale(gray)
    assert out.dtype == np.uint8 and out.shape == (62, 46)
    # The network's RGB output, reduced to its luma (within a level: here
    # from float32, there from 8-bit levels).
    assert np.abs(out - luma(models[2].upscale(rgb(gray)))).max() <= 1
    np.testing.assert_array_equal(models[2].upscale(gray[:, :, None]), out[:, :, None])


def test_gray_alpha(models):
    rgba = photo("path_rgba_30x21.png")
    gray = rgba[:, :, 0]
    gray_alpha = np.dstack([gray, rgba[:, :, 3]])
    kept = models[2].upscale(gray_alpha, alpha="keep")
    as_rgba = models[2].upscale(np.dstack([rgb(gray), rgba[:, :, 3]]), alpha="keep")
    assert kept.shape == (42, 60, 2)
    np.testing.assert_array_equal(kept[:, :, 1], as_rgba[:, :, 3])
    assert np.abs(kept[:, :, 0] - luma(as_rgba)).max() <= 1
    white = models[2].upscale(gray_alpha)
    assert (white[:, :, 1] == 255).all()


def test_float32(models):
    pixels = photo("leaves_37x29.png")
    out = models[2].upscale(pixels.astype(np.float32) / 255)
    assert out.dtype == np.float32 and out.shape == (58, 74, 3)
    assert out.min() >= 0 and out.max() <= 1
    assert np.abs(out * 255 - models[2].upscale(pixels)).max() <= 1


def test_rgba_float32_white_is_opaque(models):
    pixels = photo("path_rgba_30x21.png").astype(np.float32) / 255
    out = models[2].upscale(pixels)
    assert out.shape == (42, 60, 4) and (out[:, :, 3] == 1).all()


def test_layouts_equal_contiguous(models):
    big = photo("leaves_37x29.png")
    crop = big[3:20, 5:30]  # rows apart: read in place
    expected = models[2].upscale(np.ascontiguousarray(crop))
    np.testing.assert_array_equal(models[2].upscale(crop), expected)
    flipped = big[::-1, ::-1]  # copied first
    np.testing.assert_array_equal(models[2].upscale(flipped),
                                  models[2].upscale(np.ascontiguousarray(flipped)))
    wide = big.astype(np.uint16) * 257
    np.testing.assert_array_equal(models[2].upscale(wide.astype(">u2")),
                                  models[2].upscale(wide))


# ---- PIL -------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["L", "LA", "RGB", "RGBA", "I;16", "I", "F", "P", "1"])
def test_pil_in_pil_out(models, mode):
    image = Image.open(FIXTURES / "path_rgba_30x21.png").convert(
        "RGBA" if mode in ("LA", "RGBA") else "RGB").convert(
        mode if mode not in ("I;16", "I", "F") else "L")
    if mode == "I;16":
        image = Image.fromarray(np.asarray(image).astype(np.uint16) * 257)
    elif mode in ("I", "F"):
        image = image.convert(mode)
        if mode == "F":
            image = Image.fromarray(np.asarray(image) / np.float32(255))
    image.info["icc_profile"] = b"not really a profile"
    out = models[2].upscale(image)
    assert isinstance(out, Image.Image)
    expected_mode = {"P": "RGB", "1": "L"}.get(mode, mode)
    assert out.mode == expected_mode and out.size == (60, 42)
    assert out.info["icc_profile"] == b"not really a profile"
    if mode in ("L", "RGB", "RGBA", "LA"):
        np.testing.assert_array_equal(np.asarray(out), models[2].upscale(np.asarray(image)))


# ---- Progress and cancelling ------------------------------------------------

def test_progress(models):
    calls = []
    models[4].upscale(photo("kite_41x27.jpg"),
                      progress=lambda f: calls.append((f, threading.get_ident())))
    fractions = [f for f, _ in calls]
    assert len(calls) >= 2 and fractions == sorted(fractions) and fractions[-1] == 1.0
    assert {t for _, t in calls} == {threading.get_ident()}


class Stop(Exception):
    pass


def test_exception_in_progress_cancels(models):
    pixels = photo("kite_41x27.jpg")
    calls = []

    def progress(fraction):
        calls.append(fraction)
        raise Stop("enough")

    with pytest.raises(Stop, match="enough"):
        models[4].upscale(pixels, progress=progress)
    assert len(calls) == 1 and calls[0] < 1
    # The model (and a new session) work as before.
    np.testing.assert_array_equal(models[4].upscale(pixels), models[4].upscale(pixels))


def test_signal_cancels(models):
    """A signal (Ctrl-C) arriving during a run is handled at the next band,
    even with no Python code in the progress callback (list.append), and
    its handler's exception cancels the run."""
    calls = []

    def interrupt():
        while not calls:
            time.sleep(0.001)
        os.kill(os.getpid(), signal.SIGINT)

    def handler(signum, frame):
        raise Stop("interrupted")

    previous = signal.signal(signal.SIGINT, handler)
    try:
        sender = threading.Thread(target=interrupt)
        sender.start()
        with pytest.raises(Stop, match="interrupted"):
            models[4].upscale(np.tile(photo("leaves_37x29.png"), (3, 3, 1)), threads=1,
                              progress=calls.append)
        sender.join()
    finally:
        signal.signal(signal.SIGINT, previous)
    assert calls[-1] < 1


# ---- Errors ----------------------------------------------------------------

def test_srrun_errors():
    assert issubclass(srrun.Error, Exception)
    with pytest.raises(srrun.Error, match="no_such.pth") as caught:
        srrun.Model("no_such.pth")
    assert "\n" not in str(caught.value)
    with pytest.raises(srrun.Error):
        srrun.Model(b"not a model file")
    with pytest.raises(srrun.Error):
        srrun.Model(FIXTURES / "leaves_37x29.png")


def test_memory_budget(models):
    pixels = photo("leaves_37x29.png")
    for too_little in ("1K", 1024):
        with pytest.raises(srrun.Error, match="needs a max memory of at least"):
            models[2].upscale(pixels, max_memory=too_little)
    expected = models[2].upscale(pixels)
    for enough in ("2G", "2gb", "2048M", 2 << 30, "2147483648"):
        np.testing.assert_array_equal(models[2].upscale(pixels, max_memory=enough), expected)
    for bad in ("0", "-5M", "abc", "1.5X", "", 0, -1):
        with pytest.raises(ValueError):
            models[2].upscale(pixels, max_memory=bad)
    for bad in (True, 1.5, b"300M"):
        with pytest.raises(TypeError):
            models[2].upscale(pixels, max_memory=bad)


def test_bad_arguments(models):
    pixels = photo("dot_1x1.png")
    model = models[2]
    np.testing.assert_array_equal(model.upscale(pixels, backend="cpu"), model.upscale(pixels))
    assert model.upscale(pixels, threads=1).shape == (2, 2, 3)
    for bad in (np.zeros((4, 4), np.float64), np.zeros((4, 4), np.int32),
                np.zeros((4, 4), bool), np.zeros((4, 4), np.float16)):
        with pytest.raises(TypeError):
            model.upscale(bad)
    for bad in (np.zeros((4, 4, 5), np.uint8), np.zeros(4, np.uint8),
                np.zeros((0, 4, 3), np.uint8), np.zeros((2, 2, 2, 3), np.uint8)):
        with pytest.raises(ValueError):
            model.upscale(bad)
    with pytest.raises(TypeError):
        model.upscale(pixels.tolist())
    with pytest.raises(TypeError):
        srrun.Model(42)
    for kwargs in ({"backend": "gpu"}, {"alpha": "black"}, {"threads": 0}):
        with pytest.raises(ValueError):
            model.upscale(pixels, **kwargs)
    for kwargs in ({"threads": 1.0}, {"progress": 1}):
        with pytest.raises(TypeError):
            model.upscale(pixels, **kwargs)


# ---- Threads ---------------------------------------------------------------

def test_two_threads_share_a_model(models):
    """Two runs on one model at once (each waits at its first progress call
    for the other to get there) give what they give one after the other.
    Both on one thread each: the CPU backend's output can differ by a level
    between thread counts (srrun -t 1 and -t 2 differ on kite_41x27 at x4)."""
    model = models[4]
    images = [photo("kite_41x27.jpg"), photo("leaves_37x29.png")]
    expected = [model.upscale(image, threads=1) for image in images]
    both_running = threading.Barrier(2, timeout=60)
    results = [None, None]

    def work(i):
        first = []

        def progress(fraction):
            if not first:
                first.append(fraction)
                both_running.wait()

        results[i] = model.upscale(images[i], threads=1, progress=progress)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for got, want in zip(results, expected):
        np.testing.assert_array_equal(got, want)


def test_gil_is_released_while_running(models):
    """With a switch interval longer than the run, another thread gets the
    GIL during a run only if srrun releases it: this thread finds the
    worker's run still going when it wakes at the run's first progress."""
    pixels = np.tile(photo("leaves_37x29.png"), (3, 3, 1))
    in_run, finished = threading.Event(), []

    def work():
        models[4].upscale(pixels, threads=1, progress=lambda f: in_run.set())
        finished.append(True)

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1000)
    try:
        worker = threading.Thread(target=work)
        worker.start()
        assert in_run.wait(60)
        still_running = not finished
        worker.join()
    finally:
        sys.setswitchinterval(interval)
    assert still_running


# ---- Image files' bytes -----------------------------------------------------

def cli_file(tmp_path, source, *args):
    """The bytes of the CLI's output file for the input file source."""
    out = tmp_path / "out"
    env = {k: v for k, v in os.environ.items() if k not in DEFAULT_MODEL_VARIABLES}
    subprocess.run([CLI, "-q", *map(str, args), str(source), "-o", str(out)], check=True,
                   env=env)
    return out.read_bytes()


@needs_cli
@pytest.mark.parametrize("name", ["kite_41x27.jpg", "path_rgba_30x21.png",
                                  "water_gray_23x31.png"])
def test_upscale_bytes_equals_cli(tmp_path, models, name):
    data = (FIXTURES / name).read_bytes()
    for kwargs, args in [({}, []),
                         ({"format": "jpeg", "quality": 75}, ["--format", "jpeg", "--quality", 75]),
                         ({"alpha": "keep", "depth": 16}, ["--alpha", "keep", "--depth", 16])]:
        expected = cli_file(tmp_path, FIXTURES / name, *args, model_path(2))
        assert models[2].upscale_bytes(data, **kwargs) == expected


def test_upscale_bytes_errors(models):
    data = (FIXTURES / "leaves_37x29.png").read_bytes()
    for bad, status in [(b"GIF89a", "format"), (data[:60], "format"), (b"", "format")]:
        with pytest.raises(srrun.Error) as caught:
            models[2].upscale_bytes(bad)
        assert caught.value.status == status
    with pytest.raises(srrun.Error, match="exceeds the 1000-pixel limit") as caught:
        models[2].upscale_bytes(data, max_pixels=1000)
    assert caught.value.status == "limit"
    with pytest.raises(srrun.Error, match="needs a max memory of at least") as caught:
        models[2].upscale_bytes(data, max_memory="1K")
    assert caught.value.status == "limit"
    for kwargs in ({"format": "gif"}, {"format": "jpeg", "alpha": "keep"}, {"depth": 12},
                   {"format": "jpeg", "depth": 16}, {"quality": 0}, {"max_pixels": 0}):
        with pytest.raises(ValueError):
            models[2].upscale_bytes(data, **kwargs)
    with pytest.raises(srrun.Error) as caught:  # every srrun.Error has a status
        srrun.Model("no_such.pth")
    assert caught.value.status == "io"


def test_ray_module_names_its_extra(monkeypatch):
    """srrun.ray without Ray: an ImportError that says how to get it."""
    monkeypatch.setitem(sys.modules, "ray", None)  # as if not installed
    for name in [m for m in sys.modules if m.startswith("srrun.ray")]:
        monkeypatch.delitem(sys.modules, name)
    with pytest.raises(ImportError, match=r'pip install "srrun\[ray\]"'):
        import srrun.ray  # noqa: F401

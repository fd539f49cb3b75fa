"""srrun.ray on a local Ray (tests/python/run.sh ... ray, ctest test_ray): the
batch command, upscale_dataset and the Serve app, compared byte for byte with
the build's srrun (SRRUN_CLI). One Ray for the session (2 CPUs); the batch
command joins it with --address, but once, when it starts its own.

Ray gives a worker of N CPUs OMP_NUM_THREADS=N, and srrun's CPU output can
differ by a level with OpenBLAS's thread count: the CLI runs here with
OMP_NUM_THREADS and -t as the workers have them."""

import errno
import json
import os
import pathlib
import shutil
import signal
import socket
import stat
import struct
import subprocess
import sys
import time
import urllib.error
import urllib.request
import zlib

import numpy as np
import pytest

ray = pytest.importorskip("ray")  # test_python's venv has no Ray: skipped there

import ray.data  # noqa: E402
from PIL import Image  # noqa: E402

import srrun  # noqa: E402
import srrun.ray  # noqa: E402
from png import read_png, write_png  # noqa: E402

FIXTURES = pathlib.Path(__file__).resolve().parents[1] / "fixtures"
MODEL = FIXTURES / "srpgan_x2.pth"
CLI = os.environ.get("SRRUN_CLI")
needs_cli = pytest.mark.skipif(not CLI, reason="SRRUN_CLI (the build's srrun) is not set")
DEFAULT_MODEL_VARIABLES = ("SRRUN_DEFAULT_MODEL", "SRRUN_MODEL_DIR")


@pytest.fixture(scope="session")
def cluster():
    """A local Ray of 2 CPUs; its address for the batch command to join."""
    ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level="ERROR")
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


def cli(*args, threads=1):
    """The build's srrun, on `threads` threads as a Ray worker of that many
    CPUs runs (OMP_NUM_THREADS too)."""
    env = {k: v for k, v in os.environ.items() if k not in DEFAULT_MODEL_VARIABLES}
    env["OMP_NUM_THREADS"] = str(threads)
    return subprocess.run([CLI, "-q", "-t", str(threads), *map(str, args)], env=env,
                          capture_output=True, text=True)


def batch(*args, address=None):
    command = [sys.executable, "-m", "srrun.ray", "upscale", *map(str, args)]
    if address:
        command += ["--address", address]
    return subprocess.run(command, capture_output=True, text=True, timeout=300)


def files_below(folder):
    return {p.relative_to(folder).as_posix(): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def tree(tmp_path):
    """Images below a folder, with what the walk must leave out or fail."""
    top = tmp_path / "in"
    (top / "sub" / "deeper").mkdir(parents=True)
    (top / ".hidden").mkdir()
    shutil.copy(FIXTURES / "leaves_37x29.png", top / "leaves.png")
    shutil.copy(FIXTURES / "kite_41x27.jpg", top / "sub" / "kite.jpg")
    shutil.copy(FIXTURES / "path_rgba_30x21.png", top / "sub" / "deeper" / "path.png")
    shutil.copy(FIXTURES / "water_gray_23x31.png", top / "sub" / "no_extension")
    (top / "sub" / "broken.png").write_bytes((FIXTURES / "leaves_37x29.png").read_bytes()[:90])
    (top / "notes.txt").write_text("not an image\n")
    (top / "\x1b]0;owned\x07.txt").write_text("not an image\n")
    shutil.copy(FIXTURES / "dot_1x1.png", top / ".hidden" / "dot.png")
    (top / "link").symlink_to(top / "sub")
    return top


# ---- The batch command ------------------------------------------------------

@needs_cli
def test_batch_equals_cli_then_resumes(cluster, tree, tmp_path):
    out, expected, report = tmp_path / "out", tmp_path / "cli", tmp_path / "report.json"
    ran = batch(tree, out, "--model", MODEL, "--workers", "2", "--report", report,
                address=cluster)
    assert ran.returncode == 1, ran.stderr
    assert cli(MODEL, tree, "-o", expected).returncode == 1
    got = files_below(out)
    assert sorted(got) == ["leaves_x2.png", "sub/deeper/path_x2.png", "sub/kite_x2.png",
                           "sub/no_extension_x2.png"]
    assert got == files_below(expected)

    lines = ran.stderr.splitlines()
    assert f"srrun.ray: {tree}/sub/broken.png: truncated image" in lines
    assert f"srrun.ray: note: {tree}/notes.txt: not a PNG or JPEG image; skipped" in lines
    # a name from the folder cannot retitle the terminal (as the CLI's)
    assert (f"srrun.ray: note: {tree}/\\x1b]0;owned\\x07.txt: not a PNG or JPEG image; "
            "skipped") in lines
    assert f"srrun.ray: note: {tree}/link: a link to a folder (not followed); skipped" in lines
    assert "srrun.ray: 4 done, 0 skipped, 1 failed" in lines
    summary = json.loads(report.read_text())
    assert (summary["done"], summary["skipped"], summary["failed"]) == (4, 0, 1)
    assert summary["failures"] == [{"input": f"{tree}/sub/broken.png",
                                    "output": f"{out}/sub/broken_x2.png",
                                    "error": f"{tree}/sub/broken.png: truncated image"}]
    assert {w["threads"] for w in summary["workers"]} == {1}
    assert not [p for p in out.rglob(".*")]  # no temporary left

    # A rerun skips what exists (the broken file fails again).
    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("*.png")}
    again = batch(tree, out, "--model", MODEL, "--report", report, address=cluster)
    assert again.returncode == 1
    assert "srrun.ray: 0 done, 4 skipped, 1 failed" in again.stderr.splitlines()
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*.png")} == stamps
    assert json.loads(report.read_text())["skipped"] == 4

    # Without failures: 0; nothing left to do does not even start Ray.
    (tree / "sub" / "broken.png").unlink()
    done = batch(tree, out, "--model", MODEL)
    assert done.returncode == 0, done.stderr
    assert "srrun.ray: 0 done, 4 skipped, 0 failed" in done.stderr.splitlines()


@needs_cli
def test_batch_shared_storage(cluster, tree, tmp_path):
    """--shared-storage: the workers read and write the files."""
    out, expected = tmp_path / "out", tmp_path / "cli"
    ran = batch(tree, out, "--model", MODEL, "--shared-storage", address=cluster)
    assert ran.returncode == 1
    assert f"srrun.ray: {tree}/sub/broken.png: truncated image" in ran.stderr.splitlines()
    assert cli(MODEL, tree, "-o", expected).returncode == 1
    assert files_below(out) == files_below(expected) and len(files_below(out)) == 4


@needs_cli
def test_batch_jpeg_on_its_own_ray(tree, tmp_path):
    """Without --address the command starts a local Ray of its own;
    --overwrite redoes an output that exists."""
    (tree / "sub" / "broken.png").unlink()
    out, expected = tmp_path / "out", tmp_path / "cli"
    out.mkdir()
    (out / "leaves_x2.jpg").write_bytes(b"from an older run")
    ran = batch(tree, out, "--model", MODEL, "--format", "jpg", "--threads-per-worker", "2",
                "--overwrite")
    assert ran.returncode == 0, ran.stderr
    assert cli(MODEL, tree, "-o", expected, "--format", "jpeg", threads=2).returncode == 0
    got = files_below(out)
    assert len(got) == 4 and all(name.endswith("_x2.jpg") for name in got)
    assert got == files_below(expected)
    assert "srrun.ray: 4 done, 0 skipped, 0 failed" in ran.stderr.splitlines()


def test_batch_usage_errors(tmp_path, capsys):
    """Refused before Ray starts (in this process: the command's main)."""
    from srrun.ray._batch import main

    (tmp_path / "in").mkdir()
    out = str(tmp_path / "out")
    for args, message in [(["--model", str(tmp_path / "none.pth")], "none.pth"),
                          (["--model", str(MODEL), "--scale", "4"], "not x4 as --scale asks"),
                          ([], "not a folder")]:
        folder = str(tmp_path / ("in" if args else "no_such_folder"))
        assert main(["upscale", folder, out, *args]) == 1
        assert message in capsys.readouterr().err
    for args in (["--workers", "0"], ["--threads-per-worker", "0"], ["--max-memory", "lots"],
                 ["--max-input-size", "0"]):
        with pytest.raises(SystemExit) as exit:
            main(["upscale", str(tmp_path / "in"), out, *args])
        assert exit.value.code == 2 and args[0] in capsys.readouterr().err


@needs_cli
def test_batch_long_names_links_and_limits(cluster, tmp_path):
    """--overwrite as the CLI's: a symbolic link written through (target
    replaced, mode kept), a file replaced keeping its mode, even under a
    name of 251 bytes (no temporary name longer than it); an output name
    over 255 bytes, and an image declaring 100000x100000 pixels, fail as
    the CLI says; an input over --max-input-size is refused unread."""
    top = tmp_path / "in"
    top.mkdir()
    dot = (FIXTURES / "dot_1x1.png").read_bytes()
    long_name, too_long = "b" * 244, "a" * 251  # outputs of 251 and 258 bytes
    for name in (long_name, too_long, "linked"):
        (top / f"{name}.png").write_bytes(dot)
    (top / "bomb.png").write_bytes(png_header(100000, 100000))
    shutil.copy(FIXTURES / "leaves_37x29.png", top / "big.png")  # 834 bytes

    def outputs(name):
        out, elsewhere = tmp_path / name, tmp_path / f"{name}_target"
        out.mkdir()
        elsewhere.write_bytes(b"old target")
        elsewhere.chmod(0o640)
        (out / "linked_x2.png").symlink_to(elsewhere)
        (out / f"{long_name}_x2.png").write_bytes(b"old")
        (out / f"{long_name}_x2.png").chmod(0o600)
        return out, elsewhere

    out, target = outputs("out")
    ran = batch(top, out, "--model", MODEL, "--overwrite", "--max-input-size", "500",
                "--workers", "1", address=cluster)
    expected, expected_target = outputs("cli")
    assert cli(MODEL, top, "-o", expected, "--overwrite").returncode == 1
    lines = ran.stderr.splitlines()
    assert ran.returncode == 1
    assert lines[-1] == "srrun.ray: 2 done, 0 skipped, 3 failed", ran.stderr
    said = cli(MODEL, top / "bomb.png", top / f"{too_long}.png", "-o", expected, "--overwrite")
    for line in said.stderr.splitlines()[:2]:  # the CLI's lines, as the CLI words them
        assert line.replace("srrun: ", "srrun.ray: ", 1).replace(str(expected), str(out)) \
            in lines
    assert (f"srrun.ray: {top}/big.png: 834 bytes, over the 500 bytes an input may have "
            "(--max-input-size)") in lines

    assert (out / "linked_x2.png").is_symlink() and (expected / "linked_x2.png").is_symlink()
    assert target.read_bytes() == expected_target.read_bytes() != b"old target"
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
    replaced = out / f"{long_name}_x2.png"
    assert replaced.read_bytes() == target.read_bytes()  # the same dot upscaled
    assert stat.S_IMODE(replaced.stat().st_mode) == 0o600
    assert sorted(p.name for p in out.iterdir()) == [f"{long_name}_x2.png", "linked_x2.png"]


def needs_unnamed_files(folder):
    try:
        os.close(os.open(folder, os.O_TMPFILE | os.O_WRONLY, 0o600))
    except OSError:
        pytest.skip("this file system has no O_TMPFILE (the named fallback is tested)")


def test_output_killed_mid_write_leaves_nothing(tmp_path):
    """A process killed while writing (here by the kernel: SIGXFSZ past
    RLIMIT_FSIZE) leaves neither a partial output nor a temporary file."""
    needs_unnamed_files(tmp_path)
    code = ("import resource, signal, sys\n"
            "from srrun.ray._files import write_whole\n"
            "signal.signal(signal.SIGXFSZ, signal.SIG_DFL)\n"
            "resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 16, 1 << 16))\n"
            "write_whole(sys.argv[1], bytes(1 << 20))\n")
    (tmp_path / "old_x2.png").write_bytes(b"old")
    for name in ("new_x2.png", "old_x2.png"):
        killed = subprocess.run([sys.executable, "-c", code, str(tmp_path / name)],
                                env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})
        assert killed.returncode == -signal.SIGXFSZ
        assert [p.name for p in tmp_path.iterdir()] == ["old_x2.png"]
        assert (tmp_path / "old_x2.png").read_bytes() == b"old"


@pytest.mark.parametrize("unnamed", [True, False], ids=["O_TMPFILE", "named"])
def test_output_temporary_never_seen_or_left(tmp_path, monkeypatch, unnamed):
    """While an output is written, its folder shows nothing (O_TMPFILE), or
    where the file system has no unnamed files, one hidden file of a short
    name, removed when the write fails or is interrupted."""
    from srrun.ray import _files

    if unnamed:
        needs_unnamed_files(tmp_path)
    else:
        monkeypatch.setattr(_files, "_open_unnamed", lambda folder_fd: None)
    folder = tmp_path / "out"
    seen = []
    write_all = _files._write_all

    def watched(fd, data):
        seen.append(sorted(p.name for p in folder.iterdir()))
        if data == b"full disk":
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        if data == b"interrupted":
            raise KeyboardInterrupt
        write_all(fd, data)

    monkeypatch.setattr(_files, "_write_all", watched)
    name = "c" * 248 + "_x2.png"  # 255 bytes: the longest name, and no longer temporary
    assert _files.write_whole(str(folder / name), b"first") is None
    assert _files.write_whole(str(folder / name), b"second") is None
    assert _files.write_whole(str(folder / name), b"full disk") == \
        f"{folder / name}: {os.strerror(errno.ENOSPC)}"
    with pytest.raises(KeyboardInterrupt):
        _files.write_whole(str(folder / "new.png"), b"interrupted")
    assert [p.name for p in folder.iterdir()] == [name]
    assert (folder / name).read_bytes() == b"second"
    umask = os.umask(0o022)
    os.umask(umask)
    assert stat.S_IMODE((folder / name).stat().st_mode) == 0o666 & ~umask
    if unnamed:
        assert seen == [[], [name], [name], [name]]
    else:
        temporaries = [set(names) - {name} for names in seen]
        assert all(len(t) == 1 and next(iter(t)).startswith(".") for t in temporaries)


def test_output_kinds_as_the_cli(tmp_path):
    """What an output path names is decided as formats/file.c decides it."""
    from srrun.ray._files import write_whole

    (tmp_path / "null.png").symlink_to("/dev/null")
    (tmp_path / "dead.png").symlink_to(tmp_path / "nothing.png")
    (tmp_path / "folder.png").mkdir()
    (tmp_path / "file").write_bytes(b"")
    assert write_whole(str(tmp_path / "null.png"), b"written into") is None
    assert (tmp_path / "null.png").is_symlink()
    for name, why in [("dead.png", "symbolic link to nothing"),
                      ("folder.png", os.strerror(errno.EISDIR))]:
        assert write_whole(str(tmp_path / name), b"x") == f"{tmp_path / name}: {why}"
    assert write_whole(str(tmp_path / "file" / "x.png"), b"x") == \
        f"{tmp_path / 'file'}: not a folder"
    assert write_whole(str(tmp_path / "a" / "b" / "x.png"), b"x") is None


def test_input_over_the_cap_is_not_read(tmp_path):
    from srrun.ray._files import read_input

    big = tmp_path / "big.png"
    with open(big, "wb") as f:
        f.truncate(600 << 20)  # sparse: no disk, and no memory unless read
    assert read_input(str(big)) == (f"{big}: {600 << 20} bytes, over the 512M an input may "
                                    "have (--max-input-size)")
    assert read_input(str(tmp_path)) == f"{tmp_path}: {os.strerror(errno.EISDIR)}"


def ray_workers(name):
    """Pids of the processes Ray titled name (its actors' processes)."""
    pids = []
    for entry in pathlib.Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and (entry / "cmdline").read_bytes().startswith(name):
                pids.append(int(entry.name))
        except OSError:
            pass
    return pids


@needs_cli
def test_killed_worker_is_replaced(cluster, tmp_path):
    """A worker killed mid-run (SIGKILL, a file half done) is restarted by
    Ray, its files retried, and the run ends with every output made."""
    top, out, expected = tmp_path / "in", tmp_path / "out", tmp_path / "cli"
    top.mkdir()
    noise = np.random.default_rng(7).integers(0, 256, (240, 320, 3), np.uint8)
    for i in range(6):
        write_png(top / f"noise{i}.png", np.roll(noise, i, axis=1))
    job = subprocess.Popen([sys.executable, "-m", "srrun.ray", "upscale", str(top), str(out),
                            "--model", str(MODEL), "--workers", "1", "--address", cluster,
                            "--report", str(tmp_path / "report.json")],
                           stderr=subprocess.PIPE, text=True)
    killed = None
    deadline = time.monotonic() + 120
    while killed is None and job.poll() is None and time.monotonic() < deadline:
        busy = ray_workers(b"ray::Upscaler.file")
        if busy:
            killed = busy[0]
            os.kill(killed, signal.SIGKILL)
        time.sleep(0.05)
    _, stderr = job.communicate(timeout=240)
    assert killed, "the run ended before a worker could be killed"
    assert job.returncode == 0, stderr
    assert cli(MODEL, top, "-o", expected).returncode == 0
    assert files_below(out) == files_below(expected)
    pids = {w["pid"] for w in json.loads((tmp_path / "report.json").read_text())["workers"]}
    assert killed in pids  # the report lists the worker that started


# ---- upscale_dataset -----------------------------------------------------------

@needs_cli
def test_upscale_dataset_bytes_and_arrays(cluster, tmp_path):
    names = ["leaves_37x29.png", "kite_41x27.jpg", "path_rgba_30x21.png"]
    expected = {}
    for name in names:
        assert cli(MODEL, FIXTURES / name, "-o", tmp_path / f"{name}.png").returncode == 0
        expected[name] = (tmp_path / f"{name}.png").read_bytes()

    files = ray.data.read_binary_files([str(FIXTURES / n) for n in names], include_paths=True)
    rows = srrun.ray.upscale_dataset(files, MODEL, workers=1).take_all()
    assert {pathlib.Path(r["path"]).name: bytes(r["bytes"]) for r in rows} == expected

    arrays = {n: np.asarray(Image.open(FIXTURES / n).convert("RGB")) for n in names}
    images = ray.data.from_items([{"name": n, "image": a} for n, a in arrays.items()])
    rows = srrun.ray.upscale_dataset(images, str(MODEL), workers=1).take_all()
    assert sorted(row["name"] for row in rows) == sorted(names)
    for row in rows:  # the CLI's, on the same pixels (not on the JPEG: Pillow decodes it)
        write_png(tmp_path / "pixels.png", arrays[row["name"]])
        assert cli(MODEL, tmp_path / "pixels.png", "-o", tmp_path / "want.png").returncode == 0
        np.testing.assert_array_equal(row["image"], read_png(tmp_path / "want.png"))


def test_upscale_dataset_refuses_a_bad_model(cluster):
    with pytest.raises(srrun.Error):
        srrun.ray.upscale_dataset(ray.data.from_items([{"bytes": b""}]), b"not a model")
    with pytest.raises(srrun.Error, match="no_such.pth: No such file or directory"):
        srrun.ray.upscale_dataset(ray.data.from_items([{"bytes": b""}]), "no_such.pth")


# ---- The Serve app ---------------------------------------------------------------

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def served(cluster):
    from ray import serve

    port = free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    serve.run(srrun.ray.app(model=MODEL, max_pixels=1 << 20), name="srrun", route_prefix="/sr")
    yield f"http://127.0.0.1:{port}/sr"
    serve.shutdown()


def post(url, data, headers=None):
    request = urllib.request.Request(url, data=data, headers=headers or {}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=120) as answer:
            return answer.status, answer.headers["Content-Type"], answer.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers["Content-Type"], error.read()


def png_header(width, height):
    """A PNG's signature and header claiming width x height: nothing more."""
    ihdr = b"IHDR" + struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + ihdr +
            struct.pack(">I", zlib.crc32(ihdr)))


@needs_cli
def test_serve_answers_as_srrun_serve(served, tmp_path):
    photo = (FIXTURES / "kite_41x27.jpg").read_bytes()
    for accept, fmt, kind in [(None, "png", "image/png"), ("image/jpeg", "jpeg", "image/jpeg")]:
        assert cli(MODEL, FIXTURES / "kite_41x27.jpg", "-o", tmp_path / "want",
                   "--format", fmt).returncode == 0
        status, media, body = post(f"{served}/v1/upscale", photo,
                                   {"Accept": accept} if accept else {})
        assert (status, media) == (200, kind)
        assert body == (tmp_path / "want").read_bytes()

    def error(status, message, data, query="", headers=None):
        got = post(f"{served}/v1/upscale{query}", data, headers)
        assert got[:2] == (status, "application/json")
        assert json.loads(got[2]) == {"error": message}

    error(400, "not a PNG or JPEG image", b"GIF89a, or anything else")
    error(400, "truncated image", photo[:200])
    error(400, "the body is empty: POST the image's bytes", b"")
    error(400, "alpha needs white or keep", photo, "?alpha=black")
    error(400, "quality needs a number from 1 to 100", photo, "?quality=0")
    error(400, "depth=16 needs a PNG result (JPEG is 8-bit)", photo, "?depth=16",
          {"Accept": "image/jpeg"})
    error(413, "image 40000x40000 exceeds the 1048576-pixel limit", png_header(40000, 40000))

    with urllib.request.urlopen(f"{served}/healthz", timeout=30) as answer:
        assert answer.read() == b"ok\n"
    with urllib.request.urlopen(f"{served}/v1/models", timeout=30) as answer:
        assert json.loads(answer.read()) == [
            {"name": "srpgan_x2", "architecture": "srpgan", "scale": 2}]

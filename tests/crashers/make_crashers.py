#!/usr/bin/python3
"""Remakes tests/crashers/ (malformed inputs, each named for what srrun must
say about it; the expectations are in tests/formats/test_crashers.c) and
fuzz/seeds/ (small valid inputs the fuzzers start from). Needs Debian's
PyTorch and Pillow: /usr/bin/python3 tests/crashers/make_crashers.py.
Without them, or with --hostile-only, it remakes only the files that need
neither (hostile_models: bombs made with zipfile alone). Deterministic:
rerunning it rewrites the same bytes."""
import gzip
import io
import os
import pickle
import random
import struct
import sys
import zipfile
import zlib
from collections import OrderedDict

try:
    import torch
    import torch.nn as nn
    from PIL import Image
except ImportError:
    torch = None

HERE = os.path.dirname(os.path.abspath(__file__))
SEEDS = os.path.join(HERE, "..", "..", "fuzz", "seeds")
rng = random.Random(20240611)


def write(folder, name, data):
    with open(os.path.join(folder, name), "wb") as f:
        f.write(data)


def tiny_state_dict(scale=2, width=2, blocks=1):
    """SRPGAN's keys (torchlite layout) at a tiny width: a few KB."""
    g = torch.Generator().manual_seed(7)
    d = OrderedDict()

    def conv(prefix, c_out, c_in, k):
        d[prefix + ".weight"] = torch.randn(c_out, c_in, k, k, generator=g) * 0.1
        d[prefix + ".bias"] = torch.randn(c_out, generator=g) * 0.1

    conv("block1.0", width, 3, 9)
    d["block1.1.weight"] = torch.full((1,), 0.25)
    for i in range(blocks):
        p = "res_blocks.%d." % i
        conv(p + "conv1", width, width, 3)
        d[p + "prelu.weight"] = torch.full((1,), 0.25)
        conv(p + "conv2", width, width, 3)
    conv("block3.0", width, width, 3)
    d["block3.1.weight"] = torch.full((1,), 0.25)
    for i in range(scale.bit_length() - 1):
        conv("up_blocks.%d.conv" % i, width * 4, width, 3)
        d["up_blocks.%d.prelu.weight" % i] = torch.full((1,), 0.25)
    conv("block4", 3, width, 9)
    return d


def saved(obj, **kw):
    b = io.BytesIO()
    torch.save(obj, b, **kw)
    return b.getvalue()


def rezip(data, replace):
    """The archive with some entries' bytes replaced (stored, torch-like)."""
    src = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as z:
        for info in src.infolist():
            name = info.filename
            body = replace.get(name.split("/", 1)[1], src.read(name))
            zi = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            z.writestr(zi, body)
    return out.getvalue()


class System:
    def __reduce__(self):
        return (os.system, ("touch /tmp/srrun_pwned",))


def png(width, height, color_type=2, rows=None):
    def chunk(kind, body):
        return (struct.pack(">I", len(body)) + kind + body +
                struct.pack(">I", zlib.crc32(kind + body)))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, color_type, 0, 0, 0)
    out = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
    if rows is not None:
        out += chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")
    return out


def jpeg(width, height, **kw):
    img = Image.new("RGB", (width, height))
    img.putdata([(rng.randrange(256), rng.randrange(256), rng.randrange(256))
                 for _ in range(width * height)])
    b = io.BytesIO()
    img.save(b, "JPEG", quality=90, **kw)
    return b.getvalue()


def torch_zip(pkl, names=("archive/data.pkl", "archive/version")):
    """A torch-style archive whose data.pkl is deflated, as a `zip -r`
    repack leaves it: a few KB that inflate to megabytes."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        for name in names:
            zi = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            zi.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(zi, pkl if name.endswith("data.pkl") else b"3\n", compresslevel=9)
    return out.getvalue()


def hostile_models(c):
    """Small files that once cost gigabytes or minutes: one-byte opcodes
    that each build a value, a stack slot, a container slot or a memo slot.
    Each must be refused at one of pickle.h's limits."""
    proto = b"\x80\x02"
    mb = 1 << 20
    # 32 MB of EMPTY_LIST (1.9 GB once): over the 8 MB cap on data.pkl.
    c("pickle_bomb_32mb.pth", torch_zip(proto + b"]" * (32 * mb) + b"."))
    # 4 MB of EMPTY_LIST (230 MB once): within the cap, so the stack limit
    # stops it.
    c("pickle_bomb_stack.pth", torch_zip(proto + b"]" * (4 * mb) + b"."))
    # A dict, then None + BUILD 2M times: values built, none kept.
    c("pickle_bomb_values.pth", torch_zip(proto + b"}" + b"Nb" * (2 * mb) + b"."))
    # One None shared by BINGET, APPENDed in batches of 1000: 2M slots.
    shared = proto + b"](Nq\x00" + b"h\x00" * 999 + b"e"
    shared += (b"(" + b"h\x00" * 1000 + b"e") * 2000
    c("pickle_bomb_shared_items.pth", torch_zip(shared + b"."))
    # 5 strings of 1 MB: past the 4 MB of strings.
    strings = b"".join(b"X" + struct.pack("<I", mb) + b"\0" * mb for _ in range(5))
    c("pickle_bomb_strings.pth", torch_zip(proto + b"](" + strings + b"e."))
    # LONG_BINPUT at index 6M after 6 MB of PROTO no-ops: 48 MB of memo
    # slots once; now beyond the one value built.
    memo = proto + b"]" + proto * (6 * mb // 2) + b"r" + struct.pack("<I", 6 * mb) + b"."
    c("pickle_bomb_memo_index.pth", torch_zip(memo))
    # A C1 control (CSI, U+009B, UTF-8 C2 9B) in an entry name: messages
    # must show it escaped, never send it to the terminal.
    c("zip_c1_entry_name.pth", torch_zip(proto + b"}.", ("x\u009b[2Jevil.pkl",)))


def main():
    os.makedirs(SEEDS, exist_ok=True)
    c = lambda name, data: write(HERE, name, data)
    hostile_models(c)
    tiny = saved(tiny_state_dict())

    # ---- Model files -----------------------------------------------------
    c("empty.pth", b"")
    c("random_4k.pth", bytes(rng.randrange(256) for _ in range(4096)))
    c("zip_truncated_eocd.pth", tiny[: len(tiny) // 2])
    c("gzip_wrapped.pth", gzip.compress(tiny, mtime=0))
    # The first central-directory entry's local-header offset moved past EOF.
    cd = tiny.rfind(b"PK\x01\x02", 0, tiny.rfind(b"PK\x05\x06"))
    first_cd = tiny.find(b"PK\x01\x02")
    bad = bytearray(tiny)
    struct.pack_into("<I", bad, first_cd + 42, len(tiny) + 10)
    c("zip_entry_past_eof.pth", bytes(bad))
    assert cd > 0
    c("reduce_posix_system.pth",
      rezip(tiny, {"data.pkl": pickle.dumps(System(), protocol=2)}))
    c("pickled_module_conv2d.pth", saved(nn.Conv2d(3, 2, 1)))
    c("torchscript.pth", (lambda b: (torch.jit.save(torch.jit.script(nn.ReLU()), b),
                                     b.getvalue())[1])(io.BytesIO()))
    nested = b"\x80\x02" + b"](" * 1000 + b"."
    c("pickle_nested_too_deep.pth", rezip(tiny, {"data.pkl": nested}))
    sd = tiny_state_dict()
    sd["block4.bias"][1] = float("nan")
    c("weight_nan.pth", saved(sd))
    sd = tiny_state_dict()
    sd["block4.weight"] = sd["block4.weight"][:, :, :7, :7].clone()
    c("weight_wrong_shape.pth", saved(sd))
    # data/0 (block1.0.weight) cut to 64 bytes: its size no longer matches the pickle.
    c("storage_size_mismatch.pth", rezip(tiny, {"data/0": b"\0" * 64}))

    # ---- Images ----------------------------------------------------------
    c("empty.png", b"")
    c("text_named.png", b"hello, this is not an image\n" * 4)
    rows = b"".join(b"\0" + bytes(rng.randrange(256) for _ in range(3 * 16))
                    for _ in range(16))
    whole = png(16, 16, 2, rows)
    c("png_truncated_idat.png", whole[: whole.find(b"IDAT") + 40])
    c("png_100000x100000.png", png(100000, 100000, 2, b"\0"))
    bad = bytearray(whole)
    bad[29] ^= 0xFF  # inside IHDR's CRC
    c("png_bad_ihdr_crc.png", bytes(bad))
    photo = jpeg(24, 16)
    c("jpeg_truncated_after_sos.jpg", photo[: photo.find(b"\xff\xda") + 20])
    bad = bytearray(photo)
    sof = bad.find(b"\xff\xc0")
    struct.pack_into(">HH", bad, sof + 5, 65535, 65535)
    c("jpeg_65535x65535.jpg", bytes(bad))

    # ---- Fuzzer seeds: small valid files ---------------------------------
    write(SEEDS, "tiny_x2.pth", tiny)
    write(SEEDS, "tiny_x4_f16.pth",
          saved(OrderedDict((k, v.half()) for k, v in tiny_state_dict(4).items())))
    write(SEEDS, "tiny_x2_proto4.pth", saved(tiny_state_dict(), pickle_protocol=4))
    write(SEEDS, "rgb_16x16.png", whole)
    write(SEEDS, "rgb_24x16.jpg", photo)
    write(SEEDS, "rgb_24x16_progressive.jpg", jpeg(24, 16, progressive=True))
    img = Image.new("P", (9, 7))
    img.putpalette([rng.randrange(256) for _ in range(48)])
    img.putdata([rng.randrange(16) for _ in range(63)])
    b = io.BytesIO()
    img.save(b, "PNG", transparency=3)
    write(SEEDS, "palette_trns_9x7.png", b.getvalue())
    img = Image.new("I;16", (5, 6))
    img.putdata([rng.randrange(65536) for _ in range(30)])
    b = io.BytesIO()
    img.save(b, "PNG")
    write(SEEDS, "gray16_5x6.png", b.getvalue())
    img = Image.new("LA", (7, 5))
    img.putdata([(rng.randrange(256), rng.randrange(256)) for _ in range(35)])
    b = io.BytesIO()
    img.save(b, "PNG")
    write(SEEDS, "gray_alpha_7x5.png", b.getvalue())
    # fuzz_pickle's input: storage sizes, then data.pkl (see fuzz_pickle.c).
    for name in ("tiny_x2.pth", "tiny_x4_f16.pth", "tiny_x2_proto4.pth"):
        with zipfile.ZipFile(os.path.join(SEEDS, name)) as z:
            folder = z.namelist()[0].split("/")[0]
            sizes = []
            while folder + "/data/%d" % len(sizes) in z.namelist():
                sizes.append(z.getinfo(folder + "/data/%d" % len(sizes)).file_size)
            body = bytes([len(sizes)]) + b"".join(struct.pack("<I", s) for s in sizes)
            write(SEEDS, name.replace(".pth", ".pickle"),
                  body + z.read(folder + "/data.pkl"))


if __name__ == "__main__":
    if torch is None or sys.argv[1:] == ["--hostile-only"]:
        if torch is None:
            print("no PyTorch or Pillow: remaking only hostile_models' files", file=sys.stderr)
        hostile_models(lambda name, data: write(HERE, name, data))
    else:
        main()

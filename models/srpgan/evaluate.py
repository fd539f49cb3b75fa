#!/usr/bin/env python3
"""Measures a model on the held-out photos: each is downscaled by the scale
(Pillow bicubic, antialiased, as training makes its inputs), upscaled back
by the model, by bicubic and by Lanczos, and compared with the original:
PSNR and SSIM on the luma (BT.601 Y), a border of `scale` pixels cropped,
the usual way SR papers report them. Prints Markdown tables.

    python3 models/srpgan/evaluate.py --model models/srpgan/srpgan_x4.bin --scale 4
    python3 models/srpgan/evaluate.py --checkpoint /work/train-v2/x4/last.pt
    python3 models/srpgan/evaluate.py --srrun build/srrun \\
        --model models/srpgan/srpgan_x4.bin --scale 4 [--picture out.png]

Two sets (--set): "native", the v2 hold-out (photos.V2_HELD_OUT: three per
source), a centre crop of at most 960x720 of each photo at its native
resolution, with the camera's noise, blur and JPEG traces, on which issue
19's targets are checked; and "old", v1's three held-out wallpapers
downscaled to 1280x800 (smooth and clean), kept for continuity.

--model takes a model.bin, a .pth state dict or a train.py checkpoint and
runs it in PyTorch (output rounded to 8 bits as srrun writes it), on the
patches a model.bin records (srpgan.run_patches, as srrun does); with
--srrun, srrun runs it instead (a .bin or .pth). --patch N:M (or none)
runs it on other patches, in either.
--picture writes a before/after crop of the first old photo: bicubic,
model and original.
"""
import argparse
import os
import subprocess
import sys
import tempfile

import numpy as np
from PIL import Image, ImageDraw

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from photos import HELD_OUT, V2_HELD_OUT, photo  # noqa: E402

HR_SCALE = 0.5  # the old held-out photos at 1280x800, as v1's smallest training copies
NATIVE_CROP = (960, 720)  # the native-resolution hold-out: a centre crop at most this large

# Issue 19's targets on the native hold-out, dB of PSNR-Y.
TARGETS = {4: {"bicubic": 1.0, "lanczos": 0.5}, 2: {"bicubic": 1.0}}
WORST_ALLOWED = -0.3  # no photo worse than bicubic by more than this


def luma(img):
    """BT.601 Y in [16, 235] units, as MATLAB's rgb2ycbcr."""
    a = np.asarray(img.convert("RGB"), dtype=np.float64) / 255
    return 16 + 65.481 * a[..., 0] + 128.553 * a[..., 1] + 24.966 * a[..., 2]


def psnr(x, y):
    mse = np.mean((x - y) ** 2)
    return 10 * np.log10(255.0 ** 2 / mse)


def gaussian_blur(a, sigma=1.5, radius=5):
    k = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    k /= k.sum()
    valid = lambda v: np.convolve(v, k, mode="valid")
    a = np.apply_along_axis(valid, 0, a)
    return np.apply_along_axis(valid, 1, a)


def ssim(x, y):
    """Wang et al. 2004: 11x11 Gaussian window, sigma 1.5, on 255 units."""
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    mx, my = gaussian_blur(x), gaussian_blur(y)
    sxx = gaussian_blur(x * x) - mx * mx
    syy = gaussian_blur(y * y) - my * my
    sxy = gaussian_blur(x * y) - mx * my
    s = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx * mx + my * my + c1) * (sxx + syy + c2))
    return s.mean()


def scores(out, hr, scale, with_ssim=True):
    a, b = luma(out)[scale:-scale, scale:-scale], luma(hr)[scale:-scale, scale:-scale]
    return psnr(a, b), (ssim(a, b) if with_ssim else float("nan"))


def downscaled_pair(hr, scale):
    w, h = hr.width // scale * scale, hr.height // scale * scale
    hr = hr.crop((0, 0, w, h))
    return hr, hr.resize((w // scale, h // scale), Image.BICUBIC)


def held_out_pair(name, scale):
    """v1's pair: the wallpaper at 1280x800 and its downscale."""
    return downscaled_pair(photo(name, HR_SCALE), scale)


def native_pair(name, scale):
    """v2's pair: a centre crop of the photo at its native resolution."""
    img = photo(name)
    w, h = min(img.width, NATIVE_CROP[0]), min(img.height, NATIVE_CROP[1])
    x, y = (img.width - w) // 2, (img.height - h) // 2
    return downscaled_pair(img.crop((x, y, x + w, y + h)), scale)


def pairs(which, scale):
    """[(name, source, hr, lr)] of a set: "native" or "old"."""
    if which == "native":
        return [(n, s, *native_pair(n, scale)) for n, s in V2_HELD_OUT.items()]
    return [(n, "plasma", *held_out_pair(n, scale)) for n in HELD_OUT]


def torch_upscaler(net, scale, patch):
    """lr (PIL) -> the network's output rounded to 8 bits as srrun writes it,
    the network run on patches (size, margin) unless size is 0."""
    import torch
    from srpgan import run_patches, to_network_input

    def run(lr):
        x = to_network_input(lr)
        with torch.no_grad():
            y = run_patches(net, x, scale, *patch) if patch[0] else net(x)
        y = y[0].numpy().transpose(1, 2, 0)
        return Image.fromarray(np.round(np.clip(y, 0, 1) * 255).astype(np.uint8))
    return run


def load_net(path, scale=None):
    """A Generator with the weights of a model.bin, .pth or checkpoint, its
    scale (from the weights: the number of upsample blocks) and the patch a
    model.bin records ((0, 0): none)."""
    import torch
    from srpgan import Generator, load_weights, read_model_bin
    state = load_weights(path)
    with open(path, "rb") as f:
        patch = read_model_bin(path)[2] if f.read(8) == b"\x89SRB\r\n\x1a\n" else (0, 0)
    n_up = len({k.split(".")[1] for k in state if k.startswith("up_blocks.")})
    blocks = len({k.split(".")[1] for k in state if k.startswith("res_blocks.")})
    if scale is not None and scale != 2 ** n_up:
        raise SystemExit(f"{path}: a x{2 ** n_up} model, not x{scale}")
    net = Generator(2 ** n_up, blocks, state["block1.0.weight"].shape[0])
    net.load_state_dict(state)
    torch.set_num_threads(min(2, os.cpu_count()))
    return net.eval(), 2 ** n_up, patch


def srrun_upscaler(srrun, model, tmp, patch):
    def run(lr):
        src, dst = os.path.join(tmp, "lr.png"), os.path.join(tmp, "sr.png")
        lr.save(src)
        subprocess.run([srrun, model, src, "-o", dst, "-q"] + (["--patch", patch] if patch else []),
                       check=True)
        return Image.open(dst).convert("RGB")
    return run


def measure(upscale, data, scale, with_ssim=True):
    """[(name, source, (model psnr, ssim, bicubic psnr, ssim, lanczos psnr, ssim))]"""
    rows = []
    for name, source, hr, lr in data:
        sr = upscale(lr)
        if sr.size != hr.size:
            raise SystemExit(f"{name}: the model gave {sr.size}, expected {hr.size}")
        r = scores(sr, hr, scale, with_ssim) \
            + scores(lr.resize(hr.size, Image.BICUBIC), hr, scale, with_ssim) \
            + scores(lr.resize(hr.size, Image.LANCZOS), hr, scale, with_ssim)
        rows.append((name, source, r))
    return rows


def summary(rows):
    """(mean gain over bicubic, over Lanczos, worst gain over bicubic, its photo)"""
    d_bic = [r[0] - r[2] for _, _, r in rows]
    d_lan = [r[0] - r[4] for _, _, r in rows]
    worst = int(np.argmin(d_bic))
    return float(np.mean(d_bic)), float(np.mean(d_lan)), d_bic[worst], rows[worst][0]


def targets_met(rows, scale):
    d_bic, d_lan, worst, _ = summary(rows)
    t = TARGETS[scale]
    return d_bic >= t["bicubic"] and d_lan >= t.get("lanczos", -99) and worst >= WORST_ALLOWED


def table(rows, title, label="model"):
    out = [title, "", f"| photo | source | {label} | bicubic | Lanczos | - bicubic | - Lanczos |",
           "|---|---|---|---|---|---|---|"]
    mean = tuple(np.mean([r for _, _, r in rows], axis=0))
    cell = lambda p, s: f"{p:.2f}" if np.isnan(s) else f"{p:.2f} / {s:.4f}"
    for name, source, r in rows + [("mean", "", mean)]:
        out.append(f"| {name} | {source} | {cell(r[0], r[1])} | {cell(r[2], r[3])} | "
                   f"{cell(r[4], r[5])} | {r[0] - r[2]:+.2f} dB | {r[0] - r[4]:+.2f} dB |")
    return "\n".join(out)


def verdict(rows, scale):
    d_bic, d_lan, worst, worst_name = summary(rows)
    t = TARGETS[scale]
    lines = [f"x{scale} mean {d_bic:+.2f} dB over bicubic (target >= +{t['bicubic']:.1f}), "
             f"{d_lan:+.2f} dB over Lanczos"
             + (f" (target >= +{t['lanczos']:.1f})" if "lanczos" in t else ""),
             f"worst photo {worst_name}: {worst:+.2f} dB over bicubic (target >= {WORST_ALLOWED:+.1f})",
             "targets: " + ("MET" if targets_met(rows, scale) else "not met")]
    return "\n".join(lines)


def picture(path, hr, lr, sr, scale, box):
    """Bicubic | model | original, a crop of side box (LR pixels) at (x, y)."""
    x, y, side = box
    crop = (x * scale, y * scale, (x + side) * scale, (y + side) * scale)
    bicubic = lr.resize(hr.size, Image.BICUBIC)
    panels = [("bicubic", bicubic.crop(crop)), ("srrun", sr.crop(crop)), ("original", hr.crop(crop))]
    s = side * scale
    out = Image.new("RGB", (3 * s + 8, s + 20), "white")
    draw = ImageDraw.Draw(out)
    for i, (label, p) in enumerate(panels):
        out.paste(p, (i * (s + 4), 20))
        draw.text((i * (s + 4) + 4, 4), label, fill="black")
    out.save(path, optimize=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", help="model.bin, .pth state dict or train.py checkpoint")
    ap.add_argument("--checkpoint", help="the same as --model")
    ap.add_argument("--scale", type=int, choices=(2, 4), help="default: the model's")
    ap.add_argument("--srrun", help="run the model with this srrun instead of PyTorch")
    ap.add_argument("--set", choices=("native", "old", "both"), default="both")
    ap.add_argument("--no-ssim", action="store_true", help="PSNR only (faster)")
    ap.add_argument("--patch", metavar="N:M",
                    help="run on NxN patches with M pixels of context, or none: on whole "
                         "images (default: as a model.bin says)")
    ap.add_argument("--picture", help="write a before/after crop of the first old photo")
    ap.add_argument("--box", default="95,95,64", help="picture crop: x,y,side in LR pixels")
    args = ap.parse_args()
    model = args.model or args.checkpoint
    if not model:
        ap.error("--model or --checkpoint is required")

    with tempfile.TemporaryDirectory() as tmp:
        if args.srrun:
            if not args.scale:
                ap.error("--srrun needs --scale")
            scale, label = args.scale, "srrun"
            upscale = srrun_upscaler(args.srrun, model, tmp, args.patch)
        else:
            net, scale, patch = load_net(model, args.scale)
            if args.patch:
                patch = (0, 0) if args.patch == "none" else tuple(map(int, args.patch.split(":")))
            upscale, label = torch_upscaler(net, scale, patch), "model"
        if args.patch:
            label += f", patches {args.patch}"
        print(f"{model}, x{scale}, PSNR-Y dB / SSIM-Y\n")
        sets = ("native", "old") if args.set == "both" else (args.set,)
        for which in sets:
            data = pairs(which, scale)
            rows = measure(upscale, data, scale, not args.no_ssim)
            if which == "native":
                print(table(rows, f"x{scale}, held-out photos at native resolution "
                                  f"(centre crops of at most {NATIVE_CROP[0]}x{NATIVE_CROP[1]})", label))
                print()
                print(verdict(rows, scale))
            else:
                print(table(rows, f"x{scale}, v1's held-out photos at 1280x800", label))
                if args.picture:
                    _, _, hr, lr = data[0]
                    box = tuple(int(v) for v in args.box.split(","))
                    picture(args.picture, hr, lr, upscale(lr), scale, box)
            print()


if __name__ == "__main__":
    main()

#!/usr/bin/python3
"""Measures a model on the held-out photos: each is downscaled by the scale
(Pillow bicubic, as training made its inputs), upscaled back by srrun, by
bicubic and by Lanczos, and compared with the original: PSNR and SSIM on
the luma (BT.601 Y), a border of `scale` pixels cropped, the usual way SR
papers report them. Prints a Markdown table.

    /usr/bin/python3 models/srpgan/evaluate.py --srrun build/srrun \\
        --model models/srpgan/srpgan_x4.bin --scale 4 [--picture out.png]

--picture writes a before/after crop: bicubic, srrun and the original side
by side. Needs numpy and Pillow only.
"""
import argparse
import os
import subprocess
import sys
import tempfile

import numpy as np
from PIL import Image, ImageDraw

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from photos import HELD_OUT, photo  # noqa: E402

HR_SCALE = 0.5  # the held-out photos at 1280x800, as the smallest training copies


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


def scores(out, hr, scale):
    a, b = luma(out)[scale:-scale, scale:-scale], luma(hr)[scale:-scale, scale:-scale]
    return psnr(a, b), ssim(a, b)


def held_out_pair(name, scale):
    hr = photo(name, HR_SCALE)
    w, h = hr.width // scale * scale, hr.height // scale * scale
    hr = hr.crop((0, 0, w, h))
    return hr, hr.resize((w // scale, h // scale), Image.BICUBIC)


def run_srrun(srrun, model, lr, tmp):
    src, dst = os.path.join(tmp, "lr.png"), os.path.join(tmp, "sr.png")
    lr.save(src)
    subprocess.run([srrun, model, src, "-o", dst, "-q"], check=True)
    return Image.open(dst).convert("RGB")


def picture(path, hr, lr, sr, scale, box):
    """Bicubic | srrun | original, a crop of side box (LR pixels) at (x, y)."""
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
    ap.add_argument("--srrun", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--scale", type=int, required=True)
    ap.add_argument("--picture", help="write a before/after crop of the first photo")
    ap.add_argument("--box", default="95,95,64", help="picture crop: x,y,side in LR pixels")
    args = ap.parse_args()

    rows, sums = [], np.zeros(6)
    with tempfile.TemporaryDirectory() as tmp:
        for i, name in enumerate(HELD_OUT):
            hr, lr = held_out_pair(name, args.scale)
            sr = run_srrun(args.srrun, args.model, lr, tmp)
            if sr.size != hr.size:
                raise SystemExit(f"{name}: srrun gave {sr.size}, expected {hr.size}")
            r = scores(sr, hr, args.scale) + scores(lr.resize(hr.size, Image.BICUBIC), hr, args.scale) \
                + scores(lr.resize(hr.size, Image.LANCZOS), hr, args.scale)
            rows.append((name, r))
            sums += r
            if args.picture and i == 0:
                box = tuple(int(v) for v in args.box.split(","))
                picture(args.picture, hr, lr, sr, args.scale, box)
    print(f"x{args.scale}, held-out photos at 1280x800, PSNR-Y dB / SSIM-Y\n")
    print("| photo | srrun | bicubic | Lanczos | srrun - bicubic |")
    print("|---|---|---|---|---|")
    for name, r in rows + [("mean", sums / len(rows))]:
        print(f"| {name} | {r[0]:.2f} / {r[1]:.4f} | {r[2]:.2f} / {r[3]:.4f} | "
              f"{r[4]:.2f} / {r[5]:.4f} | {r[0] - r[2]:+.2f} dB |")


if __name__ == "__main__":
    main()

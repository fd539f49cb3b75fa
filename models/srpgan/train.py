#!/usr/bin/env python3
"""Trains srrun's default SRPGAN generator (torchlite layout, 64 channels,
4 residual blocks) with an L1 loss on HR/LR pairs: random crops of real
photographs, flipped and rotated, the input made by Pillow's antialiased
bicubic downscale (as the evaluation makes it).

v1 (how the shipped models were made): a run fixed by its time budget,

    /usr/bin/python3 models/srpgan/train.py --scale 4 --minutes 45 \\
        --init-interpolating -o x4.pth

v2 (issue 19): every photo of photos.V2_TRAIN at its native resolution and
downscaled copies, a cosine schedule over a step count, resumable: a
checkpoint (model, optimizer, step, RNG states) every few minutes into
--ckpt-dir, written atomically; the same command continues where it stopped.

    python3 models/srpgan/train.py --scale 4 --data v2 --steps 12000 \\
        --ckpt-dir /work/train-v2/x4 --init models/srpgan/srpgan_x4.bin

(models/srpgan/train_v2.sh runs both scales this way, with the settings of
the run in progress.)

--init-interpolating starts from a bilinear upscale (see interpolating_init);
--init FILE from a model.bin, a state dict or a checkpoint (every tensor whose
name and shape match). The photo lists live in photos.py; the held-out ones
are never trained on (v2's --eval-every measures them, see evaluate.py).
"""
import argparse
import math
import os
import random
import signal
import sys
import time

import numpy as np
import torch
from PIL import Image, ImageFilter

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from photos import TRAIN, V2_TRAIN, photo  # noqa: E402
from srpgan import TORCHLITE_NORM_EPS, Generator, checkpoint_norm_eps, load_weights, refold_norm_eps  # noqa: E402


def load_photos():
    """v1: every training photo at three sizes: the smaller copies have more
    detail per pixel, a multi-scale augmentation."""
    return [np.asarray(photo(name, scale)) for name in TRAIN for scale in (1.0, 0.75, 0.5)]


V2_SCALES = (1.0, 0.75, 0.5, 0.35, 0.25)  # copies, while the short side keeps >= V2_MIN_SIDE
V2_MIN_SIDE = 384
V2_NATIVE_P = 0.4  # chance that a crop comes from the photo at its native resolution


def load_photos_v2(cache):
    """v2: [(weight, [native, copies...])], uint8 HWC arrays, memory-mapped
    from .npy files under cache (decoding and downscaling a 6000x4000 JPEG
    takes seconds; the two scales' runs share the files). A photo is drawn
    with a weight of the square root of its area, so the small sample photos
    count but do not dominate."""
    os.makedirs(cache, exist_ok=True)
    out = []
    for name in V2_TRAIN:
        copies = []
        native = None
        for s in V2_SCALES:
            f = os.path.join(cache, f"{name.replace('/', '_')}@{s}.npy")
            if not os.path.exists(f):
                if native is None:
                    native = photo(name)
                if s != 1.0 and min(native.size) * s < V2_MIN_SIDE:
                    continue
                img = native if s == 1.0 else native.resize(
                    (round(native.width * s), round(native.height * s)), Image.BICUBIC)
                tmp = f"{f}.{os.getpid()}.tmp.npy"  # both scales' runs fill the cache at once
                np.save(tmp, np.asarray(img))
                os.replace(tmp, f)
            copies.append(np.load(f, mmap_mode="r"))
        h, w = copies[0].shape[:2]
        out.append((math.sqrt(w * h), copies))
    return out

KNOTS = 21  # ramps per colour in the last upsample block: 3 x 21 of 64 channels
Z = 3.5  # |atanh| is clipped here: (tanh(3.5) + 1) / 2 rounds to 255/255


def bilinear_phases():
    """3x3 kernels of the four output phases (i, j) of a bilinear x2 upscale
    (half-pixel centres, as Pillow and torch's align_corners=False)."""
    taps = {0: np.array([0.25, 0.75, 0.0]), 1: np.array([0.0, 0.75, 0.25])}
    return {(i, j): torch.from_numpy(np.outer(taps[i], taps[j])) for i in (0, 1) for j in (0, 1)}


def atanh_ramps():
    """Knots t_k and ramp weights a_k with -Z + sum_k a_k relu(u - t_k)
    = clip(atanh(2u - 1), -Z, Z) at every knot, linear between."""
    z = np.linspace(-Z, Z, KNOTS)
    t = (np.tanh(z) + 1) / 2
    slopes = np.diff(z) / np.diff(t)
    return t, np.diff(np.concatenate([[0.0], slopes, [0.0]]))


def interpolating_init(net, scale):
    """Weights under which the network starts as a bilinear upscale, so
    that training starts from an interpolation instead of grey (without a
    skip connection around the network, reproducing the input takes it
    thousands of steps). Channels 0-2 carry the colours, centred (v - 0.5,
    so that zero padding reads as mid-grey): block1 copies them; each
    upsample block but the last upscales them bilinearly x2; the last does
    it into 21 copies per colour minus knots t_k, which its ReLU (PReLU
    slope 0) turns into ramps that block4 sums into atanh(2u - 1), undoing
    the final tanh. The other channels start as PyTorch initialises them,
    cut off from the colours: the residual blocks' conv2 and block3 write
    nothing into channels 0-2, and the upsample blocks read only those."""
    own = net.state_dict()
    f = own["block1.0.weight"].shape[0]
    n_up = int(math.log2(scale))
    phases = bilinear_phases()
    t, a = atanh_ramps()
    with torch.no_grad():
        own["block1.0.weight"][:3] = 0.0
        for c in range(3):
            own["block1.0.weight"][c, c, 4, 4] = 1.0
        own["block1.0.bias"][:3] = -0.5
        own["block1.1.weight"].fill_(1.0)
        for k in own:
            if k.endswith("conv2.weight") or k.endswith("conv2.bias") or k.startswith("block3.0."):
                own[k][:3] = 0.0
        for u in range(n_up):
            w, b = torch.zeros(4 * f, f, 3, 3), torch.zeros(4 * f)
            last = u == n_up - 1
            for c in range(3):
                for k in range(KNOTS if last else 1):
                    out = c * KNOTS + k if last else c
                    for (i, j), kern in phases.items():
                        w[out * 4 + i * 2 + j, c] = kern
                        if last:
                            b[out * 4 + i * 2 + j] = 0.5 - t[k]
            own[f"up_blocks.{u}.conv.weight"], own[f"up_blocks.{u}.conv.bias"] = w, b
            own[f"up_blocks.{u}.prelu.weight"] = torch.full((1,), 0.0 if last else 1.0)
        w = torch.zeros(3, f, 9, 9)
        for c in range(3):
            for k in range(KNOTS):
                w[c, c * KNOTS + k, 4, 4] = float(a[k])
        own["block4.weight"], own["block4.bias"] = w, torch.full((3,), -Z)
    net.load_state_dict(own)


def random_pair(photos, hr_size, scale, rng):
    """v1's pair: the LR image is the downscale of the HR crop alone."""
    img = photos[rng.randrange(len(photos))]
    y = rng.randrange(img.shape[0] - hr_size + 1)
    x = rng.randrange(img.shape[1] - hr_size + 1)
    hr = img[y:y + hr_size, x:x + hr_size]
    if rng.random() < 0.5:
        hr = hr[:, ::-1]
    hr = np.rot90(hr, rng.randrange(4))
    hr_img = Image.fromarray(np.ascontiguousarray(hr))
    lr_img = hr_img.resize((hr_size // scale,) * 2, Image.BICUBIC)
    to_chw = lambda a: np.asarray(a, dtype=np.float32).transpose(2, 0, 1) / 255
    return to_chw(lr_img), to_chw(hr_img)


MARGIN = 4  # LR pixels around a v2 crop, so that its downscale is the whole photo's
SHIP_MARGIN = 8  # context of the patches a shipped model runs on (srrun convert --patch)


def random_pair_v2(photos, weights, hr_size, scale, rng, soft_p=0.0):
    """v2's pair: a crop with a margin is flipped, rotated and downscaled
    (Pillow bicubic, antialiased), then the margin is cut from both: the LR
    pixels are those of the whole photo downscaled (the filter's support,
    2 * scale HR pixels, stays inside the margin), as in the evaluation.

    With chance soft_p the crop is first blurred (Gaussian, sigma 0.5 to
    1.25 * scale HR pixels, so that 3 sigma stays inside the margin): a
    photo out of focus, whose LR edges are wider than a sharp edge's. The
    photos hold few such areas, and without them the models sharpened every
    edge: on the soft, defocused Wine photo they lost 3-5 dB to bicubic."""
    copies = rng.choices(photos, weights)[0]
    img = copies[0] if len(copies) == 1 or rng.random() < V2_NATIVE_P else rng.choice(copies[1:])
    m = MARGIN * scale
    side = hr_size + 2 * m
    y = rng.randrange(max(1, img.shape[0] - side + 1))
    x = rng.randrange(max(1, img.shape[1] - side + 1))
    hr = np.asarray(img[y:y + side, x:x + side])
    if hr.shape[0] < side or hr.shape[1] < side:  # a photo smaller than the crop: pad by reflection
        hr = np.pad(hr, ((0, side - hr.shape[0]), (0, side - hr.shape[1]), (0, 0)), mode="reflect")
    if rng.random() < 0.5:
        hr = hr[:, ::-1]
    hr = np.ascontiguousarray(np.rot90(hr, rng.randrange(4)))
    if rng.random() < soft_p:
        sigma = rng.uniform(0.5, 1.25 * scale)
        hr = np.asarray(Image.fromarray(hr).filter(ImageFilter.GaussianBlur(sigma)))
    lr = np.asarray(Image.fromarray(hr).resize((side // scale,) * 2, Image.BICUBIC))
    lr = lr[MARGIN:-MARGIN, MARGIN:-MARGIN]
    hr = hr[m:-m, m:-m]
    to_chw = lambda a: np.asarray(a, dtype=np.float32).transpose(2, 0, 1) / 255
    return to_chw(lr), to_chw(hr)


def batch(photos, n, hr_size, scale, rng, weights=None, soft_p=0.0):
    if weights is None:
        pairs = [random_pair(photos, hr_size, scale, rng) for _ in range(n)]
    else:
        pairs = [random_pair_v2(photos, weights, hr_size, scale, rng, soft_p) for _ in range(n)]
    lr = torch.from_numpy(np.stack([p[0] for p in pairs]))
    hr = torch.from_numpy(np.stack([p[1] for p in pairs]))
    return lr, hr


def gradient_loss(sr, hr):
    """L1 between the horizontal and vertical differences: weighs edges."""
    dx = lambda t: t[..., :, 1:] - t[..., :, :-1]
    dy = lambda t: t[..., 1:, :] - t[..., :-1, :]
    return (dx(sr) - dx(hr)).abs().mean() + (dy(sr) - dy(hr)).abs().mean()


def init_weights(net, args):
    if args.init_interpolating:
        interpolating_init(net, args.scale)
    if args.init:
        own = net.state_dict()
        # load_weights gives torchlite's eps 1e-5; a run with another eps
        # starts from the same function.
        init = refold_norm_eps(load_weights(args.init), TORCHLITE_NORM_EPS,
                               net.res_blocks[0].in1.eps)
        same = {k: v for k, v in init.items() if k in own and own[k].shape == v.shape}
        own.update(same)
        net.load_state_dict(own)
        print(f"initialised {len(same)} of {len(own)} tensors from {args.init}", flush=True)


def train_v1(args):
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    rng = random.Random(args.seed)
    photos = load_photos()
    print(f"{len(photos)} photos and sizes", flush=True)

    net = Generator(args.scale, 4)
    init_weights(net, args)
    opt = torch.optim.Adam(net.parameters(), lr=args.lr)

    budget = args.minutes * 60
    start = last_log = last_save = time.monotonic()
    step, loss_sum, loss_n = 0, 0.0, 0
    while True:
        elapsed = time.monotonic() - start
        if elapsed >= budget:
            break
        # Cosine decay over the time budget, after a short warm-up.
        t = elapsed / budget
        lr = args.lr * min(1.0, (step + 1) / 100) * 0.5 * (1 + math.cos(math.pi * t))
        for g in opt.param_groups:
            g["lr"] = lr
        lr_img, hr_img = batch(photos, args.batch, args.lr_patch * args.scale,
                               args.scale, rng)
        loss = (net(lr_img) - hr_img).abs().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        step += 1
        loss_sum += loss.item()
        loss_n += 1
        now = time.monotonic()
        if now - last_log > 60:
            print(f"{elapsed / 60:5.1f} min  step {step:6d}  lr {lr:.2e}  "
                  f"L1 {loss_sum / loss_n:.5f}", flush=True)
            loss_sum, loss_n, last_log = 0.0, 0, now
        if now - last_save > 300:
            torch.save(net.state_dict(), args.output)
            last_save = now
    torch.save(net.state_dict(), args.output)
    print(f"{step} steps in {(time.monotonic() - start) / 60:.1f} min -> {args.output}")


def v2_lr(args, step):
    """Warm-up, then a cosine from --lr down to --lr-min at --steps: a
    function of the step alone, so that a resumed run follows the same
    schedule whatever the sittings' lengths."""
    t = min(1.0, step / args.steps)
    warm = min(1.0, (step + 1) / args.warmup)
    return warm * (args.lr_min + (args.lr - args.lr_min) * 0.5 * (1 + math.cos(math.pi * t)))


def save_atomic(obj, path):
    tmp = path + ".tmp"
    torch.save(obj, tmp)
    os.replace(tmp, path)


def evaluate_native(net, scale, patch):
    """PSNR-Y on the native hold-out (evaluate.py's "native" set), PyTorch,
    the network run on patches of the training crop's size as the shipped
    model will record (SHIP_MARGIN)."""
    import evaluate
    net.eval()
    try:
        data = evaluate.pairs("native", scale)
        upscale = evaluate.torch_upscaler(net, scale, (patch, SHIP_MARGIN))
        rows = evaluate.measure(upscale, data, scale, with_ssim=False)
    finally:
        net.train()
    return rows


def train_v2(args):
    torch.set_num_threads(args.threads)
    d = args.ckpt_dir
    os.makedirs(d, exist_ok=True)
    last = os.path.join(d, "last.pt")
    done_flag = os.path.join(d, "done")

    net = Generator(args.scale, 4, norm_eps=args.norm_eps)
    # The head (the last upsample block and block4) holds the construction
    # that undoes the final tanh (21 ramps per colour, see interpolating_init):
    # Adam moves every weight by about the learning rate per step whatever
    # its gradient, and at 1e-4 that wrecks the ramps' knots within 20 steps
    # (L1 on training crops 0.009 -> 0.08 from the shipped x2 weights). It
    # learns at --head-lr-mult times the rate.
    last_up = f"up_blocks.{len(net.up_blocks) - 1}."
    head = lambda k: k.startswith(last_up) or k.startswith("block4.")
    opt = torch.optim.Adam([
        {"params": [p for k, p in net.named_parameters() if not head(k)], "mult": 1.0},
        {"params": [p for k, p in net.named_parameters() if head(k)], "mult": args.head_lr_mult},
    ], lr=args.lr)
    rng = random.Random(args.seed)
    best = -1e9
    if os.path.exists(last):
        ck = torch.load(last, map_location="cpu", weights_only=False)
        net.load_state_dict(ck["model"])
        opt.load_state_dict(ck["opt"])
        step = ck["step"]
        rng.setstate(ck["rng_py"])
        torch.set_rng_state(ck["rng_torch"])
        best = ck.get("best", best)
        print(f"resumed from {last} at step {step} (best eval {best:+.3f} dB)", flush=True)
        if checkpoint_norm_eps(ck) != args.norm_eps:
            # The weights as they are, not refolded: at x2 step 2964 the
            # step's weights with eps 3e-3 instead of 1e-5 gained on every
            # held-out photo (Wine -4.40 -> -2.67 dB, seeding -0.32 -> +1.48).
            print(f"InstanceNorm eps {checkpoint_norm_eps(ck):g} -> {args.norm_eps:g}", flush=True)
            best = -1e9  # a new function: earlier evaluations no longer compare
        if ck["args"].get("scale") != args.scale:
            raise SystemExit(f"{last} is a x{ck['args'].get('scale')} run")
    else:
        torch.manual_seed(args.seed)
        init_weights(net, args)
        step = 0
        print(f"new run in {d}", flush=True)
    if args.channels_last:
        net = net.to(memory_format=torch.channels_last)

    t0 = time.monotonic()
    photos = load_photos_v2(args.cache)
    weights, photos = [w for w, _ in photos], [c for _, c in photos]
    print(f"{len(photos)} photos, {sum(len(c) for c in photos)} copies "
          f"({time.monotonic() - t0:.0f} s)", flush=True)

    def checkpoint():
        save_atomic({"model": net.state_dict(), "opt": opt.state_dict(), "step": step,
                     "rng_py": rng.getstate(), "rng_torch": torch.get_rng_state(),
                     "best": best, "args": vars(args)}, last)

    def evaluate_now():
        nonlocal best
        t = time.monotonic()
        rows = evaluate_native(net, args.scale, args.lr_patch)
        gains = [r[0] - r[2] for _, _, r in rows]
        mean, worst = float(np.mean(gains)), float(np.min(gains))
        lanczos = float(np.mean([r[0] - r[4] for _, _, r in rows]))
        per = " ".join(f"{n.split('/')[-1].split('_by_')[0]}:{g:+.2f}" for (n, _, _), g in zip(rows, gains))
        line = (f"step {step} mean {mean:+.3f} dB over bicubic, {lanczos:+.3f} over Lanczos, "
                f"worst {worst:+.2f} | {per}")
        with open(os.path.join(d, "eval.log"), "a") as f:
            f.write(line + "\n")
        print(f"eval ({time.monotonic() - t:.0f} s): {line}", flush=True)
        # Keep the best by the mean gain, a photo losing more than 0.3 dB to
        # bicubic counting as a loss of 1 dB more: the targets in one number.
        score = mean - (1.0 if worst < -0.3 else 0.0)
        if score > best:
            best = score
            save_atomic({"model": net.state_dict(), "step": step, "eval": line,
                         "norm_eps": args.norm_eps}, os.path.join(d, "best.pt"))

    if step == 0 and args.eval_every:
        evaluate_now()  # the starting point
    hr_size = args.lr_patch * args.scale
    stop = args.steps if not args.chunk else min(args.steps, step + args.chunk)
    start = last_log = last_save = time.monotonic()
    start_step = step
    loss_sum, grad_sum, loss_n = 0.0, 0.0, 0
    # SIGTERM or SIGINT: checkpoint after the current step, then stop.
    stopping = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stopping.append(1))
    while step < stop and not stopping:
        lr = v2_lr(args, step)
        for g in opt.param_groups:
            g["lr"] = lr * g["mult"]
        lr_img, hr_img = batch(photos, args.batch, hr_size, args.scale, rng, weights, args.soft_p)
        if args.channels_last:
            lr_img = lr_img.contiguous(memory_format=torch.channels_last)
            hr_img = hr_img.contiguous(memory_format=torch.channels_last)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.bf16):
            sr = net(lr_img)
        sr = sr.float()
        l1 = (sr - hr_img).abs().mean()
        loss = l1
        if args.grad_loss:
            g_l = gradient_loss(sr, hr_img)
            loss = loss + args.grad_loss * g_l
            grad_sum += g_l.item()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        loss_sum += l1.item()
        loss_n += 1
        now = time.monotonic()
        if now - last_log > args.log_seconds:
            rate = (step - start_step) / (now - start)
            print(f"{time.strftime('%H:%M:%S')} step {step:6d}/{args.steps}  lr {lr:.2e}  "
                  f"L1 {loss_sum / loss_n:.5f}" + (f"  grad {grad_sum / loss_n:.5f}" if args.grad_loss else "")
                  + f"  {rate:.3f} steps/s", flush=True)
            loss_sum, grad_sum, loss_n, last_log = 0.0, 0.0, 0, now
        if args.eval_every and step % args.eval_every == 0:
            evaluate_now()
        if args.snapshot_every and step % args.snapshot_every == 0:
            save_atomic({"model": net.state_dict(), "step": step, "norm_eps": args.norm_eps},
                        os.path.join(d, f"step{step:06d}.pt"))
        if now - last_save > args.save_minutes * 60 or step == stop or stopping:
            checkpoint()
            last_save = time.monotonic()
    if step >= args.steps:
        if args.eval_every and step % args.eval_every:
            evaluate_now()
            checkpoint()
        open(done_flag, "w").write(f"{step}\n")
    print(f"step {step} of {args.steps}: {step - start_step} steps in "
          f"{(time.monotonic() - start) / 60:.1f} min -> {last}", flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scale", type=int, choices=(2, 4), required=True)
    ap.add_argument("--data", choices=("v1", "v2"), default="v1",
                    help="v1: the eight wallpapers, time budget (--minutes, -o); "
                         "v2: photos.V2_TRAIN, step schedule, resumable (--steps, --ckpt-dir)")
    ap.add_argument("--minutes", type=float,
                    help="v1: training time; the learning rate decays over it")
    ap.add_argument("-o", "--output", help="v1: the state dict to write")
    ap.add_argument("--steps", type=int, help="v2: total steps; the learning rate decays over them")
    ap.add_argument("--ckpt-dir", help="v2: checkpoints (last.pt, best.pt, eval.log); resumed from")
    ap.add_argument("--chunk", type=int, default=0,
                    help="v2: stop after this many steps (0: at --steps); rerun to continue")
    ap.add_argument("--cache", default="/work/train-v2/cache", help="v2: decoded photos")
    ap.add_argument("--init", help="model.bin, state dict or checkpoint to start from")
    ap.add_argument("--init-interpolating", action="store_true",
                    help="start as a bilinear upscale (see interpolating_init)")
    ap.add_argument("--lr", type=float, default=5e-4)
    ap.add_argument("--lr-min", type=float, default=0.0, help="v2: where the cosine ends")
    ap.add_argument("--warmup", type=int, default=100, help="v2: warm-up steps")
    ap.add_argument("--head-lr-mult", type=float, default=1.0,
                    help="v2: learning rate of the last upsample block and block4, "
                         "times --lr (0 freezes them)")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--lr-patch", type=int, default=24, help="LR crop side")
    ap.add_argument("--grad-loss", type=float, default=0.0,
                    help="v2: weight of an L1 loss on image gradients, added to L1")
    ap.add_argument("--soft-p", type=float, default=0.0,
                    help="v2: chance that a crop is blurred first, as if out of focus "
                         "(see random_pair_v2)")
    ap.add_argument("--norm-eps", type=float, default=TORCHLITE_NORM_EPS,
                    help="v2: InstanceNorm's eps while training; checkpoints are folded back "
                         "to torchlite's 1e-5 when loaded (srpgan.fold_norm_eps)")
    ap.add_argument("--bf16", action="store_true", help="v2: bfloat16 autocast for the network")
    ap.add_argument("--channels-last", action="store_true", help="v2: NHWC tensors")
    ap.add_argument("--eval-every", type=int, default=0,
                    help="v2: measure the native hold-out every this many steps (eval.log, best.pt)")
    ap.add_argument("--snapshot-every", type=int, default=0,
                    help="v2: keep a copy of the weights every this many steps")
    ap.add_argument("--save-minutes", type=float, default=5.0, help="v2: checkpoint interval")
    ap.add_argument("--log-seconds", type=float, default=60.0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--threads", type=int, default=min(2, os.cpu_count()))
    args = ap.parse_args()
    if args.data == "v1":
        if args.minutes is None or not args.output:
            ap.error("--data v1 needs --minutes and -o")
        train_v1(args)
    else:
        if not args.steps or not args.ckpt_dir:
            ap.error("--data v2 needs --steps and --ckpt-dir")
        train_v2(args)


if __name__ == "__main__":
    main()

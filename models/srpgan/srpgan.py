"""The SRPGAN generator in PyTorch, laid out exactly as torchlite lays it
out, and srrun's input rule; the one Python definition of the network that
the fixtures, the peer benchmarks and training share."""
import math
import struct

import numpy as np
import torch
import torch.nn as nn


class InstanceNorm1x1Aware(nn.InstanceNorm2d):
    """nn.InstanceNorm2d, which PyTorch refuses on a 1x1 image ("Expected more
    than 1 spatial element") although the formula is defined there: every
    value equals the mean, so the result is 0. srrun computes that; this
    computes the same formula explicitly for 1x1 inputs only."""

    def forward(self, x):
        if x.shape[-1] * x.shape[-2] > 1:
            return super().forward(x)
        mean = x.mean(dim=(2, 3), keepdim=True)
        var = x.var(dim=(2, 3), unbiased=False, keepdim=True)
        return (x - mean) / torch.sqrt(var + self.eps)


TORCHLITE_NORM_EPS = 1e-5  # nn.InstanceNorm2d's, which torchlite and srrun use


class ResidualBlock(nn.Module):
    def __init__(self, channels, norm_eps=TORCHLITE_NORM_EPS):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, kernel_size=3, padding=1)
        self.in1 = InstanceNorm1x1Aware(channels, eps=norm_eps)
        self.prelu = nn.PReLU()
        self.conv2 = nn.Conv2d(channels, channels, kernel_size=3, padding=1)
        self.in2 = InstanceNorm1x1Aware(channels, eps=norm_eps)

    def forward(self, x):
        r = self.prelu(self.in1(self.conv1(x)))
        return x + self.in2(self.conv2(r))


class UpsampleBlock(nn.Module):
    def __init__(self, channels, up_scale):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels * up_scale ** 2, kernel_size=3, padding=1)
        self.pixel_shuffle = nn.PixelShuffle(up_scale)
        self.prelu = nn.PReLU()

    def forward(self, x):
        return self.prelu(self.pixel_shuffle(self.conv(x)))


class Generator(nn.Module):
    """The SRPGAN generator exactly as torchlite lays it out. norm_eps other
    than torchlite's is for training only (see fold_norm_eps)."""

    def __init__(self, scale_factor, res_blocks_count=4, channels=64,
                 norm_eps=TORCHLITE_NORM_EPS):
        super().__init__()
        c = channels  # torchlite's width is 64; smaller ones keep test files small
        self.block1 = nn.Sequential(nn.Conv2d(3, c, kernel_size=9, padding=4), nn.PReLU())
        self.res_blocks = nn.Sequential(
            *[ResidualBlock(c, norm_eps) for _ in range(res_blocks_count)])
        self.block3 = nn.Sequential(nn.Conv2d(c, c, kernel_size=3, padding=1), nn.PReLU())
        self.up_blocks = nn.Sequential(
            *[UpsampleBlock(c, 2) for _ in range(int(math.log2(scale_factor)))])
        self.block4 = nn.Conv2d(c, 3, kernel_size=9, padding=4)

    def forward(self, x):
        block1 = self.block1(x)
        block3 = self.block3(self.res_blocks(block1))
        up = self.up_blocks(block1 + block3)
        return (torch.tanh(self.block4(up)) + 1) / 2


def fold_norm_eps(state, norm_eps):
    """The weights of a network trained with InstanceNorm's eps = norm_eps,
    made torchlite's network (eps 1e-5) that computes the same function, so
    srrun and any SRPGAN code run them unchanged. Every InstanceNorm follows
    a convolution, and scaling that convolution's weight and bias by c
    scales its output's deviation from the mean by c and its variance by
    c^2: (cx - cm) / sqrt(c^2 v + e) = (x - m) / sqrt(v + e / c^2). So
    c = sqrt(1e-5 / norm_eps) turns eps 1e-5 into norm_eps exactly.

    Why train with a larger eps: with 1e-5, a smooth photo's faint
    features are normalised to the same strength as a textured photo's
    edges, and the network sharpens what is only noise (the soft Wine
    photo lost 3-4 dB to bicubic). A larger eps leaves weak features weak."""
    return refold_norm_eps(state, norm_eps, TORCHLITE_NORM_EPS)


def refold_norm_eps(state, from_eps, to_eps):
    """The weights that compute with InstanceNorm eps to_eps what state
    computes with from_eps (see fold_norm_eps): also the way back, for
    training on from a shipped model with a larger eps."""
    if from_eps == to_eps:
        return state
    c = math.sqrt(to_eps / from_eps)
    folded = dict(state)
    for k, v in state.items():
        parts = k.split(".")
        if parts[0] == "res_blocks" and parts[2] in ("conv1", "conv2"):
            folded[k] = v * c
    return folded


def to_network_input(img):
    """RGB in [0,1]: alpha composited on white, gray replicated (srrun's rule)."""
    if img.mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    if img.mode in ("RGBA", "LA"):
        a = np.asarray(img.getchannel("A"), dtype=np.float32)[..., None] / 255
        rgb = np.asarray(img.convert("RGB"), dtype=np.float32) / 255
        x = rgb * a + (1 - a)
    else:
        x = np.asarray(img.convert("RGB"), dtype=np.float32) / 255
    return torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)))[None]


def patch_spans(n, size, margin):
    """[(start, core0, core1)] of the patches along an axis of n pixels
    (runtime/patches.h): one, the whole axis, if n <= size; else the fewest
    that give every core pixel `margin` pixels of context or the border,
    spread evenly, each core ending halfway through its overlap."""
    if n <= size:
        return [(0, 0, n)]
    count = -(-(n - 2 * margin) // (size - 2 * margin))
    starts = [(k * (n - size) * 2 + count - 1) // (2 * (count - 1)) for k in range(count)]
    ends = [(starts[k + 1] + starts[k] + size) // 2 for k in range(count - 1)]
    return [(s, 0 if k == 0 else ends[k - 1], n if k == count - 1 else ends[k])
            for k, s in enumerate(starts)]


def run_patches(net, x, scale, size, margin):
    """net on x (1 x 3 x H x W) patch by patch (patch_spans on each axis),
    each patch's core kept: what srrun computes for a model with a patch."""
    h, w = x.shape[2:]
    out = torch.zeros(1, 3, h * scale, w * scale)
    with torch.no_grad():
        for ya, y0, y1 in patch_spans(h, size, margin):
            for xa, x0, x1 in patch_spans(w, size, margin):
                o = net(x[:, :, ya:ya + min(size, h), xa:xa + min(size, w)])
                out[:, :, y0 * scale:y1 * scale, x0 * scale:x1 * scale] = \
                    o[:, :, (y0 - ya) * scale:(y1 - ya) * scale, (x0 - xa) * scale:(x1 - xa) * scale]
    return out


def read_model_bin(path):
    """A model.bin (docs/model-bin.md) as a state dict of float32 tensors,
    its (scale, blocks, width) and its (patch, patch_margin), (0, 0) when it
    has none. Checks the magic and the version only: srrun checks the rest."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:8] != b"\x89SRB\r\n\x1a\n":
        raise ValueError(f"{path}: not a model.bin")
    version, = struct.unpack_from("<I", data, 8)
    if version not in (1, 2):
        raise ValueError(f"{path}: model.bin version {version}")
    n, n_hparams = struct.unpack_from("<II", data, 40)
    named = {}
    if version == 1:  # unnamed, in srpgan's order
        hparams = struct.unpack_from("<3I", data, 64)
    else:
        for i in range(n_hparams):
            name, value = struct.unpack_from("<24sq", data, 128 + 128 * n + 32 * i)
            named[name.rstrip(b"\0").decode()] = value
        hparams = (named["scale"], named["blocks"], named["width"])
    state = {}
    for i in range(n):
        name, dtype, ndim, *rest = struct.unpack_from("<64sII4QQQQ", data, 128 + 128 * i)
        shape, offset, nbytes = rest[:ndim], rest[4], rest[5]
        a = np.frombuffer(data, {0: "<f4", 1: "<f2"}[dtype], nbytes // (4 - 2 * dtype), offset)
        state[name.rstrip(b"\0").decode()] = torch.from_numpy(a.astype(np.float32).reshape(shape))
    return state, hparams, (named.get("patch", 0), named.get("patch_margin", 0))


def load_weights(path):
    """A state dict of torchlite's network from a model.bin, a .pth state
    dict, or a training checkpoint of train.py (its "model", with its
    norm_eps folded in)."""
    with open(path, "rb") as f:
        magic = f.read(8)
    if magic == b"\x89SRB\r\n\x1a\n":
        return read_model_bin(path)[0]
    state = torch.load(path, map_location="cpu", weights_only=False)
    if not (isinstance(state, dict) and "model" in state):
        return state
    return fold_norm_eps(state["model"], checkpoint_norm_eps(state))


def checkpoint_norm_eps(checkpoint):
    """The InstanceNorm eps a train.py checkpoint was trained with."""
    return checkpoint.get("norm_eps", checkpoint.get("args", {}).get("norm_eps",
                                                                     TORCHLITE_NORM_EPS))

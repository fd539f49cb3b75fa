"""What the peers of issue 16's architectures share that needs torch: a
released state dict (as bench/make_arch_weights.py writes them, or a real
release) read back into tests/fixtures/sr_archs.py's network, its
hyper-parameters from the keys and shapes as srrun reads them.

    net, name = load("RealESRGAN_x4plus.pth")   # eval mode, [0, 1] in and out

RRDBNet is read under its new keys only (conv_first, body.N.rdbK.convJ);
EDSR runs on the image times rgb_range, so its network here is wrapped to
take and give [0, 1] like the others (res_scale is not in the file: 1, the
baseline's; the time does not depend on it).
"""
import math
import os
import re
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "fixtures"))
import sr_archs  # noqa: E402


def _count(sd, pattern):
    return sum(1 for k in sd if re.fullmatch(pattern, k))


class _Scaled(torch.nn.Module):
    """EDSR in [0, 1] units: runs it on x times rgb_range, divides back."""

    def __init__(self, net, rgb_range):
        super().__init__()
        self.net, self.rgb_range = net, rgb_range

    def forward(self, x):
        return self.net(x * self.rgb_range) / self.rgb_range


def _rgb_range(sd):
    """EDSR's rgb_range, from sub_mean's bias (-rgb_range times the mean)."""
    return round(-float(sd["sub_mean.bias"][0]) / sr_archs.DIV2K_MEAN[0])


def network(sd):
    """(module, description) for the state dict sd, unwrapped."""
    if "conv_first.weight" in sd and "body.0.rdb1.conv1.weight" in sd:
        blocks = _count(sd, r"body\.\d+\.rdb1\.conv1\.weight")
        feat = sd["conv_first.weight"].shape[0]
        grow = sd["body.0.rdb1.conv1.weight"].shape[0]
        # BasicSR's x2 and x1 take the input pixel-unshuffled: 12 or 48 channels.
        scale = {3: 4, 12: 2, 48: 1}[sd["conv_first.weight"].shape[1]]
        return (sr_archs.RRDBNet(blocks, feat, grow, scale),
                f"rrdbnet {blocks} blocks {feat}/{grow} x{scale}")
    if "sub_mean.weight" in sd:
        blocks = _count(sd, r"body\.\d+\.body\.0\.weight")
        feat = sd["head.0.weight"].shape[0]
        ups = _count(sd, r"tail\.0\.\d+\.weight")
        scale = 3 if sd["tail.0.0.weight"].shape[0] == 9 * feat else 2 ** ups
        net = sr_archs.EDSR(blocks, feat, scale, rgb_range=_rgb_range(sd))
        return net, f"edsr {blocks} blocks {feat} x{scale} rgb_range {_rgb_range(sd)}"
    if "upconv1.weight" in sd:
        blocks = _count(sd, r"body\.\d+\.conv1\.weight")
        feat = sd["conv_first.weight"].shape[0]
        scale = 4 if "upconv2.weight" in sd else math.isqrt(sd["upconv1.weight"].shape[0] // feat)
        return sr_archs.MSRResNet(blocks, feat, scale), f"msrresnet {blocks} blocks {feat} x{scale}"
    if "body.0.weight" in sd and "body.1.weight" in sd and sd["body.1.weight"].dim() == 1:
        convs = sum(1 for k, v in sd.items() if re.fullmatch(r"body\.\d+\.weight", k) and v.dim() == 4)
        feat = sd["body.0.weight"].shape[0]
        last = max(int(k.split(".")[1]) for k in sd if k.startswith("body."))
        scale = math.isqrt(sd[f"body.{last}.weight"].shape[0] // 3)
        return (sr_archs.SRVGGNetCompact(feat, convs - 2, scale),
                f"srvgg {convs - 2} convs {feat} x{scale}")
    sys.exit("arch_net.py: not an RRDBNet (new keys), SRVGGNetCompact, EDSR or MSRResNet state dict")


def load(path):
    """(network in [0, 1] units, eval mode, weights loaded; its description)."""
    sd = torch.load(path, map_location="cpu", weights_only=True)
    for wrap in ("params_ema", "params"):
        if wrap in sd:
            sd = sd[wrap]
            break
    net, what = network(sd)
    net.load_state_dict(sd)
    net.eval()
    if isinstance(net, sr_archs.EDSR):
        net = _Scaled(net, _rgb_range(sd)).eval()
    return net, what



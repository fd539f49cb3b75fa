"""What the peers that run without torch (ONNX Runtime, ncnn) share with
bench/pytorch_srpgan.py, in numpy and Pillow only: srrun's input rule, the
PNG written, and the one JSON line each prints."""
import json
import resource

import numpy as np
from PIL import Image


def network_input(img):
    """models/srpgan/srpgan.py's to_network_input without torch: RGB in
    [0, 1], alpha composited on white, gray replicated; (3, H, W) float32."""
    if img.mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    if img.mode in ("RGBA", "LA"):
        a = np.asarray(img.getchannel("A"), dtype=np.float32)[..., None] / 255
        rgb = np.asarray(img.convert("RGB"), dtype=np.float32) / 255
        x = rgb * a + (1 - a)
    else:
        x = np.asarray(img.convert("RGB"), dtype=np.float32) / 255
    return np.ascontiguousarray(x.transpose(2, 0, 1))


def write_png(y, path):
    """(3, H, W) in [0, 1] as 8-bit RGB: round half to even, as srrun."""
    levels = np.round(np.clip(y, 0, 1) * 255).astype(np.uint8).transpose(1, 2, 0)
    Image.fromarray(np.ascontiguousarray(levels), "RGB").save(path, compress_level=3)


def report(peer, threads, x, y, t0, t1, t2, t3):
    """The JSON line: network time t1..t2, total t0..t3, peak RSS."""
    print(json.dumps({
        "peer": peer, "threads": threads,
        "width": x.shape[2], "height": x.shape[1], "scale": y.shape[2] // x.shape[2],
        "network_s": round(t2 - t1, 4), "total_s": round(t3 - t0, 4),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }))

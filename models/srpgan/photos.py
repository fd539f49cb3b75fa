"""The photographs the default model is trained and evaluated on: Debian's
plasma-workspace-wallpapers, real photographs only (the illustrations and
renders in that package are left out). Each wallpaper is stored once, at
2560x1600, under several size names. The held-out ones are never trained on.
"""
import glob
import os

from PIL import Image

WALLPAPERS = "/usr/share/wallpapers"

TRAIN = ["BytheWater", "ColdRipple", "ColorfulCups", "DarkestHour",
         "FallenLeaf", "Kite", "Path", "summer_1am"]
HELD_OUT = ["EveningGlow", "Grey", "OneStandsOut"]


def photo(name, scale=1.0):
    """The wallpaper as RGB, downscaled (Pillow bicubic) when scale < 1:
    smaller copies are sharper per pixel and carry no JPEG blocking."""
    paths = glob.glob(os.path.join(WALLPAPERS, name, "contents", "images", "*"))
    if not paths:
        raise SystemExit(f"{name}: not found under {WALLPAPERS} "
                         "(apt-get install plasma-workspace-wallpapers)")
    img = Image.open(max(paths, key=os.path.getsize)).convert("RGB")
    if scale != 1.0:
        size = (round(img.width * scale), round(img.height * scale))
        img = img.resize(size, Image.BICUBIC)
    return img

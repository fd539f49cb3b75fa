#!/bin/bash
# Writes `srrun --plan` for models x image sizes x memory budgets into a
# folder, one file per case, so that a planner change can be checked to keep
# every plan (diff -r the folders of two builds) or shown to change which.
# Planning runs nothing: the matrix takes some 20 s.
#
#   bash bench/plan_matrix.sh build/srrun /tmp/plans-main IMAGE_DIR MODEL...
#
# IMAGE_DIR holds c96x60.png, c256x256.png, c512x512.png and c700x700.png
# (any images of those sizes: a plan depends on the size alone). MODELs are
# .pth or model.bin files (the default models, tests/fixtures/*.pth, and
# bench/make_arch_weights.py's RealESRGAN_x4plus and realesr-animevideov3).
# Budgets: none, 1G, 300M, 100M, 30M (where a case cannot fit, the file holds
# srrun's message). Stop 30 used it with 7 models: 140 cases.
set -eu
[ $# -ge 4 ] || { sed -n 2,14p "$0" >&2; exit 2; }
srrun=$1 out=$2 images=$3
shift 3
mkdir -p "$out"
for model in "$@"; do
    for size in 96x60 256x256 512x512 700x700; do
        for budget in "" 1G 300M 100M 30M; do
            "$srrun" -q -t 1 ${budget:+-m "$budget"} --plan "$model" "$images/c$size.png" \
                > "$out/$(basename "$model")_${size}_${budget:-default}.txt" 2>&1 || true
        done
    done
done
echo "$(ls "$out" | wc -l) plans in $out"

#!/usr/bin/env bash
# Peak memory and time against image size: srrun (default budget, and
# --max-memory BUDGET) and PyTorch, run alternately on the same weights and
# photo crops, 2 threads. CSV on stdout.
#
#   bash bench/memory.sh MODEL.pth PHOTO [BUDGET] [SIZES...]
#   e.g. bash bench/memory.sh srpgan_x4.pth big_photo.jpg 400M 256 512 700 1000
#
# Needs /usr/bin/time and, for the peer, torch and Pillow in $PYTHON (default
# python3; Debian's /usr/bin/python3 with python3-torch and -pil works too).
# With ONNX=model.onnx (made by bench/onnxruntime_srpgan.py export) it also
# runs ONNX Runtime, from the python3 on PATH (pip install onnxruntime).
# With NCNN=PREFIX (PREFIX.param and PREFIX.bin, made by
# bench/ncnn_srpgan.py export) it also runs ncnn twice, with its defaults and
# with --no-sgemm, from the python3 on PATH (pip install ncnn). Beware: with
# its defaults ncnn im2cols the 9x9 output convolution over the whole image,
# about 20 KB per output pixel (1.4 GB at 64x64 x4, some 21 GB at 256x256 x4),
# so that runner is skipped above NCNN_SGEMM_MAX (default 128) pixels a side.
# PYTORCH_MAX skips PyTorch above that many pixels a side (PyTorch 2.15 from
# pip took 141 s at 512 and 272 s at 700 here).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
srrun=${SRRUN:-$here/../build/srrun}
py=${PYTHON:-python3}
model=$1 photo=$2 budget=${3:-400M}
shift $(( $# < 3 ? $# : 3 ))
sizes=("${@:-256 512 700}")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

echo "size,runner,seconds,peak_rss_mb"
for size in ${sizes[@]}; do
    crop=$work/crop_$size.png
    "$py" -c "import sys; from PIL import Image
im = Image.open(sys.argv[1]).convert('RGB'); s = int(sys.argv[3])
assert im.width >= s and im.height >= s, 'photo smaller than the crop'
im.crop((0, 0, s, s)).save(sys.argv[2])" "$photo" "$crop" "$size"
    run() { # label, command...
        local label=$1; shift
        /usr/bin/time -f "%e %M" -o "$work/t" "$@" > /dev/null 2>&1 || { echo "$size,$label,failed,"; return; }
        read -r secs kb < "$work/t"
        echo "$size,$label,$secs,$((kb / 1024))"
    }
    run srrun "$srrun" -q -b cpu -t 2 "$model" "$crop" -o "$work/sr.png"
    run "srrun -m $budget" "$srrun" -q -b cpu -t 2 -m "$budget" "$model" "$crop" -o "$work/sr_b.png"
    if (( size <= ${PYTORCH_MAX:-100000} )); then
        run pytorch "$py" "$here/pytorch_srpgan.py" "$model" "$crop" "$work/pt.png" --threads 2
    else
        echo "$size,pytorch,skipped,"
    fi
    if [ -n "${ONNX:-}" ]; then
        run onnxruntime python3 "$here/onnxruntime_srpgan.py" run "$ONNX" "$crop" "$work/ort.png" --threads 2
    fi
    if [ -n "${NCNN:-}" ]; then
        if (( size <= ${NCNN_SGEMM_MAX:-128} )); then
            run ncnn python3 "$here/ncnn_srpgan.py" run "$NCNN" "$crop" "$work/ncnn.png" --threads 2
        else
            echo "$size,ncnn,skipped,"
        fi
        run "ncnn no-sgemm" python3 "$here/ncnn_srpgan.py" run "$NCNN" "$crop" "$work/ncnn_ns.png" --threads 2 --no-sgemm
    fi
done

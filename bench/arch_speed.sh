#!/usr/bin/env bash
# Whole-process time and peak RSS of srrun and its peers on issue 16's
# architectures, 2 threads, runners alternating within each round so that a
# loaded machine's drift falls on all of them alike. CSV on stdout; summarise
# with bench/arch_summary.py.
#
#   bash bench/arch_speed.sh WEIGHTS_DIR PHOTO ROUNDS MODEL:SIZE[,SIZE...][:RUNNERS] ...
#   e.g. bash bench/arch_speed.sh /tmp/w photo.jpg 3 realesr-animevideov3:96x60,256x256 \
#            RealESRGAN_x4plus:96x60 RealESRGAN_x4plus:256x256:srrun,onnxruntime
#
# WEIGHTS_DIR holds MODEL.pth (bench/make_arch_weights.py), and where ONNX
# Runtime and ncnn are to run, MODEL.onnx and MODEL.param/.bin
# (bench/export_arch.py); a runner whose file is missing is left out.
# RUNNERS (default all): srrun, pytorch, onnxruntime, ncnn. Crops are taken
# from PHOTO's top left. Each line: model, size, runner, round, seconds (as
# bench/README's SRPGAN table counts them: srrun's whole process; a peer's
# total_s, from loading the weights to the PNG written, its import left out),
# wall (the whole process, /usr/bin/time, the import included), peak RSS in
# MB (/usr/bin/time), the 1-minute load average before the run.
# With STATS=DIR, srrun also writes --stats DIR/MODEL_SIZE_ROUND.json.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
srrun=${SRRUN:-$here/../build/srrun}
weights=$1 photo=$2 rounds=$3
shift 3
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

echo "model,size,runner,round,seconds,wall,peak_rss_mb,load"
for spec in "$@"; do
    IFS=: read -r model sizes runners <<< "$spec"
    runners=${runners:-srrun,pytorch,onnxruntime,ncnn}
    w=$weights/$model
    for size in ${sizes//,/ }; do
        crop=$work/crop_$size.png
        python3 -c "import sys; from PIL import Image
im = Image.open(sys.argv[1]).convert('RGB'); w, h = map(int, sys.argv[3].split('x'))
assert im.width >= w and im.height >= h, 'photo smaller than the crop'
im.crop((0, 0, w, h)).save(sys.argv[2])" "$photo" "$crop" "$size"
        for round in $(seq "$rounds"); do
            for runner in ${runners//,/ }; do
                case $runner in
                srrun) stats=()
                    [ -n "${STATS:-}" ] && stats=(--stats "$STATS/${model}_${size}_$round.json")
                    cmd=("$srrun" -q -b cpu -t 2 "${stats[@]}" "$w.pth" "$crop" -o "$work/out.png") ;;
                pytorch) cmd=(python3 "$here/pytorch_arch.py" "$w.pth" "$crop" "$work/out.png" --threads 2) ;;
                onnxruntime) [ -f "$w.onnx" ] || continue
                    cmd=(python3 "$here/onnxruntime_srpgan.py" run "$w.onnx" "$crop" "$work/out.png" --threads 2) ;;
                ncnn) [ -f "$w.param" ] || continue
                    cmd=(python3 "$here/ncnn_srpgan.py" run "$w" "$crop" "$work/out.png" --threads 2) ;;
                *) echo "arch_speed.sh: unknown runner $runner" >&2; exit 2 ;;
                esac
                load=$(cut -d' ' -f1 /proc/loadavg)
                if /usr/bin/time -f "%e %M" -o "$work/t" "${cmd[@]}" > "$work/out" 2> "$work/err"; then
                    read -r wall kb < "$work/t"
                    secs=$wall
                    [ "$runner" = srrun ] || secs=$(python3 -c "import json, sys
print(json.loads(open(sys.argv[1]).read().splitlines()[-1])['total_s'])" "$work/out")
                    echo "$model,$size,$runner,$round,$secs,$wall,$((kb / 1024)),$load"
                else
                    echo "$model,$size,$runner,$round,failed,,,$load"; sed 's/^/  /' "$work/err" >&2
                fi
            done
        done
    done
done

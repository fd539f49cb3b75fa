#!/usr/bin/env bash
# The GPU checks of the CUDA backend, for a lent GPU machine that cannot
# install packages (no OpenBLAS, libpng, libjpeg or cmocka there) and has
# little device time. Two halves:
#
#   bash bench/gpu_kit.sh pack           here: build Release with CUDA and
#                                        put the binaries and the shared
#                                        libraries they need in .gpukit/
#   bash bench/gpu_kit.sh check OUT_DIR  there, in the repository's root
#                                        (.gpukit carried): test_cuda and
#                                        test_archs_cuda, the same under
#                                        compute-sanitizer, and
#                                        bench/cuda_vs_pytorch.py on SRPGAN,
#                                        RealESRGAN_x4plus and
#                                        realesr-animevideov3
#
# The binaries hold absolute paths of this checkout (the fixtures, the CUDA
# module in build/), so `check` links that path to the copy it runs in.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
kit=$root/.gpukit

case ${1:-} in
pack)
    cmake -S "$root" -B "$root/build" -DCMAKE_BUILD_TYPE=Release -DSR_CUDA=ON -DSR_BENCH=ON > /dev/null
    cmake --build "$root/build" -j
    test -f "$root/build/libsrrun_cuda.so" || { echo "gpu_kit: no CUDA module: is nvcc on PATH?" >&2; exit 1; }
    rm -rf "$kit" && mkdir -p "$kit/lib"
    bins=("$root/build/srrun" "$root/build/bench/srbench" "$root/build/tests/test_cuda"
          "$root/build/tests/test_archs_cuda")
    cp "${bins[@]}" "$root/build/libsrrun_cuda.so" "$kit/"
    echo "$root" > "$kit/root"
    # Shared libraries from the system, not the CUDA ones (the machine has those).
    ldd "${bins[@]}" | awk '$3 ~ /^\// { print $3 }' |
        grep -v -e libc.so -e libm.so -e ld-linux | sort -u | xargs -I{} cp -L {} "$kit/lib/"
    grep -qx '/.gpukit/' "$root/.git/info/exclude" 2> /dev/null || echo '/.gpukit/' >> "$root/.git/info/exclude"
    du -sh "$kit"
    ;;
check)
    out=${2:?usage: gpu_kit.sh check OUT_DIR}
    here=$(cd "$root" && pwd)
    built=$(cat "$kit/root")
    if [ "$built" != "$here" ]; then
        if [ -e "$built" ] && [ "$(cd "$built" && pwd -P)" != "$(pwd -P)" ]; then
            echo "gpu_kit: $built is taken: the binaries need that path for this copy" >&2
            exit 1
        fi
        mkdir -p "$(dirname "$built")"
        [ -e "$built" ] || ln -s "$here" "$built"
    fi
    mkdir -p "$here/build" && cp "$kit/libsrrun_cuda.so" "$here/build/"
    export LD_LIBRARY_PATH=$kit/lib:/usr/local/cuda/lib64${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$out/gpu.txt"
    # The module was built against this machine's CUDA (13 here). Where its
    # runtime is missing or the driver is older, build it again with the
    # machine's own nvcc (a minute) rather than skip every test.
    probe() { "$kit/srrun" -b cuda --plan "$here/tests/fixtures/srpgan_x4.pth" "$here/samples/boats.jpg" > /dev/null 2> "$out/probe.txt"; }
    if ! probe; then
        echo "gpu_kit: $(cat "$out/probe.txt"); building the module with $(command -v nvcc)"
        nvcc -O3 -std=c++17 --extended-lambda -arch=native -shared -Xcompiler -fPIC \
            -I"$here/include" -I"$here" "$here/backends/cuda/backend.cu" \
            "$here/backends/cuda/kernels.cu" -lcublas -o "$here/build/libsrrun_cuda.so"
        probe || { cat "$out/probe.txt"; exit 1; }
    fi
    status=0
    # Each step bounded, so that one slow step leaves the others their turn
    # within a lent machine's minutes.
    timeout 60 "$kit/test_cuda" 2>&1 | tee "$out/test_cuda.txt" || status=1
    timeout 45 "$kit/test_archs_cuda" 2>&1 | tee "$out/test_archs_cuda.txt" || status=1
    timeout 100 compute-sanitizer --tool memcheck --leak-check full "$kit/test_cuda" \
        > "$out/memcheck.txt" 2>&1 || status=1
    tail -3 "$out/memcheck.txt"
    timeout 60 compute-sanitizer --tool memcheck --leak-check full "$kit/test_archs_cuda" \
        > "$out/memcheck_archs.txt" 2>&1 || status=1
    tail -3 "$out/memcheck_archs.txt"
    # The default model's shape (x4, 4 residual blocks); time does not depend
    # on the weights, and both runners get the same ones.
    PYTHONPATH=$here/models/srpgan python3 -c "import torch; from srpgan import Generator
torch.manual_seed(0); torch.save(Generator(4, 4).state_dict(), '/tmp/srpgan_x4_4blocks.pth')"
    PYTHONUNBUFFERED=1 timeout 100 python3 "$here/bench/cuda_vs_pytorch.py" \
        /tmp/srpgan_x4_4blocks.pth "$here/samples/boats.jpg" --srrun "$kit/srrun" \
        --srbench "$kit/srbench" --repeats 1 --csv "$out/cuda_vs_pytorch.csv" \
        --sizes ${SIZES:-700} 2>&1 | tee "$out/cuda_vs_pytorch.txt" || status=1
    # Issue 16's two networks with random weights of the released shapes.
    python3 "$here/bench/make_arch_weights.py" /tmp RealESRGAN_x4plus realesr-animevideov3
    for net in RealESRGAN_x4plus realesr-animevideov3; do
        PYTHONUNBUFFERED=1 timeout 120 python3 "$here/bench/cuda_vs_pytorch.py" \
            "/tmp/$net.pth" "$here/samples/boats.jpg" --srrun "$kit/srrun" \
            --srbench "$kit/srbench" --repeats 1 --csv "$out/cuda_vs_pytorch_$net.csv" \
            --sizes ${ARCH_SIZES:-256 512} 2>&1 | tee "$out/cuda_vs_pytorch_$net.txt" || status=1
    done
    exit $status
    ;;
*)
    echo "usage: gpu_kit.sh pack | check OUT_DIR" >&2
    exit 2
    ;;
esac

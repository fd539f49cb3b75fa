#!/usr/bin/env bash
# The install as a user gets it: `cmake --install` into a temporary prefix,
# which is then moved (P to Q), and
# - Q/bin/srrun upscales samples/boats.jpg x4 with the default model;
# - no installed file names the source or build tree, and a missing model
#   is looked for in Q, not in the build tree;
# - examples/ builds against Q with find_package (shared and static) and
#   with pkg-config (shared, and --static with libsrrun.a), and each runs;
# - a scratch project that adds the source tree with add_subdirectory
#   builds and runs with srrun::srrun, which shows it include/ only.
# Run by ctest (tests/CMakeLists.txt) with: source build cmake cc pkg-config libdir
set -euo pipefail
src=$1 build=$2 cmake=$3 cc=$4 pkg_config=$5 lib=$6
tmp=$(cd "$(mktemp -d)" && pwd -P)
trap 'rm -rf "$tmp"' EXIT
cd "$tmp"
fail() {
    echo "test_install: $*" >&2
    exit 1
}
# Runs a build step quietly; its output only when it fails.
quiet() {
    "$@" > "$tmp/log" 2>&1 || { cat "$tmp/log" >&2; fail "failed: $*"; }
}
# A PNG's width x height, from its IHDR.
png_size() {
    od -An -tu1 -j16 -N8 "$1" |
        awk '{ printf "%dx%d", $1*2^24 + $2*2^16 + $3*2^8 + $4, $5*2^24 + $6*2^16 + $7*2^8 + $8 }'
}
expect_size() { # file WxH
    [ -f "$1" ] || fail "$1 was not written"
    [ "$(png_size "$1")" = "$2" ] || fail "$1 is $(png_size "$1"), not $2"
}
loads_openmp_openblas() {
    case $(ldd "$1") in *openblas-openmp/libopenblas*) return 0 ;; *) return 1 ;; esac
}
leaves=$src/tests/fixtures/leaves_37x29.png # x4: 148x116

quiet "$cmake" --install "$build" --prefix "$tmp/P"
mv "$tmp/P" "$tmp/Q"
Q=$tmp/Q
for f in bin/srrun include/srrun.h "$lib/libsrrun.a" "$lib/pkgconfig/srrun.pc" \
    "$lib/cmake/srrun/srrunConfig.cmake" "$lib/cmake/srrun/srrunConfigVersion.cmake" \
    share/srrun/srpgan_x2.bin share/srrun/srpgan_x4.bin \
    share/doc/srrun/LICENSE share/doc/srrun/README.md; do
    [ -f "$Q/$f" ] || fail "$f is not installed"
done
soname=$(readelf -d "$Q/$lib/libsrrun.so" | sed -n 's/.*Library soname: \[\(.*\)\]/\1/p')
case $soname in libsrrun.so.[0-9]*) ;; *) fail "libsrrun.so's SONAME is '$soname'" ;; esac
[ -f "$Q/$lib/$soname" ] || fail "$soname is not installed"

# Nothing installed may lead back to the trees it was built from (debug
# information aside, which names the source files: not in a Release build).
files=("$Q/$lib/pkgconfig/srrun.pc" "$Q/$lib"/cmake/srrun/*.cmake)
for f in "$Q/bin/srrun" "$Q/$lib"/libsrrun.*; do
    case $(readelf -S "$f") in *.debug_info*) ;; *) files+=("$f") ;; esac
done
if grep -l -F -e "$src" -e "$build" "${files[@]}" >&2; then
    fail "these installed files name $src or $build"
fi

# The CLI, with the default model, and OpenBLAS's OpenMP build.
size=$("$Q/bin/srrun" --plan "$src/samples/boats.jpg" | sed -n 's/^plan for \([0-9]*\)x\([0-9]*\) .*/\1 \2/p')
read -r w h <<< "$size"
"$Q/bin/srrun" -q "$src/samples/boats.jpg"
expect_size boats_x4.png "$((w * 4))x$((h * 4))"
loads_openmp_openblas "$Q/bin/srrun" || fail "Q/bin/srrun loads another OpenBLAS"

# find_package: libsrrun.so finds the models next to itself; libsrrun.a,
# linked into a program outside Q, through $SRRUN_MODEL_DIR.
quiet "$cmake" -S "$src/examples" -B example -DCMAKE_PREFIX_PATH="$Q" -DCMAKE_C_COMPILER="$cc"
quiet "$cmake" --build example
example/upscale "$leaves" cmake_shared.png
expect_size cmake_shared.png 148x116
SRRUN_MODEL_DIR=$Q/share/srrun example/upscale_static "$leaves" cmake_static.png
expect_size cmake_static.png 148x116

# pkg-config: shared, and static (libsrrun.a by name, what it needs from
# --static); the static program placed in Q/bin finds Q/share/srrun.
export PKG_CONFIG_PATH=$Q/$lib/pkgconfig
quiet "$cc" "$src/examples/upscale.c" -o pc_shared $("$pkg_config" --cflags --libs srrun) \
    -Wl,-rpath,"$Q/$lib"
./pc_shared "$leaves" pc_shared.png
expect_size pc_shared.png 148x116
libs=$("$pkg_config" --static --libs srrun)
quiet "$cc" "$src/examples/upscale.c" -o "$Q/bin/pc_static" $("$pkg_config" --cflags srrun) \
    ${libs/-lsrrun/-l:libsrrun.a}
case $(readelf -d "$Q/bin/pc_static") in *libsrrun.so*) fail "pc_static needs libsrrun.so" ;; esac
loads_openmp_openblas "$Q/bin/pc_static" || fail "srrun.pc --static links another OpenBLAS"
"$Q/bin/pc_static" "$leaves" pc_static.png
expect_size pc_static.png 148x116

# A missing default model is looked for in Q, and not in the build tree
# (which has one).
rm "$Q/share/srrun/srpgan_x2.bin"
if "$Q/bin/srrun" -q -s 2 "$leaves" -o x2.png 2> err.txt; then
    fail "srrun -s 2 found an x2 model outside Q"
fi
grep -qF "no srpgan_x2.bin in $Q/share/srrun" err.txt || fail "unexpected error: $(cat err.txt)"

# add_subdirectory from another project: srrun::srrun, include/ only, and
# neither srrun's tests nor its CUDA module.
mkdir scratch
cat > scratch/CMakeLists.txt << END
cmake_minimum_required(VERSION 3.18)
project(scratch LANGUAGES C)
add_subdirectory("$src" srrun)
add_executable(upscale "$src/examples/upscale.c")
target_link_libraries(upscale PRIVATE srrun::srrun)
add_executable(public_only public_only.c)
target_link_libraries(public_only PRIVATE srrun::srrun)
if(TARGET test_api OR TARGET srrun_cuda)
  message(FATAL_ERROR "srrun's tests or CUDA module are built inside another project")
endif()
END
cat > scratch/public_only.c << 'END'
#if __has_include("base/locate.h")
#error "srrun::srrun shows srrun's source folder, not just include/"
#endif
#include <srrun.h>
int main(void) { return sr_version()[0] == '\0'; }
END
quiet "$cmake" -S scratch -B scratch/build -DCMAKE_C_COMPILER="$cc"
quiet "$cmake" --build scratch/build -j2 --target upscale public_only
scratch/build/public_only
scratch/build/upscale "$leaves" subdirectory.png
expect_size subdirectory.png 148x116
# ... and installs nothing of srrun's: the other project installs what it
# links.
quiet "$cmake" --install scratch/build --prefix "$PWD/scratch/prefix"
if [ -e scratch/prefix ]; then
    fail "add_subdirectory installed srrun's files: $(find scratch/prefix -type f | head -3)"
fi

#!/usr/bin/env bash
# Runs each fuzzer built in BUILD (cmake -DSR_FUZZ=ON with clang) for
# SECONDS from its seed corpus: the committed fixtures, fuzz/seeds/ and
# tests/crashers/. New inputs go to a scratch corpus under $FUZZ_WORK
# (default: a temporary folder), never into the source tree. Fails on the
# first crash, leak, timeout or out-of-memory; the input that did it is
# left in the working folder as crash-*/leak-*/timeout-*/oom-*.
#   fuzz/run.sh BUILD SECONDS [fuzz_zip fuzz_pth ...]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="$(cd "$1" && pwd)"
seconds="$2"
shift 2
names=("$@")
[ ${#names[@]} -gt 0 ] || names=(fuzz_zip fuzz_pth fuzz_pickle fuzz_image fuzz_modelbin fuzz_cli fuzz_plan)
work="${FUZZ_WORK:-$(mktemp -d)}"
mkdir -p "$work" && work="$(cd "$work" && pwd)"

seeds() {
    case "$1" in
    fuzz_zip | fuzz_pth) ls "$root"/fuzz/seeds/*.pth "$root"/tests/crashers/*.pth ;;
    fuzz_pickle) ls "$root"/fuzz/seeds/*.pickle ;;
    fuzz_image) ls "$root"/tests/fixtures/*_[0-9]*x[0-9]*.png "$root"/tests/fixtures/*.jpg \
                   "$root"/fuzz/seeds/*.png "$root"/fuzz/seeds/*.jpg \
                   "$root"/tests/crashers/*.png "$root"/tests/crashers/*.jpg ;;
    fuzz_modelbin) find "$root"/tests/fixtures "$root"/fuzz/seeds -name '*.bin' -size -256k ;;
    fuzz_cli) ls "$root"/fuzz/seeds/*.argv ;;
    esac 2>/dev/null || true
}

for name in "${names[@]}"; do
    if [ ! -x "$build/fuzz/$name" ]; then
        echo "fuzz/run.sh: $build/fuzz/$name not built; skipped" >&2
        continue
    fi
    corpus="$work/$name"
    mkdir -p "$corpus"
    seeds "$name" | while read -r f; do cp "$f" "$corpus/"; done
    echo "== $name: $(ls "$corpus" | wc -l) inputs, ${seconds}s"
    quiet=()
    [ "$name" != fuzz_cli ] || quiet=(-close_fd_mask=3) # its usage messages
    (cd "$work" && "$build/fuzz/$name" "$corpus" -max_total_time="$seconds" "${quiet[@]}" \
        -rss_limit_mb=1024 -timeout=10 -max_len=65536 -print_final_stats=1 2>&1 |
        grep -E '^(#[0-9]+[[:space:]]+(INITED|DONE)|stat::number_of_executed_units|stat::average_exec_per_sec|==[0-9]+==|SUMMARY|.*Test unit written)|ERROR|runtime error' || true
     exit "${PIPESTATUS[0]}") || { echo "fuzz/run.sh: $name failed; see $work" >&2; exit 1; }
done

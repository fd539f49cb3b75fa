#!/usr/bin/env bash
# The library's folders are layers and include only downwards:
#   base <- ops, formats <- models, backends <- runtime
# (tools/, python/, bench/ are clients of all of it). A file that includes
# a layer above its own fails this test with the line that does it, and so
# does one that climbs with "../" (the library names its headers from the
# source root, so a climb could only be a way around this check).
#   test_layers.sh SOURCE_DIR
set -euo pipefail
cd "$1"
allowed() {
    case "$1" in
    base) echo "base" ;;
    ops | formats) echo "base $1" ;;
    models) echo "base ops models" ;;
    backends) echo "base ops backends" ;;
    runtime) echo "base ops formats models backends runtime" ;;
    esac
}
status=0
for layer in base ops formats models backends runtime; do
    ok=" $(allowed "$layer") "
    while IFS=: read -r file line text; do
        dir=$(sed -E 's/.*#include "([a-z_]+)\/.*/\1/' <<< "$text")
        if [[ "$ok" != *" $dir "* ]]; then
            echo "$file:$line: $layer/ includes $dir/, a layer above it:$text" >&2
            status=1
        fi
    done < <(grep -rnE '#include "[a-z_]+/' "$layer" --include='*.[ch]' --include='*.cu' || true)
    while IFS= read -r hit; do
        echo "$hit: $layer/ climbs with ../ (name headers from the source root)" >&2
        status=1
    done < <(grep -rnE '#include[[:space:]]*[<"][^>"]*\.\./' "$layer" --include='*.[ch]' --include='*.cu' || true)
done
[ $status -eq 0 ] && echo "layers: every include points down"
exit $status

#!/bin/sh
# check-format.sh: fails when a tracked C file does not follow .clang-format.
# Usage: check-format.sh SOURCE_ROOT   (fix with: make format)
root=$1
cd "$root" || exit 1
if ! command -v clang-format >/dev/null 2>&1; then
    echo "check-format: clang-format not found: run .ci/install-deps" >&2
    exit 1
fi
if ! git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    echo "check-format: $root is not a git checkout; nothing to check" >&2
    exit 77
fi
bad=0
for f in $(git ls-files '*.c' '*.h'); do
    if ! clang-format --dry-run -Werror "$f" >/dev/null 2>&1; then
        echo "check-format: $f does not follow .clang-format (run: clang-format -i $f)" >&2
        bad=1
    fi
done
exit $bad

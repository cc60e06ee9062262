#!/bin/sh
# file-size.sh: fails when a C file under runtime/, wire/ or inspector/ is over 900 lines — a
# module one person can no longer hold in mind, to be split along its seams (issue 15).
# Functions are held to 120 lines by clang-tidy's readability-function-size (.clang-tidy).
# Usage: file-size.sh SOURCE_ROOT
root=$1
cd "$root" || exit 1
if ! git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    echo "file-size: $root is not a git checkout; nothing to check" >&2
    exit 77
fi
bad=0
for f in $(git ls-files 'runtime/*.[ch]' 'wire/*.[ch]' 'inspector/*.[ch]'); do
    n=$(wc -l <"$f")
    if [ "$n" -gt 900 ]; then
        echo "file-size: $f has $n lines (at most 900: split it along its seams)" >&2
        bad=1
    fi
done
exit $bad

#!/bin/sh
# clang-tidy.sh: clang-tidy (checks in .clang-tidy) over the C files of wire/, runtime/ and
# inspector/ as the build compiles them; any finding fails (meson test --suite lint).
# Usage: clang-tidy.sh SOURCE_ROOT BUILD_ROOT
set -eu
root=$1 build=$2
tidy=$(command -v run-clang-tidy-14 || command -v run-clang-tidy)
log=$(mktemp)
trap 'rm -f "$log"' EXIT
# -Wno-unknown-warning-option: the build's gcc-only flags (e.g. -Wno-format-truncation)
rc=0
"$tidy" -p "$build" -j2 -quiet -extra-arg=-Wno-unknown-warning-option \
    "^$root/(wire|runtime|inspector)/.*\.c\$" >"$log" 2>&1 || rc=$?
# without colours; each finding once (run-clang-tidy repeats a header's per includer)
sed 's/\x1b\[[0-9;]*m//g' "$log" | grep -E '(error|warning): ' | sort -u || true
if [ "$rc" -ne 0 ]; then
    echo "clang-tidy: findings above (fix them, or suppress with NOLINT and a reason)" >&2
fi
exit "$rc"

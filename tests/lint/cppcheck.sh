#!/bin/sh
# cppcheck.sh: cppcheck over wire/, runtime/ and inspector/ with the checked-in suppressions
# (tests/lint/cppcheck-suppressions.txt); any finding fails (meson test --suite lint).
# Usage: cppcheck.sh SOURCE_ROOT
set -eu
root=$1
cd "$root"
exec cppcheck -j2 --quiet --error-exitcode=1 --inline-suppr \
    --enable=warning,portability,performance --std=c11 \
    -D_GNU_SOURCE -D__x86_64__ -D__linux__ \
    -Iwire/include -Iwire/src -Iruntime/include -Iruntime/loopmon -Iruntime/core \
    -Iruntime/tasks -Iruntime/export -Iinspector \
    --suppressions-list=tests/lint/cppcheck-suppressions.txt \
    --template='{file}:{line}: {severity}: {message} [{id}]' \
    wire runtime inspector

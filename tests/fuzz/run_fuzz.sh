#!/bin/sh
# run_fuzz.sh: runs one libFuzzer target for a fixed time, with a writable corpus in the
# build dir first and the seeds (.hex files: golden frames or text, as bytes) second.
# Usage: run_fuzz.sh FUZZER SECONDS WORKDIR SEED_DIR DICT
# AT_FUZZ_SECONDS in the environment overrides SECONDS (make test: briefly; make fuzz: as asked),
# so one configured build serves both.
set -eu
fuzzer=$1 seconds=${AT_FUZZ_SECONDS:-$2} work=$3 golden=$4 dict=$5
mkdir -p "$work/corpus" "$work/seeds" "$work/artifacts"
for f in "$golden"/*.hex; do
    grep -v '^#' "$f" | xxd -r -p >"$work/seeds/$(basename "$f" .hex)"
done
# -rss_limit_mb: the decoder's own caps are far below; a leak or a blow-up trips it.
# -timeout: one input taking seconds means a complexity bug.
# -error_exitcode=1: libFuzzer's default for a bug it found is 77, which meson reads as "skipped":
# a crash then left the suite green (a round-trip failure in fuzz-decode did, under CI).
exec "$fuzzer" -max_total_time="$seconds" -rss_limit_mb=1024 -timeout=10 -error_exitcode=1 \
    -dict="$dict" -print_final_stats=1 -artifact_prefix="$work/artifacts/" \
    "$work/corpus" "$work/seeds"

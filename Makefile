# Thin wrapper around meson for the two Quick start commands and friends.
# `make demo`, `make test`: install what is missing, configure, build, run.

BUILD      ?= build
ASAN_BUILD ?= build-asan
TSAN_BUILD ?= build-tsan
MESON_OPTS ?= -Dwerror=true
# Suites that also run under valgrind memcheck in `make test`.
VALGRIND_SUITES ?= runtime
# make fuzz: seconds per fuzz target; make test: seconds per target there (6 targets, run one
# after the other: 6 x 40 s keeps the fuzzing in make test under 5 minutes).
FUZZ_SECONDS ?= 60
FUZZ_TEST_SECONDS ?= 40
# Tests that also run under ThreadSanitizer (AT_E2E_TSAN=1 tells the e2e tests
# that TSan delays signals, so sampled stacks are its own). Coroutines are TSan
# fibers (runtime/tasks/coro.c), so the tasks tests are among them.
TSAN_TESTS ?= $(shell cat .ci/tsan-tests 2>/dev/null)

.PHONY: all deps build build-asan build-tsan test demo bench fuzz stress format clean

all: build

deps:
	@.ci/install-deps

$(BUILD)/build.ninja:
	meson setup $(BUILD) $(MESON_OPTS)

build: deps $(BUILD)/build.ninja
	meson compile -C $(BUILD)

$(ASAN_BUILD)/build.ninja:
	CC=clang meson setup $(ASAN_BUILD) $(MESON_OPTS) -Db_sanitize=address,undefined \
	  -Db_lundef=false -Dfuzzing=libfuzzer -Dfuzz_seconds=$(FUZZ_TEST_SECONDS)

build-asan: deps $(ASAN_BUILD)/build.ninja
	meson compile -C $(ASAN_BUILD)

$(TSAN_BUILD)/build.ninja:
	CC=clang meson setup $(TSAN_BUILD) $(MESON_OPTS) -Db_sanitize=thread -Db_lundef=false

build-tsan: deps $(TSAN_BUILD)/build.ninja
	meson compile -C $(TSAN_BUILD)

# The whole suite: plain build, then memcheck on $(VALGRIND_SUITES), then
# everything again under ASan+UBSan (clang), where the fuzzers run for real,
# then $(TSAN_TESTS) under ThreadSanitizer (clang).
# Every stage runs even if an earlier one failed; the exit status says if any did.
test: build build-asan build-tsan
	@rm -f $(BUILD)/meson-logs/testlog*.json $(ASAN_BUILD)/meson-logs/testlog*.json \
	  $(TSAN_BUILD)/meson-logs/testlog*.json
	@fail=0; \
	echo "== tests ($(BUILD))"; \
	meson test -C $(BUILD) --no-rebuild --print-errorlogs || fail=1; \
	for s in $(VALGRIND_SUITES); do \
	  echo "== valgrind: suite $$s"; \
	  meson test -C $(BUILD) --no-rebuild --print-errorlogs --setup valgrind --suite $$s || fail=1; \
	done; \
	echo "== tests under ASan+UBSan ($(ASAN_BUILD))"; \
	AT_FUZZ_SECONDS=$(FUZZ_TEST_SECONDS) \
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  meson test -C $(ASAN_BUILD) --no-rebuild --print-errorlogs || fail=1; \
	echo "== tests under TSan ($(TSAN_BUILD)): $(TSAN_TESTS)"; \
	AT_E2E_TSAN=1 TSAN_OPTIONS=die_after_fork=0:halt_on_error=1:second_deadlock_stack=1 \
	  meson test -C $(TSAN_BUILD) --no-rebuild --print-errorlogs $(TSAN_TESTS) || fail=1; \
	exit $$fail

# The demo needs a terminal: without one (or under CI=true) it says so and fails at once
# rather than building and then waiting for keys nobody can press. asynctop --demo starts
# build/examples/asynctop-demo in the background, attaches to it, and stops it when asynctop
# exits (q, Ctrl-C, or asynctop dying: the demo gets SIGTERM).
demo:
	@if [ "$${CI:-}" = true ] || ! [ -t 0 ] || ! [ -t 1 ]; then \
	  echo "make demo: needs a terminal (it runs the asynctop TUI)$$( [ "$${CI:-}" = true ] && echo '; CI=true is set')." >&2; \
	  echo "  Without one: make build, run build/examples/asynctop-demo, then build/inspector/asynctop ps PID." >&2; \
	  exit 1; \
	fi
	@$(MAKE) --no-print-directory build
	$(BUILD)/inspector/asynctop --demo

# Ours and the peers (asyncio, uvloop, node, raw libuv) in one run: see docs/performance.md.
bench: build
	/usr/bin/python3 bench/peers/run_peers.py $(BUILD) --json-out $(BUILD)/bench-results.json

# Long fuzzing: make fuzz FUZZ_SECONDS=3600 (each target that long, one after the other; the
# corpora grow in $(ASAN_BUILD)/tests/*/fuzz-*.work and are kept for the next run).
fuzz: build-asan
	AT_FUZZ_SECONDS=$(FUZZ_SECONDS) \
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  meson test -C $(ASAN_BUILD) --suite fuzz --print-errorlogs --timeout-multiplier 0

# Load test (not in make test: it takes STRESS_SECONDS + a 20 s baseline): 100,000 tasks, call-soon
# chains flat out, 64 clients (some slow readers); checks correctness, the memory bound and the
# dropped-event accounting, and prints throughput with clients as a ratio of the baseline.
STRESS_SECONDS ?= 60
stress: build
	@rc=0; $(BUILD)/tests/stress/stress $(STRESS_SECONDS) 20 2>$(BUILD)/stress-stderr.log || rc=$$?; \
	echo "stress: the program's own log (slow-callback warnings) is in $(BUILD)/stress-stderr.log"; \
	exit $$rc

format:
	git ls-files '*.c' '*.h' | xargs clang-format -i

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(TSAN_BUILD)

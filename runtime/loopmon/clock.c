/* clock.c: at__now_ns(): the TSC calibrated against CLOCK_MONOTONIC, else clock_gettime. */
#include "loopmon.h"

#include <string.h>
#include <time.h>
#if defined(__x86_64__)
#include <cpuid.h>
#endif

at__clock_t at__clock;

#if defined(__x86_64__)
/* Calibration: a first (tsc, ns) pair at load time, a second one by the first clock read at
 * least CALIB_NS later; state 0 = not started / unsupported, 1 = window open, 2 = someone
 * is finishing it, 3 = done (or abandoned). No sleeping at start-up. */
#define CALIB_NS (5u * 1000 * 1000)
static _Atomic int calib_state;
static uint64_t calib_tsc0, calib_ns0;
#endif

static uint64_t clock_mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

#if defined(__x86_64__)
/* Invariant TSC: CPUID 0x80000007 EDX bit 8 (constant rate, runs in deep C-states). */
static int tsc_invariant(void)
{
    unsigned a, b, c, d;
    if (!__get_cpuid(0x80000007, &a, &b, &c, &d))
        return 0;
    return (d >> 8) & 1;
}

/* One (tsc, ns) pair: the CLOCK_MONOTONIC reading bracketed by the two closest TSC reads
 * out of a few attempts, so its error is about half a clock_gettime. */
static void clock_pair(uint64_t *tsc, uint64_t *ns)
{
    uint64_t best = UINT64_MAX;
    for (int i = 0; i < 16; i++) {
        uint64_t a = __rdtsc();
        uint64_t n = clock_mono();
        uint64_t b = __rdtsc();
        if (b - a < best) {
            best = b - a;
            *tsc = a + (b - a) / 2;
            *ns = n;
        }
    }
}

static void calib_finish(void)
{
    int open = 1;
    if (!atomic_compare_exchange_strong(&calib_state, &open, 2))
        return;
    uint64_t t1, n1;
    clock_pair(&t1, &n1);
    if (t1 > calib_tsc0 && n1 > calib_ns0) {
        uint64_t mult = (uint64_t)(((unsigned __int128)(n1 - calib_ns0) << 32) / (t1 - calib_tsc0));
        /* Sanity: between 0.05 and 20 GHz. */
        if (mult != 0 && mult <= (20ull << 32) && mult >= (1ull << 32) / 20) {
            at__clock.tsc0 = t1;
            at__clock.ns0 = n1;
            at__clock.mult = mult;
            atomic_store_explicit(&at__clock.use_tsc, 1, memory_order_release);
        }
    }
    atomic_store(&calib_state, 3);
}
#endif

uint64_t at__now_ns_slow(void)
{
    uint64_t now = clock_mono();
#if defined(__x86_64__)
    if (AT__UNLIKELY(atomic_load_explicit(&calib_state, memory_order_acquire) == 1) &&
        now - calib_ns0 >= CALIB_NS)
        calib_finish();
#endif
    return now;
}

/* Opens the calibration window at load time, before any other thread of ours exists. */
__attribute__((constructor)) static void clock_init(void)
{
#if defined(__x86_64__)
    if (!tsc_invariant())
        return;
    clock_pair(&calib_tsc0, &calib_ns0);
    atomic_store_explicit(&calib_state, 1, memory_order_release);
#endif
}

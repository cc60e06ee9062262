/* clock.c: at__now_ns(): the TSC calibrated against CLOCK_MONOTONIC, else clock_gettime. */
#include "loopmon.h"

#include <string.h>
#include <time.h>
#if defined(__x86_64__)
#include <cpuid.h>
#endif

at__clock_t at__clock;

uint64_t at__now_ns_slow(void)
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
        uint64_t n = at__now_ns_slow();
        uint64_t b = __rdtsc();
        if (b - a < best) {
            best = b - a;
            *tsc = a + (b - a) / 2;
            *ns = n;
        }
    }
}
#endif

/* Calibrates once, at load time, before any other thread of ours exists. It takes ~5 ms. */
__attribute__((constructor)) static void clock_init(void)
{
#if defined(__x86_64__)
    if (!tsc_invariant())
        return;
    uint64_t t0, n0, t1, n1;
    clock_pair(&t0, &n0);
    struct timespec d = {0, 5 * 1000 * 1000};
    while (nanosleep(&d, &d) != 0)
        ;
    clock_pair(&t1, &n1);
    if (t1 <= t0 || n1 <= n0)
        return;
    uint64_t mult = (uint64_t)(((unsigned __int128)(n1 - n0) << 32) / (t1 - t0));
    /* Sanity: between 0.05 and 20 GHz. */
    if (mult == 0 || mult > (20ull << 32) || mult < (1ull << 32) / 20)
        return;
    at__clock.tsc0 = t1;
    at__clock.ns0 = n1;
    at__clock.mult = mult;
    at__clock.use_tsc = 1;
#endif
}

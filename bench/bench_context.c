/* bench_context.c: cost of one coroutine context switch — the hand-written
 * switch, the ucontext fallback, and raw swapcontext, in the same run. */
#include "bench.h"

#include <time.h>

#include <stdio.h>
#include <stdlib.h>
#include <ucontext.h>

#include "coro.h"

/* CPU time of this thread: on a loaded shared machine, wall time measures
 * the neighbours; every figure of this file (and its baselines) uses this. */
static uint64_t cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

#define SWITCH_ROUNDS 2000000

static volatile unsigned long sink;

static void ping(void *arg)
{
    long n = (long)(intptr_t)arg;
    for (long i = 0; i < n; i++) {
        sink++;
        at__coro_yield();
    }
}

/* ns per switch: each resume + yield is two switches. */
static double switch_ns(at__coro_backend_t backend, long rounds)
{
    at__coro_t *co;
    at__coro_opts_t o = {.backend = backend, .name = "bench"};
    if (at__coro_create(&co, ping, (void *)(intptr_t)rounds, &o) != 0) {
        fprintf(stderr, "bench_context: cannot create a coroutine\n");
        return -1;
    }
    uint64_t t0 = cpu_ns();
    while (at__coro_state(co) != AT__CORO_DONE)
        at__coro_resume(co);
    uint64_t t1 = cpu_ns();
    at__coro_destroy(co);
    return (double)(t1 - t0) / (2.0 * (double)(rounds + 1));
}

BENCH(context_switch_ns, "ns/switch", "coroutine switch, the build's default (hand-written asm)")
{
    if (!at__coro_have_asm()) {
        fprintf(stderr, "bench_context: no assembly switch in this build (coro_switch=ucontext): "
                        "context_switch_ns measures the ucontext fallback\n");
        return switch_ns(AT__CORO_UCONTEXT, SWITCH_ROUNDS / 10);
    }
    return switch_ns(AT__CORO_ASM, SWITCH_ROUNDS);
}

BENCH(context_switch_ucontext_ns, "ns/switch", "coroutine switch, ucontext fallback")
{
    return switch_ns(AT__CORO_UCONTEXT, SWITCH_ROUNDS / 10);
}

static ucontext_t main_uc, peer_uc;

static void peer_main(void)
{
    for (;;) {
        sink++;
        swapcontext(&peer_uc, &main_uc);
    }
}

BENCH(context_switch_swapcontext_ns, "ns/switch", "raw swapcontext ping-pong (baseline)")
{
    static char *stack;
    if (!stack)
        stack = malloc(64 * 1024);
    getcontext(&peer_uc);
    peer_uc.uc_stack.ss_sp = stack;
    peer_uc.uc_stack.ss_size = 64 * 1024;
    peer_uc.uc_link = NULL;
    makecontext(&peer_uc, peer_main, 0);
    long rounds = SWITCH_ROUNDS / 10;
    uint64_t t0 = cpu_ns();
    for (long i = 0; i < rounds; i++)
        swapcontext(&main_uc, &peer_uc);
    uint64_t t1 = cpu_ns();
    return (double)(t1 - t0) / (2.0 * (double)rounds);
}

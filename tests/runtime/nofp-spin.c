/* nofp-spin.c: a program built -O2 without frame pointers (meson.build), once as is and once
 * stripped: the stack the exporter's sampler takes while one of its callbacks spins three
 * calls deep (spin_callback -> spin_level1 -> spin_level2 -> spin_level3 -> spin) lists the
 * spinning function and its callers in order, each frame's address checked against the
 * functions' own addresses (right when stripped too). Exit 0 = right. */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "core.h"
#include "export_int.h"
#include "loopmon.h"

#define CHECK(c)                                                                                   \
    do {                                                                                           \
        if (!(c)) {                                                                                \
            fprintf(stderr, "nofp-spin: %s:%d: %s\n", __FILE__, __LINE__, #c);                     \
            return 1;                                                                              \
        }                                                                                          \
    } while (0)

#if defined(__clang__)
#define NOIPA __attribute__((noinline))
#else
#define NOIPA __attribute__((noipa))
#endif

static _Atomic int flag; /* 2 while spinning; the sampler sets it to 0 */

NOIPA static void spin(void)
{
    atomic_store(&flag, 2);
    while (atomic_load(&flag) == 2)
        ;
    __asm__ volatile("" ::: "memory");
}
NOIPA static void spin_level3(void)
{
    spin();
    __asm__ volatile("" ::: "memory");
}
NOIPA static void spin_level2(void)
{
    spin_level3();
    __asm__ volatile("" ::: "memory");
}
NOIPA static void spin_level1(void)
{
    spin_level2();
    __asm__ volatile("" ::: "memory");
}
NOIPA static void spin_callback(at_loop_t *loop, void *arg)
{
    (void)loop, (void)arg;
    spin_level1();
    __asm__ volatile("" ::: "memory");
}

static at_loop_t *g_loop;
static int req_rc = -EINVAL, poll_rc = -EINVAL;
static at_export_stack_t st;

static void *sampler(void *arg)
{
    (void)arg;
    while (atomic_load(&flag) != 2)
        usleep(1000);
    usleep(20000);
    req_rc =
        at__export_sample_request(g_loop->mon->tid, g_loop->mon->stack_lo, g_loop->mon->stack_hi);
    for (int i = 0; req_rc == 0 && i < 20000; i++) { /* hang guard: 20 s */
        poll_rc = at__export_sample_poll(at__now_ns(), 30000000000u, &st);
        if (poll_rc != 0)
            break;
        usleep(1000);
    }
    atomic_store(&flag, 0);
    return NULL;
}

/* The one of fns[] whose code holds pc (a return address unless first): the nearest start. */
static int which(uintptr_t pc, const uintptr_t *fns, int n)
{
    int best = -1;
    for (int i = 0; i < n; i++)
        if (fns[i] <= pc && (best < 0 || fns[i] > fns[best]))
            best = i;
    return best >= 0 && pc - fns[best] < 256 ? best : -1;
}

int main(void)
{
    setenv("ASYNCTOP_SOCKET", "off", 1); /* we are the only sampler */
    CHECK(at__export_sample_install() == 0);
    CHECK(at_loop_new(&g_loop, NULL) == 0);
    CHECK(at_call_soon(g_loop, spin_callback, NULL, "spin", NULL) == 0);
    pthread_t th;
    CHECK(pthread_create(&th, NULL, sampler, NULL) == 0);
    CHECK(at_loop_run(g_loop, AT_RUN_DEFAULT) == 0);
    pthread_join(th, NULL);
    at_close_report_t rep;
    CHECK(at_loop_close(g_loop, &rep) == 0);
    CHECK(req_rc == 0 && poll_rc == 1);
    const uintptr_t fns[] = {(uintptr_t)spin,          (uintptr_t)spin_level3,
                             (uintptr_t)spin_level2,   (uintptr_t)spin_level1,
                             (uintptr_t)spin_callback, (uintptr_t)sampler,
                             (uintptr_t)which,         (uintptr_t)main};
    for (uint32_t i = 0; i < st.depth && i < 8; i++)
        printf("#%u %p\n", i, st.pc[i]);
    /* from the frame in spin (under TSan, the atomic load's call into its runtime and the
     * runtime's own frames come first: up to three) */
    uint32_t first = 0;
    while (first < st.depth && first < 4 && which((uintptr_t)st.pc[first], fns, 8) != 0)
        first++;
    CHECK(first + 5 <= st.depth);
    for (int k = 0; k < 5; k++) {
        uintptr_t pc = (uintptr_t)st.pc[first + k] - (k > 0); /* a return address: the call */
        if (which(pc, fns, 8) != k) {
            fprintf(stderr, "nofp-spin: frame #%u %p is not function %d\n", first + k,
                    st.pc[first + k], k);
            return 1;
        }
    }
    return 0;
}

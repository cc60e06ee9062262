/* test-loopmon-unwind.c: the CFI unwinder (unwind.c) lists every frame of a chain built
 * -O2 -fomit-frame-pointer, in order, from a copied stack unwound on another thread — where a
 * frame-pointer walk of the same snapshot loses them — and never reads outside its snapshot. */
#include "test-loopmon-util.h"

#include "nofp-chain.h"

#include <stdlib.h>

#define SNAP_MAX (64 * 1024)

/* A snapshot as the sampler takes one: registers and the top of the stack, copied. */
typedef struct snap {
    at__unwind_regs_t regs;
    uintptr_t lo, hi;
    char *bytes;
    void *fp[64]; /* the frame-pointer walk from the same registers, taken live */
    int nfp;
} snap_t;

/* The raw stack holds ASan's redzones: copied without instrumentation (memcpy is checked). */
__attribute__((no_sanitize("address"))) static void copy_stack(char *to, uintptr_t from, size_t n)
{
    const volatile char *p = (const volatile char *)from;
    for (size_t i = 0; i < n; i++)
        to[i] = p[i];
}

__attribute__((noinline)) static void take_snapshot(void *arg)
{
    snap_t *s = arg;
    ucontext_t uc;
    getcontext(&uc);
    at__unwind_regs_from_ucontext(&uc, &s->regs);
    assert_int_equal(at__stack_bounds_init(), 0);
    uintptr_t sp = s->regs.r[7];
    uintptr_t hi = at__stack_bounds.hi;
    s->lo = sp;
    s->hi = hi - sp > SNAP_MAX ? sp + SNAP_MAX : hi;
    copy_stack(s->bytes, s->lo, s->hi - s->lo);
    s->nfp = at__stack_walk(s->regs.r[6], s->lo, s->hi, s->fp, 64);
    __asm__ volatile("" ::: "memory");
}

static void expect_func(uintptr_t pc, bool is_return, const char *want)
{
    at__sym_t s;
    assert_int_equal(at__sym_lookup((void *)pc, is_return, &s), 0);
    if (strcmp(s.func, want) != 0)
        fail_msg("frame %#lx is in '%s', want '%s'", (unsigned long)pc, s.func, want);
}

typedef struct job {
    snap_t *s;
    uintptr_t pcs[64];
    int n;
} job_t;

static void *unwind_thread(void *arg)
{
    job_t *j = arg;
    j->n = at__unwind(&j->s->regs, j->s->lo, j->s->hi, j->s->bytes, j->pcs, 64, true, NULL);
    return NULL;
}

__attribute__((noinline)) static void test_nofp_chain_in_order(void **state)
{
    (void)state;
    snap_t s = {.bytes = malloc(SNAP_MAX)};
    assert_non_null(s.bytes);
    nofp_level1(take_snapshot, &s);
    __asm__ volatile("" ::: "memory");
    /* The stack has changed since: only the copy holds those frames. Unwind elsewhere. */
    job_t j = {.s = &s};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, unwind_thread, &j), 0);
    pthread_join(th, NULL);
    assert_true(j.n >= 5);
    expect_func(j.pcs[0], false, "take_snapshot");
    expect_func(j.pcs[1], true, "nofp_level3");
    expect_func(j.pcs[2], true, "nofp_level2");
    expect_func(j.pcs[3], true, "nofp_level1");
    expect_func(j.pcs[4], true, "test_nofp_chain_in_order");

    /* What a frame-pointer walk makes of the same chain (the bug this module fixes): the
     * frames of the -fomit-frame-pointer functions are not all there. */
    int found = 0, nfp = s.nfp;
    for (int i = 0; i < nfp && i < 4; i++) {
        at__sym_t sym;
        if (at__sym_lookup(s.fp[i], true, &sym) == 0 && strncmp(sym.func, "nofp_level", 10) == 0)
            found++;
    }
    printf("# CFI: %d frames; frame-pointer walk: %d frames, %d of 3 nofp_level* in its first 4\n",
           j.n, nfp, found);
    assert_true(found < 3);

    /* A snapshot cut short: the unwind stops inside it instead of reading beyond. */
    snap_t cut = s;
    cut.hi = s.lo + 16;
    int n = at__unwind(&cut.regs, cut.lo, cut.hi, cut.bytes, j.pcs, 64, true, NULL);
    assert_true(n >= 1 && n < 5);
    free(s.bytes);
}

__attribute__((noinline)) static void test_deep_chain(void **state)
{
    (void)state;
    snap_t s = {.bytes = malloc(SNAP_MAX)};
    assert_non_null(s.bytes);
    nofp_recurse(20, take_snapshot, &s);
    uintptr_t pcs[64];
    int n = at__unwind(&s.regs, s.lo, s.hi, s.bytes, pcs, 64, true, NULL);
    assert_true(n >= 22);
    for (int i = 1; i <= 20; i++)
        expect_func(pcs[i], true, "nofp_recurse");
    expect_func(pcs[21], true, "test_deep_chain");
    /* max bounds the output */
    assert_int_equal(at__unwind(&s.regs, s.lo, s.hi, s.bytes, pcs, 3, true, NULL), 3);
    free(s.bytes);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_nofp_chain_in_order),
        cmocka_unit_test(test_deep_chain),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

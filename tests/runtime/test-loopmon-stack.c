/* test-loopmon-stack.c: frame-pointer capture names the right functions in order once
 * symbolised, stays inside the stack bounds, and never faults on garbage frame pointers. */
#include "test-loopmon-util.h"

#include <dlfcn.h>
#include <stdlib.h>

static void *frames[32];
static int nframes;

__attribute__((noinline)) static void level3(void)
{
    nframes = at__stack_capture(frames, 16, 0);
    __asm__ volatile("" ::: "memory"); /* no tail call */
}
__attribute__((noinline)) static void level2(void)
{
    level3();
    __asm__ volatile("" ::: "memory");
}
__attribute__((noinline)) static void level1(void)
{
    level2();
    __asm__ volatile("" ::: "memory");
}

static void expect_func(void *addr, const char *want)
{
    at__sym_t s;
    assert_int_equal(at__sym_lookup(addr, true, &s), 0);
    if (strcmp(s.func, want) != 0)
        fail_msg("frame %p is in '%s', want '%s'", addr, s.func, want);
    assert_non_null(strstr(s.file, "test-loopmon-stack.c"));
    assert_true(s.line > 0);
    assert_true(s.lib[0] != '\0');
}

static void test_capture_in_order(void **state)
{
    (void)state;
    level1();
    assert_true(nframes >= 4);
    expect_func(frames[0], "level3");
    expect_func(frames[1], "level2");
    expect_func(frames[2], "level1");
    expect_func(frames[3], "test_capture_in_order");
    char buf[512];
    at__sym_format(frames[1], true, buf, sizeof buf);
    printf("# %s\n", buf);
    assert_true(strncmp(buf, "level2 (", 8) == 0);
    assert_non_null(strstr(buf, "test-loopmon-stack.c:"));

    /* skip drops innermost frames */
    void *f2[16];
    int n = at__stack_capture(f2, 16, 1);
    assert_true(n >= 1);
    at__sym_t s;
    assert_int_equal(at__sym_lookup(f2[0], true, &s), 0);
    assert_string_not_equal(s.func, "test_capture_in_order");

    /* the cache answers the same; a library address gets lib+offset */
    at__sym_t a, b;
    assert_int_equal(at__sym_lookup(frames[0], true, &a), 0);
    assert_int_equal(at__sym_lookup(frames[0], true, &b), 0);
    assert_memory_equal(&a, &b, sizeof a);
    assert_int_equal(at__sym_lookup((void *)uv_run, false, &s), 0);
    assert_string_equal(s.func, "uv_run");
    assert_non_null(strstr(s.lib, "libuv"));
    assert_int_equal(at__sym_lookup((void *)16, false, &s), -ENOENT);
    at__sym_format((void *)16, false, buf, sizeof buf);
    assert_string_equal(buf, "0x10");
    at__loopmon_shutdown();
}

/* Bounds: a walk with bounds that end just above our frame stops there. */
__attribute__((noinline)) static int capture_with_tight_bounds(void **out)
{
    at__stack_bounds_t saved = at__stack_bounds;
    uintptr_t fp = (uintptr_t)__builtin_frame_address(0);
    at__stack_bounds_set((void *)(fp - 4096), (void *)(fp + 16));
    int n = at__stack_capture(out, 16, 0);
    at__stack_bounds = saved;
    return n;
}

static void test_bounds_respected(void **state)
{
    (void)state;
    void *out[16];
    /* capture's own frame, then ours at fp: fp + 16 is the limit, so ours is the last */
    int n = capture_with_tight_bounds(out);
    assert_true(n >= 1 && n <= 2);
    /* empty or inverted bounds: nothing */
    assert_int_equal(at__stack_walk(0x1000, 0x2000, 0x1000, out, 16), 0);
    assert_int_equal(at__stack_walk(0, 0, 0, out, 16), 0);
}

static void test_garbage_never_faults(void **state)
{
    (void)state;
    /* A fake stack full of garbage, walked with its own bounds. */
    enum { WORDS = 512 };
    uintptr_t *stk = malloc(WORDS * sizeof *stk);
    assert_non_null(stk);
    uintptr_t lo = (uintptr_t)stk, hi = lo + WORDS * sizeof *stk;
    void *out[64];
    srand(42);
    for (int round = 0; round < 2000; round++) {
        for (int i = 0; i < WORDS; i++) {
            switch (rand() % 4) {
            case 0: /* pointer somewhere in the fake stack, maybe misaligned */
                stk[i] = lo + (uintptr_t)(rand() % (WORDS * 8));
                break;
            case 1: /* pointer just outside */
                stk[i] =
                    rand() % 2 ? lo - 8 * (uintptr_t)(rand() % 64) : hi + (uintptr_t)rand() % 64;
                break;
            case 2:
                stk[i] = ((uintptr_t)rand() << 32) ^ (uintptr_t)rand();
                break;
            default:
                stk[i] = 0;
            }
        }
        uintptr_t fp = round % 3 ? lo + 8 * (uintptr_t)(rand() % WORDS) : (uintptr_t)rand();
        int n = at__stack_walk(fp, lo, hi, out, 64);
        assert_true(n >= 0 && n <= 64);
    }
    /* a well-formed chain is followed; a loop or a descending link stops it */
    stk[0] = lo + 64;
    stk[1] = 0xaaa1;
    stk[8] = lo + 128;
    stk[9] = 0xaaa2;
    stk[16] = lo + 64; /* points back down */
    stk[17] = 0xaaa3;
    stk[8 + 64] = 0;
    int n = at__stack_walk(lo, lo, hi, out, 64);
    assert_int_equal(n, 3);
    assert_ptr_equal(out[0], (void *)0xaaa1);
    assert_ptr_equal(out[1], (void *)0xaaa2);
    assert_ptr_equal(out[2], (void *)0xaaa3);
    stk[16] = lo + 128; /* self loop */
    assert_int_equal(at__stack_walk(lo, lo, hi, out, 64), 3);
    stk[16] = hi - 8; /* frame would straddle the top */
    assert_int_equal(at__stack_walk(lo, lo, hi, out, 64), 3);
    stk[16] = lo + 129; /* misaligned */
    assert_int_equal(at__stack_walk(lo, lo, hi, out, 64), 3);
    stk[9] = 0; /* zero return address ends the walk */
    assert_int_equal(at__stack_walk(lo, lo, hi, out, 64), 1);
    assert_int_equal(at__stack_walk(lo, lo, hi, out, 0), 0);
    free(stk);
}

static void *thread_capture(void *arg)
{
    int *n = arg;
    void *f[16];
    *n = at__stack_capture(f, 16, 0); /* bounds initialised on first use */
    if (*n > 0) {
        at__sym_t s;
        if (at__sym_lookup(f[0], true, &s) != 0 || strcmp(s.func, "thread_capture") != 0)
            *n = -1;
    }
    return NULL;
}

static void test_other_thread(void **state)
{
    (void)state;
    pthread_t t;
    int n = 0;
    assert_int_equal(pthread_create(&t, NULL, thread_capture, &n), 0);
    pthread_join(t, NULL);
    assert_true(n >= 1);
    at__loopmon_shutdown();
}

#if defined(__x86_64__)
/* An address inside inlined code, as a sample taken while a user's callback spins in an
 * inlined helper (at__now_ns from loopmon.h) would have. */
static inline __attribute__((always_inline)) void *pc_here(void)
{
    void *p;
    __asm__ volatile("1: lea 1b(%%rip), %0" : "=r"(p)); /* the lea itself */
    return p;
}
static unsigned g_call_line;
__attribute__((noinline)) static void *busy_callback(void)
{
    g_call_line = __LINE__ + 1;
    void *p = pc_here();
    __asm__ volatile("" ::: "memory");
    return p;
}

/* The frame names the concrete function and a line of it (the inlined call), not a line of
 * the inlined helper's body. */
static void test_inlined_reads_as_caller(void **state)
{
    (void)state;
    void *pc = busy_callback();
    at__sym_t s;
    assert_int_equal(at__sym_lookup(pc, false, &s), 0);
    assert_string_equal(s.func, "busy_callback");
    assert_non_null(strstr(s.file, "test-loopmon-stack.c"));
    assert_int_equal(s.line, g_call_line);
    at__loopmon_shutdown();
}
#endif

/* A walk from inside a libuv callback ends at libuv's frame (Debian's libuv has no frame
 * pointers: nothing above it is trustworthy), and that frame is libuv's. */
static void *uv_frames[32];
static int uv_nframes;

__attribute__((noinline)) static void in_timer(uv_timer_t *t)
{
    uv_nframes = at__stack_capture(uv_frames, 32, 0);
    __asm__ volatile("" ::: "memory");
    (void)t;
}

static void test_walk_stops_in_libuv(void **state)
{
    (void)state;
    assert_int_equal(at__stack_bounds_init(), 0);
    uv_loop_t loop;
    uv_timer_t t;
    assert_int_equal(uv_loop_init(&loop), 0);
    assert_int_equal(uv_timer_init(&loop, &t), 0);
    assert_int_equal(uv_timer_start(&t, in_timer, 0, 0), 0);
    assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
    assert_true(uv_nframes >= 2);
    expect_func(uv_frames[0], "in_timer");
    Dl_info last;
    assert_true(dladdr(uv_frames[uv_nframes - 1], &last) != 0);
    if (strstr(last.dli_fname, "libuv") == NULL)
        fail_msg("the walk went on past libuv: last frame in %s", last.dli_fname);
    for (int i = 0; i < uv_nframes - 1; i++) {
        Dl_info d;
        assert_true(dladdr(uv_frames[i], &d) != 0);
        assert_null(strstr(d.dli_fname, "libuv"));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_capture_in_order),
        cmocka_unit_test(test_bounds_respected),
        cmocka_unit_test(test_garbage_never_faults),
        cmocka_unit_test(test_other_thread),
        cmocka_unit_test(test_walk_stops_in_libuv),
#if defined(__x86_64__)
        cmocka_unit_test(test_inlined_reads_as_caller),
#endif
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

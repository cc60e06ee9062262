/* test-coro.c: unit tests of the coroutine engine (runtime/tasks/coro.c and
 * stack_pool.c): switching on both backends, state kept across switches,
 * suspended-stack walks, 100k pending coroutines, overflow detection. */
#include <dlfcn.h>
#include <errno.h>
#include <fenv.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "coro.h"
#include "stack_pool.h"

#include "test-sanitizers.h"

static at__coro_backend_t backend_asm = AT__CORO_ASM;
static at__coro_backend_t backend_uc = AT__CORO_UCONTEXT;

static at__coro_backend_t backend_of(void **state)
{
    return *(at__coro_backend_t *)*state;
}

/* Skips a test of the assembly backend in a build that has none. */
static int skip_if_unavailable(void **state)
{
    if (backend_of(state) == AT__CORO_ASM && !at__coro_have_asm()) {
        print_message("no assembly switch in this build (coro_switch=ucontext)\n");
        skip();
    }
    return 0;
}

static at__coro_t *make(at__coro_fn fn, void *arg, void **state, const char *name, size_t size)
{
    at__coro_opts_t o = {.stack_size = size, .name = name, .backend = backend_of(state)};
    at__coro_t *co = NULL;
    assert_int_equal(at__coro_create(&co, fn, arg, &o), 0);
    assert_non_null(co);
    return co;
}

/* ---- switching ---------------------------------------------------------- */

typedef struct counter {
    int steps;
    int seen_by_main;
} counter_t;

static void count_to_five(void *arg)
{
    counter_t *c = arg;
    for (int i = 0; i < 5; i++) {
        c->steps++;
        at__coro_yield();
        /* The resumer wrote this while we were suspended. */
        assert_int_equal(c->seen_by_main, c->steps);
    }
}

static void test_ping_pong(void **state)
{
    skip_if_unavailable(state);
    counter_t c = {0, 0};
    at__coro_t *co = make(count_to_five, &c, state, "pinger", 0);
    assert_int_equal(at__coro_state(co), AT__CORO_CREATED);
    assert_null(at__coro_current());
    for (int i = 1; i <= 5; i++) {
        at__coro_resume(co);
        assert_int_equal(c.steps, i);
        assert_int_equal(at__coro_state(co), AT__CORO_SUSPENDED);
        c.seen_by_main = i;
    }
    at__coro_resume(co);
    assert_int_equal(at__coro_state(co), AT__CORO_DONE);
    assert_null(at__coro_current());
    assert_string_equal(at__coro_name(co), "pinger");
    at__coro_destroy(co);
}

/* Callee-saved registers and the floating-point control state belong to
 * each context: a rounding mode set inside the coroutine stays there. */
static void fp_env_coro(void *arg)
{
    double *out = arg;
    fesetround(FE_UPWARD);
    volatile double one = 1.0, three = 3.0;
    at__coro_yield();
    assert_int_equal(fegetround(), FE_UPWARD);
    out[0] = one / three;
    at__coro_yield();
    out[1] = -one / three;
}

static void test_fp_env_per_context(void **state)
{
    skip_if_unavailable(state);
    double out[2];
    at__coro_t *co = make(fp_env_coro, out, state, "fp", 0);
    at__coro_resume(co);
    assert_int_equal(fegetround(), FE_TONEAREST);
    volatile double one = 1.0, three = 3.0;
    double nearest = one / three;
    at__coro_resume(co);
    assert_int_equal(fegetround(), FE_TONEAREST);
    if (!RUNNING_ON_VALGRIND)          /* valgrind computes with round-to-nearest only */
        assert_true(out[0] > nearest); /* rounded up */
    at__coro_resume(co);
    assert_int_equal(at__coro_state(co), AT__CORO_DONE);
    at__coro_destroy(co);
}

/* Many live values across a switch: the compiler keeps some in callee-saved
 * registers, which the switch must preserve. */
static void regs_coro(void *arg)
{
    long *sum = arg;
    volatile long seed = 7;
    long a = seed, b = seed * 3, c = seed * 5, d = seed * 7, e = seed * 11, f = seed * 13;
    for (int i = 0; i < 3; i++) {
        at__coro_yield();
        a += 1, b += 2, c += 3, d += 4, e += 5, f += 6;
    }
    *sum = a + b + c + d + e + f;
}

static void test_registers_survive(void **state)
{
    skip_if_unavailable(state);
    long sum = 0;
    at__coro_t *co = make(regs_coro, &sum, state, "regs", 0);
    volatile long x = 100;
    long m1 = x, m2 = x * 2, m3 = x * 3, m4 = x * 4, m5 = x * 5;
    while (at__coro_state(co) != AT__CORO_DONE) {
        at__coro_resume(co);
        m1++, m2++, m3++, m4++, m5++;
    }
    assert_int_equal(sum, 7 * (1 + 3 + 5 + 7 + 11 + 13) + 3 * (1 + 2 + 3 + 4 + 5 + 6));
    assert_int_equal(m1 + m2 + m3 + m4 + m5, 100 * 15 + 5 * 4);
    at__coro_destroy(co);
}

/* A coroutine may resume another; yield returns to the right resumer. */
typedef struct nest {
    void **state;
    char log[32];
    int n;
} nest_t;

static void inner(void *arg)
{
    nest_t *t = arg;
    t->log[t->n++] = 'i';
    at__coro_yield();
    t->log[t->n++] = 'j';
}

static void outer(void *arg)
{
    nest_t *t = arg;
    at__coro_t *self = at__coro_current();
    at__coro_t *in = make(inner, t, t->state, "inner", 0);
    t->log[t->n++] = 'o';
    at__coro_resume(in);
    assert_ptr_equal(at__coro_current(), self);
    t->log[t->n++] = 'p';
    at__coro_yield();
    at__coro_resume(in);
    t->log[t->n++] = 'q';
    assert_int_equal(at__coro_state(in), AT__CORO_DONE);
    at__coro_destroy(in);
}

static void test_nested_resume(void **state)
{
    skip_if_unavailable(state);
    nest_t t = {.state = state};
    at__coro_t *co = make(outer, &t, state, "outer", 0);
    at__coro_resume(co);
    t.log[t.n++] = 'M';
    at__coro_resume(co);
    assert_null(at__coro_current());
    assert_string_equal(t.log, "oipMjq");
    at__coro_destroy(co);
}

/* ---- suspended-stack walk ------------------------------------------------ */

/* Three calls deep, exported (the test links with -rdynamic) so dladdr names
 * them; noinline and a use after the call keep each frame real. */
#define VISIBLE __attribute__((visibility("default")))
VISIBLE void walk_level3(int *n);
VISIBLE void walk_level2(int *n);
VISIBLE void walk_level1(int *n);
static void *walk_ra[4];

__attribute__((noinline)) VISIBLE void walk_level3(int *n)
{
    walk_ra[3] = __builtin_return_address(0); /* into walk_level2 */
    at__coro_yield();
    (*n)++;
}

__attribute__((noinline)) VISIBLE void walk_level2(int *n)
{
    walk_ra[2] = __builtin_return_address(0); /* into walk_level1 */
    walk_level3(n);
    (*n)++;
}

__attribute__((noinline)) VISIBLE void walk_level1(int *n)
{
    walk_ra[1] = __builtin_return_address(0); /* into the entry */
    walk_level2(n);
    (*n)++;
}

static void walk_main(void *arg)
{
    walk_level1(arg);
}

static const char *sym_name(uintptr_t pc)
{
    Dl_info info;
    if (dladdr((void *)(pc - 1), &info) && info.dli_sname)
        return info.dli_sname;
    return "?";
}

static void test_backtrace_three_deep(void **state)
{
    skip_if_unavailable(state);
    int n = 0;
    at__coro_t *co = make(walk_main, &n, state, "walker", 0);
    uintptr_t pcs[32];
    assert_int_equal(at__coro_backtrace(co, pcs, 32), 0); /* not suspended yet */
    at__coro_resume(co);
    int got = at__coro_backtrace(co, pcs, 32);
    assert_true(got >= 4);
    /* Find walk_level3's frame, then its callers in order. */
    int k = -1;
    for (int i = 0; i < got; i++) {
        if (strcmp(sym_name(pcs[i]), "walk_level3") == 0) {
            k = i;
            break;
        }
    }
    assert_true(k >= 0);
    assert_true(k + 2 < got);
    assert_string_equal(sym_name(pcs[k]), "walk_level3");
    assert_string_equal(sym_name(pcs[k + 1]), "walk_level2");
    assert_string_equal(sym_name(pcs[k + 2]), "walk_level1");
    assert_ptr_equal((void *)pcs[k + 1], walk_ra[3]);
    assert_ptr_equal((void *)pcs[k + 2], walk_ra[2]);
    if (k + 3 < got)
        assert_ptr_equal((void *)pcs[k + 3], walk_ra[1]);
    /* Everything before walk_level3 is the runtime's yield, nothing of ours. */
    for (int i = 0; i < k; i++)
        assert_true(strncmp(sym_name(pcs[i]), "walk_", 5) != 0);
    /* The walk stops within the coroutine's stack: a bounded, short list. */
    assert_true(got < 16);
    /* A bounded walk: max is respected. */
    assert_int_equal(at__coro_backtrace(co, pcs, 2), 2);
    at__coro_resume(co);
    assert_int_equal(n, 3);
    assert_int_equal(at__coro_backtrace(co, pcs, 32), 0); /* done */
    at__coro_destroy(co);
}

/* ---- many pending coroutines, pooling, memory --------------------------- */

static void park(void *arg)
{
    int *finished = arg;
    at__coro_yield();
    (*finished)++;
}

static void test_100k_pending(void **state)
{
    skip_if_unavailable(state);
    /* valgrind tracks every registered stack and slows each switch down
     * accordingly; TSan maps a shadow stack per coroutine; the full count runs in the plain
     * and ASan builds. */
    size_t count = RUNNING_ON_VALGRIND || UNDER_TSAN ? 5000 : 100000;
    if (backend_of(state) == AT__CORO_UCONTEXT)
        count /= 10; /* a getcontext system call each; the pool is the same */
    at__coro_t **all = calloc(count, sizeof *all);
    assert_non_null(all);
    int finished = 0;
    for (size_t i = 0; i < count; i++) {
        all[i] = make(park, &finished, state, "parked", 0);
        at__coro_resume(all[i]);
        assert_int_equal(at__coro_state(all[i]), AT__CORO_SUSPENDED);
    }
    at__stack_pool_stats_t st;
    at__stack_pool_stats(&st);
    assert_true(st.slots_carved >= count);
    assert_true(st.guard_madvise + st.guard_mprotect >= count || st.guard_canary > 0);
    for (size_t i = 0; i < count; i++) {
        at__coro_resume(all[i]);
        assert_int_equal(at__coro_state(all[i]), AT__CORO_DONE);
        at__coro_destroy(all[i]);
    }
    assert_int_equal(finished, (int)count);
    /* Reuse: the same number again carves nothing new. */
    at__stack_pool_stats(&st);
    size_t carved = st.slots_carved;
    size_t again = count < 1000 ? count : 1000;
    for (size_t i = 0; i < again; i++) {
        all[i] = make(park, &finished, state, "again", 0);
        at__coro_resume(all[i]);
    }
    for (size_t i = 0; i < again; i++) {
        at__coro_resume(all[i]);
        at__coro_destroy(all[i]);
    }
    at__stack_pool_stats(&st);
    assert_int_equal(st.slots_carved, carved);
    free(all);
}

static size_t rss_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    long pages = 0, resident = 0;
    if (f) {
        if (fscanf(f, "%ld %ld", &pages, &resident) != 2)
            resident = 0;
        fclose(f);
    }
    return (size_t)resident * (size_t)sysconf(_SC_PAGESIZE);
}

/* A shallow pending coroutine costs one page; a deep one gives its extra
 * pages back when its stack returns to the pool. */
static void deep(void *arg)
{
    volatile char buf[48 * 1024];
    memset((char *)buf, 1, sizeof buf);
    at__coro_yield();
    *(int *)arg += buf[100];
}

static void test_pending_costs_one_page(void **state)
{
    skip_if_unavailable(state);
    if (RUNNING_ON_VALGRIND || UNDER_ASAN || UNDER_TSAN)
        skip(); /* their shadow memory and redzones change what RSS means */
    enum { N = 2000 };
    static at__coro_t *cos[N];
    int finished = 0;
    /* 64 KiB class: fresh slots no other test warmed. */
    size_t before = rss_bytes();
    for (int i = 0; i < N; i++) {
        cos[i] = make(park, &finished, state, "shallow", 64 * 1024);
        at__coro_resume(cos[i]);
    }
    size_t per = (rss_bytes() - before) / N;
    print_message("pending shallow coroutine: %zu bytes resident\n", per);
    assert_true(per <= 4096 + 512);
    for (int i = 0; i < N; i++) {
        at__coro_resume(cos[i]);
        at__coro_destroy(cos[i]);
    }
    /* Deep: 48 KiB dirtied, then given back on free. */
    at__stack_pool_stats_t st0, st1;
    at__stack_pool_stats(&st0);
    at__coro_t *d = make(deep, &finished, state, "deep", 64 * 1024);
    at__coro_resume(d);
    at__coro_resume(d);
    size_t with_deep = rss_bytes();
    at__coro_destroy(d);
    at__stack_pool_stats(&st1);
    assert_int_equal(st1.trims, st0.trims + 1);
    assert_true(rss_bytes() + 40 * 1024 <= with_deep);
}

/* ---- overflow detection (death tests in a forked child) ----------------- */

static int depth_reached;
static volatile int depth_limit = 1 << 30; /* never reached */

__attribute__((noinline)) static void recurse_forever(int d)
{
    volatile char pad[1024];
    pad[0] = (char)d;
    depth_reached = d;
    if (d < depth_limit)
        recurse_forever(d + 1);
    pad[1] = pad[0];
}

static void overflow_main(void *arg)
{
    recurse_forever(0);
}

/* Recurses until its frames are `past` bytes below `bottom`. */
__attribute__((noinline)) static void recurse_below(const char *bottom, size_t past)
{
    volatile char pad[1024];
    memset((char *)pad, 0x5a, sizeof pad); /* a frame that uses its buffer */
    if ((uintptr_t)pad + past > (uintptr_t)bottom)
        recurse_below(bottom, past);
    pad[1] = pad[0];
}

/* Goes about 8 KiB below the bottom of its stack (into the unprotected gap
 * of canary mode), comes back, and yields: the canary check catches it. */
static void small_overflow_main(void *arg)
{
    const void *lo, *hi;
    at__coro_stack_bounds(at__coro_current(), &lo, &hi);
    recurse_below(lo, 8 * 1024);
    at__coro_yield();
}

typedef struct death {
    int status;
    char out[2048];
} death_t;

/* Runs fn in a forked child with stderr captured. */
static void run_child(void (*fn)(void **), void **state, death_t *d)
{
    int pipefd[2];
    assert_int_equal(pipe(pipefd), 0);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(pipefd[0]);
        dup2(pipefd[1], STDERR_FILENO);
        dup2(pipefd[1], STDOUT_FILENO);
        /* A plain program: no cmocka handlers that would longjmp back into
         * the test runner of this forked copy. */
        signal(SIGSEGV, SIG_DFL);
        signal(SIGABRT, SIG_DFL);
        fn(state);
        _exit(0);
    }
    close(pipefd[1]);
    size_t n = 0;
    ssize_t r;
    while ((r = read(pipefd[0], d->out + n, sizeof d->out - 1 - n)) > 0)
        n += (size_t)r;
    d->out[n] = '\0';
    close(pipefd[0]);
    assert_int_equal(waitpid(pid, &d->status, 0), pid);
}

static void child_overflow(void **state)
{
    at__coro_t *co = make(overflow_main, NULL, state, "deep-recursion", 32 * 1024);
    at__coro_resume(co);
}

static void child_overflow_mprotect(void **state)
{
    setenv("ASYNCTOP_STACK_GUARD", "mprotect", 1);
    at__stack_pool_force_guard_mode(AT__GUARD_MPROTECT);
    at__coro_t *co = make(overflow_main, NULL, state, "mprotect-recursion", 128 * 1024);
    at__coro_resume(co);
}

static void child_overflow_canary(void **state)
{
    at__stack_pool_force_guard_mode(AT__GUARD_MPROTECT);
    at__stack_pool_set_vma_budget(0);
    size_t size = 1024 * 1024;
    at__coro_t *co = make(small_overflow_main, &size, state, "canary-overflow", size);
    at__coro_resume(co);
    fprintf(stderr, "not caught\n");
}

static void child_wild_pointer(void **state)
{
    at__coro_t *co = make(park, NULL, state, "innocent", 0);
    (void)co;
    volatile uintptr_t bad = 16;
    *(volatile int *)bad = 1;
}

static void skip_death_tests(void)
{
    if (RUNNING_ON_VALGRIND) {
        print_message("death tests are skipped under valgrind\n");
        skip();
    }
}

static void expect_overflow_report(const death_t *d, const char *name)
{
    char want[128];
    snprintf(want, sizeof want, "stack overflow in task '%s'", name);
    if (!strstr(d->out, want))
        print_error("child said: %s\n", d->out);
    assert_non_null(strstr(d->out, want));
    assert_true(WIFSIGNALED(d->status));
    assert_int_equal(WTERMSIG(d->status), SIGABRT);
}

static void test_overflow_guard_madvise(void **state)
{
    skip_if_unavailable(state);
    skip_death_tests();
    death_t d;
    run_child(child_overflow, state, &d);
    expect_overflow_report(&d, "deep-recursion");
    assert_non_null(strstr(d.out, "guard"));
}

static void test_overflow_guard_mprotect(void **state)
{
    skip_if_unavailable(state);
    skip_death_tests();
    death_t d;
    run_child(child_overflow_mprotect, state, &d);
    expect_overflow_report(&d, "mprotect-recursion");
}

static void test_overflow_canary(void **state)
{
    skip_if_unavailable(state);
    skip_death_tests();
    death_t d;
    run_child(child_overflow_canary, state, &d);
    expect_overflow_report(&d, "canary-overflow");
    assert_non_null(strstr(d.out, "canary"));
}

static void test_foreign_segv_passed_on(void **state)
{
    skip_if_unavailable(state);
    skip_death_tests();
    death_t d;
    run_child(child_wild_pointer, state, &d);
    assert_null(strstr(d.out, "stack overflow"));
    assert_false(WIFEXITED(d.status) && WEXITSTATUS(d.status) == 0);
}

/* The mprotect fallback hands out guarded stacks while the VMA budget lasts,
 * then canary-checked ones; "strict" refuses instead. */
static void child_budget(void **state)
{
    at__stack_pool_force_guard_mode(AT__GUARD_MPROTECT);
    at__stack_pool_set_vma_budget(10);
    at__stack_pool_stats_t s0, s1;
    at__stack_pool_stats(&s0);
    at__coro_t *cos[8];
    int finished = 0;
    for (int i = 0; i < 8; i++) {
        cos[i] = make(park, &finished, state, "budget", 2 * 1024 * 1024);
        at__coro_resume(cos[i]);
    }
    at__stack_pool_stats(&s1);
    if (s1.guard_mprotect - s0.guard_mprotect != 5 || s1.guard_canary - s0.guard_canary != 3)
        _exit(2);
    for (int i = 0; i < 8; i++) {
        at__coro_resume(cos[i]);
        at__coro_destroy(cos[i]);
    }
    if (finished != 8)
        _exit(3);
    setenv("ASYNCTOP_STACK_GUARD", "strict", 1);
    at__stack_pool_force_strict(true);
    at__coro_opts_t o = {.stack_size = 4 * 1024 * 1024, .backend = backend_of(state)};
    at__coro_t *co;
    if (at__coro_create(&co, park, &finished, &o) != -ENOMEM)
        _exit(4);
    _exit(0);
}

static void test_vma_budget_fallback(void **state)
{
    skip_if_unavailable(state);
    death_t d;
    run_child(child_budget, state, &d);
    assert_true(WIFEXITED(d.status));
    assert_int_equal(WEXITSTATUS(d.status), 0);
    assert_true(at__stack_pool_vma_budget() > 1000);
}

#define BOTH(t)                                                                                    \
    cmocka_unit_test_prestate(t, &backend_asm), cmocka_unit_test_prestate(t, &backend_uc)

int main(void)
{
    const struct CMUnitTest tests[] = {
        BOTH(test_ping_pong),
        BOTH(test_fp_env_per_context),
        BOTH(test_registers_survive),
        BOTH(test_nested_resume),
        BOTH(test_backtrace_three_deep),
        BOTH(test_100k_pending),
        BOTH(test_pending_costs_one_page),
        BOTH(test_overflow_guard_madvise),
        BOTH(test_overflow_guard_mprotect),
        BOTH(test_overflow_canary),
        cmocka_unit_test_prestate(test_foreign_segv_passed_on, &backend_asm),
        cmocka_unit_test_prestate(test_vma_budget_fallback, &backend_asm),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* test-export-sample.c: the exporter's stack sampler on a loop thread blocked in a system call,
 * in a plain callback and inside a task's coroutine: no signal is sent (the one nanosleep is not
 * cut short) and the sampled stack names the function that blocked. */
#include "test-core-util.h"

#include <dlfcn.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>

#include "core.h"
#include "export_int.h"
#include "loopmon.h"

#include "nofp-chain.h"
#include "test-sanitizers.h"

#define VISIBLE __attribute__((visibility("default"), noinline))

typedef struct sample_ctx {
    at_loop_t *loop;
    pid_t tid;
    void *lo, *hi;
    _Atomic int sleeping;
    int req_rc, poll_rc;
    at_export_stack_t st;
    int sleep_rc;
    long long elapsed_ns;
} sample_ctx_t;

VISIBLE void blocked_in_callback(sample_ctx_t *c);
VISIBLE void blocked_in_task(sample_ctx_t *c);

/* One nanosleep of 1 s, no retry: a signal would end it early with EINTR. */
static void nap(sample_ctx_t *c)
{
    struct timespec t0, t1, req = {1, 0};
    clock_gettime(CLOCK_MONOTONIC, &t0);
    atomic_store(&c->sleeping, 1);
    c->sleep_rc = nanosleep(&req, NULL);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    c->elapsed_ns = (t1.tv_sec - t0.tv_sec) * 1000000000LL + (t1.tv_nsec - t0.tv_nsec);
}

VISIBLE void blocked_in_callback(sample_ctx_t *c)
{
    nap(c);
    atomic_store(&c->sleeping, 2); /* work after the call: not a tail call, the frame stays */
}

VISIBLE void blocked_in_task(sample_ctx_t *c)
{
    nap(c);
    atomic_store(&c->sleeping, 2);
}

/* What the exporter thread does, from another thread, once the loop thread sleeps. */
static void *sampler(void *arg)
{
    sample_ctx_t *c = arg;
    while (!atomic_load(&c->sleeping))
        usleep(1000);
    usleep(200000); /* well inside the 1 s sleep */
    c->req_rc = at__export_sample_request(c->tid, c->lo, c->hi);
    c->poll_rc = -EINVAL;
    if (c->req_rc == 0) {
        /* a blocked thread's sample is taken at once: ready at the first poll */
        c->poll_rc = at__export_sample_poll(at__now_ns(), 500000000u, &c->st);
    }
    if (getenv("AT_TEST_VERBOSE") && c->req_rc == 0) {
        /* the cost of one blocked-thread sample, request to answer (the exporter's time) */
        uint64_t d[21];
        at_export_stack_t tmp;
        for (int i = 0; i < 21; i++) {
            uint64_t t0 = at__now_ns();
            if (at__export_sample_request(c->tid, c->lo, c->hi) != 0 ||
                at__export_sample_poll(at__now_ns(), 500000000u, &tmp) != 1)
                break;
            d[i] = at__now_ns() - t0;
            for (int j = i; j > 0 && d[j] < d[j - 1]; j--) {
                uint64_t x = d[j];
                d[j] = d[j - 1];
                d[j - 1] = x;
            }
            if (i == 20)
                fprintf(stderr, "blocked sample: median %llu ns over 21\n",
                        (unsigned long long)d[10]);
        }
    }
    return NULL;
}

static bool stack_names(const at_export_stack_t *st, const char *fn)
{
    if (getenv("AT_TEST_VERBOSE")) {
        for (uint32_t i = 0; i < st->depth; i++) {
            Dl_info di = {0};
            dladdr((char *)st->pc[i] - (i > 0), &di);
            fprintf(stderr, "#%u %p %s %s\n", i, st->pc[i], di.dli_sname ? di.dli_sname : "?",
                    di.dli_fname ? di.dli_fname : "?");
        }
    }
    for (uint32_t i = 0; i < st->depth; i++) {
        Dl_info di;
        /* a return address points after the call: look up the byte before it */
        if (dladdr((char *)st->pc[i] - (i > 0), &di) != 0 && di.dli_sname &&
            strcmp(di.dli_sname, fn) == 0)
            return true;
    }
    return false;
}

static void on_callback(at_loop_t *loop, void *arg)
{
    blocked_in_callback(arg);
}

static int task_body(void *arg, void **result)
{
    blocked_in_task(arg);
    return 0;
}

static void run_case(bool in_task)
{
    sample_ctx_t c = {0};
    assert_int_equal(at_loop_new(&c.loop, NULL), 0);
    c.tid = c.loop->mon->tid;
    c.lo = c.loop->mon->stack_lo;
    c.hi = c.loop->mon->stack_hi;
    at_task_t *t = NULL;
    if (in_task)
        assert_int_equal(at_task_spawn(c.loop, task_body, &c, NULL, &t), 0);
    else
        assert_int_equal(at_call_soon(c.loop, on_callback, &c, "blocked", NULL), 0);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, sampler, &c), 0);
    assert_int_equal(at_loop_run(c.loop, AT_RUN_DEFAULT), 0);
    pthread_join(th, NULL);
    if (t)
        at_task_unref(t);
    at_close_report_t rep;
    assert_int_equal(at_loop_close(c.loop, &rep), 0);

    /* the sleep was not interrupted */
    assert_int_equal(c.sleep_rc, 0);
    assert_true(c.elapsed_ns >= 990000000LL);
    if (RUNNING_ON_VALGRIND) {
        /* the kernel sees valgrind's own registers, not the program's: sp is on no stack we
         * know, so there is no sample (and still no signal) */
        assert_true(c.req_rc == -ENOENT || c.req_rc == 0);
        return;
    }
    /* and the sample was taken while it slept, naming the function that blocked */
    assert_int_equal(c.req_rc, 0);
    assert_int_equal(c.poll_rc, 1);
    assert_true(c.st.depth >= 2);
    assert_true(stack_names(&c.st, in_task ? "blocked_in_task" : "blocked_in_callback"));
    assert_false(stack_names(&c.st, in_task ? "blocked_in_callback" : "blocked_in_task"));
}

static void test_blocked_callback_sampled_without_signal(void **state)
{
    run_case(false);
}

static void test_blocked_task_sampled_without_signal(void **state)
{
    run_case(true);
}

/* ---- a thread whose stack keeps changing under the sampler ---- */

typedef struct churn {
    _Atomic int stop;
    _Atomic pid_t tid;
    _Atomic uintptr_t lo, hi;
    _Atomic long eintr, naps;
} churn_t;

VISIBLE int churn_down(churn_t *c, int n);
VISIBLE int churn_down(churn_t *c, int n)
{
    volatile char pad[48];
    pad[n % 48] = (char)n;
    if (n == 0) {
        struct timespec ts = {0, 20000};
        if (nanosleep(&ts, NULL) != 0)
            atomic_fetch_add(&c->eintr, 1);
        atomic_fetch_add(&c->naps, 1);
        return pad[0];
    }
    return churn_down(c, n - 1) + pad[n % 48];
}

static void *churn_thread(void *arg)
{
    churn_t *c = arg;
    pthread_attr_t a;
    void *addr;
    size_t size;
    pthread_getattr_np(pthread_self(), &a);
    pthread_attr_getstack(&a, &addr, &size);
    pthread_attr_destroy(&a);
    atomic_store(&c->lo, (uintptr_t)addr);
    atomic_store(&c->hi, (uintptr_t)addr + size);
    atomic_store(&c->tid, (pid_t)gettid());
    for (int i = 0; !atomic_load(&c->stop); i++)
        churn_down(c, i % 40);
    return NULL;
}

/* Thousands of samples of a thread that wakes every 20 us and changes its stack depth: every
 * request is answered (a stack, or an error for a thread caught running with no handler
 * installed), nothing crashes, no sleep is interrupted. */
static void test_sampling_a_thread_that_keeps_changing(void **state)
{
    churn_t c = {0};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, churn_thread, &c), 0);
    while (atomic_load(&c.tid) == 0)
        usleep(1000);
    int got = 0;
    for (int i = 0; i < 2000; i++) {
        at_export_stack_t st;
        int r = at__export_sample_request(atomic_load(&c.tid), (void *)atomic_load(&c.lo),
                                          (void *)atomic_load(&c.hi));
        if (r == 0) {
            assert_int_equal(at__export_sample_poll(at__now_ns(), 500000000u, &st), 1);
            assert_true(st.depth <= AT_EXPORT_MAX_FRAMES);
            got++;
        } else {
            assert_true(r < 0);
            assert_false(at__export_sample_busy());
        }
    }
    atomic_store(&c.stop, 1);
    pthread_join(th, NULL);
    assert_int_equal(atomic_load(&c.eintr), 0);
    assert_true(atomic_load(&c.naps) > 0);
    if (!RUNNING_ON_VALGRIND)
        assert_true(got > 0);
}

/* A thread that wakes briefly and sleeps again, as a loop thread with a timer does, is caught
 * now and then between two reads of /proc (asleep, then "running" in its syscall file, then
 * asleep again). That is no reason to refuse: the sampler reads again. With the handler not
 * installed, a thread caught running answers -ENOTSUP; never -EAGAIN (a stopped thread's). */
static void test_thread_waking_between_reads_is_sampled(void **state)
{
    churn_t c = {0};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, churn_thread, &c), 0);
    while (atomic_load(&c.tid) == 0)
        usleep(1000);
    int got = 0, eagain = 0;
    for (int i = 0; i < 4000; i++) {
        at_export_stack_t st;
        int r = at__export_sample_request(atomic_load(&c.tid), (void *)atomic_load(&c.lo),
                                          (void *)atomic_load(&c.hi));
        if (r == 0) {
            assert_int_equal(at__export_sample_poll(at__now_ns(), 500000000u, &st), 1);
            got++;
        }
        eagain += r == -EAGAIN;
    }
    atomic_store(&c.stop, 1);
    pthread_join(th, NULL);
    if (getenv("AT_TEST_VERBOSE"))
        fprintf(stderr, "%d of 4000 sampled, %d -EAGAIN\n", got, eagain);
    assert_int_equal(eagain, 0);
    if (!RUNNING_ON_VALGRIND)
        assert_true(got > 0);
}

/* A thread that is not ours, gone or bogus: an error, never a crash. */
static void test_unknown_thread(void **state)
{
    at_export_stack_t st;
    assert_int_not_equal(at__export_sample_request(999999999, NULL, NULL), 0);
    assert_false(at__export_sample_busy());
    assert_int_equal(at__export_sample_poll(at__now_ns(), 1, &st), -ETIMEDOUT);
}

/* ---- code built without frame pointers (-O2 -fomit-frame-pointer: nofp-chain.c) ---- */

/* The index of the first frame at or after `from` whose function is `fn` (symbolised with
 * libdw: nofp-chain's functions are hidden from dladdr), or -1. */
static int frame_of(const at_export_stack_t *st, int from, const char *fn)
{
    for (int i = from; i < (int)st->depth; i++) {
        at__sym_t s;
        if (at__sym_lookup(st->pc[i], i > 0, &s) == 0 && strcmp(s.func, fn) == 0)
            return i;
    }
    return -1;
}

/* The chain's frames, innermost first, each after the previous one. */
static void expect_chain(const at_export_stack_t *st, const char *const *fns, int n)
{
    if (getenv("AT_TEST_VERBOSE"))
        for (uint32_t i = 0; i < st->depth; i++) {
            at__sym_t s;
            at__sym_lookup(st->pc[i], i > 0, &s);
            fprintf(stderr, "#%u %p %s\n", i, st->pc[i], s.func);
        }
    int at = 0;
    for (int k = 0; k < n; k++) {
        int i = frame_of(st, at, fns[k]);
        if (i < 0)
            fail_msg("no frame of %s after frame #%d (%u frames)", fns[k], at, st->depth);
        at = i + 1;
    }
}

typedef struct spin_ctx {
    at_loop_t *loop;
    pid_t tid;
    void *lo, *hi;
    _Atomic int flag; /* 2 while spinning; the sampler sets it to 0 */
    int req_rc, poll_rc;
    at_export_stack_t st;
} spin_ctx_t;

VISIBLE void spinning_callback(spin_ctx_t *c);
VISIBLE void spinning_callback(spin_ctx_t *c)
{
    nofp_level1(nofp_spin, &c->flag);
    atomic_store(&c->flag, 3); /* not a tail call */
}

static void on_spin(at_loop_t *loop, void *arg)
{
    spinning_callback(arg);
}

static void *spin_sampler(void *arg)
{
    spin_ctx_t *c = arg;
    while (atomic_load(&c->flag) != 2)
        usleep(1000);
    usleep(20000);
    c->req_rc = at__export_sample_request(c->tid, c->lo, c->hi);
    c->poll_rc = -EINVAL;
    for (int i = 0; c->req_rc == 0 && i < 20000; i++) { /* hang guard: 20 s */
        c->poll_rc = at__export_sample_poll(at__now_ns(), 30000000000u, &c->st);
        if (c->poll_rc != 0)
            break;
        usleep(1000);
    }
    atomic_store(&c->flag, 0);
    return NULL;
}

/* A callback spinning three calls deep in code without frame pointers: the signal handler
 * copies registers and the top of the stack, the exporter unwinds them with CFI and the
 * sample names the spinning function and every caller, in order. (A frame-pointer walk loses
 * nofp_level2 and nofp_level1: rbp still holds spinning_callback's frame.) */
static void test_running_nofp_callback_names_its_callers(void **state)
{
    spin_ctx_t c = {0};
    assert_int_equal(at__export_sample_install(), 0);
    assert_int_equal(at_loop_new(&c.loop, NULL), 0);
    c.tid = c.loop->mon->tid;
    c.lo = c.loop->mon->stack_lo;
    c.hi = c.loop->mon->stack_hi;
    assert_int_equal(at_call_soon(c.loop, on_spin, &c, "spin", NULL), 0);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, spin_sampler, &c), 0);
    assert_int_equal(at_loop_run(c.loop, AT_RUN_DEFAULT), 0);
    pthread_join(th, NULL);
    at_close_report_t rep;
    assert_int_equal(at_loop_close(c.loop, &rep), 0);
    assert_int_equal(c.req_rc, 0);
    assert_int_equal(c.poll_rc, 1);
    static const char *const want[] = {"nofp_spin", "nofp_level3", "nofp_level2", "nofp_level1",
                                       "spinning_callback"};
    /* the spinning function is where the signal landed (under TSan its atomic load is a call
     * into the TSan runtime, whose frames, one to three, come first: TSan delivers the
     * signal at its next safe point) */
    int spin_at = frame_of(&c.st, 0, "nofp_spin");
    if (UNDER_TSAN)
        assert_true(spin_at >= 0 && spin_at <= 3);
    else
        assert_int_equal(spin_at, 0);
    expect_chain(&c.st, want, 5);
}

VISIBLE void nap_cb(void *arg);
VISIBLE void nap_cb(void *arg)
{
    nap(arg);
    atomic_store(&((sample_ctx_t *)arg)->sleeping, 2);
}

VISIBLE void blocked_nofp_callback(sample_ctx_t *c);
VISIBLE void blocked_nofp_callback(sample_ctx_t *c)
{
    nofp_level1(nap_cb, c);
    atomic_store(&c->sleeping, 3);
}

static void on_blocked_nofp(at_loop_t *loop, void *arg)
{
    blocked_nofp_callback(arg);
}

/* Blocked in a system call under code without frame pointers: sampled from outside (no
 * signal), unwound with CFI from the kernel's sp and pc: every caller, in order. */
static void test_blocked_nofp_callback_names_its_callers(void **state)
{
    sample_ctx_t c = {0};
    assert_int_equal(at_loop_new(&c.loop, NULL), 0);
    c.tid = c.loop->mon->tid;
    c.lo = c.loop->mon->stack_lo;
    c.hi = c.loop->mon->stack_hi;
    assert_int_equal(at_call_soon(c.loop, on_blocked_nofp, &c, "blocked", NULL), 0);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, sampler, &c), 0);
    assert_int_equal(at_loop_run(c.loop, AT_RUN_DEFAULT), 0);
    pthread_join(th, NULL);
    at_close_report_t rep;
    assert_int_equal(at_loop_close(c.loop, &rep), 0);
    assert_int_equal(c.sleep_rc, 0);
    if (RUNNING_ON_VALGRIND)
        return; /* no sample: see run_case */
    assert_int_equal(c.req_rc, 0);
    assert_int_equal(c.poll_rc, 1);
    static const char *const want[] = {"nap_cb", "nofp_level3", "nofp_level2", "nofp_level1",
                                       "blocked_nofp_callback"};
    expect_chain(&c.st, want, 5);
    /* each frame once: the frame pointer the CFI starts from is the live record, not a
     * stale one in libc's frames (which repeated "__nanosleep, nap") */
    for (uint32_t i = 0; i < c.st.depth; i++)
        for (uint32_t j = i + 1; j < c.st.depth; j++)
            if (c.st.pc[i] == c.st.pc[j])
                fail_msg("frames #%u and #%u are both %p", i, j, c.st.pc[i]);
}

int main(void)
{
    setenv("ASYNCTOP_SOCKET", "off", 1); /* we are the only sampler */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_blocked_callback_sampled_without_signal),
        cmocka_unit_test(test_blocked_task_sampled_without_signal),
        cmocka_unit_test(test_sampling_a_thread_that_keeps_changing),
        cmocka_unit_test(test_thread_waking_between_reads_is_sampled),
        cmocka_unit_test(test_unknown_thread),
        cmocka_unit_test(test_running_nofp_callback_names_its_callers),
        cmocka_unit_test(test_blocked_nofp_callback_names_its_callers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* test-preload.c: a plain libuv program (no asynctop headers beyond the shim's test query API)
 * run with LD_PRELOAD=libasynctop-preload.so; one test per trap of issue 9 — slow timer,
 * uv_timer_again, uv_write -> uv_write2, nested completions counted exclusively, work on pool
 * threads, address reuse after close, uv_loop_close and loop reuse, uv_loop_close of a busy loop
 * (UV_EBUSY, nothing else touched), two loops on two threads,
 * NULL callbacks, every other callback family reaching the program, the poll timed by the
 * epoll_wait wrappers (iterations, poll and idle time, durations exact across a poll, a
 * handle's callback replaced on the fly), and pthread_cancel of a loop thread blocked in it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "at_preload.h"

#define MS 1000000ull

static struct {
    __typeof__(&at_preload_debug_watched) watched;
    __typeof__(&at_preload_debug_site) site;
    __typeof__(&at_preload_debug_slow) slow;
    __typeof__(&at_preload_debug_entries) entries;
    __typeof__(&at_preload_debug_inflight) inflight;
    __typeof__(&at_preload_debug_work) work;
    __typeof__(&at_preload_debug_loop) loop;
} api;

static void resolve_api(void)
{
    api.watched = (__typeof__(api.watched))dlsym(RTLD_DEFAULT, "at_preload_debug_watched");
    api.site = (__typeof__(api.site))dlsym(RTLD_DEFAULT, "at_preload_debug_site");
    api.slow = (__typeof__(api.slow))dlsym(RTLD_DEFAULT, "at_preload_debug_slow");
    api.entries = (__typeof__(api.entries))dlsym(RTLD_DEFAULT, "at_preload_debug_entries");
    api.inflight = (__typeof__(api.inflight))dlsym(RTLD_DEFAULT, "at_preload_debug_inflight");
    api.work = (__typeof__(api.work))dlsym(RTLD_DEFAULT, "at_preload_debug_work");
    api.loop = (__typeof__(api.loop))dlsym(RTLD_DEFAULT, "at_preload_debug_loop");
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Busy for at least ms milliseconds (sleeping would do too: the loop thread is blocked). */
static void block_ms(unsigned ms)
{
    uint64_t end = now_ns() + ms * MS;
    while (now_ns() < end)
        usleep(1000);
}

static uint64_t site_count(uv_loop_t *loop, const void *fn, uint64_t *max_ns)
{
    uint64_t c = 0, t = 0, m = 0;
    if (api.site(loop, fn, &c, &t, &m) != 0)
        return 0;
    if (max_ns)
        *max_ns = m;
    return c;
}

static void close_all_cb(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

/* Close whatever the test left open, run the closes, close the loop (must succeed). */
static void finish_loop(uv_loop_t *loop)
{
    uv_walk(loop, close_all_cb, NULL);
    uv_run(loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(loop), 0);
}

static int setup(void **state)
{
    (void)state;
    assert_non_null(api.watched); /* the shim is preloaded */
    assert_int_equal(api.entries(), 0);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    assert_int_equal(api.entries(), 0); /* every entry went with its handle or request */
    return 0;
}

/* ---- a 150 ms timer callback is reported slow -------------------------------------------------
 */

static int slow_calls;
static void slow_timer_cb(uv_timer_t *t)
{
    slow_calls++;
    block_ms(150);
    uv_close((uv_handle_t *)t, NULL);
}

static void test_slow_timer(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_timer_t t;
    assert_int_equal(uv_loop_init(&loop), 0);
    uv_timer_init(&loop, &t);
    uv_timer_start(&t, slow_timer_cb, 10, 0);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(slow_calls, 1);
    assert_true(api.watched(&loop));
    uint64_t max = 0;
    assert_int_equal(site_count(&loop, (void *)slow_timer_cb, &max), 1);
    assert_true(max >= 150 * MS);
    assert_int_equal(api.slow(&loop), 1);
    finish_loop(&loop);
    assert_false(api.watched(&loop));
}

/* ---- uv_timer_again re-enters uv_timer_start with the trampoline ------------------------------
 */

static int again_calls;
static void again_cb(uv_timer_t *t)
{
    if (++again_calls == 3)
        uv_close((uv_handle_t *)t, NULL);
    else
        uv_timer_again(t); /* libuv: uv_timer_start(t, t->timer_cb == trampoline, ...) */
}

static void test_timer_again(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_timer_t t;
    uv_loop_init(&loop);
    uv_timer_init(&loop, &t);
    uv_timer_start(&t, again_cb, 1, 2);
    uv_timer_again(&t);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(again_calls, 3);
    assert_int_equal(site_count(&loop, (void *)again_cb, NULL), 3);
    finish_loop(&loop);
}

/* ---- uv_write calls uv_write2; reads; write requests in flight ------------------------------- */

static char rbuf[256];
static size_t rlen;
static int write_cbs, write2_cbs;
static void alloc_cb(uv_handle_t *h, size_t sz, uv_buf_t *b)
{
    (void)h;
    (void)sz;
    *b = uv_buf_init(rbuf + rlen, (unsigned)(sizeof rbuf - rlen));
}
static void read_cb(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    (void)b;
    if (n > 0)
        rlen += (size_t)n;
    if (n < 0 || rlen >= 10)
        uv_close((uv_handle_t *)s, NULL);
}
static void write_cb(uv_write_t *w, int status)
{
    assert_int_equal(status, 0);
    (void)w;
    write_cbs++;
}
static void write2_cb(uv_write_t *w, int status)
{
    assert_int_equal(status, 0);
    write2_cbs++;
    uv_close((uv_handle_t *)w->handle, NULL);
}

static void test_write_write2(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_pipe_t a, b;
    int sv[2];
    uv_loop_init(&loop);
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    uv_pipe_init(&loop, &a, 0);
    uv_pipe_init(&loop, &b, 0);
    uv_pipe_open(&a, sv[0]);
    uv_pipe_open(&b, sv[1]);
    uv_read_start((uv_stream_t *)&b, alloc_cb, read_cb);
    uv_write_t w1, w2;
    uv_buf_t buf1 = uv_buf_init("hello", 5), buf2 = uv_buf_init("world", 5);
    assert_int_equal(uv_write(&w1, (uv_stream_t *)&a, &buf1, 1, write_cb), 0);
    assert_int_equal(uv_write2(&w2, (uv_stream_t *)&a, &buf2, 1, NULL, write2_cb), 0);
    assert_int_equal(api.inflight(&loop), 2); /* two write requests in flight */
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(write_cbs, 1); /* once: uv_write -> uv_write2 did not wrap twice */
    assert_int_equal(write2_cbs, 1);
    assert_int_equal(rlen, 10);
    assert_memory_equal(rbuf, "helloworld", 10);
    assert_int_equal(site_count(&loop, (void *)write_cb, NULL), 1);
    assert_int_equal(site_count(&loop, (void *)write2_cb, NULL), 1);
    assert_true(site_count(&loop, (void *)read_cb, NULL) >= 1);
    assert_int_equal(api.inflight(&loop), 0);
    finish_loop(&loop);
}

/* ---- fs completions run nested in libuv's internal async: counted once, exclusively ------- */

static int fs_cbs;
static void fs_open_cb(uv_fs_t *req)
{
    assert_true(req->result >= 0);
    fs_cbs++;
    block_ms(120);
    uv_fs_t c;
    uv_fs_close(req->loop, &c, (uv_file)req->result, NULL); /* synchronous: passes through */
    uv_fs_req_cleanup(&c);
    uv_fs_req_cleanup(req);
}

static void test_fs_exclusive(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_fs_t open_req, stat_req;
    uv_loop_init(&loop);
    /* a synchronous call (NULL callback) passes through untouched */
    assert_int_equal(uv_fs_stat(&loop, &stat_req, "/dev/null", NULL), 0);
    uv_fs_req_cleanup(&stat_req);
    assert_int_equal(api.entries(), 0);
    assert_int_equal(uv_fs_open(&loop, &open_req, "/dev/null", 0, 0, fs_open_cb), 0);
    assert_int_equal(api.inflight(&loop), 1);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(fs_cbs, 1);
    uint64_t max = 0;
    assert_int_equal(site_count(&loop, (void *)fs_open_cb, &max), 1);
    assert_true(max >= 120 * MS);
    /* exactly one slow callback: the dispatcher it ran inside was not billed for it */
    assert_int_equal(api.slow(&loop), 1);
    finish_loop(&loop);
}

/* ---- work functions run on pool threads: timed apart, never as loop callbacks ---------------- */

static int work_runs, after_runs;
static void slow_work(uv_work_t *w)
{
    (void)w;
    __atomic_add_fetch(&work_runs, 1, __ATOMIC_RELAXED);
    block_ms(150);
}
static void quick_work(uv_work_t *w)
{
    (void)w;
    __atomic_add_fetch(&work_runs, 1, __ATOMIC_RELAXED);
}
static void after_work(uv_work_t *w, int status)
{
    (void)w;
    assert_int_equal(status, 0);
    after_runs++;
}

static void test_work_pool(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_work_t w1, w2;
    uint64_t c0, m0, c1, m1;
    api.work(&c0, &m0);
    uv_loop_init(&loop);
    assert_int_equal(uv_queue_work(&loop, &w1, slow_work, after_work), 0);
    assert_int_equal(uv_queue_work(&loop, &w2, quick_work, NULL), 0); /* no after callback */
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(__atomic_load_n(&work_runs, __ATOMIC_RELAXED), 2);
    assert_int_equal(after_runs, 1);
    api.work(&c1, &m1);
    assert_int_equal(c1 - c0, 2);
    assert_true(m1 >= 150 * MS);
    assert_int_equal(api.slow(&loop), 0); /* the pool's 150 ms is not a slow loop callback */
    assert_int_equal(site_count(&loop, (void *)after_work, NULL), 1);
    assert_int_equal(site_count(&loop, (void *)slow_work, NULL), 0);
    assert_int_equal(api.inflight(&loop), 0);
    finish_loop(&loop);
}

/* ---- a handle's address is reused inside its close callback --------------------------------- */

static union {
    uv_timer_t timer;
    uv_idle_t idle;
} slot;
static int a_calls, b_calls;
static void idle_b(uv_idle_t *h)
{
    b_calls++;
    uv_close((uv_handle_t *)h, NULL);
}
static void closed_a(uv_handle_t *h)
{
    /* the same memory becomes another handle with another callback */
    uv_idle_init(h->loop, &slot.idle);
    uv_idle_start(&slot.idle, idle_b);
}
static void timer_a(uv_timer_t *t)
{
    a_calls++;
    uv_close((uv_handle_t *)t, closed_a);
}

static void test_address_reuse(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    uv_timer_init(&loop, &slot.timer);
    uv_timer_start(&slot.timer, timer_a, 1, 1);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(a_calls, 1);
    assert_int_equal(b_calls, 1);
    assert_int_equal(site_count(&loop, (void *)timer_a, NULL), 1);
    assert_int_equal(site_count(&loop, (void *)closed_a, NULL), 1);
    assert_int_equal(site_count(&loop, (void *)idle_b, NULL), 1);
    finish_loop(&loop);
}

/* ---- uv_loop_close: the shim's handles are invisible and never block it; loop memory reused - */

static int walk_n;
static void count_cb(uv_handle_t *h, void *arg)
{
    (void)h;
    (void)arg;
    walk_n++;
}
static int reuse_calls;
static void reuse_cb(uv_timer_t *t)
{
    reuse_calls++;
    uv_close((uv_handle_t *)t, NULL);
}

static void test_loop_close_reuse(void **state)
{
    (void)state;
    for (int round = 0; round < 2; round++) {
        uv_loop_t *loop = malloc(sizeof *loop); /* freed and (likely) handed back: same address */
        uv_timer_t t;
        uv_loop_init(loop);
        uv_timer_init(loop, &t);
        uv_timer_start(&t, reuse_cb, 60000, 0);
        uv_run(loop, UV_RUN_NOWAIT); /* the loop is watched from here on */
        walk_n = 0;
        uv_walk(loop, count_cb, NULL);
        assert_int_equal(walk_n, 1); /* the program's timer only: the shim's are internal */
        uv_timer_start(&t, reuse_cb, 1, 0);
        uv_run(loop, UV_RUN_DEFAULT);
        assert_true(api.watched(loop));
        assert_int_equal(site_count(loop, (void *)reuse_cb, NULL), 1); /* a fresh monitor */
        assert_int_equal(uv_loop_close(loop), 0);
        assert_false(api.watched(loop));
        free(loop);
    }
    assert_int_equal(reuse_calls, 2);
}

/* ---- the program's async, prepare and check handles stay the program's ----------------------
 * Their callbacks are the shim's trampolines; the shim marks its own handles internal when it
 * starts watching a loop, and must not take these for its own (they would vanish from
 * uv_walk, from the handles by type, and from uv_loop_close's count). */

static void async_noop(uv_async_t *h)
{
    (void)h;
}
static void prepare_noop(uv_prepare_t *h)
{
    (void)h;
}
static void check_noop(uv_check_t *h)
{
    (void)h;
}

static void test_program_handles_stay_visible(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_async_t a;
    uv_prepare_t p;
    uv_check_t c;
    uv_loop_init(&loop);
    uv_async_init(&loop, &a, async_noop);
    uv_prepare_init(&loop, &p);
    uv_prepare_start(&p, prepare_noop);
    uv_check_init(&loop, &c);
    uv_check_start(&c, check_noop);
    uv_run(&loop, UV_RUN_NOWAIT); /* watched from here on */
    assert_true(api.watched(&loop));
    walk_n = 0;
    uv_walk(&loop, count_cb, NULL);
    assert_int_equal(walk_n, 3);
    assert_int_equal(uv_loop_close(&loop), UV_EBUSY); /* as without the shim */
    assert_true(api.watched(&loop));
    finish_loop(&loop);
}

/* ---- uv_loop_close on a busy loop: UV_EBUSY, as without the shim, nothing else changed ------
 * Issue 14: kresd, on SIGTERM, closes its loop while handles it already freed are still in the
 * loop's handle queue; the real uv_loop_close stops at the first program handle and returns
 * UV_EBUSY, the shim walked them all and crashed. */

static int busy_close_calls;
static void busy_close_cb(uv_handle_t *h)
{
    (void)h;
    busy_close_calls++;
}

static void test_loop_close_busy_closing(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_timer_t t;
    uv_loop_init(&loop);
    uv_timer_init(&loop, &t);
    uv_run(&loop, UV_RUN_NOWAIT); /* watched */
    assert_true(api.watched(&loop));
    uv_close((uv_handle_t *)&t, busy_close_cb);       /* closing: its callback has not run yet */
    assert_int_equal(uv_loop_close(&loop), UV_EBUSY); /* the real libuv counts closing handles */
    assert_int_equal(busy_close_calls, 0);            /* and the shim ran no callback of ours */
    assert_true(api.watched(&loop));
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(busy_close_calls, 1);
    assert_int_equal(uv_loop_close(&loop), 0);
    assert_false(api.watched(&loop));
}

static void test_loop_close_busy_freed(void **state)
{
    (void)state;
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        signal(SIGSEGV, SIG_DFL); /* not cmocka's handler: a crash must end this child */
        uv_loop_t loop;
        uv_timer_t first;
        uv_loop_init(&loop);
        uv_timer_init(&loop, &first); /* open: the real uv_loop_close stops here */
        uv_run(&loop, UV_RUN_NOWAIT); /* watched */
        long pg = sysconf(_SC_PAGESIZE);
        void *page =
            mmap(NULL, (size_t)pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (page == MAP_FAILED)
            _exit(3);
        uv_timer_init(&loop, (uv_timer_t *)page); /* queued after `first` */
        munmap(page, (size_t)pg);                 /* freed without closing, as kresd does */
        int rc = uv_loop_close(&loop);
        _exit(rc == UV_EBUSY ? 0 : 2); /* the program goes on and ends as it would */
    }
    int st = 0;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st)); /* not killed by SIGSEGV */
    assert_int_equal(WEXITSTATUS(st), 0);
}

/* ---- two loops on two threads: both watched, never confused ---------------------------------- */

typedef struct thr {
    uv_loop_t loop;
    uv_timer_t t;
    int calls;
} thr_t;
static void thr_slow_cb(uv_timer_t *t)
{
    ((thr_t *)t->data)->calls++;
    block_ms(150);
    uv_close((uv_handle_t *)t, NULL);
}
static void thr_quick_cb(uv_timer_t *t)
{
    ((thr_t *)t->data)->calls++;
    uv_close((uv_handle_t *)t, NULL);
}
static void *thr_main(void *arg)
{
    thr_t *x = arg;
    uv_run(&x->loop, UV_RUN_DEFAULT);
    return NULL;
}

static void test_two_loops_two_threads(void **state)
{
    (void)state;
    thr_t a = {0}, b = {0};
    uv_loop_init(&a.loop);
    uv_loop_init(&b.loop);
    uv_timer_init(&a.loop, &a.t);
    uv_timer_init(&b.loop, &b.t);
    a.t.data = &a; /* handle->data stays the program's */
    b.t.data = &b;
    uv_timer_start(&a.t, thr_slow_cb, 5, 0);
    uv_timer_start(&b.t, thr_quick_cb, 5, 0);
    pthread_t ta, tb;
    pthread_create(&ta, NULL, thr_main, &a);
    pthread_create(&tb, NULL, thr_main, &b);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    assert_int_equal(a.calls, 1);
    assert_int_equal(b.calls, 1);
    assert_true(api.watched(&a.loop) && api.watched(&b.loop));
    assert_int_equal(site_count(&a.loop, (void *)thr_slow_cb, NULL), 1);
    assert_int_equal(site_count(&b.loop, (void *)thr_quick_cb, NULL), 1);
    assert_int_equal(site_count(&a.loop, (void *)thr_quick_cb, NULL), 0);
    assert_int_equal(site_count(&b.loop, (void *)thr_slow_cb, NULL), 0);
    assert_int_equal(api.slow(&a.loop), 1);
    assert_int_equal(api.slow(&b.loop), 0);
    /* closed from another thread than the one that ran them, after that thread ended */
    finish_loop(&a.loop);
    finish_loop(&b.loop);
}

/* ---- every other family reaches the program -------------------------------------------------- */

static int gai_cbs, gni_cbs, rnd_cbs, sig_cbs, exit_cbs, conn_cbs, accept_cbs, shut_cbs,
    udp_recv_cbs, udp_send_cbs, poll_cbs, async_cbs, check_cbs, prep_cbs, fse_cbs;
static uv_tcp_t srv, cli, acc;
static uv_udp_t ur, us;
static void gai_cb(uv_getaddrinfo_t *r, int st, struct addrinfo *res)
{
    (void)r;
    (void)st;
    gai_cbs++;
    uv_freeaddrinfo(res);
}
static void gni_cb(uv_getnameinfo_t *r, int st, const char *h, const char *s)
{
    (void)r, (void)st, (void)h, (void)s;
    gni_cbs++;
}
static void rnd_cb(uv_random_t *r, int st, void *b, size_t n)
{
    (void)r, (void)b, (void)n;
    assert_int_equal(st, 0);
    rnd_cbs++;
}
static void sig_cb(uv_signal_t *h, int signum)
{
    assert_int_equal(signum, SIGUSR1);
    sig_cbs++;
    uv_close((uv_handle_t *)h, NULL);
}
static void exit_cb(uv_process_t *p, int64_t st, int sig)
{
    (void)sig;
    assert_int_equal(st, 0);
    exit_cbs++;
    uv_close((uv_handle_t *)p, NULL);
}
static void shut_cb(uv_shutdown_t *r, int st)
{
    (void)st;
    shut_cbs++;
    uv_close((uv_handle_t *)r->handle, NULL);
}
static void conn_cb(uv_connect_t *r, int st)
{
    assert_int_equal(st, 0);
    conn_cbs++;
    static uv_shutdown_t sr;
    assert_int_equal(uv_shutdown(&sr, r->handle, shut_cb), 0);
}
static void acc_read_cb(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    (void)b;
    if (n < 0) /* EOF after the peer's shutdown */
        uv_close((uv_handle_t *)s, NULL);
}
static void accept_cb(uv_stream_t *s, int st)
{
    assert_int_equal(st, 0);
    accept_cbs++;
    uv_tcp_init(s->loop, &acc);
    assert_int_equal(uv_accept(s, (uv_stream_t *)&acc), 0);
    uv_read_start((uv_stream_t *)&acc, alloc_cb, acc_read_cb);
    uv_close((uv_handle_t *)s, NULL);
}
static char ubuf[64];
static void ualloc(uv_handle_t *h, size_t sz, uv_buf_t *b)
{
    (void)h, (void)sz;
    *b = uv_buf_init(ubuf, sizeof ubuf);
}
static void urecv_cb(uv_udp_t *h, ssize_t n, const uv_buf_t *b, const struct sockaddr *a,
                     unsigned f)
{
    (void)b, (void)a, (void)f;
    if (n > 0) {
        udp_recv_cbs++;
        uv_close((uv_handle_t *)h, NULL);
    }
}
static void usend_cb(uv_udp_send_t *r, int st)
{
    assert_int_equal(st, 0);
    udp_send_cbs++;
    uv_close((uv_handle_t *)r->handle, NULL);
}
static void poll_cb(uv_poll_t *h, int st, int ev)
{
    (void)st, (void)ev;
    poll_cbs++;
    uv_close((uv_handle_t *)h, NULL);
}
static void async_cb(uv_async_t *h)
{
    async_cbs++;
    uv_close((uv_handle_t *)h, NULL);
}
static void check_cb(uv_check_t *h)
{
    check_cbs++;
    uv_close((uv_handle_t *)h, NULL);
}
static void prep_cb(uv_prepare_t *h)
{
    prep_cbs++;
    uv_close((uv_handle_t *)h, NULL);
}
static void fse_cb(uv_fs_event_t *h, const char *f, int ev, int st)
{
    (void)f, (void)ev, (void)st;
    fse_cbs++;
    uv_close((uv_handle_t *)h, NULL);
}
static void touch_cb(uv_timer_t *t)
{
    FILE *f = fopen((const char *)t->data, "w");
    if (f)
        fclose(f);
    uv_close((uv_handle_t *)t, NULL);
}

static void test_families(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    uv_getaddrinfo_t gai;
    assert_int_equal(uv_getaddrinfo(&loop, &gai, gai_cb, "localhost", NULL, NULL), 0);
    struct sockaddr_in lo;
    uv_ip4_addr("127.0.0.1", 0, &lo);
    uv_getnameinfo_t gni;
    assert_int_equal(uv_getnameinfo(&loop, &gni, gni_cb, (struct sockaddr *)&lo, 0), 0);
    char rb[8];
    uv_random_t rnd;
    assert_int_equal(uv_random(&loop, &rnd, rb, sizeof rb, 0, rnd_cb), 0);
    assert_int_equal(uv_random(NULL, NULL, rb, sizeof rb, 0, NULL), 0); /* sync */
    uv_signal_t sig;
    uv_signal_init(&loop, &sig);
    uv_signal_start(&sig, sig_cb, SIGUSR1);
    uv_process_t proc;
    char *args[] = {"/bin/true", NULL};
    char *env[] = {"PATH=/usr/bin:/bin", NULL}; /* not the (maybe sanitised) shim */
    uv_process_options_t po = {.exit_cb = exit_cb, .file = "/bin/true", .args = args, .env = env};
    assert_int_equal(uv_spawn(&loop, &proc, &po), 0);
    /* tcp: listen, connect, accept, shutdown */
    struct sockaddr_in addr;
    int alen = sizeof addr;
    uv_tcp_init(&loop, &srv);
    uv_tcp_bind(&srv, (struct sockaddr *)&lo, 0);
    assert_int_equal(uv_listen((uv_stream_t *)&srv, 4, accept_cb), 0);
    uv_tcp_getsockname(&srv, (struct sockaddr *)&addr, &alen);
    uv_tcp_init(&loop, &cli);
    uv_connect_t cr;
    assert_int_equal(uv_tcp_connect(&cr, &cli, (struct sockaddr *)&addr, conn_cb), 0);
    /* udp */
    uv_udp_init(&loop, &ur);
    uv_udp_bind(&ur, (struct sockaddr *)&lo, 0);
    alen = sizeof addr;
    uv_udp_getsockname(&ur, (struct sockaddr *)&addr, &alen);
    assert_int_equal(uv_udp_recv_start(&ur, ualloc, urecv_cb), 0);
    uv_udp_init(&loop, &us);
    uv_udp_send_t sr;
    uv_buf_t ub = uv_buf_init("x", 1);
    assert_int_equal(uv_udp_send(&sr, &us, &ub, 1, (struct sockaddr *)&addr, usend_cb), 0);
    /* poll on a writable pipe end, async, check, prepare */
    int pfd[2];
    assert_int_equal(pipe(pfd), 0);
    uv_poll_t ph;
    uv_poll_init(&loop, &ph, pfd[1]);
    uv_poll_start(&ph, UV_WRITABLE, poll_cb);
    uv_async_t as;
    uv_async_init(&loop, &as, async_cb);
    uv_async_send(&as);
    uv_check_t ck;
    uv_check_init(&loop, &ck);
    uv_check_start(&ck, check_cb);
    uv_prepare_t pp;
    uv_prepare_init(&loop, &pp);
    uv_prepare_start(&pp, prep_cb);
    /* fs event on a fresh directory, a file created from a timer */
    char dir[] = "/tmp/at-preload-XXXXXX", file[64];
    assert_non_null(mkdtemp(dir));
    snprintf(file, sizeof file, "%s/f", dir);
    uv_fs_event_t fse;
    uv_fs_event_init(&loop, &fse);
    assert_int_equal(uv_fs_event_start(&fse, fse_cb, dir, 0), 0);
    uv_timer_t touch;
    uv_timer_init(&loop, &touch);
    touch.data = file;
    uv_timer_start(&touch, touch_cb, 20, 0);
    raise(SIGUSR1);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(gai_cbs, 1);
    assert_int_equal(gni_cbs, 1);
    assert_int_equal(rnd_cbs, 1);
    assert_int_equal(sig_cbs, 1);
    assert_int_equal(exit_cbs, 1);
    assert_int_equal(conn_cbs, 1);
    assert_int_equal(accept_cbs, 1);
    assert_int_equal(shut_cbs, 1);
    assert_int_equal(udp_recv_cbs, 1);
    assert_int_equal(udp_send_cbs, 1);
    assert_int_equal(poll_cbs, 1);
    assert_int_equal(async_cbs, 1);
    assert_int_equal(check_cbs, 1);
    assert_int_equal(prep_cbs, 1);
    assert_int_equal(fse_cbs, 1);
    const void *fns[] = {gai_cb,  gni_cb,    rnd_cb,   sig_cb,   exit_cb,
                         conn_cb, accept_cb, shut_cb,  urecv_cb, usend_cb,
                         poll_cb, async_cb,  check_cb, prep_cb,  fse_cb};
    for (size_t i = 0; i < sizeof fns / sizeof fns[0]; i++)
        assert_int_equal(site_count(&loop, fns[i], NULL), 1);
    close(pfd[0]);
    close(pfd[1]);
    unlink(file);
    rmdir(dir);
    finish_loop(&loop);
}

/* ---- the poll: iterations, poll and idle time, durations across a blocking poll ------------- */

static int poll_a_calls, poll_b_calls, poll_spin_calls, own_epoll_fd = -1;
static void poll_b_cb(uv_timer_t *t)
{
    /* a program's own epoll fd passes straight through the wrapper */
    struct epoll_event ev;
    assert_int_equal(epoll_wait(own_epoll_fd, &ev, 1, 0), 0);
    if (++poll_b_calls == 3)
        uv_close((uv_handle_t *)t, NULL);
}
static void poll_a_cb(uv_timer_t *t)
{
    /* the same handle gets another callback: the trampoline's cache must not call this again */
    if (++poll_a_calls == 2)
        uv_timer_start(t, poll_b_cb, 40, 40);
}
static void poll_spin_cb(uv_timer_t *t)
{
    poll_spin_calls++;
    uint64_t end = now_ns() + 60 * MS; /* busy: the loop thread is in a callback, not polling */
    while (now_ns() < end)
        ;
    uv_close((uv_handle_t *)t, NULL);
}

static void test_poll_timing(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_timer_t t, spin;
    assert_int_equal(uv_loop_init(&loop), 0);
    own_epoll_fd = epoll_create1(EPOLL_CLOEXEC);
    assert_true(own_epoll_fd >= 0);
    uv_timer_init(&loop, &t);
    uv_timer_init(&loop, &spin);
    uv_timer_start(&t, poll_a_cb, 40, 40);
    uv_timer_start(&spin, poll_spin_cb, 1, 0);
    uint64_t t0 = now_ns();
    uv_run(&loop, UV_RUN_DEFAULT);
    uint64_t wall = now_ns() - t0;
    assert_int_equal(poll_a_calls, 2);
    assert_int_equal(poll_b_calls, 3);
    assert_int_equal(poll_spin_calls, 1);
    uint64_t it = 0, poll = 0, idle = 0, max_a = 0, max_b = 0, max_spin = 0;
    assert_int_equal(api.loop(&loop, &it, &poll, &idle), 0);
    assert_int_equal(site_count(&loop, (void *)poll_a_cb, &max_a), 2);
    assert_int_equal(site_count(&loop, (void *)poll_b_cb, &max_b), 3);
    assert_int_equal(site_count(&loop, (void *)poll_spin_cb, &max_spin), 1);
    printf("# iterations %llu poll %.1f ms idle %.1f ms wall %.1f ms; max a %.3f b %.3f spin "
           "%.1f ms\n",
           (unsigned long long)it, poll / 1e6, idle / 1e6, wall / 1e6, max_a / 1e6, max_b / 1e6,
           max_spin / 1e6);
    /* five timer expiries 40 ms apart, each after a blocking poll: at least 5 iterations */
    assert_true(it >= 5);
    /* the loop blocked ~5 x 40 ms minus the 60 ms spin: well over 100 ms of poll time ... */
    assert_true(poll >= 100 * MS);
    /* ... never the spinning callback's time, and never more than the run took */
    assert_true(poll + 60 * MS <= wall + 1 * MS);
    assert_int_equal(idle, poll);
    /* the callbacks that follow a 40 ms poll do not absorb it (durations exact across a poll) */
    assert_true(max_a < 20 * MS);
    assert_true(max_b < 20 * MS);
    assert_true(max_spin >= 60 * MS);
    close(own_epoll_fd);
    finish_loop(&loop);
}

/* libuv polls with epoll_pwait when it blocks a signal: the same timing through that wrapper */
static int pwait_calls;
static void pwait_cb(uv_timer_t *t)
{
    if (++pwait_calls == 2)
        uv_close((uv_handle_t *)t, NULL);
}

static void test_poll_pwait(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_timer_t t;
    assert_int_equal(uv_loop_init(&loop), 0);
    assert_int_equal(uv_loop_configure(&loop, UV_LOOP_BLOCK_SIGNAL, SIGPROF), 0);
    uv_timer_init(&loop, &t);
    uv_timer_start(&t, pwait_cb, 30, 30);
    uint64_t t0 = now_ns();
    uv_run(&loop, UV_RUN_DEFAULT);
    uint64_t wall = now_ns() - t0;
    assert_int_equal(pwait_calls, 2);
    uint64_t it = 0, poll = 0, idle = 0, max = 0;
    assert_int_equal(api.loop(&loop, &it, &poll, &idle), 0);
    assert_int_equal(site_count(&loop, (void *)pwait_cb, &max), 2);
    assert_true(it >= 2);
    assert_true(poll >= 40 * MS && poll <= wall + 1 * MS);
    assert_true(max < 20 * MS);
    finish_loop(&loop);
}

/* ---- pthread_cancel reaches a loop thread blocked in the (raw) poll ---------------------------
 */

static void never_cb(uv_timer_t *t)
{
    (void)t;
    fail_msg("the timer fired: the thread was not cancelled in its poll");
}

static void *cancel_main(void *arg)
{
    uv_run((uv_loop_t *)arg, UV_RUN_DEFAULT);
    return NULL;
}

static void test_cancel_in_poll(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_timer_t t;
    assert_int_equal(uv_loop_init(&loop), 0);
    uv_timer_init(&loop, &t);
    uv_timer_start(&t, never_cb, 20000, 0); /* the thread blocks in epoll_wait for 20 s */
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, cancel_main, &loop), 0);
    while (!api.watched(&loop))
        usleep(1000);
    usleep(50 * 1000); /* inside the poll by now */
    assert_int_equal(pthread_cancel(th), 0);
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += 5;
    void *ret = NULL;
    assert_int_equal(pthread_timedjoin_np(th, &ret, &dl), 0);
    assert_ptr_equal(ret, PTHREAD_CANCELED);
    uv_timer_stop(&t);
    finish_loop(&loop);
}

int main(void)
{
    resolve_api();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_slow_timer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_timer_again, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_write2, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fs_exclusive, setup, teardown),
        cmocka_unit_test_setup_teardown(test_work_pool, setup, teardown),
        cmocka_unit_test_setup_teardown(test_address_reuse, setup, teardown),
        cmocka_unit_test_setup_teardown(test_loop_close_reuse, setup, teardown),
        cmocka_unit_test_setup_teardown(test_program_handles_stay_visible, setup, teardown),
        cmocka_unit_test_setup_teardown(test_loop_close_busy_closing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_loop_close_busy_freed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_two_loops_two_threads, setup, teardown),
        cmocka_unit_test_setup_teardown(test_families, setup, teardown),
        cmocka_unit_test_setup_teardown(test_poll_timing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_poll_pwait, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancel_in_poll, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

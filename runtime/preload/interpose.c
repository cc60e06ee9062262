/* interpose.c: the libuv functions the shim interposes — every one that takes a callback — and
 * their timing trampolines. Each wrapper stores the program's callback in the side table keyed
 * by the handle or request address and hands libuv a trampoline that looks it up, times it
 * with loopmon and calls it. NULL callbacks, libuv's own internal callbacks and the shim's own
 * pass through untouched (which is also what makes uv_timer_again -> uv_timer_start and
 * uv_write -> uv_write2, both called through libuv's PLT with the trampoline, safe). */
#include "preload_int.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/syscall.h>
#include <unistd.h>

#define PL_EXTERN __attribute__((visibility("default")))

/* `real_fn`: the next definition of fn (libuv's), resolved once. Also runs the set-up. */
#define REAL(fn)                                                                                   \
    static __typeof__(&fn) real_##fn;                                                              \
    pl_init();                                                                                     \
    __typeof__(&fn) r_##fn = __atomic_load_n(&real_##fn, __ATOMIC_RELAXED);                        \
    if (AT__UNLIKELY(r_##fn == NULL)) {                                                            \
        r_##fn = (__typeof__(&fn))pl_real(#fn);                                                    \
        __atomic_store_n(&real_##fn, r_##fn, __ATOMIC_RELAXED);                                    \
    }

#define CALLER   __builtin_return_address(0)
#define PL_COMMA ,

static int put_main(void *h, uv_loop_t *loop, void *cb, unsigned kind)
{
    pl_hit_t x = {.cb = cb, .loop = loop, .kind = (uint8_t)kind};
    return pl_tab_put(h, PL_SLOT_MAIN, &x);
}

/* ---- the handle fast path ---------------------------------------------------------------------
 * A handle's callback fires again and again with nothing changed, so each thread keeps a small
 * direct-mapped cache of what its trampolines looked up: per handle the callback, and when it
 * is timed here the monitor and the call site. An entry is used only while the side-table
 * entry it was filled from has the same version (every put, take and change bumps it: a
 * handle closed and its address reused never hits) and no loop was watched or unwatched since
 * (pl_gen: the monitor and its sites live as long as the loop is watched). */
#define PL_FAST 64

/* kind of the shim's own callbacks on a program's loop (the exporter's async): untimed, and
 * the next callback reads the clock afresh (they may take milliseconds) */
#define PL_KIND_SELF 0xffu

typedef struct pl_fast {
    const void *key; /* the handle */
    const void *ref; /* its side-table entry, and the entry's version when filled */
    unsigned ver;
    unsigned kind;
    uint64_t gen;     /* pl_gen when filled */
    void *cb;         /* the program's callback */
    at__mon_t *mon;   /* NULL: runs untimed (unwatched loop, or not its loop thread) */
    at__site_t *site; /* with mon: the callback's site */
} pl_fast_t;

static __thread __attribute__((tls_model("initial-exec"))) pl_fast_t pl_fast[PL_FAST];

static __attribute__((noinline)) pl_fast_t *fast_fill(pl_fast_t *f, const void *h, uint64_t gen)
{
    pl_hit_t x;
    const void *ref;
    unsigned ver;
    if (!pl_tab_get_ref(h, PL_SLOT_MAIN, &x, &ref, &ver))
        return NULL;
    at__mon_t *m = NULL;
    at__site_t *site = NULL;
    pl_loop_t *st = pl_loop_for(x.loop);
    if (st != NULL && st->mon != NULL && x.cb != NULL &&
        pthread_equal(st->thread, pthread_self())) {
        m = st->mon;
        if (x.kind != PL_KIND_SELF && (site = at__mon_site(m, x.cb, NULL)) == NULL)
            m = NULL; /* out of memory: untimed */
    }
    f->key = h;
    f->ref = ref;
    f->ver = ver;
    f->kind = x.kind;
    f->gen = gen;
    f->cb = x.cb;
    f->mon = m;
    f->site = site;
    return f;
}

/* What the trampoline of handle h needs: a cache entry (copy its fields before calling the
 * program: a nested trampoline may refill it), or NULL when h has no entry (lost). */
static inline pl_fast_t *fast_get(const void *h)
{
    uint64_t gen = atomic_load_explicit(&pl_gen, memory_order_acquire);
    pl_fast_t *f = &pl_fast[(((uintptr_t)h >> 4) * 0x9E3779B97F4A7C15ull) >> 58];
    if (AT__LIKELY(f->key == h && f->gen == gen && pl_tab_ver(f->ref) == f->ver))
        return f;
    return fast_fill(f, h, gen);
}

/* A trampoline for a handle's main callback: look it up (it stays: handles call again), time
 * it, call it. The handle is not touched after the call (the callback may free it). */
#define HANDLE_TRAMP(tname, htype, cbtype, PARAMS, ARGS)                                           \
    static __attribute__((flatten)) void tname(htype *h PARAMS)                                    \
    {                                                                                              \
        pl_fast_t *f = fast_get(h);                                                                \
        if (AT__UNLIKELY(f == NULL)) {                                                             \
            pl_lost(#tname, h);                                                                    \
            return;                                                                                \
        }                                                                                          \
        cbtype cb = (cbtype)f->cb;                                                                 \
        at__mon_t *m = f->mon;                                                                     \
        at__cb_t c;                                                                                \
        if (m != NULL)                                                                             \
            at__cb_begin(m, &c, f->site, f->kind);                                                 \
        cb(h ARGS);                                                                                \
        if (m != NULL)                                                                             \
            at__cb_end(m, &c);                                                                     \
    }

/* A trampoline for a request's callback: take the entry (the request is done; the program may
 * reuse the request inside its callback), post the "removed" row, time and call it. */
#define REQ_TRAMP(tname, rtype_, cbtype, PARAMS, ARGS)                                             \
    static void tname(rtype_ *req PARAMS)                                                          \
    {                                                                                              \
        pl_hit_t x;                                                                                \
        if (AT__UNLIKELY(!pl_tab_take(req, PL_SLOT_REQ, &x))) {                                    \
            pl_lost(#tname, req);                                                                  \
            return;                                                                                \
        }                                                                                          \
        at__cb_t c;                                                                                \
        at__mon_t *m = pl_begin(&x, &c);                                                           \
        if (x.cb != NULL)                                                                          \
            ((cbtype)x.cb)(req ARGS);                                                              \
        pl_end(m, &c);                                                                             \
    }

/* ==== loops ================================================================================== */

/* The watched loop this thread is running (inside uv_run), for the epoll_wait wrappers. */
__thread __attribute__((tls_model("initial-exec"))) pl_loop_t *pl_running;

PL_EXTERN int uv_run(uv_loop_t *loop, uv_run_mode mode)
{
    REAL(uv_run);
    if (pl_off || pl_from_self(CALLER))
        return r_uv_run(loop, mode);
    pl_loop_t *st = pl_loop_for(loop);
    if (st == NULL)
        st = pl_loop_watch(loop);
    else
        pl_export_once(); /* a forked child's first run */
    if (st == NULL || st->mon == NULL || !pthread_equal(st->thread, pthread_self()))
        return r_uv_run(loop, mode);
    if (st->mon->cur == NULL)
        at__mon_chain_break(st->mon);
    pl_loop_t *prev = pl_running;
    pl_running = st;
    int rc = r_uv_run(loop, mode);
    pl_running = prev;
    return rc;
}

/* ==== the poll ================================================================================
 * libuv (1.44, Linux) polls with epoll_wait, or epoll_pwait when it blocks a signal, called
 * through its PLT: the wrappers time the poll of the loop the thread is running (loopmon's
 * poll hooks: iterations, poll and idle time, and the poll's end is the next callback's
 * start), which replaces loopmon's prepare and check handles and one of their two clock reads
 * per iteration.
 *
 * They also make the syscall directly instead of through libc's wrapper: in a process with a
 * second thread (the exporter's) libc brackets every cancellable syscall with the
 * cancellation switches, which cost this poll more than its own timing. What the raw syscall
 * skips is only cancellation, so it is used only until the first pthread_cancel in the
 * process (the pthread_cancel wrapper below), which also wakes the watched loops of the target
 * thread so that a poll already under way returns and is made again, cancellably. */

static _Atomic int pl_cancel_seen;

/* The poll syscall itself: -errno on failure. x86_64: inline (no libc wrapper, no errno
 * round trip); elsewhere through syscall(2), which is not a cancellation point either. */
static inline long poll_syscall(long nr, long a1, long a2, long a3, long a4, long a5, long a6)
{
#if defined(__x86_64__)
    long ret;
    register long r10 __asm__("r10") = a4;
    register long r8 __asm__("r8") = a5;
    register long r9 __asm__("r9") = a6;
    __asm__ volatile("syscall"
                     : "=a"(ret)
                     : "0"(nr), "D"(a1), "S"(a2), "d"(a3), "r"(r10), "r"(r8), "r"(r9)
                     : "rcx", "r11", "memory");
    return ret;
#else
    long ret = syscall(nr, a1, a2, a3, a4, a5, a6);
    return ret < 0 ? -errno : ret;
#endif
}

/* The end of a timed poll made with the raw syscall (r: its result or -errno): reports it to
 * loopmon (interrupted or not) and returns what libc's wrapper would, errno set on failure. */
static inline int poll_end_raw(pl_loop_t *st, long r)
{
    at__mon_poll_end(st->mon, r == -EINTR);
    if (AT__UNLIKELY(r < 0)) {
        errno = (int)-r;
        return -1;
    }
    return (int)r;
}

/* The end of a timed poll made through libc's wrapper (n: its result): reports it to loopmon
 * and returns n with the wrapper's errno. */
static inline int poll_end_libc(pl_loop_t *st, int n)
{
    int e = errno;
    at__mon_poll_end(st->mon, n < 0 && e == EINTR);
    errno = e;
    return n;
}

PL_EXTERN int epoll_wait(int epfd, struct epoll_event *events, int maxevents, int timeout)
{
    pl_loop_t *st = pl_running;
    if (st == NULL || st->loop->backend_fd != epfd) {
        REAL(epoll_wait);
        return r_epoll_wait(epfd, events, maxevents, timeout);
    }
    at__mon_poll_begin(st->mon);
    if (AT__LIKELY(atomic_load_explicit(&pl_cancel_seen, memory_order_seq_cst) == 0))
        return poll_end_raw(
            st, poll_syscall(SYS_epoll_wait, epfd, (long)events, maxevents, timeout, 0, 0));
    REAL(epoll_wait);
    return poll_end_libc(st, r_epoll_wait(epfd, events, maxevents, timeout));
}

PL_EXTERN int epoll_pwait(int epfd, struct epoll_event *events, int maxevents, int timeout,
                          const sigset_t *sigmask)
{
    pl_loop_t *st = pl_running;
    if (st == NULL || st->loop->backend_fd != epfd) {
        REAL(epoll_pwait);
        return r_epoll_pwait(epfd, events, maxevents, timeout, sigmask);
    }
    at__mon_poll_begin(st->mon);
    if (AT__LIKELY(atomic_load_explicit(&pl_cancel_seen, memory_order_seq_cst) == 0))
        return poll_end_raw(st, poll_syscall(SYS_epoll_pwait, epfd, (long)events, maxevents,
                                             timeout, (long)sigmask, _NSIG / 8));
    REAL(epoll_pwait);
    return poll_end_libc(st, r_epoll_pwait(epfd, events, maxevents, timeout, sigmask));
}

PL_EXTERN int pthread_cancel(pthread_t thread)
{
    REAL(pthread_cancel);
    atomic_store_explicit(&pl_cancel_seen, 1, memory_order_seq_cst);
    int rc = r_pthread_cancel(thread);
    if (rc == 0)
        pl_wake_loops_of(thread);
    return rc;
}

PL_EXTERN int uv_loop_close(uv_loop_t *loop)
{
    REAL(uv_loop_close);
    if (!pl_off && !pl_from_self(CALLER))
        pl_loop_unwatch(loop);
    return r_uv_loop_close(loop);
}

/* ==== timers, idle, prepare, check, async ===================================================== */

static __attribute__((flatten)) void tr_timer(uv_timer_t *h)
{
    pl_fast_t *f = fast_get(h);
    if (AT__UNLIKELY(f == NULL)) {
        pl_lost("timer", h);
        return;
    }
    uv_timer_cb cb = (uv_timer_cb)f->cb;
    at__mon_t *m = f->mon;
    at__cb_t c;
    if (m != NULL)
        at__cb_begin(m, &c, f->site, f->kind);
    cb(h);
    if (m != NULL)
        at__cb_end(m, &c);
}

PL_EXTERN int uv_timer_start(uv_timer_t *h, uv_timer_cb cb, uint64_t timeout, uint64_t repeat)
{
    REAL(uv_timer_start);
    if (pl_pass((void *)cb) || put_main(h, h->loop, (void *)cb, AT__CB_TIMER) != 0)
        return r_uv_timer_start(h, cb, timeout, repeat);
    return r_uv_timer_start(h, tr_timer, timeout, repeat);
}

/* The shim's own async callback on a program's loop (the exporter's mailbox): untimed, and
 * the chain is broken after it, so that the next program callback does not absorb it. */
static void tr_self_async(uv_async_t *h)
{
    pl_fast_t *f = fast_get(h);
    if (AT__UNLIKELY(f == NULL)) {
        pl_lost("self_async", h);
        return;
    }
    at__mon_t *m = f->mon;
    ((uv_async_cb)f->cb)(h);
    if (m != NULL && m->cur == NULL)
        at__mon_chain_break(m);
}

HANDLE_TRAMP(tr_idle, uv_idle_t, uv_idle_cb, , )
HANDLE_TRAMP(tr_prepare, uv_prepare_t, uv_prepare_cb, , )
HANDLE_TRAMP(tr_check, uv_check_t, uv_check_cb, , )
HANDLE_TRAMP(tr_async, uv_async_t, uv_async_cb, , )

#define SIMPLE_START(kind_, what, tramp, cbkind)                                                   \
    PL_EXTERN int uv_##what##_start(uv_##what##_t *h, uv_##what##_cb cb)                           \
    {                                                                                              \
        REAL(uv_##what##_start);                                                                   \
        if (pl_pass((void *)cb) || put_main(h, h->loop, (void *)cb, cbkind) != 0)                  \
            return r_uv_##what##_start(h, cb);                                                     \
        return r_uv_##what##_start(h, tramp);                                                      \
    }
SIMPLE_START(UV_IDLE, idle, tr_idle, AT__CB_READY)
SIMPLE_START(UV_PREPARE, prepare, tr_prepare, AT__CB_READY)
SIMPLE_START(UV_CHECK, check, tr_check, AT__CB_READY)

PL_EXTERN int uv_async_init(uv_loop_t *loop, uv_async_t *h, uv_async_cb cb)
{
    REAL(uv_async_init);
    if (cb != NULL && loop == pl_watching && pl_from_self((void *)cb) && cb != tr_async &&
        cb != tr_self_async && put_main(h, loop, (void *)cb, PL_KIND_SELF) == 0)
        return r_uv_async_init(loop, h, tr_self_async);
    if (pl_pass((void *)cb) || put_main(h, loop, (void *)cb, AT__CB_OTHER) != 0)
        return r_uv_async_init(loop, h, cb);
    return r_uv_async_init(loop, h, tr_async);
}

bool pl_handle_is_self(const uv_handle_t *h)
{
    const void *cb;
    switch (h->type) {
    case UV_PREPARE:
        cb = (const void *)((const uv_prepare_t *)h)->prepare_cb;
        return cb != NULL && cb != (const void *)tr_prepare && pl_from_self(cb);
    case UV_CHECK:
        cb = (const void *)((const uv_check_t *)h)->check_cb;
        return cb != NULL && cb != (const void *)tr_check && pl_from_self(cb);
    case UV_ASYNC:
        cb = (const void *)((const uv_async_t *)h)->async_cb;
        return cb != NULL && cb != (const void *)tr_async && pl_from_self(cb);
    default:
        return false;
    }
}

/* ==== poll, signal, fs events, fs polls, processes =============================================
 */

HANDLE_TRAMP(tr_poll, uv_poll_t, uv_poll_cb, PL_COMMA int status PL_COMMA int events,
             PL_COMMA status PL_COMMA events)

PL_EXTERN int uv_poll_start(uv_poll_t *h, int events, uv_poll_cb cb)
{
    REAL(uv_poll_start);
    if (pl_pass((void *)cb) || put_main(h, h->loop, (void *)cb, AT__CB_IO) != 0)
        return r_uv_poll_start(h, events, cb);
    return r_uv_poll_start(h, events, tr_poll);
}

HANDLE_TRAMP(tr_signal, uv_signal_t, uv_signal_cb, PL_COMMA int signum, PL_COMMA signum)

PL_EXTERN int uv_signal_start(uv_signal_t *h, uv_signal_cb cb, int signum)
{
    REAL(uv_signal_start);
    if (pl_pass((void *)cb) || put_main(h, h->loop, (void *)cb, AT__CB_IO) != 0)
        return r_uv_signal_start(h, cb, signum);
    return r_uv_signal_start(h, tr_signal, signum);
}

PL_EXTERN int uv_signal_start_oneshot(uv_signal_t *h, uv_signal_cb cb, int signum)
{
    REAL(uv_signal_start_oneshot);
    if (pl_pass((void *)cb) || put_main(h, h->loop, (void *)cb, AT__CB_IO) != 0)
        return r_uv_signal_start_oneshot(h, cb, signum);
    return r_uv_signal_start_oneshot(h, tr_signal, signum);
}

HANDLE_TRAMP(tr_fs_event, uv_fs_event_t, uv_fs_event_cb,
             PL_COMMA const char *filename PL_COMMA int events PL_COMMA int status,
             PL_COMMA filename PL_COMMA events PL_COMMA status)

PL_EXTERN int uv_fs_event_start(uv_fs_event_t *h, uv_fs_event_cb cb, const char *path,
                                unsigned int flags)
{
    REAL(uv_fs_event_start);
    if (pl_pass((void *)cb) || put_main(h, h->loop, (void *)cb, AT__CB_IO) != 0)
        return r_uv_fs_event_start(h, cb, path, flags);
    return r_uv_fs_event_start(h, tr_fs_event, path, flags);
}

HANDLE_TRAMP(tr_fs_poll, uv_fs_poll_t, uv_fs_poll_cb,
             PL_COMMA int status PL_COMMA const uv_stat_t *prev PL_COMMA const uv_stat_t *curr,
             PL_COMMA status PL_COMMA prev PL_COMMA curr)

PL_EXTERN int uv_fs_poll_start(uv_fs_poll_t *h, uv_fs_poll_cb cb, const char *path,
                               unsigned int interval)
{
    REAL(uv_fs_poll_start);
    if (pl_pass((void *)cb) || put_main(h, h->loop, (void *)cb, AT__CB_IO) != 0)
        return r_uv_fs_poll_start(h, cb, path, interval);
    return r_uv_fs_poll_start(h, tr_fs_poll, path, interval);
}

HANDLE_TRAMP(tr_exit, uv_process_t, uv_exit_cb, PL_COMMA int64_t status PL_COMMA int sig,
             PL_COMMA status PL_COMMA sig)

PL_EXTERN int uv_spawn(uv_loop_t *loop, uv_process_t *h, const uv_process_options_t *options)
{
    REAL(uv_spawn);
    if (options == NULL || pl_pass((void *)options->exit_cb) ||
        put_main(h, loop, (void *)options->exit_cb, AT__CB_IO) != 0)
        return r_uv_spawn(loop, h, options);
    uv_process_options_t o = *options;
    o.exit_cb = tr_exit;
    int rc = r_uv_spawn(loop, h, &o);
    if (rc != 0)
        pl_tab_take(h, PL_SLOT_MAIN, NULL);
    return rc;
}

/* ==== streams and udp ========================================================================= */

HANDLE_TRAMP(tr_read, uv_stream_t, uv_read_cb, PL_COMMA ssize_t nread PL_COMMA const uv_buf_t *buf,
             PL_COMMA nread PL_COMMA buf)

PL_EXTERN int uv_read_start(uv_stream_t *h, uv_alloc_cb alloc_cb, uv_read_cb cb)
{
    REAL(uv_read_start);
    if (pl_pass((void *)cb) || put_main(h, h->loop, (void *)cb, AT__CB_IO) != 0)
        return r_uv_read_start(h, alloc_cb, cb);
    return r_uv_read_start(h, alloc_cb, tr_read);
}

HANDLE_TRAMP(tr_listen, uv_stream_t, uv_connection_cb, PL_COMMA int status, PL_COMMA status)

PL_EXTERN int uv_listen(uv_stream_t *h, int backlog, uv_connection_cb cb)
{
    REAL(uv_listen);
    if (pl_pass((void *)cb) || put_main(h, h->loop, (void *)cb, AT__CB_IO) != 0)
        return r_uv_listen(h, backlog, cb);
    return r_uv_listen(h, backlog, tr_listen);
}

HANDLE_TRAMP(tr_recv, uv_udp_t, uv_udp_recv_cb,
             PL_COMMA ssize_t nread PL_COMMA const uv_buf_t *buf
                 PL_COMMA const struct sockaddr *addr PL_COMMA unsigned flags,
             PL_COMMA nread PL_COMMA buf PL_COMMA addr PL_COMMA flags)

PL_EXTERN int uv_udp_recv_start(uv_udp_t *h, uv_alloc_cb alloc_cb, uv_udp_recv_cb cb)
{
    REAL(uv_udp_recv_start);
    if (pl_pass((void *)cb) || put_main(h, h->loop, (void *)cb, AT__CB_IO) != 0)
        return r_uv_udp_recv_start(h, alloc_cb, cb);
    return r_uv_udp_recv_start(h, alloc_cb, tr_recv);
}

REQ_TRAMP(tr_write, uv_write_t, uv_write_cb, PL_COMMA int status, PL_COMMA status)

PL_EXTERN int uv_write2(uv_write_t *req, uv_stream_t *h, const uv_buf_t bufs[], unsigned int nbufs,
                        uv_stream_t *send_handle, uv_write_cb cb)
{
    REAL(uv_write2);
    if (pl_pass((void *)cb) ||
        pl_req_put(req, h->loop, PL_R_WRITE, AT__CB_IO, (void *)cb, NULL, "write", NULL, CALLER))
        return r_uv_write2(req, h, bufs, nbufs, send_handle, cb);
    return pl_req_issued(req, r_uv_write2(req, h, bufs, nbufs, send_handle, tr_write));
}

PL_EXTERN int uv_write(uv_write_t *req, uv_stream_t *h, const uv_buf_t bufs[], unsigned int nbufs,
                       uv_write_cb cb)
{
    REAL(uv_write);
    if (pl_pass((void *)cb) ||
        pl_req_put(req, h->loop, PL_R_WRITE, AT__CB_IO, (void *)cb, NULL, "write", NULL, CALLER))
        return r_uv_write(req, h, bufs, nbufs, cb);
    /* libuv's uv_write calls uv_write2 through its PLT with tr_write: that passes through */
    return pl_req_issued(req, r_uv_write(req, h, bufs, nbufs, tr_write));
}

REQ_TRAMP(tr_shutdown, uv_shutdown_t, uv_shutdown_cb, PL_COMMA int status, PL_COMMA status)

PL_EXTERN int uv_shutdown(uv_shutdown_t *req, uv_stream_t *h, uv_shutdown_cb cb)
{
    REAL(uv_shutdown);
    if (pl_pass((void *)cb) || pl_req_put(req, h->loop, PL_R_SHUTDOWN, AT__CB_IO, (void *)cb, NULL,
                                          "shutdown", NULL, CALLER))
        return r_uv_shutdown(req, h, cb);
    return pl_req_issued(req, r_uv_shutdown(req, h, tr_shutdown));
}

REQ_TRAMP(tr_connect, uv_connect_t, uv_connect_cb, PL_COMMA int status, PL_COMMA status)

PL_EXTERN int uv_tcp_connect(uv_connect_t *req, uv_tcp_t *h, const struct sockaddr *addr,
                             uv_connect_cb cb)
{
    REAL(uv_tcp_connect);
    if (pl_pass((void *)cb) || pl_req_put(req, h->loop, PL_R_CONNECT, AT__CB_IO, (void *)cb, NULL,
                                          "connect", NULL, CALLER))
        return r_uv_tcp_connect(req, h, addr, cb);
    return pl_req_issued(req, r_uv_tcp_connect(req, h, addr, tr_connect));
}

PL_EXTERN void uv_pipe_connect(uv_connect_t *req, uv_pipe_t *h, const char *name, uv_connect_cb cb)
{
    REAL(uv_pipe_connect);
    if (pl_pass((void *)cb) || pl_req_put(req, h->loop, PL_R_CONNECT, AT__CB_IO, (void *)cb, NULL,
                                          "connect", name, CALLER)) {
        r_uv_pipe_connect(req, h, name, cb);
        return;
    }
    r_uv_pipe_connect(req, h, name, tr_connect); /* errors come through the callback */
}

REQ_TRAMP(tr_udp_send, uv_udp_send_t, uv_udp_send_cb, PL_COMMA int status, PL_COMMA status)

PL_EXTERN int uv_udp_send(uv_udp_send_t *req, uv_udp_t *h, const uv_buf_t bufs[],
                          unsigned int nbufs, const struct sockaddr *addr, uv_udp_send_cb cb)
{
    REAL(uv_udp_send);
    if (pl_pass((void *)cb) || pl_req_put(req, h->loop, PL_R_UDP_SEND, AT__CB_IO, (void *)cb, NULL,
                                          "udp_send", NULL, CALLER))
        return r_uv_udp_send(req, h, bufs, nbufs, addr, cb);
    return pl_req_issued(req, r_uv_udp_send(req, h, bufs, nbufs, addr, tr_udp_send));
}

/* ==== close =================================================================================== */

static void tr_close(uv_handle_t *h)
{
    pl_hit_t x;
    if (AT__UNLIKELY(!pl_tab_take(h, PL_SLOT_CLOSE, &x))) {
        pl_lost("close", h);
        return;
    }
    at__cb_t c;
    at__mon_t *m = pl_begin(&x, &c);
    ((uv_close_cb)x.cb)(h); /* may free h, or reuse its address for a new handle */
    pl_end(m, &c);
}

/* The handle's callbacks will not run again: forget them now, and keep the close callback. */
static uv_close_cb close_prep(uv_handle_t *h, uv_close_cb cb)
{
    pl_tab_take(h, PL_SLOT_MAIN, NULL);
    if (pl_pass((void *)cb))
        return cb;
    pl_hit_t x = {.cb = (void *)cb, .loop = h->loop, .kind = AT__CB_OTHER};
    if (pl_tab_put(h, PL_SLOT_CLOSE, &x) != 0)
        return cb;
    return tr_close;
}

PL_EXTERN void uv_close(uv_handle_t *h, uv_close_cb cb)
{
    REAL(uv_close);
    r_uv_close(h, close_prep(h, cb));
}

PL_EXTERN int uv_tcp_close_reset(uv_tcp_t *h, uv_close_cb cb)
{
    REAL(uv_tcp_close_reset);
    uv_close_cb c = close_prep((uv_handle_t *)h, cb);
    int rc = r_uv_tcp_close_reset(h, c);
    if (rc != 0 && c == tr_close)
        pl_tab_take(h, PL_SLOT_CLOSE, NULL);
    return rc;
}

/* ==== thread pool: work, getaddrinfo, getnameinfo, random ===================================== */

/* Runs on a pool thread: timed on its own, never as a loop callback. */
static void tr_work(uv_work_t *req)
{
    pl_hit_t x;
    if (AT__UNLIKELY(!pl_tab_get(req, PL_SLOT_REQ, &x))) {
        pl_lost("work", req);
        return;
    }
    uint64_t t0 = at__now_ns();
    ((uv_work_cb)x.cb2)(req);
    pl_work_record(at__now_ns() - t0);
}

/* Always installed (also without an after-work callback) so that the request's row goes. */
REQ_TRAMP(tr_after_work, uv_work_t, uv_after_work_cb, PL_COMMA int status, PL_COMMA status)

PL_EXTERN int uv_queue_work(uv_loop_t *loop, uv_work_t *req, uv_work_cb work_cb,
                            uv_after_work_cb after_work_cb)
{
    REAL(uv_queue_work);
    if ((pl_pass((void *)work_cb) && pl_pass((void *)after_work_cb)) || work_cb == NULL ||
        pl_req_put(req, loop, PL_R_WORK, AT__CB_EXECUTOR,
                   pl_pass((void *)after_work_cb) ? NULL : (void *)after_work_cb, (void *)work_cb,
                   "work", NULL, CALLER))
        return r_uv_queue_work(loop, req, work_cb, after_work_cb);
    return pl_req_issued(req, r_uv_queue_work(loop, req, tr_work, tr_after_work));
}

REQ_TRAMP(tr_getaddrinfo, uv_getaddrinfo_t, uv_getaddrinfo_cb,
          PL_COMMA int status PL_COMMA struct addrinfo *res, PL_COMMA status PL_COMMA res)

PL_EXTERN int uv_getaddrinfo(uv_loop_t *loop, uv_getaddrinfo_t *req, uv_getaddrinfo_cb cb,
                             const char *node, const char *service, const struct addrinfo *hints)
{
    REAL(uv_getaddrinfo);
    if (pl_pass((void *)cb) || pl_req_put(req, loop, PL_R_GETADDRINFO, AT__CB_IO, (void *)cb, NULL,
                                          "getaddrinfo", node ? node : service, CALLER))
        return r_uv_getaddrinfo(loop, req, cb, node, service, hints);
    return pl_req_issued(req, r_uv_getaddrinfo(loop, req, tr_getaddrinfo, node, service, hints));
}

REQ_TRAMP(tr_getnameinfo, uv_getnameinfo_t, uv_getnameinfo_cb,
          PL_COMMA int status PL_COMMA const char *host PL_COMMA const char *service,
          PL_COMMA status PL_COMMA host PL_COMMA service)

PL_EXTERN int uv_getnameinfo(uv_loop_t *loop, uv_getnameinfo_t *req, uv_getnameinfo_cb cb,
                             const struct sockaddr *addr, int flags)
{
    REAL(uv_getnameinfo);
    if (pl_pass((void *)cb) || pl_req_put(req, loop, PL_R_GETNAMEINFO, AT__CB_IO, (void *)cb, NULL,
                                          "getnameinfo", NULL, CALLER))
        return r_uv_getnameinfo(loop, req, cb, addr, flags);
    return pl_req_issued(req, r_uv_getnameinfo(loop, req, tr_getnameinfo, addr, flags));
}

REQ_TRAMP(tr_random, uv_random_t, uv_random_cb,
          PL_COMMA int status PL_COMMA void *buf PL_COMMA size_t buflen,
          PL_COMMA status PL_COMMA buf PL_COMMA buflen)

PL_EXTERN int uv_random(uv_loop_t *loop, uv_random_t *req, void *buf, size_t buflen, unsigned flags,
                        uv_random_cb cb)
{
    REAL(uv_random);
    if (pl_pass((void *)cb) ||
        pl_req_put(req, loop, PL_R_RANDOM, AT__CB_IO, (void *)cb, NULL, "random", NULL, CALLER))
        return r_uv_random(loop, req, buf, buflen, flags, cb);
    return pl_req_issued(req, r_uv_random(loop, req, buf, buflen, flags, tr_random));
}

/* ==== file system: every uv_fs_* that takes a callback =========================================
 */

REQ_TRAMP(tr_fs, uv_fs_t, uv_fs_cb, , )

#define UNPACK(...) __VA_ARGS__
/* FS(name, (params), (args), detail): the wrapper of uv_fs_<name>(loop, req, params..., cb). */
#define FS(name, P, A, detail)                                                                     \
    PL_EXTERN int uv_fs_##name(uv_loop_t *loop, uv_fs_t *req, UNPACK P, uv_fs_cb cb)               \
    {                                                                                              \
        REAL(uv_fs_##name);                                                                        \
        if (pl_pass((void *)cb) || pl_req_put(req, loop, PL_R_FS, AT__CB_IO, (void *)cb, NULL,     \
                                              "fs." #name, detail, CALLER))                        \
            return r_uv_fs_##name(loop, req, UNPACK A, cb);                                        \
        return pl_req_issued(req, r_uv_fs_##name(loop, req, UNPACK A, tr_fs));                     \
    }

FS(close, (uv_file file), (file), NULL)
FS(open, (const char *path, int flags, int mode), (path, flags, mode), path)
FS(read, (uv_file file, const uv_buf_t bufs[], unsigned int nbufs, int64_t offset),
   (file, bufs, nbufs, offset), NULL)
FS(write, (uv_file file, const uv_buf_t bufs[], unsigned int nbufs, int64_t offset),
   (file, bufs, nbufs, offset), NULL)
FS(unlink, (const char *path), (path), path)
FS(mkdir, (const char *path, int mode), (path, mode), path)
FS(mkdtemp, (const char *tpl), (tpl), tpl)
FS(mkstemp, (const char *tpl), (tpl), tpl)
FS(rmdir, (const char *path), (path), path)
FS(scandir, (const char *path, int flags), (path, flags), path)
FS(opendir, (const char *path), (path), path)
FS(readdir, (uv_dir_t * dir), (dir), NULL)
FS(closedir, (uv_dir_t * dir), (dir), NULL)
FS(stat, (const char *path), (path), path)
FS(fstat, (uv_file file), (file), NULL)
FS(lstat, (const char *path), (path), path)
FS(statfs, (const char *path), (path), path)
FS(rename, (const char *path, const char *new_path), (path, new_path), path)
FS(fsync, (uv_file file), (file), NULL)
FS(fdatasync, (uv_file file), (file), NULL)
FS(ftruncate, (uv_file file, int64_t offset), (file, offset), NULL)
FS(copyfile, (const char *path, const char *new_path, int flags), (path, new_path, flags), path)
FS(sendfile, (uv_file out_fd, uv_file in_fd, int64_t in_offset, size_t length),
   (out_fd, in_fd, in_offset, length), NULL)
FS(access, (const char *path, int mode), (path, mode), path)
FS(chmod, (const char *path, int mode), (path, mode), path)
FS(fchmod, (uv_file file, int mode), (file, mode), NULL)
FS(utime, (const char *path, double atime, double mtime), (path, atime, mtime), path)
FS(futime, (uv_file file, double atime, double mtime), (file, atime, mtime), NULL)
FS(lutime, (const char *path, double atime, double mtime), (path, atime, mtime), path)
FS(link, (const char *path, const char *new_path), (path, new_path), path)
FS(symlink, (const char *path, const char *new_path, int flags), (path, new_path, flags), path)
FS(readlink, (const char *path), (path), path)
FS(realpath, (const char *path), (path), path)
FS(chown, (const char *path, uv_uid_t uid, uv_gid_t gid), (path, uid, gid), path)
FS(fchown, (uv_file file, uv_uid_t uid, uv_gid_t gid), (file, uid, gid), NULL)
FS(lchown, (const char *path, uv_uid_t uid, uv_gid_t gid), (path, uid, gid), path)

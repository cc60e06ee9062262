/* preload.c: the LD_PRELOAD shim's core — set-up, the watched loops (loopmon monitor and
 * exporter attachment per loop), the in-flight request rows fed to the exporter through its
 * provider interface, the timing helpers the trampolines use, and a small test-only query API. */
#include "preload_int.h"
#include "at_preload.h"

#include <dlfcn.h>
#include <errno.h>
#include <link.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PL_EXTERN __attribute__((visibility("default")))

/* libuv's internal "internal handle" flag (src/uv-common.h, UV_HANDLE_INTERNAL, 0x10 in libuv
 * 1.x): uv_walk skips such handles and uv_loop_close does not count them. The shim sets it on
 * its own handles (loopmon's prepare/check, the exporter's async) so that programs that walk
 * their loop (luv, uvloop, neovim) never see a handle whose `data` is not theirs, and so that
 * the shim's handles never make uv_loop_close fail. */
#define PL_UV_HANDLE_INTERNAL 0x10u

_Atomic int pl_ready;
int pl_off;
uintptr_t pl_self_lo, pl_self_hi, pl_uv_lo, pl_uv_hi;

static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static pthread_mutex_t g_loops_lock = PTHREAD_MUTEX_INITIALIZER;
static pl_loop_t *g_loops;
_Atomic uint64_t pl_gen = 1;
__thread __attribute__((tls_model("initial-exec"))) uv_loop_t *pl_watching;
static _Atomic uint64_t g_next_id = 1;
static _Atomic int g_export_started;
static _Atomic uint64_t g_work_count, g_work_total_ns, g_work_max_ns;

/* ---- set-up -----------------------------------------------------------------------------------
 */

void *pl_real(const char *name)
{
    void *p = dlsym(RTLD_NEXT, name);
    if (p == NULL) {
        /* libuv is not below the shim: nothing sensible can be done for this call */
        fprintf(stderr, "asynctop-preload: %s not found in libuv (%s)\n", name, dlerror());
        abort();
    }
    return p;
}

typedef struct range_q {
    uintptr_t addr;
    uintptr_t lo, hi;
    const char *name;
} range_q_t;

static int range_cb(struct dl_phdr_info *info, size_t size, void *arg)
{
    (void)size;
    range_q_t *q = arg;
    bool mine = false;
    uintptr_t lo = UINTPTR_MAX, hi = 0;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_LOAD)
            continue;
        uintptr_t a = info->dlpi_addr + ph->p_vaddr, b = a + ph->p_memsz;
        if (q->addr >= a && q->addr < b)
            mine = true;
        if (ph->p_flags & PF_X) {
            if (a < lo)
                lo = a;
            if (b > hi)
                hi = b;
        }
    }
    if (!mine)
        return 0;
    q->lo = lo;
    q->hi = hi;
    q->name = info->dlpi_name;
    return 1;
}

static void code_range(const void *addr, uintptr_t *lo, uintptr_t *hi)
{
    range_q_t q = {(uintptr_t)addr, 0, 0, NULL};
    if (dl_iterate_phdr(range_cb, &q) == 1) {
        *lo = q.lo;
        *hi = q.hi;
    }
}

static void init_once(void)
{
    bool on = true;
    const char *e = getenv("ASYNCTOP_PRELOAD");
    if (e != NULL && at__parse_bool(e, &on) == 0 && !on)
        pl_off = 1;
    /* The program's stderr is the program's: only errors by default (the socket is the
     * interface); ASYNCTOP_PRELOAD_LOG=1 adds asyncio-style "Executing ... took" lines. */
    bool loud = false;
    e = getenv("ASYNCTOP_PRELOAD_LOG");
    if (e == NULL || at__parse_bool(e, &loud) != 0)
        loud = false;
    at__log_set_level(loud ? AT__LOG_INFO : AT__LOG_ERROR);

    code_range((const void *)pl_init, &pl_self_lo, &pl_self_hi);
    /* the shim's frames (trampolines, wrappers, the timing they call) are not the program's:
     * sampled stacks leave them out */
    at__export_hide_code((const void *)pl_self_lo, (const void *)pl_self_hi);
    void *real_run = dlsym(RTLD_NEXT, "uv_run");
    if (real_run != NULL)
        code_range(real_run, &pl_uv_lo, &pl_uv_hi);

    /* Statically linked libuv: a definition of uv_run that comes before the shim in the
     * global scope (the executable's own, exported) wins over ours, and a hidden one is never
     * looked up at all. Say so: nothing of that libuv can be seen. */
    void *first = dlsym(RTLD_DEFAULT, "uv_run");
    Dl_info di;
    if (first != NULL && !pl_from_self(first) && dladdr(first, &di) != 0) {
        const char *f = di.dli_fname && *di.dli_fname ? di.dli_fname : "the program";
        fprintf(stderr,
                "asynctop-preload: libuv is linked statically into %s (uv_run resolves there, "
                "not to a shared libuv.so.1): its callbacks cannot be interposed and asynctop "
                "will not see its loops\n",
                f);
        pl_off = 1;
    }
    atomic_store_explicit(&pl_ready, 1, memory_order_release);
}

void pl_init(void)
{
    if (AT__LIKELY(atomic_load_explicit(&pl_ready, memory_order_acquire)))
        return;
    pthread_once(&g_once, init_once);
}

__attribute__((constructor)) static void pl_ctor(void)
{
    pl_init();
}

void pl_lost(const char *what, const void *key)
{
    static _Atomic int once;
    if (atomic_exchange(&once, 1) == 0)
        at__log(AT__LOG_ERROR, "asynctop-preload: lost the %s callback of %p (reported once)", what,
                key);
}

/* ---- loops ------------------------------------------------------------------------------------
 */

static __thread __attribute__((tls_model("initial-exec"))) struct {
    uv_loop_t *loop;
    pl_loop_t *st;
    uint64_t gen;
} tc;

pl_loop_t *pl_loop_for(uv_loop_t *loop)
{
    uint64_t gen = atomic_load_explicit(&pl_gen, memory_order_acquire);
    if (AT__LIKELY(tc.loop == loop && tc.gen == gen))
        return tc.st;
    pthread_mutex_lock(&g_loops_lock);
    pl_loop_t *st = g_loops;
    while (st != NULL && st->loop != loop)
        st = st->next;
    pthread_mutex_unlock(&g_loops_lock);
    tc.loop = loop;
    tc.st = st;
    tc.gen = gen;
    return st;
}

void pl_export_once(void)
{
    if (atomic_load_explicit(&g_export_started, memory_order_relaxed) == 0 &&
        atomic_exchange(&g_export_started, 1) == 0)
        (void)at__export_start(NULL); /* errors are logged; loops are still monitored */
}

/* fork() (rank AT__FORK_PRELOAD_LOOPS, loopmon.h): the watched loops' list is consistent and
 * its lock free in the child. A forked child has no exporter thread (runtime/export abandons
 * its copy): the child's next uv_run starts its own, on its own pid's socket. */
static void loops_lock_take(void)
{
    pthread_mutex_lock(&g_loops_lock);
}

static void loops_lock_release(void)
{
    pthread_mutex_unlock(&g_loops_lock);
}

static void atfork_child(void)
{
    atomic_store(&g_export_started, 0);
    pthread_mutex_unlock(&g_loops_lock);
}

static const at__fork_handlers_t loops_fork_handlers = {loops_lock_take, loops_lock_release,
                                                        atfork_child};

__attribute__((constructor)) static void loops_fork_register(void)
{
    at__fork_register(AT__FORK_PRELOAD_LOOPS, &loops_fork_handlers);
}

static void provider_resync(void *ctx, at_export_resync_sink_t *sink);
static int provider_detail(void *ctx, uint64_t id, at_export_task_detail_t *out);
static int provider_cancel(void *ctx, uint64_t id)
{
    (void)ctx;
    (void)id;
    return -ENOTSUP;
}

static void mark_internal(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (pl_handle_is_self(h))
        h->flags |= PL_UV_HANDLE_INTERNAL;
}

pl_loop_t *pl_loop_watch(uv_loop_t *loop)
{
    pl_loop_t *st = calloc(1, sizeof *st);
    if (st == NULL)
        return NULL;
    st->loop = loop;
    st->thread = pthread_self();
    /* no prepare/check handles: the epoll_wait wrappers report the loop's polls */
    if (at__mon_create_flags(loop, AT__MON_EXTERNAL_POLL, &st->mon) != 0) {
        free(st);
        return NULL;
    }
    pl_export_once();
    st->prov = (at_export_provider_t){
        .name = "asynctop-preload 0.1.0",
        .caps = AT_EXPORT_CAP_TASKS | AT_EXPORT_CAP_TASK_DETAIL,
        .ctx = st,
        .resync = provider_resync,
        .task_detail = provider_detail,
        .task_cancel = provider_cancel,
    };
    pl_watching = loop;
    st->att = at__export_attach(loop, &st->prov);
    pl_watching = NULL;
    uv_walk(loop, mark_internal, NULL);
    pthread_mutex_lock(&g_loops_lock);
    st->next = g_loops;
    g_loops = st;
    atomic_fetch_add_explicit(&pl_gen, 1, memory_order_release);
    pthread_mutex_unlock(&g_loops_lock);
    return st;
}

void pl_wake_loops_of(pthread_t thread)
{
    pthread_mutex_lock(&g_loops_lock);
    for (pl_loop_t *st = g_loops; st != NULL; st = st->next) {
        if (!pthread_equal(st->thread, thread))
            continue;
        /* what uv_async_send does (libuv 1.44, Linux: an eventfd, or a pipe's write end):
         * the loop wakes, finds no async handle pending, and polls again */
        uv_loop_t *l = st->loop;
        int fd = l->async_wfd != -1 ? l->async_wfd : l->async_io_watcher.fd;
        uint64_t one = 1;
        if (fd >= 0) {
            ssize_t w;
            do
                w = write(fd, &one, fd == l->async_wfd ? 1 : sizeof one);
            while (w < 0 && errno == EINTR);
        }
    }
    pthread_mutex_unlock(&g_loops_lock);
}

/* Whether the real uv_loop_close will fail with UV_EBUSY: what libuv 1.44 checks
 * (src/uv-common.c), read the way it reads it — a request in flight, or a handle that is not
 * internal (open or closing) found walking the loop's handle queue, stopping at the first one.
 * It must read nothing more: a program may leave handles in the queue whose memory it has
 * already freed (kresd frees its handles after uv_close without running the loop again), and
 * the real call, which stops at the first program handle, never reaches them. uv_walk would:
 * it visits every handle and relinks each one. */
static bool loop_close_busy(const uv_loop_t *loop)
{
    if (loop->active_reqs.count > 0)
        return true;
    void *const *head = loop->handle_queue; /* libuv's QUEUE: void *[2], next then prev */
    for (void *const *q = head[0]; q != head; q = q[0]) {
        const uv_handle_t *h =
            (const uv_handle_t *)((const char *)q - offsetof(uv_handle_t, handle_queue));
        if (!(h->flags & PL_UV_HANDLE_INTERNAL))
            return true;
    }
    return false;
}

void pl_loop_unwatch(uv_loop_t *loop)
{
    pl_loop_t *st = pl_loop_for(loop);
    if (st == NULL)
        return;
    if (loop_close_busy(loop))
        return; /* uv_loop_close fails with UV_EBUSY, as without the shim; nothing was touched */
    pthread_mutex_lock(&g_loops_lock);
    for (pl_loop_t **pp = &g_loops; *pp != NULL; pp = &(*pp)->next)
        if (*pp == st) {
            *pp = st->next;
            break;
        }
    atomic_fetch_add_explicit(&pl_gen, 1, memory_order_release);
    pthread_mutex_unlock(&g_loops_lock);
    if (pl_running == st)
        pl_running = NULL; /* closed from inside its own uv_run: no more polls of it are timed */
    at__export_detach(st->att);
    if (st->mon != NULL)
        at__mon_close(st->mon);
    /* run the close callbacks of the shim's handles (nothing of the program's is left) */
    static int (*real_run)(uv_loop_t *, uv_run_mode);
    if (real_run == NULL)
        real_run = (int (*)(uv_loop_t *, uv_run_mode))pl_real("uv_run");
    real_run(loop, UV_RUN_NOWAIT);
    free(st);
}

/* ---- in-flight requests ------------------------------------------------------------------------
 */

static uint8_t wait_kind_of(int rtype)
{
    switch (rtype) {
    case PL_R_WRITE:
    case PL_R_SHUTDOWN:
    case PL_R_UDP_SEND:
        return 5; /* write */
    case PL_R_CONNECT:
        return 6; /* connect */
    default:
        return 13; /* runs on libuv's thread pool: executor */
    }
}

static void row_of(const pl_hit_t *h, at_export_task_row_t *row)
{
    memset(row, 0, sizeof *row);
    row->id = h->id;
    row->created_ns = h->issued_ns;
    row->wait_since_ns = h->issued_ns;
    row->state = AT_EXPORT_TASK_WAITING;
    row->wait_kind = wait_kind_of(h->rtype);
    row->entry_fn = h->rtype == PL_R_WORK && h->cb2 != NULL ? h->cb2 : h->cb;
    row->create_pc = h->create_pc;
    memcpy(row->name, h->name, sizeof row->name);
    row->name[sizeof row->name - 1] = '\0';
}

/* Drops the shim's own frames from pcs[0..n) (as at__export_hide_code does for sampled
 * stacks); returns how many are left, in order. */
static int pl_strip_self(void **pcs, int n)
{
    int k = 0;
    for (int i = 0; i < n; i++)
        if (!pl_from_self(pcs[i]))
            pcs[k++] = pcs[i];
    return k;
}

int pl_req_put(const void *req, uv_loop_t *loop, pl_rtype_t rtype, unsigned kind, void *cb,
               void *cb2, const char *name, const char *detail, void *create_pc)
{
    pl_hit_t h = {
        .cb = cb,
        .cb2 = cb2,
        .loop = loop,
        .id = atomic_fetch_add_explicit(&g_next_id, 1, memory_order_relaxed),
        .issued_ns = at__now_ns(),
        .create_pc = create_pc,
        .kind = (uint8_t)kind,
        .rtype = (uint8_t)rtype,
    };
    if (detail != NULL && *detail)
        snprintf(h.name, sizeof h.name, "%s %s", name, detail);
    else
        snprintf(h.name, sizeof h.name, "%s", name);
    pl_loop_t *st = pl_loop_for(loop);
    bool post = st != NULL && st->att != NULL && pthread_equal(st->thread, pthread_self());
    h.posted = post;
    int rc = pl_tab_put(req, PL_SLOT_REQ, &h);
    if (rc != 0)
        return rc;
    if (AT__UNLIKELY(at__debug_enabled())) {
        void *pcs[PL_STACK_MAX];
        int n = at__stack_capture(pcs, PL_STACK_MAX, 2);
        n = pl_strip_self(pcs, n); /* issued from a callback: its trampoline is below */
        if (n > 0)
            pl_tab_set_stack(req, PL_SLOT_REQ, pcs, n);
    }
    if (post) {
        at_export_task_row_t row;
        row_of(&h, &row);
        at__export_task_post(st->att, AT_EXPORT_TASK_ADDED, &row);
    }
    return 0;
}

int pl_req_issued(const void *req, int rc)
{
    if (rc < 0) {
        pl_hit_t h;
        if (pl_tab_take(req, PL_SLOT_REQ, &h) && h.posted) {
            pl_loop_t *st = pl_loop_for(h.loop);
            if (st != NULL && st->att != NULL) {
                at_export_task_row_t row = {.id = h.id};
                at__export_task_post(st->att, AT_EXPORT_TASK_REMOVED, &row);
            }
        }
    }
    return rc;
}

typedef struct resync_arg {
    at_export_resync_sink_t *sink;
} resync_arg_t;

static void resync_one(const void *key, const pl_hit_t *h, void *arg)
{
    (void)key;
    resync_arg_t *r = arg;
    at_export_task_row_t row;
    row_of(h, &row);
    (void)at__export_resync_add(r->sink, &row);
}

static void provider_resync(void *ctx, at_export_resync_sink_t *sink)
{
    pl_loop_t *st = ctx;
    resync_arg_t r = {sink};
    pl_tab_foreach_req(st->loop, resync_one, &r);
}

static int provider_detail(void *ctx, uint64_t id, at_export_task_detail_t *out)
{
    pl_loop_t *st = ctx;
    pl_hit_t h;
    void *pcs[PL_STACK_MAX];
    int n = PL_STACK_MAX;
    if (pl_tab_find_id(st->loop, id, &h, pcs, &n) != 0)
        return -ESRCH;
    memset(out, 0, sizeof *out);
    row_of(&h, &out->row);
    out->creation.depth = (uint32_t)n;
    for (int i = 0; i < n; i++)
        out->creation.pc[i] = pcs[i];
    snprintf(out->wait_desc, sizeof out->wait_desc, "%s (in flight %.3f s)", h.name,
             (double)(at__now_ns() - h.issued_ns) / 1e9);
    return 0;
}

/* ---- timing ------------------------------------------------------------------------------------
 */

at__mon_t *pl_begin(const pl_hit_t *h, at__cb_t *c)
{
    pl_loop_t *st = pl_loop_for(h->loop);
    if (st == NULL || st->mon == NULL || !pthread_equal(st->thread, pthread_self()))
        return NULL;
    /* Every finished request, posted or not: one issued before its loop was watched (before
     * the loop's first uv_run, or on another thread) was never posted, but the exporter's
     * resync listed it from the side table. Removing an id the exporter does not know is a
     * no-op. */
    if (h->rtype != PL_R_NONE && st->att != NULL) {
        at_export_task_row_t row = {.id = h->id};
        at__export_task_post(st->att, AT_EXPORT_TASK_REMOVED, &row);
    }
    if (h->cb == NULL)
        return NULL;
    at__site_t *site = at__mon_site(st->mon, h->cb, NULL);
    if (site == NULL)
        return NULL;
    at__cb_begin(st->mon, c, site, h->kind);
    return st->mon;
}

void pl_work_record(uint64_t ns)
{
    atomic_fetch_add_explicit(&g_work_count, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&g_work_total_ns, ns, memory_order_relaxed);
    uint64_t m = atomic_load_explicit(&g_work_max_ns, memory_order_relaxed);
    while (ns > m && !atomic_compare_exchange_weak_explicit(
                         &g_work_max_ns, &m, ns, memory_order_relaxed, memory_order_relaxed))
        ;
}

/* ---- test-only query API (exported; tests find it with dlsym) ------------------------------- */

/* 1 if `loop` is watched (its first uv_run happened and it was not closed), else 0. */
PL_EXTERN int at_preload_debug_watched(uv_loop_t *loop)
{
    return pl_loop_for(loop) != NULL;
}

/* Statistics of callback `fn` on `loop`: 0 and the values, or -ENOENT (unwatched loop, or
 * no callback of fn ran there). Any thread (values are relaxed reads). */
PL_EXTERN int at_preload_debug_site(uv_loop_t *loop, const void *fn, uint64_t *count,
                                    uint64_t *total_ns, uint64_t *max_ns)
{
    pl_loop_t *st = pl_loop_for(loop);
    if (st == NULL || st->mon == NULL)
        return -ENOENT;
    for (at__site_t *s = at__mon_sites(st->mon); s != NULL;
         s = atomic_load_explicit(&s->next_all, memory_order_acquire))
        if (s->fn == fn && s->name[0] == '\0') {
            at__site_stats_t ss;
            at__site_read(s, &ss);
            *count = ss.count;
            *total_ns = ss.total_ns;
            *max_ns = ss.max_ns;
            return 0;
        }
    return -ENOENT;
}

/* Slow callbacks counted on `loop` (0 if unwatched). */
PL_EXTERN uint64_t at_preload_debug_slow(uv_loop_t *loop)
{
    pl_loop_t *st = pl_loop_for(loop);
    return st && st->mon ? atomic_load_explicit(&st->mon->slow_count, memory_order_relaxed) : 0;
}

/* Loop metrics of `loop` (relaxed reads). */
PL_EXTERN int at_preload_debug_loop(uv_loop_t *loop, uint64_t *iterations, uint64_t *poll_ns,
                                    uint64_t *idle_ns)
{
    pl_loop_t *st = pl_loop_for(loop);
    if (st == NULL || st->mon == NULL)
        return -ENOENT;
    at__mon_stats_t ms;
    at__mon_stats(st->mon, &ms);
    *iterations = ms.iterations;
    *poll_ns = ms.poll_ns;
    *idle_ns = ms.idle_ns;
    return 0;
}

/* Side-table entries alive (handles with callbacks + requests in flight). */
PL_EXTERN size_t at_preload_debug_entries(void)
{
    return pl_tab_count();
}

static void count_req(const void *key, const pl_hit_t *h, void *arg)
{
    (void)key;
    (void)h;
    ++*(size_t *)arg;
}

/* Requests in flight on `loop` (the rows the pending view shows). */
PL_EXTERN size_t at_preload_debug_inflight(uv_loop_t *loop)
{
    size_t n = 0;
    pl_tab_foreach_req(loop, count_req, &n);
    return n;
}

/* uv_queue_work work functions timed on pool threads: count and longest. */
PL_EXTERN void at_preload_debug_work(uint64_t *count, uint64_t *max_ns)
{
    *count = atomic_load_explicit(&g_work_count, memory_order_relaxed);
    *max_ns = atomic_load_explicit(&g_work_max_ns, memory_order_relaxed);
}

/* mon.c: the per-loop monitor: registry, call sites, slow callbacks, "now running" reads,
 * loop metrics (prepare/check handles) and the event ring to the exporter. */
#include "loopmon.h"

#include <errno.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- registry ------------------------------------------------------------------------------ */

static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static at__mon_t *reg_head;
static uint64_t reg_next_id = 1;

/* fork() (rank AT__FORK_MON_REGISTRY): the exporter thread walks the registry every tick, and
 * a child that creates a loop adds to it. */
__attribute__((constructor)) static void reg_fork_register(void)
{
    at__fork_register_mutex(AT__FORK_MON_REGISTRY, &reg_lock);
}

static void reg_add(at__mon_t *m)
{
    pthread_mutex_lock(&reg_lock);
    m->id = reg_next_id++;
    m->reg_next = reg_head;
    reg_head = m;
    pthread_mutex_unlock(&reg_lock);
}

static void reg_remove(at__mon_t *m)
{
    pthread_mutex_lock(&reg_lock);
    for (at__mon_t **p = &reg_head; *p; p = &(*p)->reg_next)
        if (*p == m) {
            *p = m->reg_next;
            break;
        }
    m->reg_next = NULL;
    pthread_mutex_unlock(&reg_lock);
}

int at__mon_foreach(int (*fn)(at__mon_t *m, void *data), void *data)
{
    int rc = 0;
    pthread_mutex_lock(&reg_lock);
    for (at__mon_t *m = reg_head; m && rc == 0; m = m->reg_next)
        rc = fn(m, data);
    pthread_mutex_unlock(&reg_lock);
    return rc;
}

at__mon_t *at__mon_find(uv_loop_t *loop)
{
    at__mon_t *found = NULL;
    pthread_mutex_lock(&reg_lock);
    for (at__mon_t *m = reg_head; m; m = m->reg_next)
        if (m->loop == loop) {
            found = m;
            break;
        }
    pthread_mutex_unlock(&reg_lock);
    return found;
}

/* ---- lifetime ---------------------------------------------------------------------------------
 */

static void mon_free(at__mon_t *m)
{
    at__site_t *s = atomic_load_explicit(&m->sites, memory_order_acquire);
    while (s) {
        at__site_t *n = atomic_load_explicit(&s->next_all, memory_order_relaxed);
        free(s);
        s = n;
    }
    free(m->htab);
    free(m->ring);
    free(m);
}

void at__mon_ref(at__mon_t *m)
{
    atomic_fetch_add_explicit(&m->refs, 1, memory_order_relaxed);
}

void at__mon_unref(at__mon_t *m)
{
    if (atomic_fetch_sub_explicit(&m->refs, 1, memory_order_acq_rel) == 1)
        mon_free(m);
}

static void handle_closed(uv_handle_t *h)
{
    at__mon_t *m = h->data;
    if ((void *)h == (void *)&m->prepare_h)
        m->prepare = NULL;
    else
        m->check = NULL;
    m->open_handles--;
    m->chain_ns = 0;
    at__mon_unref(m);
}

/* Loop lag: the loop is about to poll at `now`; everything that became ready since the last
 * poll returned has waited at most this long for the loop to look (see at__mon_t.lag). */
static void lag_record(at__mon_t *m, uint64_t now)
{
    if (m->poll_end_ns == 0)
        return;
    uint64_t lag = now > m->poll_end_ns ? now - m->poll_end_ns : 0;
    m->poll_end_ns = 0;
    at__hist_add(&m->lag, lag);
    if (lag > atomic_load_explicit(&m->lag_max_ns, memory_order_relaxed))
        atomic_store_explicit(&m->lag_max_ns, lag, memory_order_relaxed);
}

static void on_prepare(uv_prepare_t *h)
{
    at__mon_t *m = h->data;
    uint64_t now = at__now_ns();
    lag_record(m, now);
    at__counter_add(&m->iterations, 1);
    m->prepare_ns = now;
    m->cb_at_prepare_ns = atomic_load_explicit(&m->busy_ns, memory_order_relaxed);
    /* The poll comes next: whatever follows it must read the clock afresh. */
    m->chain_ns = 0;
}

static void on_check(uv_check_t *h)
{
    at__mon_t *m = h->data;
    uint64_t now = at__now_ns();
    if (m->prepare_ns) {
        uint64_t dt = now > m->prepare_ns ? now - m->prepare_ns : 0;
        uint64_t cbs =
            atomic_load_explicit(&m->busy_ns, memory_order_relaxed) - m->cb_at_prepare_ns;
        uint64_t blocked = dt > cbs ? dt - cbs : 0;
        /* the callbacks between prepare and here ran before or after the poll: the poll
         * ended about `blocked` after prepare (exact when they all ran after it) */
        m->poll_end_ns = m->prepare_ns + blocked;
        at__counter_add(&m->poll_ns, blocked);
        if (blocked > atomic_load_explicit(&m->poll_max_ns, memory_order_relaxed))
            atomic_store_explicit(&m->poll_max_ns, blocked, memory_order_relaxed);
        if (blocked >= 1000000000u && at__debug_enabled())
            at__log(AT__LOG_DEBUG, "poll took %.3f ms (loop %llu)", (double)blocked / 1e6,
                    (unsigned long long)m->id);
    }
    /* uv_metrics_idle_time takes a libuv-internal mutex: sample it at most every 1 ms (and
     * always after a poll that blocked), not on every iteration of a busy loop. */
    if (now - m->idle_sampled_ns >= 1000000u || now - m->prepare_ns >= 1000000u) {
        m->idle_sampled_ns = now;
        atomic_store_explicit(&m->idle_ns, uv_metrics_idle_time(m->loop), memory_order_relaxed);
    }
    if (m->chain_enabled && m->cur == NULL) {
        m->chain_ns = now;
        m->chain_time = m->loop->time;
    }
}

int at__mon_create(uv_loop_t *loop, at__mon_t **out)
{
    return at__mon_create_flags(loop, 0, out);
}

/* ---- polls reported by the runner (AT__MON_EXTERNAL_POLL) ---------------------------------
 * One clock read per poll: the poll starts where the last top-level callback ended (its end
 * time is the chained timestamp, valid while no callback began and uv_now did not move), and
 * its end is the next callback's start. Only what libuv does between that callback's end and
 * the poll (its phase bookkeeping, epoll_ctl for changed watchers) is counted as polling too. */

void at__mon_poll_begin(at__mon_t *m)
{
    if (AT__UNLIKELY(m->cur != NULL)) {
        m->poll_inside = 1; /* uv_run inside a callback: that callback's time, not a poll */
        return;
    }
    m->poll_inside = 0;
    uint64_t start = m->chain_ns;
    if (start == 0 || m->loop->time != m->chain_time)
        start = at__now_ns();
    lag_record(m, start);
    m->prepare_ns = start;
    m->chain_ns = 0;
}

void at__mon_poll_end(at__mon_t *m, bool interrupted)
{
    if (AT__UNLIKELY(m->poll_inside || m->cur != NULL))
        return;
    uint64_t now = at__now_ns();
    uint64_t blocked = now > m->prepare_ns ? now - m->prepare_ns : 0;
    m->poll_end_ns = interrupted ? 0 : now; /* EINTR: libuv polls again at once, no sample */
    if (!interrupted)
        at__counter_add(&m->iterations, 1);
    at__counter_add(&m->poll_ns, blocked);
    if (AT__UNLIKELY(blocked > atomic_load_explicit(&m->poll_max_ns, memory_order_relaxed)))
        atomic_store_explicit(&m->poll_max_ns, blocked, memory_order_relaxed);
    if (m->chain_enabled) {
        m->chain_ns = now;
        m->chain_time = m->loop->time; /* libuv updates it right after: a new ms breaks the chain */
    }
}

int at__mon_create_flags(uv_loop_t *loop, unsigned flags, at__mon_t **out)
{
    assert(loop && out && (flags & ~AT__MON_EXTERNAL_POLL) == 0);
    at__mon_t *m = calloc(1, sizeof *m);
    if (!m)
        return -ENOMEM;
    m->ring = calloc(AT__RING_CAP, sizeof *m->ring);
    m->hmask = 63;
    m->htab = calloc(m->hmask + 1, sizeof *m->htab);
    m->prepare = &m->prepare_h;
    m->check = &m->check_h;
    if (!m->ring || !m->htab) {
        mon_free(m);
        return -ENOMEM;
    }
    for (uint64_t i = 0; i < AT__RING_CAP; i++)
        atomic_store_explicit(&m->ring[i].seq, i, memory_order_relaxed);
    m->loop = loop;
    m->thread = pthread_self();
    m->tid = (pid_t)gettid();
    m->created_ns = at__now_ns();
    if (at__stack_bounds.hi == 0)
        at__stack_bounds_init();
    m->stack_lo = (void *)at__stack_bounds.lo;
    m->stack_hi = (void *)at__stack_bounds.hi;

    if (flags & AT__MON_EXTERNAL_POLL) {
        /* the caller reports every poll (at__mon_poll_begin/end): no handles, no metrics */
        m->external_poll = 1;
        m->prepare = NULL;
        m->check = NULL;
        m->chain_enabled = 1;
        atomic_store(&m->refs, 1);
        reg_add(m);
        *out = m;
        return 0;
    }
    int rc = uv_loop_configure(loop, UV_METRICS_IDLE_TIME);
    if (rc != 0 && rc != UV_ENOSYS)
        at__log(AT__LOG_WARNING, "loop idle-time metrics unavailable: %s", uv_strerror(rc));
    rc = uv_prepare_init(loop, m->prepare);
    if (rc != 0) {
        mon_free(m);
        return rc;
    }
    rc = uv_check_init(loop, m->check);
    if (rc != 0) {
        /* the prepare handle must be closed through the loop: let close do it */
        m->check = NULL;
        m->prepare->data = m;
        m->open_handles = 1;
        atomic_store(&m->refs, 2);
        uv_close((uv_handle_t *)m->prepare, handle_closed);
        at__mon_unref(m);
        return rc;
    }
    m->prepare->data = m;
    m->check->data = m;
    uv_prepare_start(m->prepare, on_prepare);
    uv_check_start(m->check, on_check);
    uv_unref((uv_handle_t *)m->prepare);
    uv_unref((uv_handle_t *)m->check);
    m->open_handles = 2;
    m->chain_enabled = 1;
    atomic_store(&m->refs, 1 + 2); /* the creator, and each open handle */
    reg_add(m);
    *out = m;
    return 0;
}

/* libuv's internal "close callback has run" handle flag (src/uv-common.h, UV_HANDLE_CLOSED,
 * 0x02 throughout libuv 1.x). Needed only when someone else closed our handles. */
#define AT__UV_HANDLE_CLOSED 0x00000002u

static void close_handle(at__mon_t *m, uv_handle_t *h)
{
    if (!uv_is_closing(h))
        uv_close(h, handle_closed);
    else if (h->flags & AT__UV_HANDLE_CLOSED)
        handle_closed(h); /* closed by someone else, already finished: just account for it */
    else
        h->close_cb = handle_closed; /* closed by someone else, pending: take it over */
    (void)m;
}

void at__mon_close(at__mon_t *m)
{
    assert(m->cur == NULL && !m->batch);
    reg_remove(m);
    m->closing = 1;
    m->chain_enabled = 0;
    m->chain_ns = 0;
    if (m->prepare)
        close_handle(m, (uv_handle_t *)m->prepare);
    if (m->check)
        close_handle(m, (uv_handle_t *)m->check);
    at__mon_unref(m);
}

/* ---- sites ------------------------------------------------------------------------------------
 */

static uint32_t site_hash(void *fn, const char *name)
{
    uint64_t h = (uint64_t)(uintptr_t)fn * 0x9E3779B97F4A7C15ull;
    for (size_t i = 0; name && name[i] && i < AT__SITE_NAME_MAX - 1; i++)
        h = (h ^ (unsigned char)name[i]) * 0x100000001B3ull;
    return (uint32_t)(h >> 32);
}

static int htab_grow(at__mon_t *m)
{
    uint32_t nmask = m->hmask * 2 + 1;
    at__site_t **n = calloc((size_t)nmask + 1, sizeof *n);
    if (!n)
        return -ENOMEM;
    for (uint32_t i = 0; i <= m->hmask; i++) {
        at__site_t *s = m->htab[i];
        while (s) {
            at__site_t *next = s->hnext;
            s->hnext = n[s->hash & nmask];
            n[s->hash & nmask] = s;
            s = next;
        }
    }
    free(m->htab);
    m->htab = n;
    m->hmask = nmask;
    return 0;
}

at__site_t *at__mon_site_slow(at__mon_t *m, void *fn, const char *name_ptr)
{
    assert(fn != NULL);
    const char *name = name_ptr && name_ptr[0] ? name_ptr : NULL;
    uint32_t h = site_hash(fn, name);
    at__site_t *s;
    for (s = m->htab[h & m->hmask]; s; s = s->hnext)
        if (s->fn == fn && s->hash == h &&
            strncmp(s->name, name ? name : "", AT__SITE_NAME_MAX - 1) == 0)
            break;
    if (!s) {
        uint64_t n = atomic_load_explicit(&m->nsites, memory_order_relaxed);
        if (n >= m->hmask && htab_grow(m) != 0)
            return NULL;
        s = calloc(1, sizeof *s);
        if (!s)
            return NULL;
        s->fn = fn;
        s->hash = h;
        if (name) {
            size_t len = strnlen(name, AT__SITE_NAME_MAX - 1);
            memcpy(s->name, name, len);
        }
        s->hnext = m->htab[h & m->hmask];
        m->htab[h & m->hmask] = s;
        atomic_store_explicit(&s->next_all, atomic_load_explicit(&m->sites, memory_order_relaxed),
                              memory_order_relaxed);
        atomic_store_explicit(&m->sites, s, memory_order_release);
        atomic_store_explicit(&m->nsites, n + 1, memory_order_relaxed);
    }
    /* Cache under the caller's pointer (a "" name too), named or not. */
    unsigned i = at__mon_site_slot(fn, name_ptr);
    m->cache[i].fn = fn;
    m->cache[i].name = name_ptr;
    m->cache[i].site = s;
    return s;
}

void at__site_read(const at__site_t *s, at__site_stats_t *out)
{
    out->count = atomic_load_explicit(&s->count, memory_order_relaxed);
    out->total_ns = atomic_load_explicit(&s->total_ns, memory_order_relaxed);
    out->max_ns = atomic_load_explicit(&s->max_ns, memory_order_relaxed);
    out->min_ns = out->count ? atomic_load_explicit(&s->min_ns, memory_order_relaxed) : 0;
    at__hist_read(&s->hist, &out->hist);
}

char *at__site_display_name(const at__site_t *s, char *buf, size_t len)
{
    if (s->name[0]) {
        snprintf(buf, len, "%s", s->name);
        return buf;
    }
    at__sym_t sym;
    int rc = at__sym_lookup(s->fn, false, &sym);
    if (rc == 0 && sym.func[0])
        snprintf(buf, len, "%s", sym.func);
    else if (sym.lib[0])
        snprintf(buf, len, "%s+0x%llx", sym.lib, (unsigned long long)sym.offset);
    else
        snprintf(buf, len, "%p", s->fn);
    return buf;
}

/* ---- slow callbacks and "now running" -------------------------------------------------------- */

void at__mon_slow_cb(at__mon_t *m, at__cb_t *cb, uint64_t excl_ns, uint64_t end_ns)
{
    at__counter_add(&m->slow_count, 1);
    at__event_t ev;
    memset(&ev, 0, sizeof ev);
    ev.kind = AT__EV_SLOW;
    ev.cb_kind = cb->kind;
    ev.when_ns = end_ns;
    ev.duration_ns = excl_ns;
    ev.task_id = cb->task_id;
    ev.site = cb->site;
    ev.fn = cb->site->fn;
    memcpy(ev.name, cb->site->name, sizeof ev.name);
    if (cb->task_name)
        snprintf(ev.task_name, sizeof ev.task_name, "%s", cb->task_name);
    if (cb->sched_stack && cb->sched_n) {
        memcpy(ev.stack, cb->sched_stack, cb->sched_n * sizeof(void *));
        ev.nstack = cb->sched_n;
    }
    at__mon_post(m, &ev);
    at__log_slow(cb->site->fn, cb->site->name, cb->task_name, excl_ns);
}

int at__mon_running_read(const at__mon_t *m, at__running_snap_t *out)
{
    const at__running_t *r = &m->running;
    for (int attempt = 0; attempt < 100000; attempt++) {
        uint32_t s1 = atomic_load_explicit(&r->seq, memory_order_acquire);
        if (s1 & 1) {
            if (attempt > 64)
                sched_yield();
            continue;
        }
        out->site = atomic_load_explicit(&r->site, memory_order_relaxed);
        out->since_ns = atomic_load_explicit(&r->since_ns, memory_order_relaxed);
        out->task_id = atomic_load_explicit(&r->task_id, memory_order_relaxed);
        out->kind = atomic_load_explicit(&r->kind, memory_order_relaxed);
        uint64_t w[AT__EV_TASK_MAX / 8];
        for (size_t i = 0; i < AT__EV_TASK_MAX / 8; i++)
            w[i] = atomic_load_explicit(&r->task_name[i], memory_order_relaxed);
        atomic_thread_fence(memory_order_acquire);
        if (atomic_load_explicit(&r->seq, memory_order_relaxed) != s1)
            continue;
        memcpy(out->task_name, w, sizeof out->task_name);
        out->task_name[sizeof out->task_name - 1] = '\0';
        if (out->site == NULL) {
            out->task_id = 0;
            out->task_name[0] = '\0';
            return 0;
        }
        return 1;
    }
    return -EAGAIN;
}

/* ---- statistics ---------------------------------------------------------------------------- */

void at__mon_stats(const at__mon_t *m, at__mon_stats_t *out)
{
    out->iterations = atomic_load_explicit(&m->iterations, memory_order_relaxed);
    out->callbacks = atomic_load_explicit(&m->callbacks, memory_order_relaxed);
    out->slow_count = atomic_load_explicit(&m->slow_count, memory_order_relaxed);
    out->busy_ns = atomic_load_explicit(&m->busy_ns, memory_order_relaxed);
    out->poll_ns = atomic_load_explicit(&m->poll_ns, memory_order_relaxed);
    out->idle_ns = at__mon_idle_ns(m);
    out->poll_max_ns = atomic_load_explicit(&m->poll_max_ns, memory_order_relaxed);
    out->lag_max_ns = atomic_load_explicit(&m->lag_max_ns, memory_order_relaxed);
    at__hist_read(&m->lag, &out->lag);
    out->nsites = atomic_load_explicit(&m->nsites, memory_order_relaxed);
    out->uptime_ns = at__now_ns() - m->created_ns;
}

typedef struct walk_ctx {
    at__mon_t *m;
    at__handle_counts_t *out;
} walk_ctx_t;

static void walk_cb(uv_handle_t *h, void *arg)
{
    walk_ctx_t *w = arg;
    if ((void *)h == (void *)&w->m->prepare_h || (void *)h == (void *)&w->m->check_h)
        return;
    unsigned t = (unsigned)h->type;
    if (t >= UV_HANDLE_TYPE_MAX)
        return;
    w->out->total[t]++;
    if (uv_is_active(h))
        w->out->active[t]++;
}

void at__mon_handles(at__mon_t *m, at__handle_counts_t *out)
{
    memset(out, 0, sizeof *out);
    walk_ctx_t w = {m, out};
    uv_walk(m->loop, walk_cb, &w);
}

/* ---- events ------------------------------------------------------------------------------------
 */

void at__event_init(at__event_t *ev, at__event_kind_t kind)
{
    memset(ev, 0, sizeof *ev);
    ev->kind = (uint8_t)kind;
    ev->when_ns = at__now_ns();
}

void at__event_set_error(at__event_t *ev, int code, const char *domain)
{
    ev->err_code = code;
    size_t n = domain ? strnlen(domain, sizeof ev->err_domain - 1) : 0;
    memcpy(ev->err_domain, domain ? domain : "", n);
    ev->err_domain[n] = '\0';
}

/* Vyukov's bounded queue, as in log.c: producers claim cells with a CAS on ring_tail; cell
 * seq == pos means free for the producer at pos, pos + 1 means full for the consumer. */
int at__mon_post(at__mon_t *m, const at__event_t *ev)
{
    unsigned k = ev->kind < AT__EV_KIND_MAX ? ev->kind : AT__EV_WARNING;
    atomic_fetch_add_explicit(&m->ev_produced[k], 1, memory_order_relaxed);
    uint64_t pos = atomic_load_explicit(&m->ring_tail, memory_order_relaxed);
    at__ring_cell_t *c;
    for (;;) {
        c = &m->ring[pos & (AT__RING_CAP - 1)];
        uint64_t seq = atomic_load_explicit(&c->seq, memory_order_acquire);
        int64_t dif = (int64_t)(seq - pos);
        if (dif == 0) {
            if (atomic_compare_exchange_weak_explicit(&m->ring_tail, &pos, pos + 1,
                                                      memory_order_relaxed, memory_order_relaxed))
                break;
        } else if (dif < 0) {
            atomic_fetch_add_explicit(&m->ev_dropped[k], 1, memory_order_relaxed);
            return -ENOBUFS;
        } else {
            pos = atomic_load_explicit(&m->ring_tail, memory_order_relaxed);
        }
    }
    c->ev = *ev;
    atomic_store_explicit(&c->seq, pos + 1, memory_order_release);
    return 0;
}

int at__mon_take(at__mon_t *m, at__event_t *out)
{
    uint64_t pos = atomic_load_explicit(&m->ring_head, memory_order_relaxed);
    at__ring_cell_t *c = &m->ring[pos & (AT__RING_CAP - 1)];
    if (atomic_load_explicit(&c->seq, memory_order_acquire) != pos + 1)
        return 0;
    *out = c->ev;
    atomic_store_explicit(&c->seq, pos + AT__RING_CAP, memory_order_release);
    atomic_store_explicit(&m->ring_head, pos + 1, memory_order_relaxed);
    return 1;
}

void at__mon_event_counts(const at__mon_t *m, at__event_kind_t kind, uint64_t *produced,
                          uint64_t *dropped)
{
    assert((unsigned)kind < AT__EV_KIND_MAX);
    *produced = atomic_load_explicit(&m->ev_produced[kind], memory_order_relaxed);
    *dropped = atomic_load_explicit(&m->ev_dropped[kind], memory_order_relaxed);
}

/* Defined in log.c and sym.c: stop the logger thread; drop libdw state. */
void at__log_shutdown_thread(void);

void at__loopmon_shutdown(void)
{
    at__log_shutdown_thread();
    at__sym_reset();
}

/* loop.c: at_loop_t — the uv loop it drives, the ready queue run in batches, timers, the threadsafe
 * queue, close-time reports. */
#include "core.h"
#include "export/export.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

_Atomic uint64_t at__count_wrong_thread, at__count_never_retrieved, at__count_unclosed,
    at__count_dropped;

static _Atomic uint64_t at__next_loop_id = 1;
static __thread at_loop_t *at__tls_loop; /* the loop running on this thread */

/* ---- slots ---------------------------------------------------------------- */

at__slot_t *at__slot_get(at_loop_t *loop)
{
    at__slot_t *s = loop->free_slots;
    if (AT__LIKELY(s != NULL)) {
        loop->free_slots = s->next;
        return s;
    }
    s = calloc(1, sizeof *s);
    return s;
}

void at__slot_put(at_loop_t *loop, at__slot_t *s)
{
    s->gen++;
    s->state = AT__SLOT_FREE;
    if (AT__UNLIKELY(loop->freed_when_futures_gone)) {
        free(s); /* the loop is closed: nothing can hold a handle to it any more */
        return;
    }
    s->next = loop->free_slots;
    loop->free_slots = s;
}

static void free_slot_list(at__slot_t *s)
{
    while (s) {
        at__slot_t *n = s->next;
        free(s);
        s = n;
    }
}

/* ---- the ready queue -------------------------------------------------------- */

static void idle_cb(uv_idle_t *h)
{
    (void)h; /* only here so that the poll does not block while work is ready */
}

static void check_cb(uv_check_t *h);

static void ready_activate(at_loop_t *loop)
{
    loop->ready_active = true;
    uv_idle_start(&loop->idle, idle_cb);
    uv_check_start(&loop->check, check_cb);
}

static void ready_deactivate(at_loop_t *loop)
{
    loop->ready_active = false;
    uv_idle_stop(&loop->idle);
    uv_check_stop(&loop->check);
}

void at__ready_push(at_loop_t *loop, at__slot_t *s)
{
    s->state = AT__SLOT_READY;
    AT__SLIST_APPEND(loop->ready_head, loop->ready_tail, s, next);
    loop->nready++;
    if (AT__UNLIKELY(!loop->ready_active))
        ready_activate(loop);
}

static at__slot_t *ready_pop(at_loop_t *loop)
{
    at__slot_t *s = loop->ready_head;
    if (s) {
        loop->ready_head = s->next;
        if (!loop->ready_head)
            loop->ready_tail = NULL;
        loop->nready--;
    }
    return s;
}

/* Runs one slot's callback, timed by loopmon, and recycles the slot. */
static inline void dispatch(at_loop_t *loop, at__slot_t *s)
{
    s->gen++; /* its handle is dead from now on: cancelling it is a no-op */
    s->state = AT__SLOT_RUNNING;
    void *fnp = s->fn_kind == AT__FN_LOOP ? (void *)s->fn.cb : (void *)s->fn.fcb;
    at__site_t *site = AT__LIKELY(!loop->untimed) ? at__loop_site(loop, fnp, s->name) : NULL;
    at__cb_t cb;
    if (AT__LIKELY(site != NULL))
        at__cb_begin_full(loop->mon, &cb, site, s->cb_kind, 0, NULL, s->nstack ? s->stack : NULL,
                          s->nstack);
    if (s->fn_kind == AT__FN_LOOP) {
        s->fn.cb(loop, s->arg);
    } else {
        at_future_t *fut = s->fut;
        s->fut = NULL;
        s->fn.fcb(fut, s->arg);
        at_future_unref(fut);
    }
    if (AT__LIKELY(site != NULL))
        at__cb_end(loop->mon, &cb);
    at__slot_put(loop, s);
}

/* The check phase (right after libuv polled for I/O): run a batch of ready
 * callbacks, including those they schedule, up to the fairness bound (see
 * AT__READY_BUDGET). Then either keep the idle+check handles active (work
 * left: the next poll will not block) or stop them (the loop may sleep). */
static void check_cb(uv_check_t *h)
{
    at_loop_t *loop = h->data;
    if (AT__UNLIKELY(atomic_load_explicit(&loop->closing, memory_order_relaxed))) {
        ready_deactivate(loop); /* at_loop_close waits for executor jobs: run nothing */
        return;
    }
    /* In the loop (not a local): a task's yield may take one to continue in place. */
    loop->ready_budget = loop->nready > AT__READY_BUDGET ? loop->nready : AT__READY_BUDGET;
    /* The poll happened since the last callback: do not bill it to the next
     * one. (Loop lag is loopmon's: poll to poll, whatever ran in between.) */
    at__mon_chain_break(loop->mon);
    uintptr_t prev_stop = at__walk_stop;
    at__walk_stop = (uintptr_t)__builtin_frame_address(0);
    at__mon_batch_begin(loop->mon);
    while (loop->ready_budget > 0 && !loop->stop_requested) {
        at__slot_t *s = ready_pop(loop);
        if (!s)
            break;
        loop->ready_budget--;
        if (AT__UNLIKELY(s->state == AT__SLOT_CANCELLED)) {
            at__slot_put(loop, s);
            continue;
        }
        dispatch(loop, s);
    }
    loop->ready_budget = 0;
    at__mon_batch_end(loop->mon);
    at__walk_stop = prev_stop;
    if (!loop->ready_head)
        ready_deactivate(loop);
}

/* ---- the thread check ------------------------------------------------------- */

int at__wrong_thread(at_loop_t *loop, const char *what)
{
    atomic_fetch_add_explicit(&at__count_wrong_thread, 1, memory_order_relaxed);
    at__event_t ev;
    at__event_init(&ev, AT__EV_WARNING);
    int n = at__stack_capture(ev.stack, AT__EV_STACK_MAX, 1);
    ev.nstack = (uint8_t)(n > 0 ? n : 0);
    snprintf(ev.code, sizeof ev.code, "wrong_thread");
    snprintf(ev.name, sizeof ev.name, "%s", what);
    snprintf(ev.text, sizeof ev.text,
             "Non-thread-safe operation %s() invoked on loop %" PRIu64
             " from another thread; refused (AT_EWRONGTHREAD)",
             what, loop->id);
    if (loop->mon)
        at__mon_post(loop->mon, &ev);
    /* This thread is not the loop's: symbolising here costs the loop nothing. */
    char buf[4096];
    size_t pos = 0;
    int w = snprintf(buf, sizeof buf,
                     "%s. Use at_call_soon_threadsafe() or at_loop_run_and_wait() from other "
                     "threads.\nCalled from (most recent call first):\n",
                     ev.text);
    if (w > 0)
        pos = (size_t)w;
    at__format_stack(buf, sizeof buf, &pos, ev.stack, ev.nstack);
    at__log_long(AT__LOG_WARNING, buf);
    return AT_EWRONGTHREAD;
}

void at__log_long(int level, const char *text)
{
    /* at__log truncates at AT__LOG_MSG_MAX: split at line boundaries. */
    const char *p = text;
    size_t maxlen = AT__LOG_MSG_MAX - 2;
    while (*p) {
        size_t n = strlen(p);
        if (n > maxlen) {
            n = maxlen;
            const char *nl = NULL;
            for (size_t i = n; i > 0; i--)
                if (p[i - 1] == '\n') {
                    nl = p + i - 1;
                    break;
                }
            if (nl)
                n = (size_t)(nl - p);
        }
        while (n > 0 && p[n - 1] == '\n')
            n--;
        if (n > 0)
            at__log(level, "%.*s", (int)n, p);
        p += n;
        while (*p == '\n')
            p++;
    }
}

/* ---- timers: a binary min-heap of slots on (when, seq) --------------------- */

static inline bool heap_less(const at__slot_t *a, const at__slot_t *b)
{
    return a->when < b->when || (a->when == b->when && a->seq < b->seq);
}

static void heap_set(at_loop_t *loop, uint32_t i, at__slot_t *s)
{
    loop->heap[i] = s;
    s->heap_idx = i;
}

static void heap_up(at_loop_t *loop, uint32_t i)
{
    at__slot_t *s = loop->heap[i];
    while (i > 0) {
        uint32_t p = (i - 1) / 2;
        if (!heap_less(s, loop->heap[p]))
            break;
        heap_set(loop, i, loop->heap[p]);
        i = p;
    }
    heap_set(loop, i, s);
}

static void heap_down(at_loop_t *loop, uint32_t i)
{
    at__slot_t *s = loop->heap[i];
    for (;;) {
        uint32_t l = 2 * i + 1, r = l + 1, m = i;
        const at__slot_t *best = s;
        if (l < loop->heap_len && heap_less(loop->heap[l], best)) {
            m = l;
            best = loop->heap[l];
        }
        if (r < loop->heap_len && heap_less(loop->heap[r], best))
            m = r;
        if (m == i)
            break;
        heap_set(loop, i, loop->heap[m]);
        i = m;
    }
    heap_set(loop, i, s);
}

static void heap_remove(at_loop_t *loop, at__slot_t *s)
{
    uint32_t i = s->heap_idx;
    assert(i < loop->heap_len && loop->heap[i] == s);
    at__slot_t *last = loop->heap[--loop->heap_len];
    if (last != s) {
        heap_set(loop, i, last);
        heap_down(loop, i);
        heap_up(loop, last->heap_idx);
    }
}

static void timer_cb(uv_timer_t *h);

/* Arms the uv timer for the earliest deadline, or stops it (so an empty heap
 * does not keep the loop alive). */
static void timer_rearm(at_loop_t *loop)
{
    if (loop->heap_len == 0) {
        uv_timer_stop(&loop->timer);
        return;
    }
    uint64_t now = uv_now(loop->uv), when = loop->heap[0]->when;
    uv_timer_start(&loop->timer, timer_cb, when > now ? when - now : 0, 0);
}

/* Timers phase: move every due timer to the ready queue, in deadline order;
 * the check phase of this same iteration runs them. */
static void timer_cb(uv_timer_t *h)
{
    at_loop_t *loop = h->data;
    if (AT__UNLIKELY(atomic_load_explicit(&loop->closing, memory_order_relaxed)))
        return; /* at_loop_close drops the timers */
    uint64_t now = uv_now(loop->uv);
    while (loop->heap_len > 0 && loop->heap[0]->when <= now) {
        at__slot_t *s = loop->heap[0];
        heap_remove(loop, s);
        at__ready_push(loop, s);
    }
    timer_rearm(loop);
}

/* ---- scheduling --------------------------------------------------------------- */

static inline void handle_out(at_handle_t *out, at__slot_t *s)
{
    if (out) {
        out->slot_ = s;
        out->gen_ = s->gen;
    }
}

static inline at__slot_t *slot_fill(at_loop_t *loop, at_callback_fn fn, void *arg, const char *name,
                                    void *ra)
{
    at__slot_t *s = at__slot_new(loop, AT__FN_LOOP, AT__CB_READY, arg, name, ra);
    if (AT__LIKELY(s != NULL))
        s->fn.cb = fn;
    return s;
}

int at_call_soon(at_loop_t *loop, at_callback_fn fn, void *arg, const char *name, at_handle_t *out)
{
    assert(loop && fn);
    AT__CHECK_THREAD(loop, "at_call_soon");
    if (AT__UNLIKELY(atomic_load_explicit(&loop->closing, memory_order_relaxed)))
        return AT_ECLOSING;
    at__slot_t *s = slot_fill(loop, fn, arg, name, __builtin_return_address(0));
    if (AT__UNLIKELY(!s))
        return AT_ENOMEM;
    at__ready_push(loop, s);
    handle_out(out, s);
    return 0;
}

static int call_at(at_loop_t *loop, uint64_t when, at_callback_fn fn, void *arg, const char *name,
                   at_handle_t *out, void *ra)
{
    if (AT__UNLIKELY(atomic_load_explicit(&loop->closing, memory_order_relaxed)))
        return AT_ECLOSING;
    if (loop->heap_len == loop->heap_cap) {
        uint32_t cap = loop->heap_cap ? loop->heap_cap * 2 : 64;
        at__slot_t **h = realloc(loop->heap, cap * sizeof *h);
        if (!h)
            return AT_ENOMEM;
        loop->heap = h;
        loop->heap_cap = cap;
    }
    at__slot_t *s = slot_fill(loop, fn, arg, name, ra);
    if (AT__UNLIKELY(!s))
        return AT_ENOMEM;
    s->cb_kind = AT__CB_TIMER;
    s->when = when;
    s->seq = loop->timer_seq++;
    s->state = AT__SLOT_TIMER;
    loop->heap[loop->heap_len] = s;
    s->heap_idx = loop->heap_len++;
    heap_up(loop, s->heap_idx);
    if (loop->heap[0] == s)
        timer_rearm(loop);
    handle_out(out, s);
    return 0;
}

int at_call_later(at_loop_t *loop, uint64_t delay_ms, at_callback_fn fn, void *arg,
                  const char *name, at_handle_t *out)
{
    assert(loop && fn);
    AT__CHECK_THREAD(loop, "at_call_later");
    uint64_t now = uv_now(loop->uv);
    uint64_t when = delay_ms > UINT64_MAX - now ? UINT64_MAX : now + delay_ms;
    return call_at(loop, when, fn, arg, name, out, __builtin_return_address(0));
}

int at_call_at(at_loop_t *loop, uint64_t when_ms, at_callback_fn fn, void *arg, const char *name,
               at_handle_t *out)
{
    assert(loop && fn);
    AT__CHECK_THREAD(loop, "at_call_at");
    return call_at(loop, when_ms, fn, arg, name, out, __builtin_return_address(0));
}

/* The slot `handle` still names, or NULL (recycled, empty, or called from another thread:
 * reported as `what`). */
static at__slot_t *handle_slot(at_loop_t *loop, at_handle_t handle, const char *what)
{
    assert(loop);
    AT__CHECK_THREAD_OR(loop, what, NULL);
    at__slot_t *s = handle.slot_;
    return s && s->gen == handle.gen_ ? s : NULL;
}

bool at_handle_cancel(at_loop_t *loop, at_handle_t handle)
{
    at__slot_t *s = handle_slot(loop, handle, "at_handle_cancel");
    if (!s)
        return false;
    switch (s->state) {
    case AT__SLOT_READY:
        s->state = AT__SLOT_CANCELLED; /* skipped (and recycled) when popped */
        s->gen++;
        return true;
    case AT__SLOT_INFLIGHT: /* posted by another thread, not drained yet: skipped then */
        s->state = AT__SLOT_CANCELLED;
        s->gen++;
        return true;
    case AT__SLOT_TIMER:
        heap_remove(loop, s);
        at__slot_put(loop, s);
        timer_rearm(loop);
        return true;
    default:
        return false;
    }
}

bool at_handle_pending(at_loop_t *loop, at_handle_t handle)
{
    at__slot_t *s = handle_slot(loop, handle, "at_handle_pending");
    return s && (s->state == AT__SLOT_READY || s->state == AT__SLOT_TIMER ||
                 s->state == AT__SLOT_INFLIGHT);
}

/* ---- other threads: the MPSC queue and the async wake-up --------------------- */

static void mpsc_init(at__mpsc_t *q)
{
    atomic_init(&q->stub.ts_next, NULL);
    atomic_init(&q->head, &q->stub);
    q->tail = &q->stub;
}

static void mpsc_push(at__mpsc_t *q, at__slot_t *n)
{
    atomic_store_explicit(&n->ts_next, NULL, memory_order_relaxed);
    at__slot_t *prev = atomic_exchange_explicit(&q->head, n, memory_order_acq_rel);
    atomic_store_explicit(&prev->ts_next, n, memory_order_release);
}

/* Pops the oldest node, or NULL if empty or a producer is half-way through a
 * push (it will send a wake-up after finishing, so nothing is lost). */
static at__slot_t *mpsc_pop(at__mpsc_t *q)
{
    at__slot_t *tail = q->tail;
    at__slot_t *next = atomic_load_explicit(&tail->ts_next, memory_order_acquire);
    if (tail == &q->stub) {
        if (!next)
            return NULL;
        q->tail = next;
        tail = next;
        next = atomic_load_explicit(&next->ts_next, memory_order_acquire);
    }
    if (next) {
        q->tail = next;
        return tail;
    }
    if (tail != atomic_load_explicit(&q->head, memory_order_acquire))
        return NULL;
    mpsc_push(q, &q->stub);
    next = atomic_load_explicit(&tail->ts_next, memory_order_acquire);
    if (next) {
        q->tail = next;
        return tail;
    }
    return NULL;
}

static void drain_threadsafe(at_loop_t *loop)
{
    at__slot_t *s;
    while ((s = mpsc_pop(&loop->tsq)) != NULL) {
        if (s->state == AT__SLOT_CANCELLED) {
            at__slot_put(loop, s);
            continue;
        }
        at__ready_push(loop, s);
    }
}

static void async_cb(uv_async_t *h)
{
    drain_threadsafe(h->data);
}

int at_call_soon_threadsafe(at_loop_t *loop, at_callback_fn fn, void *arg, const char *name,
                            at_handle_t *out)
{
    assert(loop && fn);
    if (atomic_load_explicit(&loop->closing, memory_order_acquire))
        return AT_ECLOSING;
    /* Slots of the loop's freelist are loop-thread only: a fresh one here. It
     * joins the freelist after it has run. */
    at__slot_t *s = calloc(1, sizeof *s);
    if (!s)
        return AT_ENOMEM;
    s->fn_kind = AT__FN_LOOP;
    s->cb_kind = AT__CB_READY;
    s->fn.cb = fn;
    s->arg = arg;
    s->name = name;
    s->state = AT__SLOT_INFLIGHT;
    if (at__debug_enabled())
        at__capture_site(s->stack, &s->nstack, __builtin_return_address(0));
    handle_out(out, s);
    mpsc_push(&loop->tsq, s);
    uv_async_send(&loop->async);
    return 0;
}

/* ---- the loop --------------------------------------------------------------- */

static void loop_stop_cb(at_loop_t *loop, void *arg)
{
    (void)arg;
    at_loop_stop(loop);
}

int at_loop_new(at_loop_t **out, uv_loop_t *adopt)
{
    assert(out);
    *out = NULL;
    at_loop_t *loop = calloc(1, sizeof *loop);
    if (!loop)
        return AT_ENOMEM;
    int r;
    if (adopt) {
        loop->uv = adopt;
    } else {
        loop->uv = malloc(sizeof *loop->uv);
        if (!loop->uv) {
            free(loop);
            return AT_ENOMEM;
        }
        r = uv_loop_init(loop->uv);
        if (r < 0) {
            free(loop->uv);
            free(loop);
            return r;
        }
        loop->owns_uv = true;
    }
    atomic_init(&loop->thread, pthread_self());
    loop->id = atomic_fetch_add(&at__next_loop_id, 1);
    loop->next_future_id = 1;
    mpsc_init(&loop->tsq);
    /* ASYNCTOP_TIMING=off: ready callbacks run untimed, so that a benchmark can measure what
     * the timing costs in the same process (the monitor, loop metrics and export stay). */
    const char *timing = getenv("ASYNCTOP_TIMING");
    bool timed = true;
    if (timing && at__parse_bool(timing, &timed) < 0) {
        at__log(AT__LOG_WARNING, "ASYNCTOP_TIMING=%s: expected on or off; timing stays on", timing);
        timed = true;
    }
    loop->untimed = !timed;
    r = at__mon_create(loop->uv, &loop->mon);
    if (r < 0) {
        if (loop->owns_uv) {
            uv_loop_close(loop->uv);
            free(loop->uv);
        }
        free(loop);
        return r;
    }
    uv_idle_init(loop->uv, &loop->idle);
    uv_check_init(loop->uv, &loop->check);
    uv_timer_init(loop->uv, &loop->timer);
    loop->idle.data = loop->check.data = loop->timer.data = loop;
    r = uv_async_init(loop->uv, &loop->async, async_cb);
    if (r < 0) {
        /* Close what we opened and let the uv loop finish closing it. */
        uv_close((uv_handle_t *)&loop->idle, NULL);
        uv_close((uv_handle_t *)&loop->check, NULL);
        uv_close((uv_handle_t *)&loop->timer, NULL);
        at__mon_close(loop->mon);
        uv_run(loop->uv, UV_RUN_NOWAIT);
        if (loop->owns_uv) {
            uv_loop_close(loop->uv);
            free(loop->uv);
        }
        free(loop);
        return r;
    }
    loop->async.data = loop;
    uv_unref((uv_handle_t *)&loop->async);
    /* Serve this loop (and every other monitored loop) over the socket. The exporter is one
     * per process and refcounted: each loop takes one reference, the last close stops it.
     * Failure (or ASYNCTOP_SOCKET=off) is logged by the exporter and never fails the loop. */
    loop->exported = at__export_start(NULL) == 0;
    *out = loop;
    return 0;
}

int at_loop_run(at_loop_t *loop, at_run_mode_t mode)
{
    assert(loop);
    if (AT__UNLIKELY(!loop->ran)) {
        /* First run: the running thread becomes the loop's thread for good.
         * The monitor records its thread: if another thread created the
         * loop, replace the creator's monitor by one made here (the old one's
         * handles finish closing in this run's first iteration). */
        if (atomic_load_explicit(&loop->closing, memory_order_relaxed))
            return AT_ECLOSING;
        if (!at__on_loop_thread(loop) || !loop->mon) {
            /* One monitor per uv loop: the old one goes first. */
            if (loop->mon)
                at__mon_close(loop->mon);
            loop->mon = NULL;
            atomic_store_explicit(&loop->thread, pthread_self(), memory_order_relaxed);
            int r = at__mon_create(loop->uv, &loop->mon);
            if (r < 0) {
                loop->mon = NULL; /* the next run tries again */
                return r;
            }
        }
        loop->ran = true;
    }
    AT__CHECK_THREAD(loop, "at_loop_run");
    if (atomic_load_explicit(&loop->closing, memory_order_relaxed))
        return AT_ECLOSING;
    if (loop->running)
        return AT_EINVALSTATE;
    loop->running = true;
    at_loop_t *prev = at__tls_loop;
    at__tls_loop = loop;
    /* Work queued by other threads before the run would otherwise wait for
     * their wake-up: take it now. */
    drain_threadsafe(loop);
    int r = uv_run(loop->uv, (uv_run_mode)mode);
    at__tls_loop = prev;
    loop->running = false;
    loop->stop_requested = false;
    return r;
}

int at_loop_stop(at_loop_t *loop)
{
    assert(loop);
    if (!at__on_loop_thread(loop))
        return at_call_soon_threadsafe(loop, loop_stop_cb, NULL, "at_loop_stop", NULL);
    loop->stop_requested = true;
    uv_stop(loop->uv);
    return 0;
}

int at_loop_ref(at_loop_t *loop)
{
    assert(loop);
    AT__CHECK_THREAD(loop, "at_loop_ref");
    if (loop->user_refs++ == 0)
        uv_ref((uv_handle_t *)&loop->async);
    return 0;
}

int at_loop_unref(at_loop_t *loop)
{
    assert(loop);
    AT__CHECK_THREAD(loop, "at_loop_unref");
    if (loop->user_refs == 0)
        return AT_EINVALSTATE;
    if (--loop->user_refs == 0)
        uv_unref((uv_handle_t *)&loop->async);
    return 0;
}

uint64_t at_loop_time(const at_loop_t *loop)
{
    assert(loop);
    return uv_now(loop->uv);
}

uv_loop_t *at_loop_uv(const at_loop_t *loop)
{
    assert(loop);
    return loop->uv;
}

at_loop_t *at_loop_current(void)
{
    return at__tls_loop;
}

bool at_loop_is_loop_thread(const at_loop_t *loop)
{
    assert(loop);
    return at__on_loop_thread(loop);
}

void at_loop_set_data(at_loop_t *loop, void *data)
{
    assert(loop);
    loop->data = data;
}

void *at_loop_get_data(const at_loop_t *loop)
{
    assert(loop);
    return loop->data;
}

/* ---- close ----------------------------------------------------------------- */

static bool is_our_handle(at_loop_t *loop, uv_handle_t *h)
{
    return h == (uv_handle_t *)&loop->idle || h == (uv_handle_t *)&loop->check ||
           h == (uv_handle_t *)&loop->timer || h == (uv_handle_t *)&loop->async ||
           (loop->mon &&
            (h == (uv_handle_t *)&loop->mon->prepare_h || h == (uv_handle_t *)&loop->mon->check_h));
}

typedef struct close_walk {
    at_loop_t *loop;
    size_t n;
} close_walk_t;

static void report_unclosed(uv_handle_t *h, void *arg)
{
    close_walk_t *w = arg;
    at_loop_t *loop = w->loop;
    if (is_our_handle(loop, h) || uv_is_closing(h))
        return;
    w->n++;
    atomic_fetch_add_explicit(&at__count_unclosed, 1, memory_order_relaxed);
    at__event_t ev;
    at__event_init(&ev, AT__EV_WARNING);
    snprintf(ev.code, sizeof ev.code, "unclosed");
    snprintf(ev.name, sizeof ev.name, "uv_%s_t", uv_handle_type_name(h->type));
    snprintf(ev.text, sizeof ev.text, "unclosed handle uv_%s_t %p (%s) at loop close%s",
             uv_handle_type_name(h->type), (void *)h, uv_is_active(h) ? "active" : "inactive",
             loop->owns_uv ? "; closing it" : "; left open (the uv loop is the application's)");
    if (loop->mon)
        at__mon_post(loop->mon, &ev);
    at__log(AT__LOG_WARNING, "ResourceWarning: %s", ev.text);
    if (loop->owns_uv)
        uv_close(h, NULL);
}

static void report_dropped(at_loop_t *loop, at__slot_t *s, const char *where)
{
    atomic_fetch_add_explicit(&at__count_dropped, 1, memory_order_relaxed);
    char name[256];
    if (s->name)
        snprintf(name, sizeof name, "%s", s->name);
    else
        at__sym_format(s->fn_kind == AT__FN_LOOP ? (void *)s->fn.cb : (void *)s->fn.fcb, false,
                       name, sizeof name);
    char buf[2048];
    size_t pos = 0;
    int w = snprintf(buf, sizeof buf, "Loop %" PRIu64 " closed with a %s callback %s dropped",
                     loop->id, where, name);
    if (w > 0)
        pos = (size_t)w;
    if (s->nstack > 1) {
        w = snprintf(buf + pos, pos < sizeof buf ? sizeof buf - pos : 0,
                     "\nScheduled at (most recent call first):\n");
        if (w > 0)
            pos += (size_t)w;
        at__format_stack(buf, sizeof buf, &pos, s->stack, s->nstack);
    }
    at__log_long(AT__LOG_INFO, buf);
}

static void drop_slot(at_loop_t *loop, at__slot_t *s, const char *where, size_t *count)
{
    if (s->state != AT__SLOT_CANCELLED) {
        (*count)++;
        report_dropped(loop, s, where);
    }
    if (s->fn_kind == AT__FN_LOOP && s->fn.cb == at__waiter_run)
        at__waiter_abort(s->arg);
    if (s->fn_kind == AT__FN_FUTURE && s->fut) {
        at_future_t *f = s->fut;
        s->fut = NULL;
        at_future_unref(f);
    }
    s->gen++;
    s->state = AT__SLOT_FREE;
    free(s);
}

static void on_closed(uv_handle_t *h)
{
    at_loop_t *loop = h->data;
    loop->pending_closes--;
}

void at__loop_maybe_free(at_loop_t *loop)
{
    if (loop->freed_when_futures_gone && loop->live_futures == 0)
        free(loop);
}

void (*at__tasks_close_hook)(at_loop_t *loop);
void (*at__tasks_unwind_hook)(at_loop_t *loop);

int at_loop_close(at_loop_t *loop, at_close_report_t *report)
{
    assert(loop);
    AT__CHECK_THREAD(loop, "at_loop_close");
    if (loop->running)
        return AT_EINVALSTATE;
    if (atomic_load_explicit(&loop->closing, memory_order_relaxed))
        return AT_ECLOSING;
    /* Before anything is refused as closing: pending tasks are cancelled and the loop runs
     * until they have unwound (bounded), as asyncio.run() cancels every remaining task and
     * runs the loop until they finish before it closes the loop. Their cleanup code runs with
     * the loop still fully usable. */
    if (at__tasks_unwind_hook)
        at__tasks_unwind_hook(loop);
    atomic_store_explicit(&loop->closing, 1, memory_order_release);
    at_close_report_t rep = {0};

    /* 0. Tasks still pending after the unwinding, coroutines never awaited (the tasks
     *    layer). */
    if (at__tasks_close_hook)
        at__tasks_close_hook(loop);

    /* 1. Executor work still queued: cancel what has not started, wait for
     *    the rest (a pool thread may be using its memory). */
    if (loop->pending_work) {
        rep.pending_work = loop->pending_work;
        at__log(AT__LOG_WARNING, "Loop %" PRIu64 " closed with %zu executor job(s) unfinished",
                loop->id, loop->pending_work);
        at__executor_cancel_all(loop);
        while (loop->pending_work)
            uv_run(loop->uv, UV_RUN_ONCE);
    }

    /* 2. Callbacks still scheduled: dropped, with their names. */
    drain_threadsafe(loop);
    at__slot_t *s;
    while ((s = ready_pop(loop)) != NULL)
        drop_slot(loop, s, "ready", &rep.dropped_callbacks);
    while (loop->heap_len > 0) {
        s = loop->heap[--loop->heap_len];
        drop_slot(loop, s, "timer", &rep.dropped_callbacks);
    }

    /* 3. Errors nobody retrieved. */
    at__future_close_report(loop, &rep.unretrieved_errors);

    /* 4. Handles still open on the uv loop, ours excepted (ResourceWarning). */
    close_walk_t w = {loop, 0};
    uv_walk(loop->uv, report_unclosed, &w);
    rep.unclosed_handles = w.n;
    rep.live_futures = loop->live_futures;

    /* 5. Close our handles and the monitor; let libuv finish closing them. */
    uv_handle_t *ours[] = {(uv_handle_t *)&loop->idle, (uv_handle_t *)&loop->check,
                           (uv_handle_t *)&loop->timer, (uv_handle_t *)&loop->async};
    for (size_t i = 0; i < sizeof ours / sizeof ours[0]; i++) {
        if (!uv_is_closing(ours[i])) {
            ours[i]->data = loop;
            loop->pending_closes++;
            uv_close(ours[i], on_closed);
        }
    }
    if (loop->exported)
        at__export_stop();
    loop->exported = false;
    if (loop->mon)
        at__mon_close(loop->mon);
    loop->mon = NULL;
    while (loop->pending_closes > 0)
        uv_run(loop->uv, UV_RUN_NOWAIT);

    int r = 0;
    if (loop->owns_uv) {
        if (w.n)
            uv_run(loop->uv, UV_RUN_NOWAIT); /* the application's handles we closed */
        r = uv_loop_close(loop->uv);
        if (r == 0)
            free(loop->uv);
        else
            r = AT_EBUSY; /* leak the uv loop rather than free memory still in use */
    }
    free_slot_list(loop->free_slots);
    loop->free_slots = NULL;
    free(loop->heap);
    loop->heap = NULL;
    at__future_free_cache(loop);
    if (report)
        *report = rep;
    loop->freed_when_futures_gone = true;
    at__loop_maybe_free(loop);
    return r;
}

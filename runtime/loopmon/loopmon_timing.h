/* loopmon_timing.h: timing a callback — the inline hot path of loopmon (begin, end, relabel,
 * batches, the "now running" seqlock write). Part of loopmon.h's contract: included by it, after
 * the monitor's struct, and never on its own. */
#ifndef ASYNCTOP_LOOPMON_TIMING_H
#define ASYNCTOP_LOOPMON_TIMING_H

#ifndef ASYNCTOP_LOOPMON_H
#error "include loopmon.h, not loopmon_timing.h"
#endif

/* The slow path of at__cb_end: counts, posts the AT__EV_SLOW event, queues the log line.
 * Loop thread; called only by at__cb_end. */
void at__mon_slow_cb(at__mon_t *m, at__cb_t *cb, uint64_t excl_ns, uint64_t end_ns);

/* Seqlock write of the "now running" record (site NULL = nothing running). Loop thread;
 * used by at__cb_begin/end. Readers use at__mon_running_read. */
static inline void at__running_publish(at__running_t *r, at__site_t *site, uint64_t since,
                                       uint64_t task_id, const char *task_name, unsigned kind)
{
    uint32_t s = atomic_load_explicit(&r->seq, memory_order_relaxed);
    atomic_store_explicit(&r->seq, s + 1, memory_order_relaxed);
    atomic_thread_fence(memory_order_release);
    atomic_store_explicit(&r->site, site, memory_order_relaxed);
    atomic_store_explicit(&r->since_ns, since, memory_order_relaxed);
    atomic_store_explicit(&r->kind, kind, memory_order_relaxed);
    if (AT__UNLIKELY(task_id != 0 || task_name != NULL)) {
        r->has_task = 1;
        atomic_store_explicit(&r->task_id, task_id, memory_order_relaxed);
        if (task_name) {
            uint64_t w[AT__EV_TASK_MAX / 8] = {0};
            char *d = (char *)w;
            for (size_t i = 0; i < sizeof w - 1 && task_name[i]; i++)
                d[i] = task_name[i];
            for (size_t i = 0; i < AT__EV_TASK_MAX / 8; i++)
                atomic_store_explicit(&r->task_name[i], w[i], memory_order_relaxed);
        } else {
            /* An id only (a task step): the name is empty from its first byte on. */
            atomic_store_explicit(&r->task_name[0], 0, memory_order_relaxed);
        }
    } else if (AT__UNLIKELY(r->has_task)) {
        r->has_task = 0;
        atomic_store_explicit(&r->task_id, 0, memory_order_relaxed);
        atomic_store_explicit(&r->task_name[0], 0, memory_order_relaxed);
    }
    atomic_store_explicit(&r->seq, s + 2, memory_order_release);
}

/* Start timing a callback about to run on the loop thread. `cb` is caller storage that must
 * live until the matching at__cb_end; begin/end pairs nest strictly (a callback run inside
 * another one counts exclusively: the outer one's time excludes the inner one's). `site`
 * from at__mon_site; `kind` an at__cb_kind_t; `task_id`/`task_name` opaque to loopmon
 * (0/NULL = none; the name is copied for "now running", so it need only live until end);
 * `sched`/`sched_n` an optional raw stack of where the callback was scheduled (debug mode;
 * must live until end). Publishes "now running". Returns the start time (at__now_ns domain),
 * No allocation, lock or syscall.
 *
 * Chained timestamps: to read the clock once per callback, the start of a top-level
 * callback is the end of the previous top-level one, unless the chain was broken: by the
 * poll (loopmon's prepare handle), by a new loop iteration (uv_now changed), or explicitly by
 * at__mon_chain_break(). A runner that does real work between two callbacks (anything that
 * may take more than a microsecond: a syscall, a lock, a thread start, a flush) must call
 * at__mon_chain_break() before the next begin, or that work is billed to the next callback.
 * Loop thread only. */
static inline uint64_t at__cb_begin_full(at__mon_t *m, at__cb_t *cb, at__site_t *site,
                                         unsigned kind, uint64_t task_id, const char *task_name,
                                         void *const *sched, unsigned sched_n)
{
    uint64_t now = m->chain_ns;
    if (!now || m->cur || m->loop->time != m->chain_time)
        now = at__now_ns();
    m->chain_ns = 0;
    cb->site = site;
    cb->start_ns = now;
    cb->child_ns = 0;
    cb->parent = m->cur;
    cb->task_id = task_id;
    cb->task_name = task_name;
    cb->sched_stack = sched;
    cb->slow_ns = at__slow_threshold_ns();
    cb->kind = (uint8_t)kind;
    cb->sched_n = (uint8_t)(sched_n > AT__EV_STACK_MAX ? AT__EV_STACK_MAX : sched_n);
    m->cur = cb;
    at__running_publish(&m->running, site, now, task_id, task_name, kind);
    return now;
}

static inline uint64_t at__cb_begin(at__mon_t *m, at__cb_t *cb, at__site_t *site, unsigned kind)
{
    return at__cb_begin_full(m, cb, site, kind, 0, NULL, NULL, 0);
}

/* Stop timing the callback begun with `cb` (must be the innermost one). Records its
 * exclusive time in its site and the monitor, republishes "now running" (the enclosing
 * callback, or nothing), and if the exclusive time is at or over the slow threshold, logs
 * `Executing <name at file:line> took 0.123 seconds` (WARNING, symbolised off the loop
 * thread) and posts an AT__EV_SLOW event. Returns the end time. Loop thread only. */
static inline uint64_t at__cb_end(at__mon_t *m, at__cb_t *cb)
{
    assert(m->cur == cb);
    uint64_t now = at__now_ns();
    uint64_t total = now > cb->start_ns ? now - cb->start_ns : 0;
    uint64_t excl = total > cb->child_ns ? total - cb->child_ns : 0;
    if (AT__LIKELY(m->batch)) {
        /* Add the previous callback's record now and keep this one for the next end (or
         * the batch's end): the stores no longer wait for this clock read. */
        if (m->pend_site)
            at__site_record(m->pend_site, m->pend_ns);
        m->pend_site = cb->site;
        m->pend_ns = excl;
    } else {
        at__site_record(cb->site, excl);
    }
    at__counter_add(&m->callbacks, 1);
    at__counter_add(&m->busy_ns, excl);
    at__cb_t *p = cb->parent;
    m->cur = p;
    if (AT__UNLIKELY(p != NULL)) {
        p->child_ns += total;
        at__running_publish(&m->running, p->site, p->start_ns, p->task_id, p->task_name, p->kind);
    } else {
        /* In a batch the next callback's begin (or the batch's end) publishes. */
        if (!m->batch)
            at__running_publish(&m->running, NULL, now, 0, NULL, 0);
        m->chain_ns = m->chain_enabled ? now : 0;
        m->chain_time = m->loop->time;
    }
    if (AT__UNLIKELY(excl >= cb->slow_ns))
        at__mon_slow_cb(m, cb, excl, now);
    return now;
}

/* Relabels the running callback `cb` (m->cur) as a step of task `task_id`: from now on it is
 * of kind AT__CB_TASK_STEP, its time goes to `site` when it ends (NULL: it keeps its own), and
 * its slow event and log line name `task_name`, which is not copied (it must live until
 * at__cb_end, or be replaced first with at__cb_task_name_replace). "Now running" is
 * republished with the id only: readers name a task from its id (a name copy into the
 * seqlocked record would cost a quarter of a task step). The time already spent in `cb` stays
 * in it. No allocation, lock or syscall. Loop thread. */
static inline void at__cb_relabel_task(at__mon_t *m, at__cb_t *cb, at__site_t *site,
                                       uint64_t task_id, const char *task_name)
{
    assert(m->cur == cb && task_id != 0);
    cb->kind = AT__CB_TASK_STEP;
    cb->task_id = task_id;
    cb->task_name = task_name;
    if (site)
        cb->site = site;
    at__running_publish(&m->running, cb->site, cb->start_ns, task_id, NULL, AT__CB_TASK_STEP);
}

/* Gives the task name `task_name` to callback `cb`, begun (at__cb_begin_full) with a task id and
 * no name, for its slow event and log line only: "now running" keeps the id alone, as in
 * at__cb_relabel_task, and the name is not copied (same lifetime rule). Loop thread. */
static inline void at__cb_set_task_name(at__cb_t *cb, const char *task_name)
{
    cb->task_name = task_name;
}

/* Every running callback of `m` (the innermost and those it is nested in) whose task name is
 * the pointer `old` names `repl` instead: for a caller whose name storage is about to go while
 * those callbacks still run (a task freed inside its own step). Compares pointers, not
 * contents; "now running" is not touched (it never holds a task name pointer). Returns whether
 * any callback was renamed (fill `repl` before the next read of a name: at once). Loop thread. */
static inline bool at__cb_task_name_replace(at__mon_t *m, const char *old, const char *repl)
{
    bool any = false;
    for (at__cb_t *cb = m->cur; cb; cb = cb->parent) {
        if (cb->task_name == old) {
            cb->task_name = repl;
            any = true;
        }
    }
    return any;
}

/* A batch: callbacks run back to back by one runner (core's ready queue), with nothing
 * between them but the runner's bookkeeping. Inside it, the end of a top-level callback does
 * not publish "nothing running" (the next begin publishes the next callback, the batch's end
 * publishes "nothing running" as of the last end), and the site record of each callback is
 * added at the next end or at the batch's end (readers on other threads may see a site's
 * statistics one callback late; the slow-callback check and event are not deferred).
 * Begin with no callback running; end with none running (strictly around the runner's
 * loop, never around a poll or anything else that may block). Loop thread. */
static inline void at__mon_batch_begin(at__mon_t *m)
{
    assert(!m->batch && m->cur == NULL);
    m->batch = 1;
}

static inline void at__mon_batch_end(at__mon_t *m)
{
    assert(m->batch && m->cur == NULL);
    m->batch = 0;
    if (m->pend_site) {
        at__site_record(m->pend_site, m->pend_ns);
        m->pend_site = NULL;
    }
    at__running_publish(&m->running, NULL, m->chain_ns ? m->chain_ns : at__now_ns(), 0, NULL, 0);
}

/* Adds the record a batch is still holding back (the last ended callback's site), so that
 * a reader on the loop thread sees every ended callback in its site's counters now. Inside or
 * outside a batch; a no-op when nothing is held back. Loop thread. */
static inline void at__mon_pending_flush(at__mon_t *m)
{
    if (m->pend_site) {
        at__site_record(m->pend_site, m->pend_ns);
        m->pend_site = NULL;
    }
}

/* Forget the chained timestamp: the next callback reads the clock. Call before anything
 * loopmon cannot see that may take time (a blocking call, an uninstrumented phase).
 * Loop thread. */
static inline void at__mon_chain_break(at__mon_t *m)
{
    m->chain_ns = 0;
}

/* What the loop is running now. Consistent triple (site, task, since), read lock-free with
 * a seqlock from any thread, including while the loop thread is stuck in that callback.
 * Returns 1 if a callback is running (fields set), 0 if the loop is not in a callback
 * (since_ns = when the last one ended, site NULL), -EAGAIN if the loop thread kept writing
 * during many attempts (try again later; practically never). Any thread. */
typedef struct at__running_snap {
    at__site_t *site;
    uint64_t since_ns;
    uint64_t task_id;
    unsigned kind;
    char task_name[AT__EV_TASK_MAX];
} at__running_snap_t;
int at__mon_running_read(const at__mon_t *m, at__running_snap_t *out);

#endif

/* task_export.c: the tasks layer's provider for the exporter — lifecycle events, resync, task
 * detail (creation and suspension stacks, what it waits on, its error) and cancellation. */
#include "tasks.h"
#include "at_wire.h" /* the wire's wait kinds, which at_export_wait_kind_t repeats */

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#define SAME_AS_WIRE(k) _Static_assert(AT_EXPORT_WAIT_##k == (int)AT_WIRE_WAIT_##k, #k)
SAME_AS_WIRE(NONE);
SAME_AS_WIRE(FUTURE);
SAME_AS_WIRE(TASK);
SAME_AS_WIRE(SLEEP);
SAME_AS_WIRE(READ);
SAME_AS_WIRE(WRITE);
SAME_AS_WIRE(CONNECT);
SAME_AS_WIRE(ACCEPT);
SAME_AS_WIRE(LOCK);
SAME_AS_WIRE(EVENT);
SAME_AS_WIRE(SEMAPHORE);
SAME_AS_WIRE(QUEUE);
SAME_AS_WIRE(OTHER);
#undef SAME_AS_WIRE

/* The exporter's wait kind of a task (a stream wait says which side). */
static uint8_t export_wait_kind(const at_task_t *t)
{
    if (t->wait_kind == AT_WAIT_STREAM && t->wq) {
        switch (t->wq->role) {
        case AT__WQ_ACCEPT:
            return AT_EXPORT_WAIT_ACCEPT;
        case AT__WQ_WRITE:
            return AT_EXPORT_WAIT_WRITE;
        case AT__WQ_CONNECT:
            return AT_EXPORT_WAIT_CONNECT;
        default:
            break;
        }
    }
    switch ((at_wait_kind_t)t->wait_kind) {
    case AT_WAIT_NONE:
        return AT_EXPORT_WAIT_NONE;
    case AT_WAIT_FUTURE:
        return AT_EXPORT_WAIT_FUTURE;
    case AT_WAIT_TASK:
        return AT_EXPORT_WAIT_TASK;
    case AT_WAIT_TIMER:
        return AT_EXPORT_WAIT_SLEEP;
    case AT_WAIT_STREAM:
        return AT_EXPORT_WAIT_READ;
    case AT_WAIT_LOCK:
        return AT_EXPORT_WAIT_LOCK;
    case AT_WAIT_EVENT:
        return AT_EXPORT_WAIT_EVENT;
    case AT_WAIT_SEMAPHORE:
        return AT_EXPORT_WAIT_SEMAPHORE;
    case AT_WAIT_QUEUE:
        return AT_EXPORT_WAIT_QUEUE;
    case AT_WAIT_YIELD:
        return AT_EXPORT_WAIT_OTHER;
    }
    return AT_EXPORT_WAIT_OTHER;
}

static uint8_t wire_state(const at_task_t *t)
{
    switch ((at_task_state_t)t->state) {
    case AT_TASK_CREATED:
    case AT_TASK_READY:
        return AT_EXPORT_TASK_READY;
    case AT_TASK_RUNNING:
        return AT_EXPORT_TASK_RUNNING;
    case AT_TASK_WAITING:
        /* a yield is a wait in name only: the task is ready again */
        return t->wait_kind == AT_WAIT_YIELD ? AT_EXPORT_TASK_READY : AT_EXPORT_TASK_WAITING;
    case AT_TASK_DONE:
        return AT_EXPORT_TASK_DONE;
    case AT_TASK_FAILED:
        return AT_EXPORT_TASK_FAILED;
    case AT_TASK_CANCELLED:
        return AT_EXPORT_TASK_CANCELLED;
    }
    return AT_EXPORT_TASK_READY;
}

#define ROW_WITH_TIMEOUT 0x80 /* wait_flags of a future awaited with a timeout */

static void fill_row(const at_task_t *t, at_export_task_row_t *r)
{
    if (t->open_step)
        at__task_busy_settle(t->tl);
    r->id = t->id;
    r->parent_id = t->parent_id;
    r->created_ns = t->created_ns;
    bool waits = t->state == AT_TASK_WAITING && t->wait_kind != AT_WAIT_YIELD;
    r->wait_since_ns = waits ? t->wait_since_ms * 1000000u : 0;
    r->busy_ns = t->busy_ns;
    r->steps = t->steps;
    r->wait_obj = waits ? t->wait_id : 0;
    r->entry_fn = (void *)t->fn;
    r->create_pc = t->ncreate ? t->create[0] : NULL;
    r->state = wire_state(t);
    r->wait_kind = waits ? export_wait_kind(t) : AT_EXPORT_WAIT_NONE;
    r->wait_arg = waits && t->wait_kind == AT_WAIT_TIMER ? t->wait_arg : 0;
    r->wait_flags = 0;
    if (waits && t->wq)
        r->wait_flags = t->wq->role; /* queue side */
    else if (waits && t->wait_kind == AT_WAIT_FUTURE && t->timer.slot_)
        r->wait_flags = ROW_WITH_TIMEOUT;
    memcpy(r->name, t->name, sizeof r->name - 1);
    r->name[sizeof r->name - 1] = '\0';
}

/* ---- suspension stacks: taken lazily, four times a second, for the tasks that began a wait */

/* Puts a waiting task on the list of those whose stack the exporter takes next time. */
static void stack_mark(at_task_t *t)
{
    if (t->stk_dirty)
        return;
    tloop_t *tl = t->tl;
    t->stk_dirty = true;
    AT__DLIST_PREPEND(tl->stk_head, t, stk_prev, stk_next);
}

void at__task_stack_forget_slow(at_task_t *t)
{
    tloop_t *tl = t->tl;
    AT__DLIST_UNLINK(tl->stk_head, t, stk_prev, stk_next);
    t->stk_prev = t->stk_next = NULL;
    t->stk_dirty = false;
}

static bool waits_really(const at_task_t *t)
{
    return t->state == AT_TASK_WAITING && t->wait_kind != AT_WAIT_YIELD;
}

#define STACKS_BUDGET_NS                                                                           \
    2500000u /* 2.5 ms per call, four calls a second: 1% of the loop thread                        \
               while a backlog lasts */

/* The exporter's inventory call (every 250 ms): the stacks of the marked tasks that still wait. The
 * walk is bounded by the task's own stack; the exporter hashes it and copies only new stacks. */
static void provider_stacks(void *ctx, at_export_stack_sink_t *sink)
{
    tloop_t *tl = ctx;
    if (tl->unposted)
        at__task_posts_flush(tl); /* a task spawned in a step that still runs is shown now */
    uint64_t t0 = at__now_ns();
    unsigned n_walked = 0;
    while (tl->stk_head) {
        at_task_t *t = tl->stk_head;
        /* A walk unwinds the task's cold stack with its CFI (~5-10 us; the first one of the
         * process ~ms, reading the modules): at most STACKS_BUDGET_NS of loop time per call,
         * the rest next time (100,000 new waits fill in over some seconds). */
        if ((++n_walked & 7) == 0 && at__now_ns() - t0 > STACKS_BUDGET_NS)
            return;
        if (waits_really(t)) {
            void *pc[AT_EXPORT_MAX_FRAMES];
            size_t n = at_task_suspension_stack(t, pc, AT_EXPORT_MAX_FRAMES);
            if (at__export_stack_add(sink, t->id, t->wait_since_ms * 1000000u, pc, (unsigned)n) !=
                0)
                return; /* the batch is full: the rest next time */
        }
        at__task_stack_forget_slow(t);
    }
}

/* Posts `kind` for `t` now. */
static void post_now(at_task_t *t, at_export_task_event_kind_t kind)
{
    if (kind == AT_EXPORT_TASK_CHANGED && waits_really(t))
        stack_mark(t); /* a new wait: its stack is taken lazily */
    /* The row is built in the ring slot itself (a row is 120 bytes: one copy, not two). */
    at_export_task_row_t *row = at__export_task_reserve(t->tl->att, kind);
    if (!row)
        return; /* full: counted, and the exporter resyncs */
    if (kind == AT_EXPORT_TASK_REMOVED)
        row->id = t->id;
    else
        fill_row(t, row);
    at__export_task_commit(t->tl->att);
}

void at__task_posts_flush(tloop_t *tl)
{
    at_task_t *t = tl->unposted;
    tl->unposted = NULL;
    for (; t; t = t->next) {
        if (t->unposted) {
            t->unposted = false;
            post_now(t, AT_EXPORT_TASK_ADDED);
        }
    }
}

void at__task_post_slow(at_task_t *t, at_export_task_event_kind_t kind)
{
    tloop_t *tl = t->tl;
    if (tl->unposted)
        at__task_posts_flush(tl); /* something else happens on the loop: they are shown now */
    if (kind == AT_EXPORT_TASK_ADDED) {
        t->unposted = true; /* it is the newest task: the rest of the list after it is empty */
        tl->unposted = t;
        return;
    }
    if (t->unposted) { /* ended before it was shown (unlinked: the flush did not see it) */
        t->unposted = false;
        if (kind == AT_EXPORT_TASK_REMOVED)
            return;                        /* never shown: nothing to take back */
        post_now(t, AT_EXPORT_TASK_ADDED); /* shown from now on (a failed task stays) */
    }
    post_now(t, kind);
}

static void provider_resync(void *ctx, at_export_resync_sink_t *sink)
{
    tloop_t *tl = ctx;
    at_export_task_row_t row;
    /* A new exporter knows no stacks yet (after drops it does: each new wait was marked) */
    bool first = at__export_resync_first(sink);
    for (at_task_t *t = tl->head; t; t = t->next) {
        fill_row(t, &row);
        if (first && waits_really(t))
            stack_mark(t);
        if (at__export_resync_add(sink, &row) != 0)
            return;
        t->unposted = false; /* the exporter knows it now (a flush skips it) */
    }
    tl->unposted = NULL; /* every live task was sent */
    for (at_task_t *t = tl->failed; t; t = t->next) {
        fill_row(t, &row);
        if (at__export_resync_add(sink, &row) != 0)
            return;
    }
}

/* A live task, or a failed one still referenced, by id; NULL if unknown. */
static at_task_t *find_task(tloop_t *tl, uint64_t id)
{
    for (at_task_t *t = tl->head; t; t = t->next)
        if (t->id == id)
            return t;
    for (at_task_t *t = tl->failed; t; t = t->next)
        if (t->id == id)
            return t;
    return NULL;
}

/* What a row waits on, in words, from the row alone (the provider's wait_desc: the exporter
 * calls it on its own thread for every task row it sends). */
static void describe_wait(const at_export_task_row_t *r, char *buf, size_t size)
{
    buf[0] = '\0';
    if (r->state != AT_EXPORT_TASK_WAITING)
        return;
    if (r->wait_kind == AT_EXPORT_WAIT_SLEEP) {
        snprintf(buf, size, "sleep %" PRIu64 ".%03" PRIu64 " s", r->wait_arg / 1000,
                 r->wait_arg % 1000);
        return;
    }
    /* the other kinds: "<what> #<object id>", with a word on the side where there are two */
    static const char *const what[] = {
        [AT_EXPORT_WAIT_FUTURE] = "future",       [AT_EXPORT_WAIT_TASK] = "task",
        [AT_EXPORT_WAIT_READ] = "read",           [AT_EXPORT_WAIT_WRITE] = "write",
        [AT_EXPORT_WAIT_CONNECT] = "connect",     [AT_EXPORT_WAIT_ACCEPT] = "accept",
        [AT_EXPORT_WAIT_LOCK] = "lock",           [AT_EXPORT_WAIT_EVENT] = "event",
        [AT_EXPORT_WAIT_SEMAPHORE] = "semaphore", [AT_EXPORT_WAIT_QUEUE] = "queue",
    };
    if (r->wait_kind >= sizeof what / sizeof what[0] || !what[r->wait_kind])
        return;
    const char *side = "";
    if (r->wait_kind == AT_EXPORT_WAIT_FUTURE && r->wait_flags == ROW_WITH_TIMEOUT) {
        side = " (with timeout)";
    } else if (r->wait_kind == AT_EXPORT_WAIT_QUEUE) {
        side = r->wait_flags == AT__WQ_QUEUE_PUT   ? " (full)"
               : r->wait_flags == AT__WQ_QUEUE_GET ? " (empty)"
                                                   : "";
    }
    snprintf(buf, size, "%s #%" PRIu64 "%s", what[r->wait_kind], r->wait_obj, side);
}

static int provider_detail(void *ctx, uint64_t id, at_export_task_detail_t *out)
{
    at_task_t *t = find_task(ctx, id);
    if (!t)
        return -ESRCH;
    fill_row(t, &out->row); /* settles the open step: its duration is counted below */
    at__task_steps_flush(t);
    for (unsigned i = 0; i < AT_EXPORT_STEP_HIST_N; i++)
        out->step_hist[i] = i < t->step_hist_n ? t->step_hist[i] : 0;
    unsigned nc = t->ncreate < AT_EXPORT_MAX_FRAMES ? t->ncreate : AT_EXPORT_MAX_FRAMES;
    memcpy(out->creation.pc, t->create, nc * sizeof(void *));
    out->creation.depth = nc;
    out->suspension.depth =
        (uint32_t)at_task_suspension_stack(t, out->suspension.pc, AT_EXPORT_MAX_FRAMES);
    describe_wait(&out->row, out->wait_desc, sizeof out->wait_desc);
    out->error[0] = '\0';
    if (t->ended && t->state == AT_TASK_FAILED) {
        const at_error_t *e = t->fut->err; /* not at_future_error: that marks it retrieved */
        if (e) {
            snprintf(out->error, sizeof out->error, "%s: %s", at_err_name(at_error_code(e)),
                     at_error_message(e));
        }
    }
    return 0;
}

static int provider_cancel(void *ctx, uint64_t id)
{
    at_task_t *t = find_task(ctx, id);
    if (!t)
        return -ESRCH;
    if (t->ended)
        return -EALREADY;
    at_task_cancel(t, "cancelled from asynctop");
    return 0;
}

/* The executor figures for the Loop screen (inspector). libuv's pool has UV_THREADPOOL_SIZE
 * threads (default 4, at most 1024), started with the first job. Loop thread. */
static void provider_executor(void *ctx, at_export_exec_stats_t *out)
{
    tloop_t *tl = ctx;
    at_executor_stats_t st;
    at_executor_stats(tl->loop, &st);
    const char *env = getenv("UV_THREADPOOL_SIZE");
    long threads = env ? strtol(env, NULL, 10) : 4;
    threads = threads < 1 ? 1 : threads > 1024 ? 1024 : threads;
    out->queued = st.queued;
    out->running = st.running;
    out->threads = st.submitted ? (uint64_t)threads : 0;
    out->done = st.completed;
    out->wait_ns = st.wait_total_ns;
}

void at__task_export_attach(tloop_t *tl)
{
    tl->provider = (at_export_provider_t){
        .name = "asynctop-tasks",
        .caps = AT_EXPORT_CAP_TASKS | AT_EXPORT_CAP_TASK_DETAIL | AT_EXPORT_CAP_CANCEL,
        .ctx = tl,
        .resync = provider_resync,
        .task_detail = provider_detail,
        .task_cancel = provider_cancel,
        .executor = provider_executor,
        .stacks = provider_stacks,
        .wait_desc = describe_wait,
    };
    tl->att = at__export_attach(tl->loop->uv, &tl->provider);
    tl->export_on = tl->att ? at__export_posts_wanted(tl->att) : NULL;
}

void at__task_export_detach(tloop_t *tl)
{
    tl->export_on = NULL;
    while (tl->stk_head)
        at__task_stack_forget_slow(tl->stk_head);
    at__export_detach(tl->att);
    tl->att = NULL;
}

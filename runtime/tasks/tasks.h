/* tasks.h: internal contract between the task layer (task_*.c, see task_int.h) and the primitives
 * built on it (sync.c, stream.c, fs.c, task_export.c). */
#ifndef AT_TASKS_TASKS_H
#define AT_TASKS_TASKS_H

#include "core.h"
#include "coro.h"

#include "asynctop/task.h"

#include "export/export.h"

/* Per-loop state of the tasks layer (a loop belongs to one thread, so these
 * live in a thread-local list, found by loop). */
typedef struct tloop {
    at_loop_t *loop;
    at_task_t *head, *tail; /* tasks that have not ended, oldest first */
    size_t ntasks;
    struct at_coro *coros; /* deferred coroutine objects not used yet */
    at_task_t *failed;     /* ended with an error, still referenced (reported at close if unread) */
    struct tloop *next;
    /* The last task step whose busy time is not counted yet (see at__task_busy_settle). */
    struct {
        at_task_t *task; /* NULL: none */
        at__site_t *site;
        uint64_t count, total_ns; /* the site's counters when the step began */
    } open_step;
    /* the task provider of this loop (task_export.c) */
    at_export_attach_t *att;
    const _Atomic int *export_on; /* nonzero while an exporter consumes posts; NULL: detached */
    at_export_provider_t provider;
    /* tasks that began a wait since the exporter last took suspension stacks (task_export.c),
     * linked through stk_prev/stk_next */
    at_task_t *stk_head;
    /* the oldest task whose ADDED post is still deferred (see at__task_post_slow): it and the
     * tasks after it on the list may have t->unposted set; NULL: none */
    at_task_t *unposted;
} tloop_t;

typedef bool (*detach_fn)(at_task_t *t);

struct at_task {
    uint32_t refs;
    uint8_t state;     /* at_task_state_t */
    uint8_t wait_kind; /* at_wait_kind_t */
    uint8_t ncreate;
    bool cancel_pending; /* deliver AT_ECANCELED at the next await point */
    bool finishing;      /* completing its future: ignore the cancel hook */
    bool ended;
    bool in_failed; /* on tl->failed (linked through prev/next) */
    bool open_step; /* tl->open_step is this task's */
    bool stk_dirty; /* on tl->stk_head: its suspension stack is still to be taken */
    bool unposted;  /* its ADDED post is deferred: the exporter does not know it yet */
    int rc;         /* what fn returned */
    int wake_code;  /* why the current wait ended: 0, AT_ECANCELED, AT_ETIMEDOUT */
    at_loop_t *loop;
    tloop_t *tl;
    at_future_t *fut;
    at__coro_t *co;
    at_task_fn fn;
    void *arg;
    void *result;
    at_error_t *raised;
    const char *cancel_msg;
    uint64_t id, parent_id;
    uint64_t wait_id, wait_since_ms;
    uint64_t wait_arg; /* sleep: its duration in ms (task detail) */
    uint64_t created_ns;
    uint64_t busy_ns, steps;
    uint8_t step_hist_n;     /* step_hist[0 .. step_hist_n) are set; the rest reads as 0 */
    uint8_t step_run_bucket; /* the last steps' bucket, ... */
    uint16_t step_run_n;     /* ... and how many in a row, not yet in step_hist */
    at__site_t *site;
    /* the current wait */
    detach_fn detach;
    at_future_t *waiting_on;
    struct at_task *joiner;  /* a task waiting in at_task_join for this one */
    struct at_task *joining; /* the task this one joins */
    at_handle_t timer;
    at_handle_t step; /* the scheduled step, if any */
    struct at__waitq *wq;
    struct at__waiter *waiter;
    struct at_task *prev, *next;
    struct at_task *stk_prev, *stk_next; /* on tl->stk_head while stk_dirty */
    char name[48];
    void **create; /* &create1, or a heap array in debug mode */
    void *create1;
    /* Each step's duration (the time billed to busy_ns), in the wire histogram's buckets from
     * AT_EXPORT_STEP_HIST_LO (see at__task_step_record in task_int.h), plus the run step_run_n.
     * Past the part spawn zeroes: only the buckets up to the highest one used are ever written
     * (step_hist_n). A bucket that
     * would pass UINT16_MAX halves them all (the shape stays, the counts become relative;
     * `steps` stays exact). */
    uint16_t step_hist[AT_EXPORT_STEP_HIST_N];
};

/* A task waiting in a primitive's FIFO of waiters. */
typedef struct at__waiter {
    at_task_t *task;
    struct at__waiter *prev, *next;
    void *value; /* handed over by the waker (queue items) */
} at__waiter_t;

typedef struct at__waitq {
    at__waiter_t *head, *tail;
    size_t n;
    uint8_t role; /* for task detail: AT__WQ_PLAIN, or which side of a queue */
} at__waitq_t;

enum {
    AT__WQ_PLAIN = 0,
    AT__WQ_QUEUE_PUT = 1 /* "(full)" */,
    AT__WQ_QUEUE_GET = 2 /* "(empty)" */,
    AT__WQ_ACCEPT = 3 /* a listening stream's acceptors: "accept" */,
    AT__WQ_WRITE = 4 /* a stream write or shutdown: "write" */,
    AT__WQ_CONNECT = 5 /* a stream connect: "connect" */
};

void at__waitq_push(at__waitq_t *q, at__waiter_t *w);
void at__waitq_remove(at__waitq_t *q, at__waiter_t *w);

/* Suspends the current task on `q` (kind/id describe the wait for the
 * inspector) until at__waitq_wake_one picks it, or it is cancelled (then it
 * is taken off the queue and AT_ECANCELED returned). w->value is the
 * caller's on the way in (a queue putter's item) and the waker's on the way
 * out. Inside a task; AT_EINVALSTATE outside. */
int at__waitq_wait(at__waitq_t *q, at__waiter_t *w, at_wait_kind_t kind, uint64_t id);

/* Takes the first waiter off `q` and makes its task ready (soon) with
 * `value`; returns false if nobody waits. Loop thread. */
bool at__waitq_wake_one(at__waitq_t *q, void *value);

/* Reports ("unclosed stream", with where it was opened) and closes the
 * streams of `loop` still open. Called by the loop-close hook. */
void at__streams_close(at_loop_t *loop);

/* Like at__waitq_wake_one, but from a bare libuv callback (I/O completion:
 * no timed callback running, not in a coroutine) the task's step runs right
 * away, timed as a task step, instead of a ready-queue round trip. Elsewhere
 * it is at__waitq_wake_one. Loop thread. */
bool at__waitq_wake_one_now(at__waitq_t *q, void *value);

/* Ids for primitives (one sequence per process, for the inspector). */
uint64_t at__tasks_next_object_id(void);

/* Checks the caller is in a task; returns it or NULL. */
at_task_t *at__task_current(void);

/* The loop of the current task or thread (NULL outside). */
at_loop_t *at__task_loop(const at_task_t *t);

/* Counts the busy time of the loop's last step whose callback has ended since. A step that is
 * a whole callback is not timed by the task layer (a clock read costs 10-45 ns): its time is
 * the callback's own, which loopmon adds to the callback's site when it ends; the step notes
 * the site's counters when it begins, and this adds the difference once exactly one more
 * callback of that site has ended. Called before busy_ns is read, and by every step. Loop
 * thread. */
void at__task_busy_settle(tloop_t *tl);
/* Moves the task's pending run of step counts into t->step_hist (read it after this). Loop
 * thread. */
void at__task_steps_flush(at_task_t *t);

/* ---- the task provider (task_export.c) ---------------------------------------------------- */

/* Attaches the loop's task provider to the exporter (whether or not one runs now: one that
 * starts later asks for a resync). Called once, when the tasks layer first runs on a loop;
 * loop thread. On failure the loop's tasks are simply not exported. */
void at__task_export_attach(tloop_t *tl);

/* Detaches it; posts stop. Loop thread, from the loop-close hook. */
void at__task_export_detach(tloop_t *tl);

/* Posts one lifecycle event of `t` (the row is built from the task now). Loop thread; only
 * through at__task_post, which skips it when no exporter consumes posts.
 *
 * ADDED is deferred: the exporter learns of a new task when anything else happens on the loop
 * (the next spawn, a step run from the ready queue or a wake-up, any other post, the
 * exporter's periodic inventory call), with the row the task has then. A task that ends
 * before that (spawned and joined at once: its whole life inside the spawner's step) was
 * never shown and posts nothing, not even REMOVED: a mirror refreshed by the exporter's drains
 * could not have shown it anyway. So at most one task per loop, the newest, spawned in the
 * step that runs now, is missing from the exporter's table while that step runs. */
void at__task_post_slow(at_task_t *t, at_export_task_event_kind_t kind);

/* Posts the deferred ADDED events of the loop (see at__task_post_slow). Loop thread. */
void at__task_posts_flush(tloop_t *tl);

/* Takes an ending task off the list of tasks whose suspension stack the exporter has still to
 * take (task_export.c). Loop thread. */
void at__task_stack_forget_slow(at_task_t *t);
static inline void at__task_stack_forget(at_task_t *t)
{
    if (AT__UNLIKELY(t->stk_dirty))
        at__task_stack_forget_slow(t);
}

/* Posts `t`'s ADDED/CHANGED/REMOVED event if an exporter is listening: one relaxed load
 * otherwise. Loop thread. */
static inline void at__task_post(at_task_t *t, at_export_task_event_kind_t kind)
{
    tloop_t *tl = t->tl;
    const _Atomic int *on = tl->export_on;
    if (AT__UNLIKELY(on != NULL && atomic_load_explicit(on, memory_order_relaxed))) {
        /* at__task_post_slow's two commonest cases, when nothing else is deferred: a spawn
         * defers its ADDED, and a task that ends unseen posts nothing */
        if (kind == AT_EXPORT_TASK_ADDED && tl->unposted == NULL) {
            t->unposted = true;
            tl->unposted = t;
        } else if (kind == AT_EXPORT_TASK_REMOVED && t->unposted && tl->unposted == NULL) {
            t->unposted = false;
        } else {
            at__task_post_slow(t, kind);
        }
    }
}

#endif

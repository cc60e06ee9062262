/* core.h: internal contract between the files of runtime/core (loop, ready queue, futures,
 * executor) and the tasks layer. */
#ifndef ASYNCTOP_CORE_H
#define ASYNCTOP_CORE_H

#include "asynctop.h"
#include "loopmon.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>

/* Callbacks run per ready batch before libuv polls for I/O again, unless more
 * were already ready when the batch started (then all of those run: every
 * callback ready at the start of a batch runs in that batch, as in asyncio's
 * _run_once). The fairness bound: I/O is polled at least once every
 * max(ready at batch start, AT__READY_BUDGET) callbacks. */
#define AT__READY_BUDGET 1024

/* ---- scheduled callbacks ("slots") --------------------------------------- */

enum {
    AT__SLOT_FREE = 0,
    AT__SLOT_READY,     /* in the ready queue */
    AT__SLOT_TIMER,     /* in the timer heap */
    AT__SLOT_DONECB,    /* in a future's done-callback list */
    AT__SLOT_CANCELLED, /* in the ready queue, to be skipped */
    AT__SLOT_RUNNING,
    AT__SLOT_INFLIGHT, /* in the threadsafe queue, not yet seen by the loop */
};

enum {
    AT__FN_LOOP = 0, /* fn.cb(loop, arg) */
    AT__FN_FUTURE,   /* fn.fcb(fut, arg), then the slot's reference on fut is dropped */
};

/* One scheduled callback. Slots are recycled through the loop's freelist and
 * freed only at loop close, so a stale at_handle_t (slot, gen) always points
 * to a live slot; gen changes whenever the slot's callback runs or is dropped. */
typedef struct at__slot {
    struct at__slot *next;            /* ready queue, freelist, done-callback list */
    struct at__slot *_Atomic ts_next; /* threadsafe (MPSC) queue */
    uint64_t gen;
    uint8_t state;
    uint8_t fn_kind;
    uint8_t cb_kind; /* at__cb_kind_t for timing */
    uint8_t nstack;  /* frames in stack[] (debug mode), else 0 */
    uint32_t heap_idx;
    uint64_t when; /* timers: loop time (ms) */
    uint64_t seq;  /* timers: FIFO among equal deadlines */
    union {
        at_callback_fn cb;
        at_future_cb fcb;
    } fn;
    void *arg;
    const char *name;
    at_future_t *fut;
    void *stack[AT_STACK_MAX];
} at__slot_t;

struct at_future {
    at_loop_t *loop;
    uint32_t refs;
    uint8_t state;  /* at_future_state_t */
    bool retrieved; /* the error was read (or there is none) */
    bool in_unretrieved;
    uint8_t nstack;
    void *value;
    void (*dtor)(void *);
    at_error_t *err;
    const char *cancel_msg;
    at__slot_t *cbs_head, *cbs_tail;     /* done callbacks not scheduled yet */
    struct at_future *ur_prev, *ur_next; /* the loop's unretrieved set; freelist link */
    uint64_t failed_at_ms;
    uint64_t id;
    /* Called synchronously when the future is cancelled (executor: uv_cancel). */
    void (*cancel_hook)(at_future_t *fut, void *arg);
    void *cancel_hook_arg;
    void *stack[AT_STACK_MAX]; /* creation site: stack[0] always, the rest in debug mode */
};

struct at_error {
    _Atomic unsigned refs;
    int code;
    const char *domain;
    uint8_t nstack;
    bool is_static;
    void *stack[AT_STACK_MAX];
    char message[]; /* NUL-terminated */
};

/* The threadsafe queue: Vyukov's intrusive MPSC queue (producers: any thread;
 * consumer: the loop thread). */
typedef struct at__mpsc {
    at__slot_t *_Atomic head; /* producers exchange here */
    at__slot_t *tail;         /* consumer */
    at__slot_t stub;
} at__mpsc_t;

struct at_loop {
    uv_loop_t *uv;
    bool owns_uv;
    at__mon_t *mon;           /* on the loop's thread (re-created by a first run elsewhere) */
    bool ran;                 /* at_loop_run was called: the thread is fixed */
    bool exported;            /* holds one reference on the process's exporter */
    _Atomic pthread_t thread; /* the creator until the first run, then the runner */
    uint64_t id;
    void *data;
    _Atomic int closing; /* set by at_loop_close: threadsafe producers refuse */
    bool running;
    bool stop_requested;
    bool untimed; /* ASYNCTOP_TIMING=off at creation: callbacks are not timed (benchmarks) */
    /* ready queue: FIFO of slots; idle+check handles active only while non-empty */
    at__slot_t *ready_head, *ready_tail;
    size_t nready;
    bool ready_active;
    size_t ready_budget; /* callbacks the running ready batch may still start (0: none) */
    uv_idle_t idle;      /* makes the poll not block while work is ready */
    uv_check_t check;    /* runs the ready batch right after the poll phase */
    /* recycled slots */
    at__slot_t *free_slots;
    /* timers: binary min-heap on (when, seq), one uv timer armed at the top */
    at__slot_t **heap;
    uint32_t heap_len, heap_cap;
    uint64_t timer_seq;
    uv_timer_t timer;
    /* other threads */
    at__mpsc_t tsq;
    uv_async_t async;
    int user_refs;
    /* futures */
    at_future_t *ur_head, *ur_tail; /* failed and unretrieved, oldest first */
    size_t nunretrieved;
    at_future_t *free_futures;
    size_t live_futures;
    uint64_t next_future_id;
    /* executor */
    size_t pending_work;
    struct at__work *works; /* jobs not yet completed on the loop thread */
    _Atomic uint64_t ex_submitted, ex_completed, ex_cancelled;
    _Atomic uint32_t ex_queued, ex_running;
    _Atomic uint64_t ex_wait_total, ex_wait_max, ex_run_total, ex_run_max;
    at__hist_t ex_wait_hist; /* queue wait of started jobs (written on the loop thread) */
    /* closing */
    int pending_closes;
    bool freed_when_futures_gone; /* closed: free when live_futures drops to 0 */
};

/* The loopmon call site of (fn, name) (`name`: static storage; see at__mon_site, whose
 * cache answers repeated calls). Loop thread. NULL on out-of-memory (then the callback is
 * not timed). */
static inline at__site_t *at__loop_site(at_loop_t *loop, void *fn, const char *name)
{
    return at__mon_site(loop->mon, fn, name);
}

/* Refuses a call made off the loop thread: counts, logs with the caller's
 * stack, posts a wrong-thread event and returns AT_EWRONGTHREAD. `what` is
 * the API function's name. Any thread. */
int at__wrong_thread(at_loop_t *loop, const char *what);

/* True if the caller is on the loop's thread: one relaxed load and compare. */
static inline bool at__on_loop_thread(const at_loop_t *loop)
{
    return pthread_equal(pthread_self(),
                         atomic_load_explicit(&((at_loop_t *)loop)->thread, memory_order_relaxed));
}

/* The always-on thread check of every loop-thread-only function. */
#define AT__CHECK_THREAD(loop, what)                                                               \
    do {                                                                                           \
        if (AT__UNLIKELY(!at__on_loop_thread(loop)))                                               \
            return at__wrong_thread((loop), (what));                                               \
    } while (0)

/* The same check in a function that returns no error code: reports the call and returns
 * __VA_ARGS__ (nothing in a void function). */
#define AT__CHECK_THREAD_OR(loop, what, ...)                                                       \
    do {                                                                                           \
        if (AT__UNLIKELY(!at__on_loop_thread(loop))) {                                             \
            at__wrong_thread((loop), (what));                                                      \
            return __VA_ARGS__;                                                                    \
        }                                                                                          \
    } while (0)

/* Intrusive doubly linked lists: structs that carry their own `prev`/`next` fields (queuing
 * never allocates, as with libuv's queue.h). AT__DLIST_UNLINK takes `node` off the list whose
 * first element is the lvalue `head`; AT__DLIST_UNLINK_TAIL also keeps the lvalue `tail` (the
 * last element). The node's own prev/next are left as they were (clear them if they mean
 * "on the list"). Arguments are evaluated more than once: pass plain names. */
#define AT__DLIST_UNLINK(head, node, prev, next)                                                   \
    do {                                                                                           \
        if ((node)->prev)                                                                          \
            (node)->prev->next = (node)->next;                                                     \
        else                                                                                       \
            (head) = (node)->next;                                                                 \
        if ((node)->next)                                                                          \
            (node)->next->prev = (node)->prev;                                                     \
    } while (0)
#define AT__DLIST_UNLINK_TAIL(head, tail, node, prev, next)                                        \
    do {                                                                                           \
        if (!(node)->next)                                                                         \
            (tail) = (node)->prev;                                                                 \
        AT__DLIST_UNLINK(head, node, prev, next);                                                  \
    } while (0)
/* Puts `node` first on the list whose first element is the lvalue `head` (a list without a
 * tail). */
#define AT__DLIST_PREPEND(head, node, prev, next)                                                  \
    do {                                                                                           \
        (node)->prev = NULL;                                                                       \
        (node)->next = (head);                                                                     \
        if (head)                                                                                  \
            (head)->prev = (node);                                                                 \
        (head) = (node);                                                                           \
    } while (0)
/* Appends `node` to the list (head, tail). */
#define AT__DLIST_APPEND(head, tail, node, prev, next)                                             \
    do {                                                                                           \
        (node)->prev = (tail);                                                                     \
        AT__SLIST_APPEND(head, tail, node, next);                                                  \
    } while (0)
/* Appends `node` to the singly linked FIFO (head, tail), linked through `next`. */
#define AT__SLIST_APPEND(head, tail, node, next)                                                   \
    do {                                                                                           \
        (node)->next = NULL;                                                                       \
        if (tail)                                                                                  \
            (tail)->next = (node);                                                                 \
        else                                                                                       \
            (head) = (node);                                                                       \
        (tail) = (node);                                                                           \
    } while (0)

/* Copies up to `max` of the `n` frames of `stack` to `frames`; returns `n` (the public
 * *_stack() functions' contract: the caller learns how many there are). */
static inline size_t at__frames_copy(void **frames, size_t max, void *const *stack, size_t n)
{
    size_t k = n < max ? n : max;
    if (k)
        memcpy(frames, stack, k * sizeof(void *));
    return n;
}

/* Process-wide problem counters (at_debug_counters). */
extern _Atomic uint64_t at__count_wrong_thread, at__count_never_retrieved, at__count_unclosed,
    at__count_dropped;

/* Slot management (loop thread). at__slot_get returns NULL on out-of-memory;
 * at__slot_put recycles (bumping gen). */
at__slot_t *at__slot_get(at_loop_t *loop);
void at__slot_put(at_loop_t *loop, at__slot_t *s);
/* Appends a filled slot to the ready queue (state READY) and makes sure the
 * batch will run. Loop thread. */
void at__ready_push(at_loop_t *loop, at__slot_t *s);
/* Whether a callback just scheduled at the ready queue's tail would be the very next one
 * the running batch starts: inside a ready batch with budget left, nothing else ready, no
 * stop or close asked. If so, takes that callback's unit of budget (the caller then runs
 * the work in place, as the batch would have, with no slot). Loop thread. */
static inline bool at__ready_next_inline(at_loop_t *loop)
{
    if (loop->ready_budget == 0 || loop->ready_head || loop->stop_requested ||
        atomic_load_explicit(&loop->closing, memory_order_relaxed))
        return false;
    loop->ready_budget--;
    return true;
}
/* Whether `s` is the only callback in the ready queue and the running batch would start it
 * next (budget left, no stop or close asked). If so, takes it out of the queue and takes
 * its unit of budget: the caller runs it in place, then gives the slot back with
 * at__slot_put. Loop thread. */
static inline bool at__ready_take_sole(at_loop_t *loop, at__slot_t *s)
{
    if (loop->ready_budget == 0 || loop->ready_head != s || s->next || s->state != AT__SLOT_READY ||
        loop->stop_requested || atomic_load_explicit(&loop->closing, memory_order_relaxed))
        return false;
    loop->ready_head = loop->ready_tail = NULL;
    loop->nready--;
    loop->ready_budget--;
    return true;
}
/* The frame of the ready-queue dispatcher running on this thread (0: none):
 * creation-stack walks stop there instead of walking into libuv. */
extern __thread uintptr_t at__walk_stop __attribute__((tls_model("initial-exec")));

/* Records the creation stack in debug mode (skips frames inside the library
 * up to the caller whose return address is `ra`). */
void at__capture_site(void **stack, uint8_t *nstack, void *ra);

/* A slot from at__slot_get with what every scheduler sets: `fn_kind` (AT__FN_*), `cb_kind`
 * (at__cb_kind_t), `arg`, `name`, no future, and in debug mode the creation site of return
 * address `ra` (NULL: none, as for a task's step). The caller sets s->fn. NULL on
 * out-of-memory. Loop thread. */
static inline at__slot_t *at__slot_new(at_loop_t *loop, uint8_t fn_kind, uint8_t cb_kind, void *arg,
                                       const char *name, void *ra)
{
    at__slot_t *s = at__slot_get(loop);
    if (AT__UNLIKELY(!s))
        return NULL;
    s->fn_kind = fn_kind;
    s->cb_kind = cb_kind;
    s->arg = arg;
    s->name = name;
    s->fut = NULL;
    s->nstack = 0;
    if (ra && AT__UNLIKELY(at__debug_enabled()))
        at__capture_site(s->stack, &s->nstack, ra);
    return s;
}

/* Futures. at__future_schedule_done moves the done callbacks to the ready
 * queue; at__future_close_report reports the loop's unretrieved set at close
 * and returns how many; at__future_free_all frees the future freelist. */
void at__future_close_report(at_loop_t *loop, size_t *count);
void at__future_free_cache(at_loop_t *loop);
/* Sets the synchronous cancel hook of a pending future (NULL clears). */
void at__future_set_cancel_hook(at_future_t *fut, void (*hook)(at_future_t *, void *), void *arg);
/* The loop-side callback of at_loop_run_and_wait / at_loop_await_threadsafe,
 * and what at_loop_close does with one it drops (wakes the waiter with
 * AT_ECLOSING). */
void at__waiter_run(at_loop_t *loop, void *arg);
void at__waiter_abort(void *arg);

/* Set by the tasks layer (runtime/tasks): at_loop_close calls it first, on
 * the loop thread, to report and release the tasks, deferred coroutines and
 * streams still alive on the loop. NULL when the tasks layer is absent. */
extern void (*at__tasks_close_hook)(at_loop_t *loop);

/* Set by the tasks layer: at_loop_close calls it before anything else, while the loop is
 * still open (not `closing`), on the loop thread, with the loop not running. It cancels the
 * loop's pending tasks and runs the loop (at_loop_run) until they have finished or a bound
 * is reached, as asyncio.run() does before loop.close(); what is still pending afterwards is
 * left to at__tasks_close_hook. NULL when the tasks layer is absent. */
extern void (*at__tasks_unwind_hook)(at_loop_t *loop);

/* Cancels every executor job not started yet (at loop close). */
void at__executor_cancel_all(at_loop_t *loop);
/* Frees a loop whose close has finished once no future refers to it. */
void at__loop_maybe_free(at_loop_t *loop);

/* Formats `n` raw frames as "  #i func (file:line)\n" lines into buf at *pos
 * (bounded by len). Symbolises: not for the hot path. */
void at__format_stack(char *buf, size_t len, size_t *pos, void *const *stack, size_t n);
/* Logs a long text as several messages split at line boundaries. */
void at__log_long(int level, const char *text);

#endif

/* asynctop/task.h: stackful-coroutine tasks — spawn, await, cancel, gather, sleep —
 * deferred coroutine objects, and where each pending task is suspended. */
#ifndef ASYNCTOP_TASK_H
#define ASYNCTOP_TASK_H

#include "asynctop/common.h"
#include "asynctop/error.h"
#include "asynctop/future.h"

#include <stdbool.h>

#ifdef __cplusplus
extern "C" {
#endif

/* A task runs a C function on its own (pooled, guarded) stack. Inside it,
 * code reads top to bottom and suspends at await points (at_await,
 * at_sleep, at_yield, at_task_join, the sync primitives of <asynctop/sync.h>)
 * while the loop runs other work. Each task completes a future (at_task_future)
 * so anything that waits for futures waits for tasks.
 *
 * Threads: every function here is for the thread of the task's loop. The
 * await functions are for code running inside a task; outside one they
 * return AT_EINVALSTATE without waiting.
 *
 * Cancellation: at_task_cancel makes the task's current (or next) await
 * return AT_ECANCELED, once; the task can clean up (and await again) and
 * then return. A task that returns AT_ECANCELED ends cancelled; one that
 * returns 0 anyway ends normally (as a Python task that swallows
 * CancelledError).
 *
 * Reports, as asyncio's debug mode gives them (each is logged and posted as
 * an event for the inspector, with raw stacks symbolised off the hot path):
 *   - "Task exception was never retrieved": a task failed and nobody read its
 *     error by the time the last reference to it went (a spawned task nobody
 *     holds: as soon as it fails) or the loop closed; with the task's creation
 *     site and the raise site.
 *   - "Task was destroyed but it is pending!": at_loop_close cancels every
 *     pending task and runs the loop until they have unwound (as asyncio.run
 *     does; see at_loop_close); a task still suspended after that (it
 *     swallowed the cancellation and awaited again, three rounds) is reported
 *     with its creation site and where it was suspended, and destroyed
 *     without unwinding.
 *   - "unhandled exception during at_loop_close() shutdown": a task the close
 *     cancelled ended with an error other than AT_ECANCELED; with its creation
 *     and raise sites. Its error then counts as retrieved. A task the close
 *     cancelled that ends cancelled is not reported.
 *   - "coroutine '<name>' was never awaited": a deferred coroutine object
 *     (at_coro_new) was dropped, or still unused at loop close; with where it
 *     was created.
 * Creation sites are the spawning call always, the whole stack in debug
 * mode (at_set_debug, ASYNCTOP_DEBUG=1). */

typedef struct at_task at_task_t;

/* The body of a task. Return 0 (and optionally set *result; the task does not
 * own it) to complete, or a negative code to fail: the error is the one
 * raised with at_task_raise, else a new one with that code. */
typedef int (*at_task_fn)(void *arg, void **result);

typedef struct at_task_opts {
    const char *name;  /* copied (up to 47 bytes); NULL: "task-<id>" */
    size_t stack_size; /* bytes; 0: 256 KiB (address space; memory is committed as touched) */
} at_task_opts_t;

typedef enum at_task_state {
    AT_TASK_CREATED = 0, /* spawned, not run yet */
    AT_TASK_READY,       /* scheduled to run */
    AT_TASK_RUNNING,
    AT_TASK_WAITING,   /* suspended at an await point */
    AT_TASK_DONE,      /* returned 0 */
    AT_TASK_FAILED,    /* returned an error */
    AT_TASK_CANCELLED, /* ended by cancellation */
} at_task_state_t;

/* What a waiting task waits on. */
typedef enum at_wait_kind {
    AT_WAIT_NONE = 0,
    AT_WAIT_FUTURE,
    AT_WAIT_TIMER, /* at_sleep */
    AT_WAIT_YIELD, /* at_yield: ready again at once */
    AT_WAIT_TASK,  /* at_task_join */
    AT_WAIT_EVENT,
    AT_WAIT_LOCK,
    AT_WAIT_SEMAPHORE,
    AT_WAIT_QUEUE,
    AT_WAIT_STREAM,
} at_wait_kind_t;

/* Spawns a task that runs fn(arg, &result) soon. *out (may be NULL: the loop
 * keeps the task alive until it ends) receives a reference the caller must
 * drop with at_task_unref. Returns 0, AT_ENOMEM (no memory or no stack),
 * AT_ECLOSING, AT_EWRONGTHREAD. From a task or from plain loop-thread code. */
AT_EXTERN int at_task_spawn(at_loop_t *loop, at_task_fn fn, void *arg, const at_task_opts_t *opts,
                            at_task_t **out);

AT_EXTERN at_task_t *at_task_ref(at_task_t *task);
/* Drops a reference. A task that is still running stays alive until it
 * ends; the last reference to a failed task whose error nobody retrieved
 * reports "Task exception was never retrieved". NULL is ignored. */
AT_EXTERN void at_task_unref(at_task_t *task);

/* The future the task completes (borrowed: valid while the task is
 * referenced; at_future_ref it to keep it longer). Its result is the task's
 * result, its error the task's error; cancelling it cancels the task. */
AT_EXTERN at_future_t *at_task_future(at_task_t *task);

/* The loop the task runs on. */
AT_EXTERN at_loop_t *at_task_loop(const at_task_t *task);

/* The task running on this thread, or NULL outside tasks. */
AT_EXTERN at_task_t *at_task_current(void);

/* Waits until `task` ends (the caller must hold a reference to it). Returns 0 and its *result (may
 * be NULL), its error's code (the error is marked retrieved; at_future_error on at_task_future
 * gives it), AT_ECANCELED if the task was cancelled or the caller was cancelled while waiting,
 * AT_EDEADLK for a task joining itself. Inside a task. */
AT_EXTERN int at_task_join(at_task_t *task, void **result);

/* Requests cancellation (see above). Returns true if the task had not ended. */
AT_EXTERN bool at_task_cancel(at_task_t *task, const char *msg);

/* Sets the error the current task fails with when it returns `code`: a new
 * error with `code` and a printf message, raised at the statement that uses
 * the macro (even when the call is a tail call). Evaluates to `code`:
 *     return at_task_raise(AT_EINVAL, "bad length %zu", n);
 * Inside a task (elsewhere it only evaluates to `code`). */
#define at_task_raise(code, ...)                                                                   \
    __extension__({                                                                                \
        __label__ at_raise_here_;                                                                  \
    at_raise_here_:                                                                                \
        at_task_raise_at(&&at_raise_here_, (code), __VA_ARGS__);                                   \
    })
AT_EXTERN int at_task_raise_at(void *pc, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* ---- await points (inside a task) ---------------------------------------- */

/* Waits until `fut` is done; returns as at_future_result (0 and *value, the
 * error's code, AT_ECANCELED), or AT_ECANCELED if this task was cancelled
 * while waiting (the future itself is left alone). */
AT_EXTERN int at_await(at_future_t *fut, void **value);

/* at_await with a deadline: AT_ETIMEDOUT after `timeout_ms` of loop time
 * (the future is left pending, as asyncio.wait does; cancel it if you mean
 * asyncio.wait_for). */
AT_EXTERN int at_await_timeout(at_future_t *fut, uint64_t timeout_ms, void **value);

/* Waits until every future is done. Returns 0 if all succeeded, else the
 * code of the first (in array order) that failed or was cancelled; every
 * failed future's error is marked retrieved (the first is available through
 * *first_error, a new reference, if first_error is not NULL). If this task is
 * cancelled while waiting, the futures still pending are cancelled and
 * AT_ECANCELED returned. */
AT_EXTERN int at_gather(at_future_t *const *futs, size_t n, at_error_t **first_error);

/* Suspends for `ms` milliseconds of loop time. 0 or AT_ECANCELED. */
AT_EXTERN int at_sleep(uint64_t ms);

/* Lets every other ready callback and task run once, then continues.
 * 0 or AT_ECANCELED. */
AT_EXTERN int at_yield(void);

/* ---- what a task is doing ------------------------------------------------ */

typedef struct at_task_info {
    uint64_t id;
    uint64_t parent_id; /* the task that spawned it, 0 if none */
    char name[48];
    at_task_state_t state;
    at_wait_kind_t wait_kind;
    uint64_t wait_id;             /* id of the future / task / primitive waited on, 0 if none */
    uint64_t wait_since_ms;       /* loop time the wait began */
    uint64_t busy_ns;             /* time spent running */
    uint64_t steps;               /* times it was switched in */
    size_t ncreation;             /* frames in creation[] */
    void *creation[AT_STACK_MAX]; /* where it was spawned, innermost first */
} at_task_info_t;

/* Fills *out with the task's current state. */
AT_EXTERN void at_task_info(const at_task_t *task, at_task_info_t *out);

/* Calls visit for each task of `loop` that has not ended, oldest first;
 * returns how many there are. visit must not spawn, cancel or free tasks. */
AT_EXTERN size_t at_loop_tasks(at_loop_t *loop, void (*visit)(at_task_t *task, void *arg),
                               void *arg);

/* Where a suspended task is waiting: up to `max` raw return addresses,
 * innermost first, starting at the application's frame that called the
 * await function (the runtime's own frames are left out). A snapshot taken on
 * the loop thread by walking the task's saved frame pointers, never beyond its
 * own stack; symbolise it on any thread with at_frames_symbolise. Returns the
 * number of frames (0 unless the task is WAITING or READY after a wait). */
AT_EXTERN size_t at_task_suspension_stack(const at_task_t *task, void **frames, size_t max);

/* One symbolised frame. */
typedef struct at_frame {
    void *pc;
    char func[128]; /* "" if unknown */
    char file[192]; /* "" if unknown */
    unsigned line;  /* 0 if unknown */
} at_frame_t;

/* Symbolises raw return addresses (from at_task_suspension_stack,
 * at_task_info's creation, an error's stack). Slow on first use of a module
 * (reads debug info), cached per address. Any thread: meant for the
 * exporter's, not the loop's. Returns n. */
AT_EXTERN size_t at_frames_symbolise(void *const *pcs, size_t n, at_frame_t *out);

/* ---- deferred coroutine objects ------------------------------------------ */

/* The analogue of calling an async function without awaiting it yet: the
 * call is recorded (with where it was made) and runs only when spawned or
 * awaited. One that is dropped unused, or still unused at loop close, is
 * reported as never awaited. */
typedef struct at_coro at_coro_t;

/* Creates a deferred call of fn(arg). `opts` is kept for at_coro_spawn.
 * Returns 0, AT_ENOMEM, AT_ECLOSING, AT_EWRONGTHREAD. */
AT_EXTERN int at_coro_new(at_loop_t *loop, at_task_fn fn, void *arg, const at_task_opts_t *opts,
                          at_coro_t **out);

/* Spawns it as a task (consumes the object, even on error). */
AT_EXTERN int at_coro_spawn(at_coro_t *coro, at_task_t **out);

/* Runs it to completion inside the current task, on this task's stack (the
 * analogue of `await coro()`); consumes the object. Returns fn's return
 * value (and *result); AT_EINVALSTATE outside a task. */
AT_EXTERN int at_coro_await(at_coro_t *coro, void **result);

/* Drops it; if it was never spawned or awaited, reports "coroutine '<name>'
 * was never awaited". NULL is ignored. */
AT_EXTERN void at_coro_drop(at_coro_t *coro);

#ifdef __cplusplus
}
#endif
#endif

/* asynctop/loop.h: the instrumented event loop and the callbacks it runs (soon, later, at,
 * threadsafe). */
#ifndef ASYNCTOP_LOOP_H
#define ASYNCTOP_LOOP_H

#include "asynctop/common.h"
#include "asynctop/error.h"

#include <stdbool.h>
#include <uv.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Threads. Every function here is for the loop's thread only unless its
 * comment says otherwise. The loop's thread is the thread that created the
 * loop until the first at_loop_run, and from then on, for good, the thread
 * that ran it first (so a loop may be set up on one thread and run by
 * another). A call from any other thread is refused with AT_EWRONGTHREAD, logged with the
 * caller's stack and posted as a wrong-thread event, and changes nothing.
 * That check is one thread-id compare and is always on, debug mode or not. */

/* Creates a loop. With `adopt` NULL the loop creates and owns its own
 * uv_loop_t; otherwise it runs on the application's `adopt` (which must
 * outlive the loop; at_loop_close leaves it open, with our handles closed).
 * Installs the instrumentation (loopmon: timing of every callback,
 * metrics) on the uv loop; a first at_loop_run on another thread moves it
 * there.
 * Returns 0 and sets *out, or AT_ENOMEM or a libuv error. The calling
 * thread is the loop's thread until the first run. Any thread. */
AT_EXTERN int at_loop_new(at_loop_t **out, uv_loop_t *adopt);

typedef enum at_run_mode {
    AT_RUN_DEFAULT = UV_RUN_DEFAULT, /* until stopped or nothing is left to do */
    AT_RUN_ONCE = UV_RUN_ONCE,       /* one iteration, waiting for I/O if nothing is ready */
    AT_RUN_NOWAIT = UV_RUN_NOWAIT,   /* one iteration, never waiting */
} at_run_mode_t;

/* Runs the loop. The first run may be made from any thread, which becomes
 * the loop's thread for good; later runs only from that thread. Returns, as
 * uv_run does, 0 if nothing is left to do and 1 if work is still pending
 * (after at_loop_stop, or after one AT_RUN_ONCE/AT_RUN_NOWAIT iteration);
 * AT_EINVALSTATE if the loop is already running (re-entrant run),
 * AT_ECLOSING after at_loop_close. The threadsafe wake-up handle does not
 * keep the loop alive: a loop that only waits for other threads must hold a
 * reference with at_loop_ref. */
AT_EXTERN int at_loop_run(at_loop_t *loop, at_run_mode_t mode);

/* Asks the loop to return from at_loop_run after the callback that is
 * running now (the rest of the ready batch runs in the next run). Any
 * thread: from another thread the request is posted through the threadsafe
 * queue. Returns 0 or AT_ENOMEM. */
AT_EXTERN int at_loop_stop(at_loop_t *loop);

/* Keeps at_loop_run(AT_RUN_DEFAULT) going while no other work is pending
 * (for loops fed only by at_call_soon_threadsafe); at_loop_unref undoes one
 * at_loop_ref. Loop thread. */
AT_EXTERN int at_loop_ref(at_loop_t *loop);
AT_EXTERN int at_loop_unref(at_loop_t *loop);

/* What at_loop_close found still open or pending. */
typedef struct at_close_report {
    size_t unclosed_handles;   /* uv handles still open (ours excepted), reported */
    size_t unretrieved_errors; /* failed futures whose error nobody retrieved, reported */
    size_t dropped_callbacks;  /* callbacks still scheduled (ready or timers), dropped */
    size_t pending_work;       /* executor jobs unfinished (cancelled or waited for) */
    size_t live_futures;       /* futures still referenced by the application */
} at_close_report_t;

/* Closes the loop. First, with the loop still open, the tasks still pending
 * (<asynctop/task.h>) are cancelled and the loop is run until they have
 * unwound, as asyncio.run() does: each sees AT_ECANCELED at its await point
 * and its cleanup code runs (and may await). Bounded: a task that swallows
 * the cancellation and awaits again is cancelled again, up to three rounds
 * of which each ends once none of its tasks ended for 100 ms; what is still
 * pending then is reported "Task was destroyed but it is pending!" and
 * released without unwinding. Meanwhile other callbacks and handles run as
 * in at_loop_run. Then executor jobs not started are cancelled and running
 * ones waited for; callbacks still scheduled are dropped (named in an INFO log);
 * futures whose error was never retrieved are reported ("Future exception
 * was never retrieved", with creation and raise sites); and every handle
 * still open on the uv loop, ours excepted, is reported with its type and
 * address as a ResourceWarning and an "unclosed" event. On an owned uv loop
 * those handles are then closed (so nothing leaks); on an adopted one they
 * are left to the application. Futures the application still holds stay
 * valid (their operations then refuse with AT_ECLOSING or do nothing) and
 * the loop's memory goes with the last of them. Returns 0, AT_EBUSY if the
 * owned uv loop could not be closed (it is leaked rather than freed while in
 * use), AT_EINVALSTATE if the loop is running, AT_ECLOSING if already closed.
 * `report` (may be NULL) receives the counts; all zero means a clean close.
 * Loop thread. */
AT_EXTERN int at_loop_close(at_loop_t *loop, at_close_report_t *report);

/* The loop's clock in milliseconds (uv_now: cached at the start of each
 * iteration; the base of at_call_at). Loop thread. */
AT_EXTERN uint64_t at_loop_time(const at_loop_t *loop);

/* The underlying uv_loop_t, for code that uses libuv directly. Handles the
 * application opens on it are its own to close (at_loop_close reports those
 * still open). Any thread (the pointer never changes). */
AT_EXTERN uv_loop_t *at_loop_uv(const at_loop_t *loop);

/* The loop whose callback is running on the calling thread, or NULL. */
AT_EXTERN at_loop_t *at_loop_current(void);

/* True if the caller is on the loop's thread. Any thread. */
AT_EXTERN bool at_loop_is_loop_thread(const at_loop_t *loop);

/* An application pointer carried by the loop. Loop thread. */
AT_EXTERN void at_loop_set_data(at_loop_t *loop, void *data);
AT_EXTERN void *at_loop_get_data(const at_loop_t *loop);

/* ---- callbacks --------------------------------------------------------- */

/* A callback the loop runs. */
typedef void (*at_callback_fn)(at_loop_t *loop, void *arg);

/* A scheduled callback, returned by value. Cancelling through a handle
 * whose callback already ran (or was cancelled) is a safe no-op, even after
 * its slot was reused: handles carry a generation. A zeroed handle is valid
 * and refers to nothing. Valid until the loop is closed. */
typedef struct at_handle {
    void *slot_;
    uint64_t gen_;
} at_handle_t;

/* Schedules fn(loop, arg) to run soon, in FIFO order with every other
 * call-soon of this loop. `name` (static storage, or NULL for the function's
 * symbol) is how the callback appears in slow-callback reports and call-site
 * statistics. *out (may be NULL) receives a handle. No allocation in steady
 * state (handle slots are recycled). Returns 0, AT_ENOMEM, AT_ECLOSING, or
 * AT_EWRONGTHREAD. Loop thread. */
AT_EXTERN int at_call_soon(at_loop_t *loop, at_callback_fn fn, void *arg, const char *name,
                           at_handle_t *out);

/* Schedules fn(loop, arg) to run `delay_ms` from now (loop time, so at least
 * that long after the current iteration began). Equal deadlines run in the
 * order they were scheduled. Otherwise as at_call_soon. Loop thread. */
AT_EXTERN int at_call_later(at_loop_t *loop, uint64_t delay_ms, at_callback_fn fn, void *arg,
                            const char *name, at_handle_t *out);

/* Schedules fn(loop, arg) at loop time `when_ms` (see at_loop_time); a time
 * in the past means as soon as possible (after callbacks already ready).
 * Otherwise as at_call_soon. Loop thread. */
AT_EXTERN int at_call_at(at_loop_t *loop, uint64_t when_ms, at_callback_fn fn, void *arg,
                         const char *name, at_handle_t *out);

/* Schedules fn(loop, arg) from any thread, and wakes the loop. Calls from one
 * thread run in the order made; several sends may wake the loop once (libuv's
 * uv_async_send coalesces), all queued calls run then. Allocates one small
 * node per call (malloc, off the loop thread). `out` may be used only on the
 * loop thread (cancel is loop-thread only). Returns 0, AT_ENOMEM or
 * AT_ECLOSING. Any thread. */
AT_EXTERN int at_call_soon_threadsafe(at_loop_t *loop, at_callback_fn fn, void *arg,
                                      const char *name, at_handle_t *out);

/* Cancels a scheduled callback: it will not run. Returns true if it was
 * pending and is now cancelled, false if it already ran, was cancelled, or
 * the handle is zero. Loop thread (a wrong-thread call returns false and is
 * reported). */
AT_EXTERN bool at_handle_cancel(at_loop_t *loop, at_handle_t handle);

/* True if the handle's callback is still scheduled. Loop thread. */
AT_EXTERN bool at_handle_pending(at_loop_t *loop, at_handle_t handle);

/* ---- running on the loop from another thread --------------------------- */

/* A function run on the loop thread by at_loop_run_and_wait; its return
 * value (0 or a negative code) and *result are handed back to the waiter. */
typedef int (*at_sync_fn)(at_loop_t *loop, void *arg, void **result);

/* Runs fn(loop, arg, result) on the loop thread and waits for it: the
 * function analogue of asyncio's run_coroutine_threadsafe(...).result().
 * Waits at most `timeout_ms` (UINT64_MAX: forever). Returns fn's return value
 * (and *result, when `result` is not NULL), AT_ETIMEDOUT (fn may still run
 * later; its result is then dropped), AT_EDEADLK if called on the loop's own
 * thread (it would wait for itself), AT_ENOMEM or AT_ECLOSING (the loop was
 * closed before fn ran). Any thread except the loop's. */
AT_EXTERN int at_loop_run_and_wait(at_loop_t *loop, at_sync_fn fn, void *arg, uint64_t timeout_ms,
                                   void **result);

/* Starts something on the loop thread that completes a future. */
typedef int (*at_start_fn)(at_loop_t *loop, void *arg, at_future_t **out);

/* The general form: on the loop thread, start(loop, arg, &fut) returns a
 * future (a reference the helper takes over), and the calling thread waits
 * until that future is done or `timeout_ms` passes. On success *result gets
 * the future's result with its ownership (taken out of the future: its
 * destructor is not called) and 0 is returned; a failed future gives its
 * code and, if `error` is not NULL, a new reference to its error (marking it
 * retrieved); a cancelled one gives AT_ECANCELED. On AT_ETIMEDOUT a result
 * that arrives later is destroyed with the future's destructor. The tasks
 * layer builds its run-coroutine-threadsafe on this. Any thread except the
 * loop's. */
AT_EXTERN int at_loop_await_threadsafe(at_loop_t *loop, at_start_fn start, void *arg,
                                       uint64_t timeout_ms, void **result, at_error_t **error);

#ifdef __cplusplus
}
#endif
#endif

/* asynctop/future.h: reference-counted futures that complete with a result, an error, or
 * cancellation. */
#ifndef ASYNCTOP_FUTURE_H
#define ASYNCTOP_FUTURE_H

#include "asynctop/common.h"
#include "asynctop/error.h"

#include <stdbool.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Futures belong to one loop and every function here is for that loop's
 * thread (a wrong-thread call is refused with AT_EWRONGTHREAD and reported).
 *
 * Never-retrieved errors: a future that failed keeps its error "unretrieved"
 * until at_future_result or at_future_error reads it. A failed future whose
 * error nobody retrieved is reported when its last reference goes, or at
 * at_loop_close, as asyncio does — "Future exception was never retrieved",
 * with the site that created the future and the site that raised the error —
 * and posted as an exception event. Until then it is in the loop's live set
 * of failed-and-unretrieved futures (at_loop_unretrieved). Cancellation is
 * not an error for this purpose. */

typedef enum at_future_state {
    AT_FUTURE_PENDING = 0,
    AT_FUTURE_DONE,      /* has a result */
    AT_FUTURE_FAILED,    /* has an error */
    AT_FUTURE_CANCELLED, /* cancelled */
} at_future_state_t;

/* Creates a pending future with one reference (the caller's). In debug mode
 * it records where it was created (raw return addresses). Returns 0,
 * AT_ENOMEM, AT_ECLOSING or AT_EWRONGTHREAD. */
AT_EXTERN int at_future_new(at_loop_t *loop, at_future_t **out);

/* Adds a reference; returns `fut`. */
AT_EXTERN at_future_t *at_future_ref(at_future_t *fut);
/* Drops a reference; the last one frees the future, destroying its result
 * (destructor) or error, and reports a never-retrieved error. NULL ignored.
 * From a wrong thread the call is refused and reported, and the reference
 * is leaked rather than the future corrupted. */
AT_EXTERN void at_future_unref(at_future_t *fut);

/* Completes the future with `value`; `dtor` (may be NULL) is called on it
 * when the future is freed (unless it was taken). Schedules the done
 * callbacks (soon, in the order added). Returns 0, or AT_EINVALSTATE if the
 * future is already done (the value is then NOT owned by the future). */
AT_EXTERN int at_future_set_result(at_future_t *fut, void *value, void (*dtor)(void *));

/* Completes the future with `err`, taking over the caller's reference
 * (even on failure). Returns 0 or AT_EINVALSTATE. */
AT_EXTERN int at_future_set_error(at_future_t *fut, at_error_t *err);

/* Shorthand: at_future_set_error(fut, at_error_new(code, NULL, fmt, ...)),
 * with the caller as the raise site. */
AT_EXTERN int at_future_fail(at_future_t *fut, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Cancels a pending future (done callbacks run; at_future_result then gives
 * AT_ECANCELED). `msg` (static storage, may be NULL) is kept as the reason.
 * Returns true if it was pending, false if it was already done. */
AT_EXTERN bool at_future_cancel(at_future_t *fut, const char *msg);

AT_EXTERN at_future_state_t at_future_state(const at_future_t *fut);
/* True once the future has a result, an error, or was cancelled. */
AT_EXTERN bool at_future_done(const at_future_t *fut);
AT_EXTERN bool at_future_cancelled(const at_future_t *fut);
/* The loop the future belongs to. Any thread. */
AT_EXTERN at_loop_t *at_future_loop(const at_future_t *fut);

/* Reads the outcome. Returns 0 and sets *value (may be NULL) for a result;
 * the error's code for a failed future (marking the error retrieved; get it
 * with at_future_error); AT_ECANCELED if cancelled; AT_EINVALSTATE if still
 * pending. */
AT_EXTERN int at_future_result(at_future_t *fut, void **value);

/* Like at_future_result, but moves the value out: the caller owns it and the
 * future's destructor will not be called. */
AT_EXTERN int at_future_take_result(at_future_t *fut, void **value);

/* The error of a failed future (borrowed: valid while the future lives),
 * marking it retrieved; NULL if the future did not fail. */
AT_EXTERN at_error_t *at_future_error(at_future_t *fut);

/* Marks a failed future's error as retrieved without reading it (for
 * callers that deliberately ignore it). */
AT_EXTERN void at_future_mark_retrieved(at_future_t *fut);

/* Called when the future is done, with the future and `arg`. */
typedef void (*at_future_cb)(at_future_t *fut, void *arg);

/* Adds a done callback. It is scheduled with call-soon semantics when the
 * future completes, or right away (soon, never synchronously) if it already
 * has. The future is kept alive until the callback has run. `name` as for
 * at_call_soon. Returns 0, AT_ENOMEM or AT_EWRONGTHREAD. */
AT_EXTERN int at_future_add_done_callback(at_future_t *fut, at_future_cb fn, void *arg,
                                          const char *name);

/* Removes every not-yet-scheduled done callback equal to (fn, arg); returns
 * how many were removed. */
AT_EXTERN size_t at_future_remove_done_callback(at_future_t *fut, at_future_cb fn, void *arg);

/* Creation site of the future (raw return addresses, innermost first):
 * copies up to `max` and returns the total (0 outside debug mode). */
AT_EXTERN size_t at_future_creation_stack(const at_future_t *fut, void **frames, size_t max);

/* ---- the live set of failed-and-unretrieved futures ------------------- */

typedef struct at_unretrieved_info {
    const at_future_t *future; /* borrowed: valid only inside the visit callback */
    const at_error_t *error;
    uint64_t failed_at_ms; /* loop time when the error was set */
    uint64_t age_ms;       /* now - failed_at_ms */
} at_unretrieved_info_t;

/* Calls visit(info, arg) for each failed future whose error nobody has
 * retrieved yet, oldest first; returns how many there are. `visit` may be
 * NULL (count only) and must not complete, free or retrieve futures. */
AT_EXTERN size_t at_loop_unretrieved(at_loop_t *loop,
                                     void (*visit)(const at_unretrieved_info_t *info, void *arg),
                                     void *arg);

#ifdef __cplusplus
}
#endif
#endif

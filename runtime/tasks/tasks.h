/* tasks.h: internal contract between task.c and the primitives built on it (sync.c). */
#ifndef AT_TASKS_TASKS_H
#define AT_TASKS_TASKS_H

#include "core.h"
#include "coro.h"

#include "asynctop/task.h"

/* A task waiting in a primitive's FIFO of waiters. */
typedef struct at__waiter {
    at_task_t *task;
    struct at__waiter *prev, *next;
    void *value; /* handed over by the waker (queue items) */
} at__waiter_t;

typedef struct at__waitq {
    at__waiter_t *head, *tail;
    size_t n;
} at__waitq_t;

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

#endif

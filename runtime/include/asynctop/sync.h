/* asynctop/sync.h: synchronisation between tasks — event, lock, semaphore, bounded queue. */
#ifndef ASYNCTOP_SYNC_H
#define ASYNCTOP_SYNC_H

#include "asynctop/common.h"
#include "asynctop/task.h"

#include <stdbool.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Every primitive belongs to one loop; all calls are for its thread. Waits
 * are FIFO and are await points: they return AT_ECANCELED if the waiting
 * task is cancelled (the task is then no longer queued, and holds nothing it
 * was waiting for). The wait functions need a task (AT_EINVALSTATE outside);
 * the others may also be called from plain loop callbacks. Destroying a
 * primitive that tasks still wait on is a precondition failure (assert). */

typedef struct at_event at_event_t;
/* An event starts clear; at_event_set wakes every waiter and lets later
 * waits pass until at_event_clear. */
AT_EXTERN int at_event_new(at_loop_t *loop, at_event_t **out);
AT_EXTERN void at_event_free(at_event_t *ev);
AT_EXTERN void at_event_set(at_event_t *ev);
AT_EXTERN void at_event_clear(at_event_t *ev);
AT_EXTERN bool at_event_is_set(const at_event_t *ev);
AT_EXTERN int at_event_wait(at_event_t *ev);
/* Tasks waiting now. */
AT_EXTERN size_t at_event_waiters(const at_event_t *ev);

typedef struct at_lock at_lock_t;
/* A mutual-exclusion lock for tasks (not reentrant), handed over FIFO. */
AT_EXTERN int at_lock_new(at_loop_t *loop, at_lock_t **out);
AT_EXTERN void at_lock_free(at_lock_t *lock);
AT_EXTERN int at_lock_acquire(at_lock_t *lock);
/* Releases; the first waiter (if any) owns it from now on. Precondition: held. */
AT_EXTERN void at_lock_release(at_lock_t *lock);
AT_EXTERN bool at_lock_locked(const at_lock_t *lock);

typedef struct at_semaphore at_semaphore_t;
AT_EXTERN int at_semaphore_new(at_loop_t *loop, unsigned value, at_semaphore_t **out);
AT_EXTERN void at_semaphore_free(at_semaphore_t *sem);
AT_EXTERN int at_semaphore_acquire(at_semaphore_t *sem);
AT_EXTERN void at_semaphore_release(at_semaphore_t *sem);
AT_EXTERN unsigned at_semaphore_value(const at_semaphore_t *sem);

typedef struct at_queue at_queue_t;
/* A bounded FIFO of pointers (capacity >= 1). */
AT_EXTERN int at_queue_new(at_loop_t *loop, size_t capacity, at_queue_t **out);
/* Precondition: nobody waits on it. Items still queued are not freed. */
AT_EXTERN void at_queue_free(at_queue_t *q);
/* Waits while full; returns 0 or AT_ECANCELED (then the item was not put). */
AT_EXTERN int at_queue_put(at_queue_t *q, void *item);
/* Waits while empty; returns 0 and *item, or AT_ECANCELED. */
AT_EXTERN int at_queue_get(at_queue_t *q, void **item);
/* Without waiting: 0, or AT_EAGAIN if full (put) / empty (get). */
AT_EXTERN int at_queue_try_put(at_queue_t *q, void *item);
AT_EXTERN int at_queue_try_get(at_queue_t *q, void **item);
AT_EXTERN size_t at_queue_size(const at_queue_t *q);

#ifdef __cplusplus
}
#endif
#endif

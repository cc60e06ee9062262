/* asynctop/task.h: stackful-coroutine tasks (spawn, await, cancel, gather). */
#ifndef ASYNCTOP_TASK_H
#define ASYNCTOP_TASK_H

/* The task API is built on core's futures (<asynctop/future.h>) and lands
 * with them; until then this header is intentionally empty. */

#endif

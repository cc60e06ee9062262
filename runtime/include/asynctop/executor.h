/* asynctop/executor.h: running blocking functions on libuv's thread pool, with a future and
 * statistics. */
#ifndef ASYNCTOP_EXECUTOR_H
#define ASYNCTOP_EXECUTOR_H

#include "asynctop/common.h"
#include "asynctop/error.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A blocking function, run on a pool thread (never the loop's): returns a
 * result (owned by the future, freed with the `dtor` given at submit) or
 * sets *err (a new at_error_t) to fail the future. It must not touch the
 * loop, except through the functions marked "any thread". */
typedef void *(*at_work_fn)(void *arg, at_error_t **err);

/* Runs fn(arg, &err) on libuv's thread pool (uv_queue_work; its size is
 * UV_THREADPOOL_SIZE, default 4) and gives a future that completes with its
 * result or error. Cancelling the future before the work starts removes it
 * from the pool's queue (uv_cancel); once started it runs to the end and its
 * result is destroyed. `name` names the work in reports (static storage or
 * NULL). Returns 0, AT_ENOMEM, AT_ECLOSING or AT_EWRONGTHREAD. Loop thread. */
AT_EXTERN int at_executor_submit(at_loop_t *loop, at_work_fn fn, void *arg, void (*dtor)(void *),
                                 const char *name, at_future_t **out);

typedef struct at_executor_stats {
    uint64_t submitted;     /* total submitted */
    uint64_t completed;     /* finished on the pool (with a result or an error) */
    uint64_t cancelled;     /* removed from the queue before starting */
    uint32_t queued;        /* submitted, not started yet */
    uint32_t running;       /* running on a pool thread now */
    uint64_t wait_total_ns; /* sum over started work of (start - submit) */
    uint64_t wait_max_ns;
    uint64_t wait_p50_ns;  /* queue wait percentiles of completed jobs (histogram, */
    uint64_t wait_p99_ns;  /* within ~3%), 0 before the first completion */
    uint64_t run_total_ns; /* sum of time spent in the functions */
    uint64_t run_max_ns;
} at_executor_stats_t;

/* Fills *stats with a consistent-enough snapshot (each field is read
 * atomically; the percentiles from a histogram updated on the loop thread
 * when a job completes). Allocates a few KiB briefly for the histogram
 * snapshot (percentiles are 0 if that fails). Any thread. */
AT_EXTERN void at_executor_stats(const at_loop_t *loop, at_executor_stats_t *stats);

#ifdef __cplusplus
}
#endif
#endif

/* executor.c: blocking functions on libuv's thread pool, completing futures, with queue/run
 * statistics. */
#include "core.h"

#include <stdlib.h>

typedef struct at__work {
    uv_work_t req;
    at_loop_t *loop;
    at_future_t *fut;
    at_work_fn fn;
    void *arg;
    void (*dtor)(void *);
    const char *name;
    void *result;
    at_error_t *err;
    uint64_t submit_ns;
    uint64_t wait_ns; /* set on the pool thread; read after completion */
    struct at__work *prev, *next;
} at__work_t;

static void atomic_max(_Atomic uint64_t *m, uint64_t v)
{
    uint64_t cur = atomic_load_explicit(m, memory_order_relaxed);
    while (v > cur && !atomic_compare_exchange_weak_explicit(m, &cur, v, memory_order_relaxed,
                                                             memory_order_relaxed))
        ;
}

/* Pool thread. */
static void work_cb(uv_work_t *req)
{
    at__work_t *w = req->data;
    at_loop_t *loop = w->loop;
    uint64_t start = at__now_ns();
    uint64_t wait = start > w->submit_ns ? start - w->submit_ns : 0;
    w->wait_ns = wait;
    atomic_fetch_sub_explicit(&loop->ex_queued, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&loop->ex_running, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&loop->ex_wait_total, wait, memory_order_relaxed);
    atomic_max(&loop->ex_wait_max, wait);
    w->result = w->fn(w->arg, &w->err);
    uint64_t run = at__now_ns() - start;
    atomic_fetch_add_explicit(&loop->ex_run_total, run, memory_order_relaxed);
    atomic_max(&loop->ex_run_max, run);
    atomic_fetch_sub_explicit(&loop->ex_running, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&loop->ex_completed, 1, memory_order_relaxed);
}

static void discard_outcome(at__work_t *w)
{
    if (w->result && w->dtor)
        w->dtor(w->result);
    at_error_unref(w->err);
    w->result = NULL;
    w->err = NULL;
}

/* Loop thread: the job finished (or was cancelled before it started). Timed
 * as an executor completion. */
static void after_work_cb(uv_work_t *req, int status)
{
    at__work_t *w = req->data;
    at_loop_t *loop = w->loop;
    AT__DLIST_UNLINK(loop->works, w, prev, next);
    loop->pending_work--;
    at_future_t *fut = w->fut;
    /* The request is finished: cancelling the future must not uv_cancel it
     * again (libuv would queue its completion a second time). */
    at__future_set_cancel_hook(fut, NULL, NULL);
    if (status == UV_ECANCELED) {
        atomic_fetch_sub_explicit(&loop->ex_queued, 1, memory_order_relaxed);
        atomic_fetch_add_explicit(&loop->ex_cancelled, 1, memory_order_relaxed);
        if (!at_future_done(fut))
            at_future_cancel(fut, "executor job cancelled");
    } else if (at_future_done(fut)) {
        at__hist_add(&loop->ex_wait_hist, w->wait_ns); /* loop thread: the single writer */
        discard_outcome(w); /* cancelled while running: nobody wants it */
    } else {
        at__hist_add(&loop->ex_wait_hist, w->wait_ns);
        at__site_t *site = loop->mon ? at__loop_site(loop, (void *)w->fn, w->name) : NULL;
        at__cb_t cb;
        if (site) {
            at__mon_chain_break(loop->mon); /* libuv ran code since the last callback */
            at__cb_begin(loop->mon, &cb, site, AT__CB_EXECUTOR);
        }
        if (w->err) {
            at_future_set_error(fut, w->err);
            w->err = NULL;
        } else {
            at_future_set_result(fut, w->result, w->dtor);
            w->result = NULL;
        }
        if (site)
            at__cb_end(loop->mon, &cb);
    }
    at_future_unref(fut);
    free(w);
}

static void cancel_hook(at_future_t *fut, void *arg)
{
    (void)fut;
    at__work_t *w = arg;
    uv_cancel((uv_req_t *)&w->req); /* fails harmlessly once the job started */
}

int at_executor_submit(at_loop_t *loop, at_work_fn fn, void *arg, void (*dtor)(void *),
                       const char *name, at_future_t **out)
{
    assert(loop && fn && out);
    *out = NULL;
    AT__CHECK_THREAD(loop, "at_executor_submit");
    at__work_t *w = calloc(1, sizeof *w);
    if (!w)
        return AT_ENOMEM;
    at_future_t *fut;
    int r = at_future_new(loop, &fut);
    if (r < 0) {
        free(w);
        return r;
    }
    /* The creation site of the future is our caller's, not ours. */
    at__capture_site(fut->stack, &fut->nstack, __builtin_return_address(0));
    w->req.data = w;
    w->loop = loop;
    w->fut = at_future_ref(fut);
    w->fn = fn;
    w->arg = arg;
    w->dtor = dtor;
    w->name = name;
    w->submit_ns = at__now_ns();
    atomic_fetch_add_explicit(&loop->ex_queued, 1, memory_order_relaxed);
    r = uv_queue_work(loop->uv, &w->req, work_cb, after_work_cb);
    if (r < 0) {
        atomic_fetch_sub_explicit(&loop->ex_queued, 1, memory_order_relaxed);
        at_future_unref(fut);
        at_future_unref(fut);
        free(w);
        return r;
    }
    atomic_fetch_add_explicit(&loop->ex_submitted, 1, memory_order_relaxed);
    AT__DLIST_PREPEND(loop->works, w, prev, next);
    loop->pending_work++;
    at__future_set_cancel_hook(fut, cancel_hook, w);
    *out = fut;
    return 0;
}

void at__executor_cancel_all(at_loop_t *loop)
{
    for (at__work_t *w = loop->works; w; w = w->next)
        uv_cancel((uv_req_t *)&w->req);
}

void at_executor_stats(const at_loop_t *loop, at_executor_stats_t *st)
{
    assert(loop && st);
    at_loop_t *l = (at_loop_t *)loop;
    st->submitted = atomic_load_explicit(&l->ex_submitted, memory_order_relaxed);
    st->completed = atomic_load_explicit(&l->ex_completed, memory_order_relaxed);
    st->cancelled = atomic_load_explicit(&l->ex_cancelled, memory_order_relaxed);
    st->queued = atomic_load_explicit(&l->ex_queued, memory_order_relaxed);
    st->running = atomic_load_explicit(&l->ex_running, memory_order_relaxed);
    st->wait_total_ns = atomic_load_explicit(&l->ex_wait_total, memory_order_relaxed);
    st->wait_max_ns = atomic_load_explicit(&l->ex_wait_max, memory_order_relaxed);
    st->run_total_ns = atomic_load_explicit(&l->ex_run_total, memory_order_relaxed);
    st->run_max_ns = atomic_load_explicit(&l->ex_run_max, memory_order_relaxed);
    at__hist_snap_t *snap = malloc(sizeof *snap);
    st->wait_p50_ns = st->wait_p99_ns = 0;
    if (snap) {
        at__hist_read(&l->ex_wait_hist, snap);
        st->wait_p50_ns = at__hist_quantile(snap, 0.50);
        st->wait_p99_ns = at__hist_quantile(snap, 0.99);
        free(snap);
    }
}

/* export_attach.c: provider attachments — the task-event ring a loop thread posts into without
 * waiting, and the mailbox through which the exporter asks a loop thread for work that must
 * run there (task detail, cancel, resync) and gets the answer back asynchronously. */
#include "export_int.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

static pthread_mutex_t g_reg_lock = PTHREAD_MUTEX_INITIALIZER;
static at_export_attach_t *g_atts;
static uint64_t g_next_id;

void at__export_attach_lock(void)
{
    pthread_mutex_lock(&g_reg_lock);
}

void at__export_attach_unlock(void)
{
    pthread_mutex_unlock(&g_reg_lock);
}

at_export_attach_t *at__export_attach_first(void)
{
    return g_atts;
}

void at__export_attach_set_consumer(int on)
{
    /* Called from a fork child too, where the lock may be held by a thread that is gone. */
    int locked = pthread_mutex_trylock(&g_reg_lock) == 0;
    for (at_export_attach_t *a = g_atts; a != NULL; a = a->next)
        atomic_store(&a->consumer, on);
    if (locked)
        pthread_mutex_unlock(&g_reg_lock);
}

bool at__export_task_post(at_export_attach_t *a, at_export_task_event_kind_t kind,
                          const at_export_task_row_t *row)
{
    if (a == NULL || !atomic_load_explicit(&a->consumer, memory_order_relaxed))
        return false;
    uint64_t tail = atomic_load_explicit(&a->tail, memory_order_relaxed);
    uint64_t head = atomic_load_explicit(&a->head, memory_order_acquire);
    atomic_store_explicit(&a->produced,
                          atomic_load_explicit(&a->produced, memory_order_relaxed) + 1,
                          memory_order_relaxed);
    if (tail - head >= AT_EXPORT_TASK_RING) {
        atomic_store_explicit(&a->dropped,
                              atomic_load_explicit(&a->dropped, memory_order_relaxed) + 1,
                              memory_order_relaxed);
        return false;
    }
    at_export_task_ev_t *e = &a->ring[tail & (AT_EXPORT_TASK_RING - 1)];
    e->kind = (uint8_t)kind;
    if (kind == AT_EXPORT_TASK_REMOVED) {
        e->row.id = row->id;
    } else {
        e->row = *row;
        e->row.name[sizeof e->row.name - 1] = '\0';
    }
    atomic_store_explicit(&a->tail, tail + 1, memory_order_release);
    return true;
}

const _Atomic int *at__export_posts_wanted(const at_export_attach_t *a)
{
    assert(a != NULL);
    return &a->consumer;
}

at_export_task_row_t *at__export_task_reserve(at_export_attach_t *a,
                                              at_export_task_event_kind_t kind)
{
    if (a == NULL || !atomic_load_explicit(&a->consumer, memory_order_relaxed))
        return NULL;
    uint64_t tail = atomic_load_explicit(&a->tail, memory_order_relaxed);
    uint64_t head = atomic_load_explicit(&a->head, memory_order_acquire);
    atomic_store_explicit(&a->produced,
                          atomic_load_explicit(&a->produced, memory_order_relaxed) + 1,
                          memory_order_relaxed);
    if (tail - head >= AT_EXPORT_TASK_RING) {
        atomic_store_explicit(&a->dropped,
                              atomic_load_explicit(&a->dropped, memory_order_relaxed) + 1,
                              memory_order_relaxed);
        return NULL;
    }
    at_export_task_ev_t *e = &a->ring[tail & (AT_EXPORT_TASK_RING - 1)];
    e->kind = (uint8_t)kind;
    return &e->row;
}

void at__export_task_commit(at_export_attach_t *a)
{
    uint64_t tail = atomic_load_explicit(&a->tail, memory_order_relaxed);
    atomic_store_explicit(&a->tail, tail + 1, memory_order_release);
}

int at__export_task_take(at_export_attach_t *a, at_export_task_ev_t *out, uint64_t *pos)
{
    uint64_t head = atomic_load_explicit(&a->head, memory_order_relaxed);
    uint64_t tail = atomic_load_explicit(&a->tail, memory_order_acquire);
    if (head == tail)
        return 0;
    const at_export_task_ev_t *e = &a->ring[head & (AT_EXPORT_TASK_RING - 1)];
    out->kind = e->kind;
    if (e->kind == AT_EXPORT_TASK_REMOVED)
        out->row.id = e->row.id;
    else
        out->row = e->row;
    *pos = head;
    atomic_store_explicit(&a->head, head + 1, memory_order_release);
    return 1;
}

int at__export_resync_add(at_export_resync_sink_t *sink, const at_export_task_row_t *row)
{
    at_export_loopreq_t *r = sink->req;
    if (r->nrows >= AT_EXPORT_RESYNC_MAX) {
        r->rows_truncated = true;
        return -ENOBUFS;
    }
    if (at__export_grow((void **)&r->rows, &r->caprows, r->nrows + 1, sizeof *r->rows) != 0) {
        r->rows_truncated = true;
        return -ENOBUFS;
    }
    r->rows[r->nrows] = *row;
    r->rows[r->nrows].name[sizeof row->name - 1] = '\0';
    r->nrows++;
    return 0;
}

/* Runs one request on the loop thread. */
static void run_request(at_export_attach_t *a, at_export_loopreq_t *r)
{
    const at_export_provider_t *p = a->p;
    switch (r->op) {
    case AT_EXPORT_LOOPREQ_RESYNC:
        if (p->resync == NULL) {
            r->result = -ENOTSUP;
            break;
        }
        /* Events before this position are superseded by the rows collected now. */
        r->resync_pos = atomic_load_explicit(&a->tail, memory_order_relaxed);
        at_export_resync_sink_t sink = {.req = r};
        p->resync(p->ctx, &sink);
        r->result = 0;
        break;
    case AT_WIRE_OP_TASK_DETAIL:
        r->result = p->task_detail ? p->task_detail(p->ctx, r->task_id, r->detail) : -ENOTSUP;
        break;
    case AT_WIRE_OP_CANCEL:
        r->result = p->task_cancel ? p->task_cancel(p->ctx, r->task_id) : -ENOTSUP;
        break;
    default:
        r->result = -ENOTSUP;
    }
}

static at_export_loopreq_t *mbox_take_all(at_export_attach_t *a)
{
    pthread_mutex_lock(&a->mbox_lock);
    at_export_loopreq_t *list = a->mbox;
    a->mbox = NULL;
    pthread_mutex_unlock(&a->mbox_lock);
    at_export_loopreq_t *rev = NULL; /* oldest first */
    while (list) {
        at_export_loopreq_t *n = list->next;
        list->next = rev;
        rev = list;
        list = n;
    }
    return rev;
}

static void async_cb(uv_async_t *h)
{
    at_export_attach_t *a = h->data;
    at_export_loopreq_t *r = mbox_take_all(a);
    while (r) {
        at_export_loopreq_t *n = r->next;
        run_request(a, r);
        at__export_loopreq_done(r);
        r = n;
    }
}

int at__export_loopreq_send(at_export_loopreq_t *r)
{
    at_export_attach_t *a = r->att;
    pthread_mutex_lock(&a->mbox_lock);
    if (a->detached) {
        pthread_mutex_unlock(&a->mbox_lock);
        return -ESHUTDOWN;
    }
    r->next = a->mbox;
    a->mbox = r;
    pthread_mutex_unlock(&a->mbox_lock);
    uv_async_send(a->async);
    return 0;
}

at_export_attach_t *at__export_attach(uv_loop_t *loop, const at_export_provider_t *p)
{
    assert(loop != NULL && p != NULL);
    at_export_attach_t *a = calloc(1, sizeof *a);
    if (a == NULL)
        return NULL;
    a->async = malloc(sizeof *a->async);
    if (a->async == NULL || uv_async_init(loop, a->async, async_cb) != 0) {
        free(a->async);
        free(a);
        return NULL;
    }
    a->async->data = a;
    uv_unref((uv_handle_t *)a->async);
    a->loop = loop;
    a->p = p;
    pthread_mutex_init(&a->mbox_lock, NULL);
    pthread_mutex_lock(&g_reg_lock);
    a->id = ++g_next_id;
    a->next = g_atts;
    g_atts = a;
    pthread_mutex_unlock(&g_reg_lock);
    /* the exporter notices the new attachment and asks it for a resync */
    atomic_store(&a->consumer, at__export_running() ? 1 : 0);
    return a;
}

static void async_close_cb(uv_handle_t *h)
{
    free(h);
}

void at__export_detach(at_export_attach_t *a)
{
    if (a == NULL)
        return;
    pthread_mutex_lock(&g_reg_lock);
    for (at_export_attach_t **pp = &g_atts; *pp != NULL; pp = &(*pp)->next)
        if (*pp == a) {
            *pp = a->next;
            break;
        }
    pthread_mutex_unlock(&g_reg_lock);
    pthread_mutex_lock(&a->mbox_lock);
    a->detached = true;
    pthread_mutex_unlock(&a->mbox_lock);
    /* Requests still in the mailbox are answered "loop closed". */
    at_export_loopreq_t *r = mbox_take_all(a);
    while (r) {
        at_export_loopreq_t *n = r->next;
        r->result = -ESHUTDOWN;
        at__export_loopreq_done(r);
        r = n;
    }
    if (!uv_is_closing((uv_handle_t *)a->async))
        uv_close((uv_handle_t *)a->async, async_close_cb);
    pthread_mutex_destroy(&a->mbox_lock);
    free(a);
}

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
    pthread_mutex_lock(&g_reg_lock);
    for (at_export_attach_t *a = g_atts; a != NULL; a = a->next)
        atomic_store(&a->consumer, on);
    pthread_mutex_unlock(&g_reg_lock);
}

/* fork() (rank AT__FORK_EXPORT_ATTACH, loopmon.h): the registry's lock, then the mailbox lock
 * of every attachment in it (the exporter thread takes a mailbox lock under the registry's,
 * a loop thread takes its own alone). An attachment already taken out of the registry is
 * touched by its detaching thread only. The list cannot change while the registry's lock is
 * held, so release walks what prepare walked. */
static void atfork_prepare(void)
{
    pthread_mutex_lock(&g_reg_lock);
    for (at_export_attach_t *a = g_atts; a != NULL; a = a->next)
        pthread_mutex_lock(&a->mbox_lock);
}

static void atfork_release(void)
{
    for (at_export_attach_t *a = g_atts; a != NULL; a = a->next)
        pthread_mutex_unlock(&a->mbox_lock);
    pthread_mutex_unlock(&g_reg_lock);
}

static const at__fork_handlers_t fork_handlers = {atfork_prepare, atfork_release, atfork_release};

__attribute__((constructor)) static void fork_register(void)
{
    at__fork_register(AT__FORK_EXPORT_ATTACH, &fork_handlers);
}

void at__export_attach_reset(void)
{
    pthread_mutex_lock(&g_reg_lock);
    for (at_export_attach_t *a = g_atts; a != NULL; a = a->next) {
        a->synced = false;
        a->resync_inflight = false;
        a->resync_at_ns = 0;
        a->inventory_inflight = false;
        a->inventory_at_ns = 0;
    }
    pthread_mutex_unlock(&g_reg_lock);
}

bool at__export_task_post(at_export_attach_t *a, at_export_task_event_kind_t kind,
                          const at_export_task_row_t *row)
{
    at_export_task_row_t *slot = at__export_task_reserve(a, kind);
    if (slot == NULL)
        return false;
    if (kind == AT_EXPORT_TASK_REMOVED) {
        slot->id = row->id;
    } else {
        *slot = *row;
        slot->name[sizeof slot->name - 1] = '\0';
    }
    at__export_task_commit(a);
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

void at__export_loopreq_free(at_export_loopreq_t *r)
{
    free(r->detail);
    free(r->rows);
    free(r->stk_ent);
    free(r->stk_new);
    free(r);
}

static uint64_t stk_hash(void *const *pc, unsigned n)
{
    uint64_t h = 1469598103934665603ull ^ n;
    for (unsigned i = 0; i < n; i++) {
        h ^= (uint64_t)(uintptr_t)pc[i];
        h *= 1099511628211ull;
        h ^= h >> 29;
    }
    return h != 0 ? h : 1;
}

/* Adds h to the attachment's set of stacks sent; true if it was there already. */
static bool stk_sent_test_add(at_export_attach_t *a, uint64_t h)
{
    if ((a->stk_sent_n + 1) * 2 > a->stk_sent_cap) {
        size_t nc = a->stk_sent_cap ? a->stk_sent_cap * 2 : 256;
        uint64_t *t = calloc(nc, sizeof *t);
        if (t == NULL)
            return false; /* sent again next time: harmless */
        for (size_t i = 0; i < a->stk_sent_cap; i++) {
            uint64_t k = a->stk_sent[i];
            if (k == 0)
                continue;
            size_t j = (size_t)k & (nc - 1);
            while (t[j] != 0)
                j = (j + 1) & (nc - 1);
            t[j] = k;
        }
        free(a->stk_sent);
        a->stk_sent = t;
        a->stk_sent_cap = nc;
    }
    size_t j = (size_t)h & (a->stk_sent_cap - 1);
    for (; a->stk_sent[j] != 0; j = (j + 1) & (a->stk_sent_cap - 1))
        if (a->stk_sent[j] == h)
            return true;
    a->stk_sent[j] = h;
    a->stk_sent_n++;
    return false;
}

int at__export_stack_add(at_export_stack_sink_t *sink, uint64_t task_id, uint64_t wait_since_ns,
                         void *const *pc, unsigned depth)
{
    at_export_loopreq_t *r = sink->req;
    if (depth == 0)
        return 0;
    if (depth > AT_EXPORT_MAX_FRAMES)
        depth = AT_EXPORT_MAX_FRAMES;
    if (r->nstk_ent >= AT_EXPORT_STK_BATCH ||
        at__export_grow((void **)&r->stk_ent, &r->capstk_ent, r->nstk_ent + 1,
                        sizeof *r->stk_ent) != 0)
        return -ENOBUFS;
    uint64_t h = stk_hash(pc, depth);
    if (!stk_sent_test_add(sink->att, h)) {
        if (at__export_grow((void **)&r->stk_new, &r->capstk_new, r->nstk_new + 1,
                            sizeof *r->stk_new) != 0)
            return -ENOBUFS;
        at_export_stk_new_t *n = &r->stk_new[r->nstk_new++];
        n->hash = h;
        n->depth = depth;
        memcpy(n->pc, pc, depth * sizeof *pc);
    }
    r->stk_ent[r->nstk_ent++] = (at_export_stk_ent_t){task_id, wait_since_ns, h};
    return 0;
}

bool at__export_resync_first(const at_export_resync_sink_t *sink)
{
    return sink->req->resync_first;
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
    case AT_EXPORT_LOOPREQ_INVENTORY: {
        at__mon_t *m = at__mon_find(a->loop);
        if (m != NULL)
            at__mon_handles(m, &r->handles);
        if (p->executor != NULL) {
            p->executor(p->ctx, &r->exec);
            r->has_exec = true;
        }
        if (p->stacks != NULL && m != NULL) {
            if (a->stk_epoch != r->epoch) { /* another exporter: it has been sent nothing */
                free(a->stk_sent);
                a->stk_sent = NULL;
                a->stk_sent_cap = a->stk_sent_n = 0;
                a->stk_epoch = r->epoch;
            }
            at_export_stack_sink_t ssink = {.req = r, .att = a};
            p->stacks(p->ctx, &ssink);
        }
        r->result = m != NULL ? 0 : -ENOENT;
        break;
    }
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
        /* A request the client was told was refused ("loop busy") is never carried out. */
        int expect = AT_EXPORT_REQ_QUEUED;
        if (atomic_compare_exchange_strong(&r->claim, &expect, AT_EXPORT_REQ_TAKEN))
            run_request(a, r);
        else
            r->result = -ECANCELED;
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

int at__export_loopreq_withdraw(at_export_loopreq_t *r)
{
    int expect = AT_EXPORT_REQ_QUEUED;
    if (!atomic_compare_exchange_strong(&r->claim, &expect, AT_EXPORT_REQ_WITHDRAWN))
        return -EINPROGRESS;
    /* Still in the mailbox of a live attachment (a blocked loop): take it out, so that it
     * holds no memory there. Not found: the loop thread took it and hands it back unrun. */
    int removed = 0;
    pthread_mutex_lock(&g_reg_lock);
    at_export_attach_t *a = g_atts;
    while (a != NULL && a->id != r->att_id)
        a = a->next;
    if (a != NULL) {
        pthread_mutex_lock(&a->mbox_lock);
        for (at_export_loopreq_t **pp = &a->mbox; *pp != NULL; pp = &(*pp)->next)
            if (*pp == r) {
                *pp = r->next;
                removed = 1;
                break;
            }
        pthread_mutex_unlock(&a->mbox_lock);
    }
    pthread_mutex_unlock(&g_reg_lock);
    return removed;
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
    free(a->stk_sent);
    free(a);
}

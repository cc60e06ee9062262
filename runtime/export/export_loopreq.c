/* export_loopreq.c: client requests that must run on a loop thread (task detail, cancel) —
 * sent through the attachment's mailbox, answered when the loop thread gives them back, or
 * answered "loop busy" and withdrawn when it does not in time. Exporter thread. */
#include "export_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Client requests for attachment a that are waiting for its loop thread. */
static unsigned loop_queued(const at_export_srv_t *srv, const at_export_attach_t *a)
{
    unsigned queued = 0;
    for (at_export_loopreq_t *p = srv->pending; p != NULL; p = p->pnext)
        if (p->att_id == a->id && p->client_id != 0)
            queued++;
    return queued;
}

void at__export_loop_request(at_export_client_t *c, const at_wire_request_t *rq)
{
    at_export_srv_t *srv = c->srv;
    at__agg_sync_loops(srv);
    agg_loop_t *l = at__agg_loop(srv, c->loop_id);
    uint32_t need = rq->op == AT_WIRE_OP_CANCEL ? AT_EXPORT_CAP_CANCEL : AT_EXPORT_CAP_TASK_DETAIL;
    uint32_t status = AT_WIRE_ST_RATE_LIMITED;
    char reason[160];
    at_export_loopreq_t *r = NULL;
    if (c->inflight >= AT_EXPORT_CLIENT_INFLIGHT_MAX) {
        snprintf(reason, sizeof reason,
                 "too many requests in flight on this connection (%d, counting those answered "
                 "\"loop busy\" until the loop takes them back)",
                 AT_EXPORT_CLIENT_INFLIGHT_MAX);
        goto refuse;
    }
    at__export_attach_lock();
    at_export_attach_t *a = at__export_attach_first();
    for (; a != NULL; a = a->next)
        if (l != NULL && !l->gone && a->loop == l->mon->loop && (a->p->caps & need) && !a->detached)
            break;
    if (a == NULL) {
        status = AT_WIRE_ST_UNSUPPORTED;
        snprintf(reason, sizeof reason,
                 "not supported by this runtime: no task provider is attached to this loop");
        goto refuse_locked;
    }
    if (loop_queued(srv, a) >= AT_EXPORT_LOOP_QUEUE_MAX) {
        snprintf(reason, sizeof reason,
                 "too many requests wait for this loop (%u; it may be blocked)",
                 AT_EXPORT_LOOP_QUEUE_MAX);
        goto refuse_locked;
    }
    r = calloc(1, sizeof *r);
    if (r != NULL && rq->op == AT_WIRE_OP_TASK_DETAIL)
        r->detail = calloc(1, sizeof *r->detail);
    if (r == NULL || (rq->op == AT_WIRE_OP_TASK_DETAIL && r->detail == NULL)) {
        status = AT_WIRE_ST_INTERNAL;
        snprintf(reason, sizeof reason, "out of memory");
        goto refuse_locked;
    }
    r->op = rq->op;
    r->client_id = c->id;
    r->req_id = rq->id;
    r->task_id = rq->task;
    r->att = a;
    r->att_id = a->id;
    r->deadline_ns = at__export_now_ns() + (uint64_t)srv->cfg.loop_request_ms * 1000000u;
    int err = at__export_loopreq_send(r);
    at__export_attach_unlock();
    if (err != 0) {
        status = AT_WIRE_ST_UNSUPPORTED;
        snprintf(reason, sizeof reason, "loop is closing");
        goto refuse;
    }
    r->pnext = srv->pending;
    srv->pending = r;
    c->inflight++;
    return;
refuse_locked:
    at__export_attach_unlock();
refuse:
    if (r != NULL) {
        free(r->detail);
        free(r);
    }
    at__export_respond_error(c, rq->id, rq->op, status, reason);
}

/* ---- loop requests: answers and timeouts -------------------------------------------------- */

static void remove_pending(at_export_srv_t *srv, at_export_loopreq_t *r)
{
    for (at_export_loopreq_t **pp = &srv->pending; *pp != NULL; pp = &(*pp)->pnext)
        if (*pp == r) {
            *pp = r->pnext;
            return;
        }
}

/* A client's request is back from the loop thread (or out of its mailbox): it no longer
 * counts against the client's in-flight limit. */
static void client_request_back(at_export_srv_t *srv, const at_export_loopreq_t *r)
{
    if (r->client_id == 0)
        return;
    for (at_export_client_t *c = srv->clients; c != NULL; c = c->next)
        if (c->id == r->client_id) {
            c->inflight--;
            return;
        }
}

static void answer_detail(at_export_srv_t *srv, at_export_client_t *c, at_export_loopreq_t *r)
{
    at_export_task_detail_t *d = r->detail;
    at_wire_response_t resp = {.id = r->req_id, .op = AT_WIRE_OP_TASK_DETAIL, .has_detail = true};
    at__agg_task_to_wire(&srv->agg, &d->row, &resp.detail.task);
    resp.detail.wait_desc = d->wait_desc[0] ? d->wait_desc : NULL;
    resp.detail.error = d->error[0] ? d->error : NULL;
    unsigned nc =
        d->creation.depth > AT_EXPORT_MAX_FRAMES ? AT_EXPORT_MAX_FRAMES : d->creation.depth;
    unsigned ns =
        d->suspension.depth > AT_EXPORT_MAX_FRAMES ? AT_EXPORT_MAX_FRAMES : d->suspension.depth;
    at_wire_loc_t *cl = at__agg_locs(d->creation.pc, nc);
    at_wire_loc_t *sl = at__agg_locs(d->suspension.pc, ns);
    resp.detail.n_create = cl ? nc : 0;
    resp.detail.create = cl;
    resp.detail.n_suspend = sl ? ns : 0;
    resp.detail.suspend = sl;
    uint64_t steps[AT_EXPORT_STEP_HIST_LO + AT_EXPORT_STEP_HIST_N] = {0};
    uint32_t nsteps = 0;
    for (unsigned i = 0; i < AT_EXPORT_STEP_HIST_N; i++)
        if ((steps[AT_EXPORT_STEP_HIST_LO + i] = d->step_hist[i]) != 0)
            nsteps = AT_EXPORT_STEP_HIST_LO + i + 1;
    resp.detail.step_hist = (at_wire_hist_t){nsteps, steps};
    at__export_send_response(c, &resp);
    at__agg_locs_free(cl, nc);
    at__agg_locs_free(sl, ns);
}

static void answer(at_export_srv_t *srv, at_export_loopreq_t *r)
{
    if (r->op == AT_EXPORT_LOOPREQ_RESYNC) {
        at__agg_apply_resync(srv, r);
        return;
    }
    if (r->op == AT_EXPORT_LOOPREQ_INVENTORY) {
        at__agg_inventory_apply(srv, r);
        return;
    }
    at_export_client_t *c = at__export_client_find(srv, r->client_id);
    if (c == NULL)
        return;
    if (r->result == -ESRCH) {
        at__export_respond_error(c, r->req_id, (uint8_t)r->op, AT_WIRE_ST_NO_SUCH_TASK,
                                 "no such task");
    } else if (r->result == -EALREADY) {
        at__export_respond_error(c, r->req_id, (uint8_t)r->op, AT_WIRE_ST_BAD_REQUEST,
                                 "the task has already finished");
    } else if (r->result == -ESHUTDOWN) {
        at__export_respond_error(c, r->req_id, (uint8_t)r->op, AT_WIRE_ST_UNSUPPORTED,
                                 "the loop closed before answering");
    } else if (r->result < 0) {
        char reason[96];
        snprintf(reason, sizeof reason, "the runtime failed: %s", strerror(-r->result));
        at__export_respond_error(c, r->req_id, (uint8_t)r->op, AT_WIRE_ST_INTERNAL, reason);
    } else if (r->op == AT_WIRE_OP_TASK_DETAIL) {
        answer_detail(srv, c, r);
    } else {
        at_wire_response_t resp = {.id = r->req_id, .op = (uint8_t)r->op};
        at__export_send_response(c, &resp);
    }
}

void at__export_loopreq_answer_done(at_export_srv_t *srv)
{
    pthread_mutex_lock(&srv->done_lock);
    at_export_loopreq_t *list = srv->done;
    srv->done = NULL;
    pthread_mutex_unlock(&srv->done_lock);
    /* answers came in LIFO order; reverse to keep the order of requests */
    at_export_loopreq_t *rev = NULL;
    while (list) {
        at_export_loopreq_t *n = list->next;
        list->next = rev;
        rev = list;
        list = n;
    }
    while (rev) {
        at_export_loopreq_t *r = rev;
        rev = r->next;
        remove_pending(srv, r);
        client_request_back(srv, r);
        if (!r->abandoned)
            answer(srv, r);
        at__export_loopreq_free(r);
    }
}

void at__export_loopreq_expire(at_export_srv_t *srv, uint64_t now)
{
    at_export_loopreq_t *next;
    for (at_export_loopreq_t *r = srv->pending; r != NULL; r = next) {
        next = r->pnext;
        /* A resync is never abandoned: however late, its rows are right as of its ring
         * position, and the next resync waits for it. */
        if (r->abandoned || now < r->deadline_ns || r->op == AT_EXPORT_LOOPREQ_RESYNC ||
            r->op == AT_EXPORT_LOOPREQ_INVENTORY)
            continue;
        /* "Loop busy" is an answer: what it refuses must never run. A request the loop thread
         * has already taken is being carried out; its real answer comes. */
        int w = at__export_loopreq_withdraw(r);
        if (w < 0)
            continue;
        r->abandoned = true;
        at_export_client_t *c = at__export_client_find(srv, r->client_id);
        uint64_t req_id = r->req_id;
        uint8_t op = (uint8_t)r->op;
        if (w == 1) { /* out of the mailbox: ours again, nothing holds it any more */
            remove_pending(srv, r);
            client_request_back(srv, r);
            at__export_loopreq_free(r);
        } /* else it counts against the client until the loop thread gives it back */
        if (c == NULL)
            continue;
        char reason[128];
        snprintf(reason, sizeof reason,
                 "loop busy: the loop thread did not answer within %u ms (it may be blocked)",
                 srv->cfg.loop_request_ms);
        at__export_respond_error(c, req_id, op, AT_WIRE_ST_TIMEOUT, reason);
    }
}

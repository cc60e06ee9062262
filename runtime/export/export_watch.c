/* export_watch.c: stack samples of loop threads, taken by signal (export_sample.c) one at a
 * time — for clients' loop_stack requests, and the watchdog's entry: a loop stuck in one
 * callback past the slow threshold is profiled by export_profile.c. Exporter thread. */
#include "export_int.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

/* ---- loop_stack requests -------------------------------------------------------------------- */

void at__export_loop_stack_request(at_export_client_t *c, const at_wire_request_t *rq)
{
    at_export_srv_t *srv = c->srv;
    agg_loop_t *l = at__agg_loop(srv, c->loop_id);
    if (l == NULL || l->gone) {
        at__export_respond_error(c, rq->id, rq->op, AT_WIRE_ST_UNSUPPORTED,
                                 "no loop is being monitored");
        return;
    }
    if (c->pending_stack) {
        at__export_respond_error(c, rq->id, rq->op, AT_WIRE_ST_RATE_LIMITED,
                                 "a loop_stack request is already in flight");
        return;
    }
    c->pending_stack = true;
    c->pending_stack_req = rq->id;
    /* the tick starts the sample (one at a time, process-wide) and answers */
}

static void answer_loop_stacks(at_export_srv_t *srv, uint64_t mon_id, const at_export_stack_t *st,
                               const char *fail)
{
    for (at_export_client_t *c = srv->clients; c != NULL; c = c->next) {
        if (!c->pending_stack || c->poll_closed)
            continue;
        agg_loop_t *l = at__agg_loop(srv, c->loop_id);
        if (l == NULL || l->id != mon_id)
            continue;
        c->pending_stack = false;
        if (fail != NULL) {
            at__export_respond_error(c, c->pending_stack_req, AT_WIRE_OP_LOOP_STACK,
                                     AT_WIRE_ST_TIMEOUT, fail);
            continue;
        }
        at_wire_response_t resp = {
            .id = c->pending_stack_req, .op = AT_WIRE_OP_LOOP_STACK, .has_stack = true};
        char name[AT__SITE_NAME_MAX + 64];
        at__agg_running(srv, l, &resp.running, name, sizeof name);
        at_wire_loc_t *locs = at__agg_locs(st->pc, st->depth);
        resp.n_stack = locs ? st->depth : 0;
        resp.stack = locs;
        at__export_send_response(c, &resp);
        at__agg_locs_free(locs, st->depth);
    }
}

void at__export_loop_stacks_service(at_export_srv_t *srv, uint64_t now)
{
    if (srv->sample_mon != 0 && !srv->sample_for_block) {
        at_export_stack_t st;
        int r = at__export_sample_poll(now, AT_EXPORT_SAMPLE_TIMEOUT_MS * 1000000ull, &st);
        if (r == 0)
            return;
        answer_loop_stacks(srv, srv->sample_mon, &st,
                           r < 0 ? "the loop thread did not answer the stack signal in 500 ms"
                                 : NULL);
        srv->sample_mon = 0;
    }
    if (srv->sample_mon != 0 || at__export_sample_busy())
        return;
    for (at_export_client_t *c = srv->clients; c != NULL; c = c->next) {
        if (!c->pending_stack || c->poll_closed)
            continue;
        agg_loop_t *l = at__agg_loop(srv, c->loop_id);
        if (l == NULL || l->gone) {
            c->pending_stack = false;
            at__export_respond_error(c, c->pending_stack_req, AT_WIRE_OP_LOOP_STACK,
                                     AT_WIRE_ST_UNSUPPORTED, "the loop is gone");
            continue;
        }
        int r = at__export_sample_request(l->mon->tid, l->mon->stack_lo, l->mon->stack_hi);
        if (r == 0) {
            srv->sample_mon = l->id;
            srv->sample_for_block = false;
        } else if (r != -EBUSY) {
            char reason[128];
            snprintf(reason, sizeof reason, "cannot sample the loop thread: %s", strerror(-r));
            c->pending_stack = false;
            at__export_respond_error(c, c->pending_stack_req, AT_WIRE_OP_LOOP_STACK,
                                     AT_WIRE_ST_UNSUPPORTED, reason);
            continue;
        }
        return;
    }
}

/* ---- the watchdog: a loop stuck in one callback ------------------------------------------- */

void at__agg_watchdog(at_export_srv_t *srv)
{
    at__profile_watch(srv); /* export_profile.c: sampled every interval while over the threshold */
}

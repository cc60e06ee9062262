/* export_dispatch.c: what a client says and what the server answers — the hello, then each
 * whole frame decoded and handed to its handler (subscribe, requests), one switch per level
 * and one way out for a refusal. Exporter thread. */
#include "export_int.h"

#include <stdio.h>

static void send_config_response(at_export_client_t *c, uint64_t id)
{
    at_wire_response_t r = {.id = id, .op = AT_WIRE_OP_SET_CONFIG, .has_config = true};
    r.config.has_slow_ns = r.config.has_debug = true;
    r.config.slow_ns = at__slow_threshold_ns();
    r.config.debug = at__debug_enabled();
    at__export_send_response(c, &r);
}

/* A request of a live client: one switch over the ops, and one way out for every refusal. */
static void handle_request(at_export_client_t *c, const at_wire_request_t *rq)
{
    uint32_t status = AT_WIRE_ST_BAD_REQUEST;
    const char *reason, *op_name = NULL;
    char buf[128];
    if (c->state != CL_LIVE) {
        reason = "subscribe first: requests are accepted after subscribe";
        goto refuse;
    }
    switch (rq->op) {
    case AT_WIRE_OP_SET_CONFIG:
        if (!rq->config.has_slow_ns && !rq->config.has_debug) {
            reason = "set_config needs config.slow_ns and/or config.debug";
            goto refuse;
        }
        if (rq->config.has_slow_ns && (rq->config.slow_ns < AT_EXPORT_SLOW_NS_MIN ||
                                       rq->config.slow_ns > AT_EXPORT_SLOW_NS_MAX)) {
            reason = "slow_ns must be between 1 ms and 1 day (in ns)";
            goto refuse;
        }
        if (rq->config.has_slow_ns) {
            at__slow_threshold_set_ns(rq->config.slow_ns);
            at__log(AT__LOG_INFO, "exporter: slow-callback threshold set to %.3f ms by pid %ld",
                    (double)rq->config.slow_ns / 1e6, (long)c->pid);
        }
        if (rq->config.has_debug)
            at__debug_set(rq->config.debug);
        /* every client sees the new config in its next update */
        send_config_response(c, rq->id);
        return;
    case AT_WIRE_OP_PAUSE:
    case AT_WIRE_OP_RESUME: {
        bool resume = rq->op == AT_WIRE_OP_RESUME;
        if (resume && c->paused) {
            c->need_full = true;
            c->next_update_ns = 0;
        }
        c->paused = !resume;
        at_wire_response_t r = {.id = rq->id, .op = rq->op};
        at__export_send_response(c, &r);
        return;
    }
    case AT_WIRE_OP_TASK_DETAIL:
    case AT_WIRE_OP_CANCEL:
        if (rq->task == 0) {
            reason = "this op needs a task id (key \"task\", >= 1)";
            goto refuse;
        }
        at__export_loop_request(c, rq);
        return;
    case AT_WIRE_OP_LOOP_STACK:
        at__export_loop_stack_request(c, rq);
        return;
    default:
        snprintf(buf, sizeof buf, "unknown op \"%.40s\"", rq->op_name ? rq->op_name : "?");
        status = AT_WIRE_ST_UNSUPPORTED;
        reason = buf;
        op_name = rq->op_name; /* the response echoes the op as the client spelled it */
        goto refuse;
    }
refuse:;
    at_wire_response_t r = {
        .id = rq->id, .op = rq->op, .op_name = op_name, .status = status, .reason = reason};
    at__export_send_response(c, &r);
}

static void handle_subscribe(at_export_client_t *c, const at_wire_subscribe_t *s)
{
    at_export_srv_t *srv = c->srv;
    at__agg_sync_loops(srv);
    uint32_t iv = s->interval_ms ? s->interval_ms : AT_EXPORT_DEFAULT_INTERVAL_MS;
    if (iv < AT_EXPORT_MIN_INTERVAL_MS)
        iv = AT_EXPORT_MIN_INTERVAL_MS;
    c->interval_ms = iv;
    c->what = s->what;
    agg_loop_t *sl = at__agg_loop(srv, s->loop);
    if (s->loop != 0 && (sl == NULL || sl->gone)) {
        at__export_client_fail(c, AT_WIRE_ST_BAD_REQUEST, "subscribe: no such loop");
        return;
    }
    /* The connection keeps this loop, by its monitor id, until it closes (then the updates say
     * loop_gone): "0" never silently becomes another loop. No loop yet: the first one that
     * appears (at__agg_build_update pins it). */
    c->loop_id = sl != NULL ? sl->id : 0;
    c->state = CL_LIVE;
    c->need_full = true;
    c->next_update_ns = 0; /* the snapshot goes out on this tick */
    uint64_t now = at__export_now_ns();
    if (at__agg_tasks_pending(srv, at__agg_loop(srv, c->loop_id))) {
        /* A provider's first resync is on its way (a program that just started): the snapshot
         * waits for it, briefly, rather than going out without the tasks. */
        at__agg_drain(srv); /* asks for it now if not yet asked */
        c->first_wait_until_ns = now + AT_EXPORT_FIRST_SNAPSHOT_WAIT_MS * 1000000ull;
        return;
    }
    at__export_client_send_update(c, now);
}

void at__export_dispatch_frame(at_export_client_t *c, const uint8_t *body, size_t len)
{
    at_wire_msg_t m;
    at_wire_err_t err;
    int r = at_wire_decode(body, len, &at_wire_limits_c2s, &m, &err);
    if (r != 0) {
        if (r == AT_WIRE_EVERSION) {
            at__export_client_fail(c, AT_WIRE_ST_VERSION, err.msg);
            return;
        }
        /* The framing is intact, so one bad frame does not cost the connection; many do. */
        if (++c->bad_frames > AT_EXPORT_BAD_FRAMES_MAX) {
            at__export_client_fail(c, AT_WIRE_ST_BAD_FRAME, "too many undecodable frames");
            return;
        }
        at__export_send_error(c, AT_WIRE_ST_BAD_FRAME, err.msg, false);
        return;
    }
    switch (m.type) {
    case AT_WIRE_SUBSCRIBE:
        if (c->state == CL_HANDSHAKE)
            handle_subscribe(c, &m.u.subscribe);
        else
            at__export_send_error(c, AT_WIRE_ST_UNKNOWN_TYPE, "already subscribed", false);
        break;
    case AT_WIRE_REQUEST:
        handle_request(c, &m.u.request);
        break;
    case AT_WIRE_BYE:
    case AT_WIRE_ERROR:
        c->state = CL_CLOSING;
        c->t_closing = at__export_now_ns();
        at__export_client_flush(c);
        break;
    default: {
        char reason[96];
        snprintf(reason, sizeof reason, "a client may not send \"%s\"",
                 at_wire_type_name(m.type) ? at_wire_type_name(m.type) : "?");
        at__export_send_error(c, AT_WIRE_ST_UNKNOWN_TYPE, reason, false);
        break;
    }
    }
    at_wire_msg_free(&m);
}

void at__export_send_hello(at_export_client_t *c)
{
    at_export_srv_t *srv = c->srv;
    at__agg_sync_loops(srv); /* a loop created since the last tick counts already */
    at_wire_hello_t h = {0};
    h.pid = (uint64_t)srv->pid;
    h.program = srv->program;
    const char *argv0[1] = {srv->program};
    h.n_argv = srv->argc ? srv->argc : 1;
    h.argv = srv->argc ? srv->argv : argv0;
    h.runtime_version = "0.1.0";
    h.start_time_ns = srv->agg.start_wall_ns;
    h.now_ns = at__agg_proc_ns(&srv->agg, at__now_ns());
    h.config.has_slow_ns = h.config.has_debug = true;
    h.config.slow_ns = at__slow_threshold_ns();
    h.config.debug = at__debug_enabled();
    h.caps = AT_WIRE_CAP_SLOW | AT_WIRE_CAP_EXCEPTIONS | AT_WIRE_CAP_LOOP | AT_WIRE_CAP_STACKS |
             AT_WIRE_CAP_SITES | AT_WIRE_CAP_SET_CONFIG | AT_WIRE_CAP_LOOP_STACK |
             AT_WIRE_CAP_PAUSE | AT_WIRE_CAP_DEBUG;
    at__export_attach_lock();
    for (at_export_attach_t *a = at__export_attach_first(); a != NULL; a = a->next) {
        if (a->p->caps & AT_EXPORT_CAP_TASKS)
            h.caps |= AT_WIRE_CAP_TASKS;
        if (a->p->caps & AT_EXPORT_CAP_CANCEL)
            h.caps |= AT_WIRE_CAP_CANCEL;
    }
    at__export_attach_unlock();
    /* every live loop, oldest first: the main one as 0, the others by monitor id */
    at_wire_loop_info_t loops[AT_EXPORT_LOOPS_LISTED];
    h.n_loops = at__agg_loop_infos(srv, false, loops, AT_EXPORT_LOOPS_LISTED);
    srv->agg.main_fixed = srv->agg.main_id != 0; /* ids are public from now on */
    h.loops = loops;
    at_wire_buf_reset(&srv->wbuf);
    if (at_wire_encode_hello(&srv->wbuf, &h) == 0)
        at__export_client_send(c, &srv->wbuf);
}

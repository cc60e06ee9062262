/* export_inventory.c: the loop inventory — handles by type (loopmon's uv_walk), the
 * executor's figures and the suspension stacks of tasks that began a wait, taken on each loop
 * thread four times a second through the attachment's async (so a client that attaches finds them
 * already there), and sent in every update's loop statistics. */
#include "export_int.h"

#include <stdlib.h>

#define INVENTORY_PERIOD_NS                                                                        \
    250000000ull                             /* four requests per loop per second: suspension      \
                                                stacks of short waits show up in time */
#define INVENTORY_DEADLINE_NS 30000000000ull /* never abandoned: see expire_pending */

void at__agg_inventory_request(at_export_srv_t *srv, uint64_t now)
{
    at__export_attach_lock();
    for (at_export_attach_t *att = at__export_attach_first(); att != NULL; att = att->next) {
        if (att->inventory_inflight ||
            (att->inventory_at_ns != 0 && now - att->inventory_at_ns < INVENTORY_PERIOD_NS))
            continue;
        at_export_loopreq_t *r = calloc(1, sizeof *r);
        if (r == NULL)
            break;
        r->op = AT_EXPORT_LOOPREQ_INVENTORY;
        r->att = att;
        r->att_id = att->id;
        r->deadline_ns = now + INVENTORY_DEADLINE_NS;
        r->epoch = srv->agg.epoch;
        if (at__export_loopreq_send(r) != 0) {
            free(r);
            continue;
        }
        att->inventory_inflight = true;
        att->inventory_at_ns = now;
        r->pnext = srv->pending;
        srv->pending = r;
    }
    at__export_attach_unlock();
}

void at__agg_inventory_apply(at_export_srv_t *srv, at_export_loopreq_t *r)
{
    uv_loop_t *loop = NULL;
    at__export_attach_lock();
    for (at_export_attach_t *att = at__export_attach_first(); att != NULL; att = att->next)
        if (att == r->att && att->id == r->att_id) {
            att->inventory_inflight = false;
            loop = att->loop;
            break;
        }
    at__export_attach_unlock();
    if (loop == NULL || r->result != 0)
        return;
    if (r->nstk_ent > 0)
        at__agg_drain(srv); /* the rows of the tasks whose stacks came, before the stacks */
    for (agg_loop_t *l = srv->agg.loops; l != NULL; l = l->next) {
        if (l->gone || l->mon->loop != loop)
            continue;
        at__agg_stacks_apply(&srv->agg, l, r);
        l->nhandles = 0;
        for (unsigned t = 0; t < UV_HANDLE_TYPE_MAX; t++) {
            const char *name = uv_handle_type_name((uv_handle_type)t);
            if (r->handles.total[t] == 0 || name == NULL)
                continue;
            l->handles[l->nhandles++] = (at_wire_count_t){name, r->handles.total[t]};
        }
        l->has_exec = r->has_exec;
        l->exec = r->exec;
        return;
    }
}

void at__agg_inventory_fill(const agg_loop_t *l, at_wire_loop_stats_t *st)
{
    st->n_handles = l->nhandles;
    st->handles = l->nhandles ? l->handles : NULL;
    if (l->has_exec) {
        st->exec_queued = l->exec.queued;
        st->exec_running = l->exec.running;
        st->exec_threads = l->exec.threads;
        st->exec_done = l->exec.done;
        st->exec_wait_ns = l->exec.wait_ns;
    }
}

/* export_update.c: the aggregator builds a client's next update — a snapshot or the delta since
 * what the client has seen — as an at_wire_update_t; the server encodes and sends it. The
 * arrays it points into are reused from one update to the next (agg_update_bufs_t). */
#include "export_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void at__agg_update_bufs_free(agg_update_bufs_t *b)
{
    free(b->tasks);
    free(b->descs);
    free(b->gone);
    free(b->site_stats);
    free(b->slow);
    free(b->exc);
    free(b->stacks);
    free(b->sites);
    memset(b, 0, sizeof *b);
}

/* Grows the buffer *p (capacity *cap elements of `size` bytes) to hold n. */
#define UB_GROW(p, cap, n) at__export_grow((void **)&(p), &(cap), (n), sizeof *(p))

void at__agg_task_wire(agg_t *a, const agg_task_t *t, at_wire_task_t *out)
{
    at__agg_task_to_wire(a, &t->row, out);
    if (t->stack != 0 && t->row.state == AT_EXPORT_TASK_WAITING &&
        t->row.wait_since_ns == t->stack_since)
        out->stack = t->stack;
}

/* The loop's statistics and its running callback (what = loop). */
static void update_stats(at_export_srv_t *srv, agg_loop_t *l, at_wire_update_t *u)
{
    agg_update_bufs_t *b = &srv->agg.ub;
    at__mon_stats_t ms;
    at__mon_stats(l->mon, &ms);
    u->has_stats = true;
    u->stats.busy_ns = ms.busy_ns;
    u->stats.idle_ns = ms.idle_ns;
    u->stats.iterations = ms.iterations;
    u->stats.callbacks = ms.callbacks;
    u->stats.slow = ms.slow_count;
    for (int k = AT__EV_ERROR; k <= AT__EV_WARNING; k++) {
        uint64_t produced, d;
        at__mon_event_counts(l->mon, (at__event_kind_t)k, &produced, &d);
        u->stats.errors += produced;
    }
    at__hist_snap_t lag = ms.lag;
    u->stats.lag.n = at__agg_hist_to_wire(&lag, b->lag);
    u->stats.lag.counts = b->lag;
    u->stats.lag_max_ns = ms.lag_max_ns;
    memcpy(u->stats.tasks_by_state, l->by_state, sizeof u->stats.tasks_by_state);
    at__agg_inventory_fill(l, &u->stats);
    at__agg_running(srv, l, &u->running, b->run_name, sizeof b->run_name);
}

/* The dropped counters, and the events client c lost by falling behind the event log. */
static void update_dropped(agg_t *a, agg_loop_t *l, at_export_client_t *c, at_wire_update_t *u)
{
    at_wire_count_t *dropped = a->ub.dropped;
    dropped[0] = (at_wire_count_t){"slow", l->dropped[AT__EV_SLOW]};
    dropped[1] = (at_wire_count_t){"error", l->dropped[AT__EV_ERROR]};
    dropped[2] = (at_wire_count_t){"warning", l->dropped[AT__EV_WARNING]};
    dropped[3] = (at_wire_count_t){"task", l->task_dropped};
    /* Events this client missed because it fell more than the event log behind (a slow
     * reader resynced, a long interval): they have seqs, so the client sees the gap, and
     * this says how many it was. Not counted for history before the first update. */
    uint64_t oldest = l->ev_next > AT_EXPORT_EVLOG ? l->ev_next - AT_EXPORT_EVLOG : 1;
    if (c->ev_started && c->ev_seen + 1 < oldest)
        c->ev_lagged += oldest - (c->ev_seen + 1);
    dropped[4] = (at_wire_count_t){"lagged", c->ev_lagged};
    u->n_dropped = 5;
    u->dropped = dropped;
}

/* Tasks added, changed and gone since generation `seen` (all of them when full). */
static int update_tasks(agg_t *a, agg_loop_t *l, bool full, uint64_t seen, at_wire_update_t *u)
{
    agg_update_bufs_t *b = &a->ub;
    size_t n = l->ntasks + 1;
    if (UB_GROW(b->tasks, b->cap_tasks, n) != 0 ||
        (l->wait_desc != NULL && UB_GROW(b->descs, b->cap_descs, n) != 0))
        return -ENOMEM;
    /* new rows from the front, changed ones from the back (then put back in order) */
    size_t nn = 0, nc = 0, ng = 0;
    for (size_t i = 0; i < l->task_cap; i++) {
        agg_task_t *t = &l->tasks[i];
        if (!t->used)
            continue;
        size_t at;
        if (full || t->gen_added > seen)
            at = nn++;
        else if (t->gen_changed > seen)
            at = n - 1 - nc++;
        else
            continue;
        at_wire_task_t *w = &b->tasks[at];
        at__agg_task_wire(a, t, w);
        if (l->wait_desc != NULL) {
            char *d = b->descs[at];
            l->wait_desc(&t->row, d, AT_EXPORT_WAIT_DESC_MAX);
            w->wait_desc = d[0] ? d : NULL;
        }
    }
    at_wire_task_t *chg = b->tasks + n - nc;
    for (size_t i = 0, j = nc; i + 1 < j; i++, j--) {
        at_wire_task_t tmp = chg[i];
        chg[i] = chg[j - 1];
        chg[j - 1] = tmp;
    }
    if (!full && l->ngone > 0) {
        if (UB_GROW(b->gone, b->cap_gone, 2 * l->ngone) != 0)
            return -ENOMEM;
        uint64_t *gone = b->gone; /* ids, then their states */
        for (size_t i = 0; i < l->ngone; i++)
            if (l->gone_log[i].gen > seen) {
                gone[l->ngone + ng] = l->gone_log[i].state;
                gone[ng++] = l->gone_log[i].id;
            }
        u->n_tasks_gone_state = (uint32_t)ng;
        u->tasks_gone_state = gone + l->ngone;
        u->n_tasks_gone = (uint32_t)ng;
        u->tasks_gone = gone;
    }
    u->n_tasks_new = (uint32_t)nn;
    u->tasks_new = b->tasks;
    u->n_tasks_changed = (uint32_t)nc;
    u->tasks_changed = chg;
    return 0;
}

/* Call sites whose statistics changed since generation `seen`. */
static int update_site_stats(agg_t *a, agg_loop_t *l, uint64_t seen, at_wire_update_t *u)
{
    agg_update_bufs_t *b = &a->ub;
    if (UB_GROW(b->site_stats, b->cap_site_stats, l->nsites + 1) != 0)
        return -ENOMEM;
    size_t ns = 0;
    for (size_t i = 0; i < l->nsites; i++)
        if (l->sites[i].gen > seen && l->sites[i].count > 0) {
            b->site_stats[ns] = l->sites[i].st;
            /* st.hist.counts pointed into the array before it last grew */
            b->site_stats[ns++].hist.counts = l->sites[i].hist;
        }
    u->n_site_stats = (uint32_t)ns;
    u->site_stats = b->site_stats;
    return 0;
}

/* Events: everything still in the log that the client has not had (a gone loop's too: what its
 * close reported, "Task was destroyed but it is pending!"). */
static int update_events(agg_t *a, agg_loop_t *l, at_export_client_t *c, bool full, uint32_t what,
                         at_wire_update_t *u)
{
    agg_update_bufs_t *b = &a->ub;
    if (b->slow == NULL)
        b->slow = malloc(AT_EXPORT_EVLOG * sizeof *b->slow);
    if (b->exc == NULL)
        b->exc = malloc(AT_EXPORT_EVLOG * sizeof *b->exc);
    if (b->slow == NULL || b->exc == NULL)
        return -ENOMEM;
    uint64_t first = l->ev_next > AT_EXPORT_EVLOG ? l->ev_next - AT_EXPORT_EVLOG : 1;
    if (!full && c->ev_seen + 1 > first)
        first = c->ev_seen + 1;
    size_t nsl = 0, nex = 0;
    for (uint64_t s = first; s < l->ev_next; s++) {
        agg_event_t *e = &l->evlog[(s - 1) % AT_EXPORT_EVLOG];
        if (e->is_slow && (what & AT_WIRE_CAP_SLOW)) {
            b->slow[nsl] = e->slow;
            b->slow[nsl].name = e->name[0] ? e->name : NULL;
            nsl++;
        } else if (!e->is_slow && (what & AT_WIRE_CAP_EXCEPTIONS)) {
            b->exc[nex] = e->exc;
            b->exc[nex].message = e->text;
            b->exc[nex].domain = e->domain[0] ? e->domain : NULL;
            nex++;
        }
    }
    u->n_slow = (uint32_t)nsl;
    u->slow = b->slow;
    u->n_exc = (uint32_t)nex;
    u->exc = b->exc;
    c->ev_seen = l->ev_next - 1;
    c->ev_started = true;
    return 0;
}

/* The interned stacks and sites the client has not been sent. Last: everything before may have
 * interned new ones. Stacks first, since interning a stack interns its frames' sites. */
static int update_tables(agg_t *a, at_export_client_t *c, at_wire_update_t *u)
{
    agg_update_bufs_t *b = &a->ub;
    size_t nst = a->nistacks > c->stacks_sent ? a->nistacks - c->stacks_sent : 0;
    size_t nsi = a->nisites > c->sites_sent ? a->nisites - c->sites_sent : 0;
    if (UB_GROW(b->stacks, b->cap_stacks, nst + 1) != 0 ||
        UB_GROW(b->sites, b->cap_sites, nsi + 1) != 0)
        return -ENOMEM;
    for (size_t i = 0; i < nst; i++)
        b->stacks[i] = a->istacks[c->stacks_sent + i].wst;
    for (size_t i = 0; i < nsi; i++)
        b->sites[i] = a->isites[c->sites_sent + i].ws;
    u->n_stacks = (uint32_t)nst;
    u->stacks = b->stacks;
    u->n_sites = (uint32_t)nsi;
    u->sites = b->sites;
    c->stacks_sent = (uint32_t)a->nistacks;
    c->sites_sent = (uint32_t)a->nisites;
    return 0;
}

int at__agg_build_update(at_export_srv_t *srv, at_export_client_t *c, uint64_t now,
                         at_wire_update_t *u)
{
    agg_t *a = &srv->agg;
    agg_loop_t *l = at__agg_loop(srv, c->loop_id);
    if (l != NULL && c->loop_id == 0)
        c->loop_id = l->id; /* subscribed before any loop existed: the first one it is */
    uint32_t what = c->what ? c->what : ~0u;
    memset(u, 0, sizeof *u);
    if (l != NULL && !c->need_full && c->seen_gen < l->gone_horizon)
        c->need_full = true;
    bool full = c->need_full;
    if (full) {
        c->sites_sent = 0;
        c->stacks_sent = 0;
        c->seen_gen = 0;
    }
    u->seq = c->upd_seq;
    u->ts_ns = at__agg_proc_ns(a, at__now_ns());
    u->loop = l ? at__agg_wire_loop_id(srv, l) : 0;
    u->loop_gone = l != NULL && l->gone;
    /* every live loop with its counters: a client's loop picker, and how it learns of loops
     * that appeared or closed */
    u->n_loops = at__agg_loop_infos(srv, true, a->ub.loops, AT_EXPORT_LOOPS_LISTED);
    u->loops = a->ub.loops;
    u->full = full;
    u->config.has_slow_ns = u->config.has_debug = true;
    u->config.slow_ns = at__slow_threshold_ns();
    u->config.debug = at__debug_enabled();
    uint64_t seen = c->seen_gen;

    if (l != NULL && !l->gone) {
        if ((what & (AT_WIRE_CAP_SITES | AT_WIRE_CAP_LOOP)) && now - l->refreshed_ns >= 50000000u) {
            at__agg_refresh_sites(srv, l);
            l->refreshed_ns = now;
        }
        if (what & AT_WIRE_CAP_LOOP)
            update_stats(srv, l, u);
        update_dropped(a, l, c, u);
        if ((what & AT_WIRE_CAP_TASKS) && update_tasks(a, l, full, seen, u) != 0)
            return -ENOMEM;
        if ((what & AT_WIRE_CAP_SITES) && update_site_stats(a, l, seen, u) != 0)
            return -ENOMEM;
    }
    if (l != NULL && update_events(a, l, c, full, what, u) != 0)
        return -ENOMEM;
    return update_tables(a, c, u);
}

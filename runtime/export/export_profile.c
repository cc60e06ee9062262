/* export_profile.c: profiling a stall — while a loop's callback runs past the slow threshold,
 * the exporter samples the loop thread's stack every few milliseconds and counts the samples
 * per stack in a fixed table, so that the slow event and the running callback carry the stacks
 * that took the time, heaviest first (docs/exporter.md, "Profiling a stall"). Exporter thread
 * only; the loop thread's only cost is the sampling signal's handler (export_sample.c). */
#include "export_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define PROFILE_MS_DEFAULT 5u
#define PROFILE_MS_MAX     1000u
/* How long a sample may take to come in before it is given up (export_limits.h). */
#define SAMPLE_TIMEOUT_NS (AT_EXPORT_SAMPLE_TIMEOUT_MS * 1000000ull)

/* The sampling interval (at__profile_init, before the exporter thread starts); 0: one sample
 * per stall. */
static uint64_t g_interval_ns;

uint64_t at__profile_interval_from_env(bool *bad)
{
    const char *s = getenv("ASYNCTOP_PROFILE_MS");
    *bad = false;
    if (s == NULL)
        return (uint64_t)PROFILE_MS_DEFAULT * 1000000u;
    /* digits only, 0 (off) .. PROFILE_MS_MAX */
    uint64_t v = 0;
    const char *p = s;
    while (*p >= '0' && *p <= '9' && v <= PROFILE_MS_MAX)
        v = v * 10 + (uint64_t)(*p++ - '0');
    if (p == s || *p != '\0' || v > PROFILE_MS_MAX) {
        *bad = true;
        return (uint64_t)PROFILE_MS_DEFAULT * 1000000u;
    }
    return v * 1000000u;
}

/* The key of a stack: its frames compared by function (the function's start where it is
 * known), so that samples a few instructions apart in the same functions count together. */
static uint64_t stack_key(void *const *pc, unsigned n)
{
    uint64_t h = 1469598103934665603ull;
    for (unsigned i = 0; i < n; i++) {
        at__sym_t sym;
        uint64_t v = (uint64_t)(uintptr_t)pc[i];
        if (at__sym_lookup(pc[i], i > 0, &sym) == 0 && sym.func[0] != '\0')
            v -= sym.func_off;
        else if (i == 0 && sym.lib[0] != '\0')
            v = 0; /* an unnamed innermost function: its module (below) */
        for (const char *c = i == 0 && v == 0 ? sym.lib : ""; *c; c++)
            h = (h ^ (unsigned char)*c) * 1099511628211ull;
        for (int b = 0; b < 8; b++)
            h = (h ^ ((v >> (8 * b)) & 0xff)) * 1099511628211ull;
    }
    return h;
}

/* Index of the heaviest entry of p (the first on ties), -1 when empty. */
static int heaviest(const at_export_profile_t *p)
{
    int best = -1;
    for (uint32_t i = 0; i < p->n; i++)
        if (best < 0 || p->e[i].count > p->e[best].count)
            best = (int)i;
    return best;
}

void at__profile_add(agg_t *a, agg_loop_t *l, const at_export_stack_t *st)
{
    at_export_profile_t *p = &l->prof;
    p->samples++;
    if (st->depth == 0) {
        p->other++;
        return;
    }
    uint64_t key = stack_key(st->pc, st->depth);
    uint32_t i = 0;
    while (i < p->n && p->e[i].key != key)
        i++;
    if (i == p->n) {
        uint32_t id =
            p->n < AT_EXPORT_PROFILE_STACKS ? at__agg_intern_stack(a, st->pc, st->depth) : 0;
        if (id == 0) {
            p->other++; /* the table is full (or out of memory): counted, not listed */
            return;
        }
        p->e[i].key = key;
        p->e[i].stack = id;
        p->e[i].count = 0;
        p->n++;
    }
    p->e[i].count++;
    int h = heaviest(p);
    l->sample_stack = h >= 0 ? p->e[h].stack : 0; /* `stack`, for clients without profiles */
}

/* Whether snap is the callback l's profile is about. */
static bool profile_is(const agg_loop_t *l, const at__running_snap_t *snap)
{
    return l->prof.site != NULL && snap->site == l->prof.site && snap->since_ns == l->prof.since;
}

/* The sample in flight for a stall, if it came in: counted when its loop still runs the
 * callback profiled (then it was taken while that callback ran), dropped otherwise. */
static void collect(at_export_srv_t *srv)
{
    if (srv->sample_mon == 0 || !srv->sample_for_block)
        return;
    at_export_stack_t st;
    int r = at__export_sample_poll(uv_hrtime(), SAMPLE_TIMEOUT_NS, &st);
    if (r == 0)
        return;
    agg_loop_t *l = at__agg_loop(srv, srv->sample_mon);
    srv->sample_mon = 0;
    at__running_snap_t snap;
    if (r > 0 && l != NULL && !l->gone && l->prof.active &&
        at__mon_running_read(l->mon, &snap) == 1 && profile_is(l, &snap))
        at__profile_add(&srv->agg, l, &st);
}

/* Ends the profiles whose callback returned. true if one is still active. */
static bool end_returned(at_export_srv_t *srv)
{
    bool any = false;
    for (agg_loop_t *l = srv->agg.loops; l != NULL; l = l->next) {
        if (!l->prof.active)
            continue;
        at__running_snap_t snap;
        int r = l->gone ? 0 : at__mon_running_read(l->mon, &snap);
        if (r == -EAGAIN || (r == 1 && profile_is(l, &snap)))
            any = true;
        else
            l->prof.active = false;
    }
    return any;
}

/* Whether a client's loop_stack request waits for the sample slot (which then goes to it). */
static bool stack_request_waiting(const at_export_srv_t *srv)
{
    for (const at_export_client_t *c = srv->clients; c != NULL; c = c->next)
        if (c->pending_stack && !c->poll_closed)
            return true;
    return false;
}

/* Asks for the next sample: of the active profile after the one sampled last (round-robin),
 * when the process-wide sample slot is free. */
static void request_next(at_export_srv_t *srv)
{
    if (srv->sample_mon != 0 || at__export_sample_busy() || stack_request_waiting(srv))
        return;
    agg_loop_t *first = NULL, *after = NULL;
    for (agg_loop_t *l = srv->agg.loops; l != NULL; l = l->next) {
        if (!l->prof.active || l->gone)
            continue;
        if (first == NULL || l->id < first->id)
            first = l;
        if (l->id > srv->profile_last && (after == NULL || l->id < after->id))
            after = l;
    }
    agg_loop_t *l = after != NULL ? after : first;
    if (l == NULL)
        return;
    srv->profile_last = l->id;
    /* A thread that just woke from a system call is 'R' while it is still inside the call,
     * waiting for a CPU (milliseconds on a loaded machine): a signal then would end a poll or
     * nanosleep whose time is up with EINTR instead of 0. Sampled every few ms, a thread that
     * sleeps in such calls would meet that window often; so a thread is signalled only when
     * it was also running when looked at one interval before (blocked threads are sampled
     * without a signal, whatever came before). */
    char st = at__export_sample_thread_state(l->mon->tid);
    bool was_running = l->prof.seen_running;
    l->prof.seen_running = st == 'R';
    if (st == 'R' && !was_running && srv->profile_ns != 0)
        return; /* look again at the next interval (one-sample mode: as before, at once) */
    int r = at__export_sample_request(l->mon->tid, l->mon->stack_lo, l->mon->stack_hi);
    if (r == 0) {
        srv->sample_mon = l->id;
        srv->sample_for_block = true;
    } else if (r != -EBUSY) {
        l->prof.active = false; /* cannot be sampled (no handler, stopped...): one try only */
    }
}

static void profile_timer_cb(uv_timer_t *t)
{
    at_export_srv_t *srv = t->data;
    collect(srv);
    if (!end_returned(srv)) {
        uv_timer_stop(&srv->profile_timer);
        return;
    }
    request_next(srv);
}

void at__profile_init(at_export_srv_t *srv)
{
    bool bad;
    srv->profile_ns = at__profile_interval_from_env(&bad);
    g_interval_ns = srv->profile_ns;
    if (bad)
        at__log(AT__LOG_WARNING,
                "exporter: ASYNCTOP_PROFILE_MS='%.64s' is not a number of milliseconds from 0 to "
                "%u; using the default %u ms",
                getenv("ASYNCTOP_PROFILE_MS"), PROFILE_MS_MAX, PROFILE_MS_DEFAULT);
    uv_timer_init(&srv->loop, &srv->profile_timer);
    srv->profile_timer.data = srv;
}

void at__profile_watch(at_export_srv_t *srv)
{
    collect(srv);
    uint64_t now = at__now_ns(), thr = at__slow_threshold_ns();
    bool begun = false;
    for (agg_loop_t *l = srv->agg.loops; l != NULL; l = l->next) {
        if (l->gone)
            continue;
        at__running_snap_t snap;
        if (at__mon_running_read(l->mon, &snap) != 1)
            continue;
        if (now < snap.since_ns || now - snap.since_ns < thr || profile_is(l, &snap))
            continue;
        /* a new stall: its profile starts empty (the previous one went to its slow event, or
         * its callback returned under the threshold's exclusive time and has none) */
        at_export_profile_t *p = &l->prof;
        p->site = snap.site;
        p->since = snap.since_ns;
        p->active = true;
        p->attached = false;
        p->seen_running = false;
        p->samples = p->other = p->n = 0;
        l->sample_site = snap.site;
        l->sample_since = snap.since_ns;
        l->sample_stack = 0;
        l->sample_tried = true;
        begun = true;
    }
    if (!end_returned(srv) || !begun)
        return;
    request_next(srv); /* the first sample at once (the only one when profiling is off) */
    if (srv->profile_ns != 0 && !uv_is_active((uv_handle_t *)&srv->profile_timer)) {
        uint64_t ms = srv->profile_ns / 1000000u;
        uv_timer_start(&srv->profile_timer, profile_timer_cb, ms, ms);
    }
}

/* Writes p's stacks into out heaviest first (ties: first seen first); how many. */
static uint32_t sorted(const at_export_profile_t *p, at_wire_profile_stack_t *out)
{
    for (uint32_t k = 0; k < p->n; k++) { /* insertion sort, stable: at most 32 entries */
        at_wire_profile_stack_t v = {p->e[k].stack, p->e[k].count};
        uint32_t j = k;
        for (; j > 0 && out[j - 1].count < v.count; j--)
            out[j] = out[j - 1];
        out[j] = v;
    }
    return p->n;
}

static void fill(const at_export_profile_t *p, uint64_t interval_ns, at_wire_profile_stack_t *buf,
                 at_wire_profile_t *out)
{
    out->samples = p->samples;
    out->interval_ns = interval_ns;
    out->other = p->other;
    out->n_stacks = sorted(p, buf);
    out->stacks = buf;
}

void at__profile_slow_event(agg_loop_t *l, const at__site_t *site, uint64_t start_ns,
                            agg_event_t *e)
{
    at_export_profile_t *p = &l->prof;
    if (p->site == NULL || p->site != site || p->attached || start_ns + 1000000 < p->since ||
        start_ns > p->since + 1000000)
        return;
    p->active = false; /* the callback returned: no more samples */
    p->attached = true;
    if (p->samples == 0)
        return;
    e->prof = malloc(AT_EXPORT_PROFILE_STACKS * sizeof *e->prof);
    if (e->prof == NULL)
        return;
    fill(p, g_interval_ns, e->prof, &e->slow.profile);
    if (e->slow.profile.n_stacks > 0)
        e->slow.stack = e->prof[0].stack;
}

void at__profile_event_free(agg_event_t *e)
{
    free(e->prof);
    e->prof = NULL;
}

void at__profile_running(agg_loop_t *l, const at__running_snap_t *snap, at_wire_profile_t *out)
{
    if (!profile_is(l, snap) || !l->prof.active || l->prof.samples == 0)
        return;
    fill(&l->prof, g_interval_ns, l->prof.sorted, out);
}

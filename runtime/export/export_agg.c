/* export_agg.c: the aggregator on the exporter thread — mirrors every monitored loop (call
 * sites, slow/exception events, tasks from providers, the running callback and its sampled
 * stack). Interning is export_intern.c's, building an update export_update.c's. */
#include "export_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
/* ---- process time -------------------------------------------------------------------------- */

static uint64_t clock_ns(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* The process's start in CLOCK_MONOTONIC ns, from /proc/self/stat's start time (clock ticks
 * since boot); the current time if that cannot be read. */
static uint64_t process_start_mono(void)
{
    uint64_t mono = clock_ns(CLOCK_MONOTONIC);
    char buf[1024];
    int fd = open("/proc/self/stat", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return mono;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return mono;
    buf[n] = '\0';
    char *p = strrchr(buf, ')');
    if (p == NULL)
        return mono;
    /* field 3 (state) follows ") "; starttime is field 22 */
    unsigned long long start = 0;
    int field = 2;
    for (char *q = p + 1; *q && field < 22; q++)
        if (*q == ' ' && ++field == 22)
            start = strtoull(q + 1, NULL, 10);
    long hz = sysconf(_SC_CLK_TCK);
    if (start == 0 || hz <= 0)
        return mono;
    uint64_t start_boot = (uint64_t)start * (1000000000u / (uint64_t)hz);
    uint64_t boot = clock_ns(CLOCK_BOOTTIME);
    uint64_t ago = boot > start_boot ? boot - start_boot : 0;
    return mono > ago ? mono - ago : mono;
}

int at__agg_init(agg_t *a)
{
    memset(a, 0, sizeof *a);
    a->t0_ns = process_start_mono();
    uint64_t mono = clock_ns(CLOCK_MONOTONIC);
    a->start_wall_ns = clock_ns(CLOCK_REALTIME) - (mono - a->t0_ns);
    a->gen = 1;
    static _Atomic uint64_t epochs;
    a->epoch = atomic_fetch_add(&epochs, 1) + 1;
    return 0;
}

uint64_t at__agg_proc_ns(const agg_t *a, uint64_t mono_ns)
{
    return mono_ns > a->t0_ns ? mono_ns - a->t0_ns : 0;
}

static void loop_free(agg_loop_t *l)
{
    for (size_t i = 0; i < AT_EXPORT_EVLOG; i++)
        at__profile_event_free(&l->evlog[i]);
    at__mon_unref(l->mon);
    free(l->sites);
    free(l->site_idx);
    free(l->tasks);
    free(l->gone_log);
    free(l);
}

void at__agg_free(agg_t *a)
{
    while (a->loops) {
        agg_loop_t *l = a->loops;
        a->loops = l->next;
        loop_free(l);
    }
    at__agg_intern_free(a);
    at__agg_update_bufs_free(&a->ub);
    memset(a, 0, sizeof *a);
}

agg_loop_t *at__agg_loop(at_export_srv_t *srv, uint64_t id)
{
    agg_loop_t *best = NULL;
    for (agg_loop_t *l = srv->agg.loops; l != NULL; l = l->next) {
        if (id != 0 && l->id == id)
            return l;
        if (id == 0 && !l->gone && l->id == srv->agg.main_id)
            return l;
        if (id == 0 && !l->gone && (best == NULL || l->id < best->id))
            best = l;
    }
    return best; /* id 0 after the main loop closed: the oldest live one */
}

uint32_t at__agg_wire_loop_id(at_export_srv_t *srv, const agg_loop_t *l)
{
    return l->id == srv->agg.main_id ? 0 : (uint32_t)l->id;
}

/* What kind of loop l is, from the provider attached to it: the asynctop runtime's task layer
 * or the preload shim (a plain libuv loop); NULL when no provider says. */
static const char *loop_kind(const agg_loop_t *l)
{
    const char *kind = NULL;
    at__export_attach_lock();
    for (at_export_attach_t *a = at__export_attach_first(); a != NULL; a = a->next) {
        if (a->detached || a->loop != l->mon->loop || a->p->name == NULL)
            continue;
        if (strncmp(a->p->name, "asynctop-preload", 16) == 0)
            kind = "uv";
        else if (strncmp(a->p->name, "asynctop-tasks", 14) == 0 ||
                 strncmp(a->p->name, "asynctop-core", 13) == 0)
            kind = "at_loop";
    }
    at__export_attach_unlock();
    return kind;
}

/* Re-reads the loop thread's name at most once a second (a program may name it late). */
static void loop_thread_name(agg_loop_t *l, uint64_t now)
{
    if (l->thread_read_ns != 0 && now - l->thread_read_ns < 1000000000u)
        return;
    l->thread_read_ns = now;
    char path[64];
    snprintf(path, sizeof path, "/proc/self/task/%ld/comm", (long)l->mon->tid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return; /* the thread has exited: keep the name last read */
    ssize_t n = read(fd, l->thread, sizeof l->thread - 1);
    close(fd);
    if (n < 0)
        n = 0;
    while (n > 0 && (l->thread[n - 1] == '\n' || l->thread[n - 1] == '\0'))
        n--;
    l->thread[n] = '\0';
}

void at__agg_loop_info(at_export_srv_t *srv, agg_loop_t *l, bool stats, at_wire_loop_info_t *out)
{
    memset(out, 0, sizeof *out);
    out->id = at__agg_wire_loop_id(srv, l);
    out->name = out->id == 0 ? "main" : NULL;
    out->tid = (uint64_t)l->mon->tid;
    loop_thread_name(l, at__now_ns());
    out->thread = l->thread[0] ? l->thread : NULL;
    out->kind = loop_kind(l);
    /* Under the shim the wire's loop 0 is merely the first loop watched (BIND's runs on
     * thread isc-net-0002): a plain libuv loop is named after its thread, "main" only when
     * it runs on the process's main thread. */
    if (out->kind != NULL && strcmp(out->kind, "uv") == 0)
        out->name = l->mon->tid == (pid_t)getpid() ? "main" : out->thread;
    out->addr = (uint64_t)(uintptr_t)l->mon->loop;
    if (!stats)
        return;
    out->has_stats = true;
    const at__mon_t *m = l->mon;
    out->busy_ns = atomic_load_explicit(&m->busy_ns, memory_order_relaxed);
    out->idle_ns = at__mon_idle_ns(m); /* under the shim: its measured polls */
    out->callbacks = atomic_load_explicit(&m->callbacks, memory_order_relaxed);
    out->slow = atomic_load_explicit(&m->slow_count, memory_order_relaxed);
    out->pending = l->by_state[AT_WIRE_TASK_READY] + l->by_state[AT_WIRE_TASK_RUNNING] +
                   l->by_state[AT_WIRE_TASK_WAITING];
    at__running_snap_t snap;
    uint64_t now = at__now_ns();
    if (at__mon_running_read(m, &snap) == 1 && snap.site != NULL && now > snap.since_ns)
        out->running_ns = now - snap.since_ns;
}

uint32_t at__agg_loop_infos(at_export_srv_t *srv, bool stats, at_wire_loop_info_t *out,
                            uint32_t max)
{
    uint32_t n = 0;
    uint64_t after = 0;
    /* oldest first (the list is newest first): pick the next larger id each time */
    while (n < max) {
        agg_loop_t *next = NULL;
        for (agg_loop_t *l = srv->agg.loops; l != NULL; l = l->next)
            if (!l->gone && l->id > after && (next == NULL || l->id < next->id))
                next = l;
        if (next == NULL)
            break;
        at__agg_loop_info(srv, next, stats, &out[n++]);
        after = next->id;
    }
    return n;
}

typedef struct {
    at__mon_t *mons[64];
    int n;
} mon_list_t;

static int collect_mon(at__mon_t *m, void *data)
{
    mon_list_t *ml = data;
    if (ml->n == 64)
        return 1;
    at__mon_ref(m);
    ml->mons[ml->n++] = m;
    return 0;
}

static void drain_mon(agg_t *a, agg_loop_t *l);

void at__agg_sync_loops(at_export_srv_t *srv)
{
    mon_list_t ml;
    ml.n = 0;
    at__mon_foreach(collect_mon, &ml);
    for (agg_loop_t *l = srv->agg.loops; l != NULL; l = l->next) {
        bool found = false;
        for (int i = 0; i < ml.n; i++)
            found |= ml.mons[i] == l->mon;
        if (!found && !l->gone)
            drain_mon(&srv->agg, l); /* what its close reported ("destroyed but pending") */
        l->gone |= !found;
    }
    for (int i = 0; i < ml.n; i++) {
        agg_loop_t *l;
        for (l = srv->agg.loops; l != NULL; l = l->next)
            if (l->mon == ml.mons[i])
                break;
        if (l != NULL) {
            at__mon_unref(ml.mons[i]);
            continue;
        }
        l = calloc(1, sizeof *l);
        if (l == NULL) {
            at__mon_unref(ml.mons[i]);
            continue;
        }
        l->mon = ml.mons[i]; /* keeps the reference */
        l->id = l->mon->id;
        l->ev_next = 1;
        l->next = srv->agg.loops;
        srv->agg.loops = l;
    }
    /* The main loop (wire id 0): the one on the process's main thread, else the oldest. It may
     * be chosen again until a client has seen ids (loops start in any order: the preload shim
     * meets a loop at its first uv_run), then it is 0 for good. */
    if (!srv->agg.main_fixed) {
        agg_loop_t *best = NULL;
        for (agg_loop_t *l = srv->agg.loops; l != NULL; l = l->next) {
            if (l->gone)
                continue;
            bool main_thread = l->mon->tid == srv->pid;
            bool best_main = best != NULL && best->mon->tid == srv->pid;
            if (best == NULL || (main_thread && !best_main) ||
                (main_thread == best_main && l->id < best->id))
                best = l;
        }
        srv->agg.main_id = best != NULL ? best->id : 0;
    }
    /* free loops that are gone and that no client looks at */
    for (agg_loop_t **pp = &srv->agg.loops; *pp != NULL;) {
        agg_loop_t *l = *pp;
        bool used = false;
        for (at_export_client_t *c = srv->clients; c != NULL; c = c->next)
            used |= c->loop_id == l->id;
        if (l->gone && !used) {
            *pp = l->next;
            loop_free(l);
        } else {
            pp = &l->next;
        }
    }
}

/* ---- call sites ----------------------------------------------------------------------------- */

static uint64_t site_key_i(void *ctx, size_t i)
{
    agg_loop_t *l = ctx;
    return at__export_hash64((uint64_t)(uintptr_t)l->sites[i].s);
}

static agg_site_t *site_get(agg_t *a, agg_loop_t *l, at__site_t *s, bool create)
{
    uint64_t k = at__export_hash64((uint64_t)(uintptr_t)s);
    if (l->site_idx_cap != 0)
        for (size_t h = (size_t)k & (l->site_idx_cap - 1);; h = (h + 1) & (l->site_idx_cap - 1)) {
            uint32_t v = l->site_idx[h];
            if (v == 0)
                break;
            if (l->sites[v - 1].s == s)
                return &l->sites[v - 1];
        }
    if (!create)
        return NULL;
    if ((l->nsites + 1) * 2 > l->site_idx_cap &&
        at__export_idx_rehash(&l->site_idx, &l->site_idx_cap, l->nsites, site_key_i, l) != 0)
        return NULL;
    if (at__export_grow((void **)&l->sites, &l->capsites, l->nsites + 1, sizeof *l->sites))
        return NULL;
    agg_site_t *as = &l->sites[l->nsites];
    memset(as, 0, sizeof *as);
    as->s = s;
    as->wire_id = at__agg_intern_site(a, (uintptr_t)s->fn, s->name, false);
    as->kind = AT_WIRE_CB_OTHER;
    l->nsites++;
    at__export_idx_put(l->site_idx, l->site_idx_cap, k, (uint32_t)l->nsites);
    return as;
}

static uint8_t wire_cb_kind(unsigned k)
{
    switch (k) {
    case AT__CB_READY:
        return AT_WIRE_CB_CALL_SOON;
    case AT__CB_TIMER:
        return AT_WIRE_CB_TIMER;
    case AT__CB_IO:
        return AT_WIRE_CB_IO;
    case AT__CB_EXECUTOR:
        return AT_WIRE_CB_WORK;
    case AT__CB_TASK_STEP:
        return AT_WIRE_CB_TASK_STEP;
    default:
        return AT_WIRE_CB_OTHER;
    }
}

uint32_t at__agg_hist_to_wire(const at__hist_snap_t *h, uint64_t *out)
{
    memset(out, 0, sizeof(uint64_t) * AT_WIRE_HIST_BUCKETS);
    uint32_t n = 0;
    for (unsigned i = 0; i < AT__HIST_BUCKETS; i++) {
        if (h->b[i] == 0)
            continue;
        unsigned w = at_wire_hist_index(at__hist_bucket_low(i));
        if (w >= AT_WIRE_HIST_BUCKETS)
            w = AT_WIRE_HIST_BUCKETS - 1;
        out[w] += h->b[i];
        if (w + 1 > n)
            n = w + 1;
    }
    return n;
}

void at__agg_refresh_sites(at_export_srv_t *srv, agg_loop_t *l)
{
    if (l->gone)
        return;
    for (at__site_t *s = at__mon_sites(l->mon); s != NULL;
         s = atomic_load_explicit(&s->next_all, memory_order_acquire)) {
        agg_site_t *as = site_get(&srv->agg, l, s, true);
        if (as == NULL)
            return;
        uint64_t count = atomic_load_explicit(&s->count, memory_order_relaxed);
        if (count == as->count && as->gen != 0)
            continue;
        at__site_stats_t st;
        at__site_read(s, &st);
        as->count = st.count;
        as->st.site = as->wire_id;
        as->st.kind = as->kind;
        as->st.count = st.count;
        as->st.total_ns = st.total_ns;
        as->st.max_ns = st.max_ns;
        as->st.has_min = true;
        as->st.min_ns = st.min_ns;
        as->st.hist.n = at__agg_hist_to_wire(&st.hist, as->hist);
        as->st.hist.counts = as->hist;
        as->gen = ++srv->agg.gen;
    }
}

/* ---- tasks ---------------------------------------------------------------------------------- */

static agg_task_t *task_find(agg_loop_t *l, uint64_t id)
{
    if (l->task_cap == 0)
        return NULL;
    for (size_t h = (size_t)at__export_hash64(id) & (l->task_cap - 1);;
         h = (h + 1) & (l->task_cap - 1)) {
        if (!l->tasks[h].used)
            return NULL;
        if (l->tasks[h].row.id == id)
            return &l->tasks[h];
    }
}

static int task_grow(agg_loop_t *l)
{
    size_t nc = l->task_cap ? l->task_cap * 2 : 1024;
    agg_task_t *nt = calloc(nc, sizeof *nt);
    if (nt == NULL)
        return -ENOMEM;
    for (size_t i = 0; i < l->task_cap; i++) {
        if (!l->tasks[i].used)
            continue;
        size_t h = (size_t)at__export_hash64(l->tasks[i].row.id) & (nc - 1);
        while (nt[h].used)
            h = (h + 1) & (nc - 1);
        nt[h] = l->tasks[i];
    }
    free(l->tasks);
    l->tasks = nt;
    l->task_cap = nc;
    return 0;
}

static agg_task_t *task_insert(agg_loop_t *l, uint64_t id)
{
    if ((l->ntasks + 1) * 2 > l->task_cap && task_grow(l) != 0)
        return NULL;
    size_t h = (size_t)at__export_hash64(id) & (l->task_cap - 1);
    while (l->tasks[h].used)
        h = (h + 1) & (l->task_cap - 1);
    memset(&l->tasks[h], 0, sizeof l->tasks[h]);
    l->tasks[h].used = true;
    l->tasks[h].row.id = id;
    l->ntasks++;
    return &l->tasks[h];
}

/* Backward-shift deletion keeps probe chains intact without tombstones. */
static void task_delete(agg_loop_t *l, agg_task_t *t)
{
    size_t i = (size_t)(t - l->tasks), mask = l->task_cap - 1;
    l->tasks[i].used = false;
    l->ntasks--;
    for (size_t j = (i + 1) & mask; l->tasks[j].used; j = (j + 1) & mask) {
        size_t home = (size_t)at__export_hash64(l->tasks[j].row.id) & mask;
        /* move j into the hole at i if its home is not in (i, j] (cyclically) */
        bool in_range = i <= j ? (home > i && home <= j) : (home > i || home <= j);
        if (!in_range) {
            l->tasks[i] = l->tasks[j];
            l->tasks[j].used = false;
            i = j;
        }
    }
}

static void count_state(agg_loop_t *l, uint8_t state, int delta)
{
    if (state < AT_WIRE_TASK_NSTATES)
        l->by_state[state] += (uint64_t)(int64_t)delta;
}

static void gone_add(agg_t *a, agg_loop_t *l, uint64_t id, uint8_t state)
{
    if (l->ngone >= 65536) {
        /* Forget the older half: clients that have not seen it get a snapshot instead. */
        size_t half = l->ngone / 2;
        l->gone_horizon = l->gone_log[half - 1].gen + 1;
        memmove(l->gone_log, l->gone_log + half, (l->ngone - half) * sizeof *l->gone_log);
        l->ngone -= half;
    }
    if (at__export_grow((void **)&l->gone_log, &l->capgone, l->ngone + 1, sizeof *l->gone_log))
        return;
    l->gone_log[l->ngone].id = id;
    l->gone_log[l->ngone].state = state;
    l->gone_log[l->ngone].gen = ++a->gen;
    l->ngone++;
}

static void task_set_row(agg_t *a, agg_task_t *t, const at_export_task_row_t *row)
{
    t->row = *row;
    t->entry_site = at__agg_intern_site(a, (uintptr_t)row->entry_fn, NULL, false);
    t->create_site = at__agg_intern_site(a, (uintptr_t)row->create_pc, NULL, true);
}

static void task_apply(agg_t *a, agg_loop_t *l, const at_export_task_ev_t *ev)
{
    agg_task_t *t = task_find(l, ev->row.id);
    if (ev->kind == AT_EXPORT_TASK_REMOVED) {
        if (t == NULL)
            return;
        uint8_t state = t->row.state;
        count_state(l, state, -1);
        task_delete(l, t);
        /* its final state goes with its id: a task cancelled and released within one tick is
         * never sent as a changed row, and a client would take it for done */
        gone_add(a, l, ev->row.id, state);
        return;
    }
    if (t == NULL) {
        t = task_insert(l, ev->row.id);
        if (t == NULL)
            return;
        task_set_row(a, t, &ev->row);
        t->gen_added = ++a->gen;
        count_state(l, t->row.state, 1);
        return;
    }
    count_state(l, t->row.state, -1);
    task_set_row(a, t, &ev->row);
    count_state(l, t->row.state, 1);
    t->gen_changed = ++a->gen;
}

/* The interned stack of the loop thread's stack hash h, 0 unknown. */
static uint32_t stack_by_hash(const agg_t *a, uint64_t h)
{
    if (a->sh_cap == 0)
        return 0;
    for (size_t j = (size_t)h & (a->sh_cap - 1); a->sh_key[j] != 0; j = (j + 1) & (a->sh_cap - 1))
        if (a->sh_key[j] == h)
            return a->sh_id[j];
    return 0;
}

static void stack_hash_add(agg_t *a, uint64_t h, uint32_t id)
{
    if ((a->sh_n + 1) * 2 > a->sh_cap) {
        size_t nc = a->sh_cap ? a->sh_cap * 2 : 256;
        uint64_t *k = calloc(nc, sizeof *k);
        uint32_t *v = calloc(nc, sizeof *v);
        if (k == NULL || v == NULL) {
            free(k);
            free(v);
            return;
        }
        for (size_t i = 0; i < a->sh_cap; i++) {
            if (a->sh_key[i] == 0)
                continue;
            size_t j = (size_t)a->sh_key[i] & (nc - 1);
            while (k[j] != 0)
                j = (j + 1) & (nc - 1);
            k[j] = a->sh_key[i];
            v[j] = a->sh_id[i];
        }
        free(a->sh_key);
        free(a->sh_id);
        a->sh_key = k;
        a->sh_id = v;
        a->sh_cap = nc;
    }
    size_t j = (size_t)h & (a->sh_cap - 1);
    while (a->sh_key[j] != 0 && a->sh_key[j] != h)
        j = (j + 1) & (a->sh_cap - 1);
    if (a->sh_key[j] == 0)
        a->sh_n++;
    a->sh_key[j] = h;
    a->sh_id[j] = id;
}

void at__agg_stacks_apply(agg_t *a, agg_loop_t *l, const at_export_loopreq_t *r)
{
    for (size_t i = 0; i < r->nstk_new; i++) {
        const at_export_stk_new_t *n = &r->stk_new[i];
        uint32_t id = at__agg_intern_stack(a, n->pc, n->depth);
        if (id != 0)
            stack_hash_add(a, n->hash, id);
    }
    for (size_t i = 0; i < r->nstk_ent; i++) {
        const at_export_stk_ent_t *e = &r->stk_ent[i];
        agg_task_t *t = task_find(l, e->task_id);
        uint32_t id = stack_by_hash(a, e->hash);
        if (t == NULL || id == 0 || (t->stack == id && t->stack_since == e->wait_since_ns))
            continue;
        t->stack = id;
        t->stack_since = e->wait_since_ns;
        if (t->row.state == AT_EXPORT_TASK_WAITING && t->row.wait_since_ns == e->wait_since_ns)
            t->gen_changed = ++a->gen;
    }
}

void at__agg_task_to_wire(agg_t *a, const at_export_task_row_t *row, at_wire_task_t *out)
{
    memset(out, 0, sizeof *out);
    out->id = row->id;
    out->name = row->name[0] ? row->name : NULL;
    out->state = row->state;
    out->wait_kind = row->wait_kind;
    out->wait_obj = row->wait_obj;
    out->wait_since_us = row->wait_since_ns ? at__agg_proc_ns(a, row->wait_since_ns) / 1000 : 0;
    out->busy_ns = row->busy_ns;
    out->steps = row->steps;
    out->parent = row->parent_id;
    out->created_us = at__agg_proc_ns(a, row->created_ns) / 1000;
    out->entry_site = at__agg_intern_site(a, (uintptr_t)row->entry_fn, NULL, false);
    out->create_site = at__agg_intern_site(a, (uintptr_t)row->create_pc, NULL, true);
}

static agg_loop_t *loop_of_attach(at_export_srv_t *srv, const at_export_attach_t *att)
{
    for (agg_loop_t *l = srv->agg.loops; l != NULL; l = l->next)
        if (!l->gone && l->mon->loop == att->loop)
            return l;
    return NULL;
}

bool at__agg_tasks_pending(at_export_srv_t *srv, const agg_loop_t *l)
{
    bool pending = false;
    if (l == NULL || l->gone)
        return false;
    at__export_attach_lock();
    for (at_export_attach_t *att = at__export_attach_first(); att != NULL; att = att->next)
        if (att->loop == l->mon->loop && (att->p->caps & AT_EXPORT_CAP_TASKS) &&
            att->p->resync != NULL && !att->detached && !att->synced)
            pending = true;
    at__export_attach_unlock();
    return pending;
}

void at__agg_apply_resync(at_export_srv_t *srv, at_export_loopreq_t *r)
{
    agg_t *a = &srv->agg;
    at__export_attach_lock();
    at_export_attach_t *att = at__export_attach_first();
    while (att != NULL && !(att == r->att && att->id == r->att_id))
        att = att->next;
    agg_loop_t *l = att ? loop_of_attach(srv, att) : NULL;
    if (att != NULL) {
        att->resync_inflight = false;
        if (r->result == 0) {
            att->synced = true;
            att->skip_until = r->resync_pos;
        }
    }
    at__export_attach_unlock();
    if (l == NULL || r->result != 0)
        return;
    if (r->rows_truncated)
        at__log(AT__LOG_WARNING,
                "exporter: task resync of loop %llu truncated at %zu rows: the rest is not shown",
                (unsigned long long)l->id, r->nrows);
    /* Diff the old mirror against the resync: rows that vanished are gone, new ones added,
     * different ones changed; a client's delta stays exact. */
    agg_task_t *old = l->tasks;
    size_t oldcap = l->task_cap;
    l->tasks = NULL;
    l->task_cap = l->ntasks = 0;
    memset(l->by_state, 0, sizeof l->by_state);
    for (size_t i = 0; i < r->nrows; i++) {
        const at_export_task_row_t *row = &r->rows[i];
        if (task_find(l, row->id) != NULL)
            continue;
        agg_task_t *t = task_insert(l, row->id);
        if (t == NULL)
            break;
        task_set_row(a, t, row);
        count_state(l, row->state, 1);
        t->gen_added = ++a->gen;
    }
    for (size_t i = 0; i < oldcap; i++) {
        if (!old[i].used)
            continue;
        agg_task_t *t = task_find(l, old[i].row.id);
        if (t == NULL) {
            gone_add(a, l, old[i].row.id, old[i].row.state);
            continue;
        }
        t->gen_added = old[i].gen_added;
        t->stack = old[i].stack;
        t->stack_since = old[i].stack_since;
        t->gen_changed =
            memcmp(&t->row, &old[i].row, sizeof t->row) ? ++a->gen : old[i].gen_changed;
    }
    free(old);
}

/* ---- draining rings ------------------------------------------------------------------------- */

static void event_from_mon(agg_t *a, agg_loop_t *l, const at__event_t *ev)
{
    agg_event_t *e = &l->evlog[(l->ev_next - 1) % AT_EXPORT_EVLOG];
    at__profile_event_free(e);
    memset(e, 0, sizeof *e);
    e->seq = l->ev_next++;
    memcpy(e->name, ev->name, sizeof e->name);
    e->name[sizeof e->name - 1] = '\0';
    if (ev->kind == AT__EV_SLOW) {
        e->is_slow = true;
        e->site = ev->site;
        uint64_t start = ev->when_ns > ev->duration_ns ? ev->when_ns - ev->duration_ns : 0;
        e->slow.seq = e->seq;
        e->slow.start_ns = at__agg_proc_ns(a, start);
        e->slow.dur_ns = ev->duration_ns;
        e->slow.kind = wire_cb_kind(ev->cb_kind);
        e->slow.task = ev->task_id;
        agg_site_t *as = ev->site ? site_get(a, l, ev->site, true) : NULL;
        if (as != NULL) {
            e->slow.site = as->wire_id;
            as->kind = e->slow.kind;
            as->slow++;
            as->st.slow = as->slow;
            as->st.kind = as->kind;
            as->gen = ++a->gen;
        } else {
            e->slow.site = at__agg_intern_site(a, (uintptr_t)ev->fn, ev->name, false);
        }
        if (ev->nstack > 0)
            e->slow.sched_stack = at__agg_intern_stack(a, ev->stack, ev->nstack);
        /* the stack sampled while this callback was blocking, if the watchdog took one */
        if (l->sample_stack != 0 && ev->site == l->sample_site &&
            start + 1000000 >= l->sample_since && start <= l->sample_since + 1000000)
            e->slow.stack = l->sample_stack;
        at__profile_slow_event(l, ev->site, start, e); /* the stacks that took its time */
        return;
    }
    memcpy(e->text, ev->text, sizeof e->text);
    e->text[sizeof e->text - 1] = '\0';
    static const struct {
        const char *code;
        uint8_t kind;
    } kinds[] = {/* core's codes, then the tasks layer's */
                 {"never_retrieved", AT_WIRE_EXC_NEVER_RETRIEVED},
                 {"never_awaited", AT_WIRE_EXC_NEVER_AWAITED},
                 {"destroyed_pending", AT_WIRE_EXC_DESTROYED_PENDING},
                 {"unclosed", AT_WIRE_EXC_UNCLOSED},
                 {"task_never_retrieved", AT_WIRE_EXC_NEVER_RETRIEVED},
                 {"task_destroyed_pending", AT_WIRE_EXC_DESTROYED_PENDING},
                 {"unclosed_stream", AT_WIRE_EXC_UNCLOSED},
                 {"wrong_thread", AT_WIRE_EXC_WRONG_THREAD},
                 {"unhandled", AT_WIRE_EXC_UNHANDLED}};
    e->exc.kind = AT_WIRE_EXC_WARNING;
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
        if (strncmp(ev->code, kinds[i].code, sizeof ev->code) == 0)
            e->exc.kind = kinds[i].kind;
    e->exc.seq = e->seq;
    e->exc.time_ns = at__agg_proc_ns(a, ev->when_ns);
    e->exc.task = ev->task_id;
    /* the severity in a key of its own; code and domain are the error's own (protocol.md) */
    e->exc.severity = ev->kind == AT__EV_ERROR ? "error" : "warning";
    e->exc.code = ev->err_code;
    memcpy(e->domain, ev->err_domain, sizeof e->domain);
    e->domain[sizeof e->domain - 1] = '\0';
    if (ev->nstack > 0)
        e->exc.create_stack = at__agg_intern_stack(a, ev->stack, ev->nstack);
    if (ev->nstack2 > 0)
        e->exc.raise_stack = at__agg_intern_stack(a, ev->stack2, ev->nstack2);
}

/* Takes the loop's slow/error/warning events off its monitor's ring into the event log. */
static void drain_mon(agg_t *a, agg_loop_t *l)
{
    at__event_t ev;
    for (int i = 0; i < AT_EXPORT_DRAIN_MAX && at__mon_take(l->mon, &ev) == 1; i++)
        event_from_mon(a, l, &ev);
    for (int k = 0; k < AT__EV_KIND_MAX; k++) {
        uint64_t produced, dropped;
        at__mon_event_counts(l->mon, (at__event_kind_t)k, &produced, &dropped);
        l->dropped[k] = dropped;
    }
}

static void send_resync(at_export_srv_t *srv, at_export_attach_t *att, uint64_t now)
{
    if (att->resync_inflight || att->p->resync == NULL ||
        (att->resync_at_ns != 0 &&
         now - att->resync_at_ns < AT_EXPORT_RESYNC_EVERY_MS * 1000000ull))
        return;
    at_export_loopreq_t *r = calloc(1, sizeof *r);
    if (r == NULL)
        return;
    r->op = AT_EXPORT_LOOPREQ_RESYNC;
    r->resync_first = !att->synced;
    r->att = att;
    r->att_id = att->id;
    r->deadline_ns = now + AT_EXPORT_RESYNC_DEADLINE_MS * 1000000ull;
    if (at__export_loopreq_send(r) != 0) {
        free(r);
        return;
    }
    att->resync_inflight = true;
    att->resync_at_ns = now;
    att->dropped_seen = atomic_load(&att->dropped);
    r->pnext = srv->pending;
    srv->pending = r;
}

void at__agg_drain(at_export_srv_t *srv)
{
    agg_t *a = &srv->agg;
    for (agg_loop_t *l = a->loops; l != NULL; l = l->next) {
        if (l->gone)
            continue;
        drain_mon(a, l);
        l->task_dropped = 0;
    }
    uint64_t now = uv_hrtime();
    at__export_attach_lock();
    for (at_export_attach_t *att = at__export_attach_first(); att != NULL; att = att->next) {
        agg_loop_t *l = loop_of_attach(srv, att);
        at_export_task_ev_t ev;
        uint64_t pos;
        /* While a resync is in flight the ring is left alone: events newer than the resync
         * must be applied after its rows, not before (a full ring meanwhile just drops and
         * counts, and leads to the next resync). */
        if (l != NULL && (att->p->caps & AT_EXPORT_CAP_TASKS))
            l->wait_desc = att->p->wait_desc;
        while (!att->resync_inflight && at__export_task_take(att, &ev, &pos) == 1)
            if (l != NULL && pos >= att->skip_until)
                task_apply(a, l, &ev);
        uint64_t dropped = atomic_load(&att->dropped);
        if (l != NULL)
            l->task_dropped += dropped;
        if (l != NULL && (att->p->caps & AT_EXPORT_CAP_TASKS) &&
            (!att->synced || dropped != att->dropped_seen))
            send_resync(srv, att, now);
    }
    at__export_attach_unlock();
}

void at__agg_running(at_export_srv_t *srv, agg_loop_t *l, at_wire_running_t *out, char *name,
                     size_t namesize)
{
    memset(out, 0, sizeof *out);
    if (l == NULL || l->gone)
        return;
    at__running_snap_t snap;
    if (at__mon_running_read(l->mon, &snap) != 1 || snap.site == NULL)
        return;
    out->present = true;
    out->since_ns = at__agg_proc_ns(&srv->agg, snap.since_ns);
    out->kind = wire_cb_kind(snap.kind);
    agg_site_t *as = site_get(&srv->agg, l, snap.site, true);
    out->site = as ? as->wire_id : 0;
    if (snap.site->name[0])
        snprintf(name, namesize, "%s", snap.site->name);
    else if (as != NULL && as->wire_id != 0 && srv->agg.isites[as->wire_id - 1].ws.loc.func)
        snprintf(name, namesize, "%s", srv->agg.isites[as->wire_id - 1].ws.loc.func);
    else
        snprintf(name, namesize, "%p", snap.site->fn);
    out->name = name;
    out->task = snap.task_id;
    memcpy(l->running_task, snap.task_name, sizeof l->running_task);
    l->running_task[sizeof l->running_task - 1] = '\0';
    const agg_task_t *rt = snap.task_id && !l->running_task[0] ? task_find(l, snap.task_id) : NULL;
    if (rt != NULL) /* the running record carries only the id: name it from the mirror */
        snprintf(l->running_task, sizeof l->running_task, "%s", rt->row.name);
    out->task_name = snap.task_id && l->running_task[0] ? l->running_task : NULL;
    if (l->sample_tried && l->sample_site == snap.site && l->sample_since == snap.since_ns)
        out->stack = l->sample_stack;
    at__profile_running(l, &snap, &out->profile);
}

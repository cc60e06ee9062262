/* Applier.c: decoded wire messages -> Model changes (see Applier.h). */
#include "Applier.h"
#include "FlameView.h"

#include <assert.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *Applier_waitKindName(unsigned kind)
{
    const char *s = kind <= AT_WIRE_WAIT_OTHER ? at_wire_wait_kind_name((int)kind) : NULL;
    return s ? s : "wait?";
}

const char *Applier_cbKindName(unsigned kind)
{
    const char *s = kind <= AT_WIRE_CB_CALL_SOON ? at_wire_cb_kind_name((int)kind) : NULL;
    return s ? s : "callback";
}

void Applier_init(Applier *this, Model *model)
{
    memset(this, 0, sizeof *this);
    this->model = model;
}

static void tables_free(Applier *this)
{
    for (uint32_t i = 0; i < this->site_cap; i++) {
        free(this->sites[i].func);
        free(this->sites[i].file);
        free(this->sites[i].build_id);
    }
    free(this->sites);
    for (uint32_t i = 0; i < this->stack_cap; i++)
        free(this->stacks[i].sites);
    free(this->stacks);
    this->sites = NULL;
    this->stacks = NULL;
    this->nsites = this->site_cap = this->nstacks = this->stack_cap = 0;
}

void Applier_done(Applier *this)
{
    tables_free(this);
    memset(this, 0, sizeof *this);
}

static uint32_t hash32(uint32_t x)
{
    x *= 0x9e3779b1u;
    return x ^ (x >> 15);
}

static const SiteDef *site_get(const Applier *this, uint32_t id)
{
    if (!id || !this->site_cap)
        return NULL;
    uint32_t h = hash32(id) & (this->site_cap - 1);
    while (this->sites[h].id) {
        if (this->sites[h].id == id)
            return &this->sites[h];
        h = (h + 1) & (this->site_cap - 1);
    }
    return NULL;
}

static const StackDef *stack_get(const Applier *this, uint32_t id)
{
    if (!id || !this->stack_cap)
        return NULL;
    uint32_t h = hash32(id) & (this->stack_cap - 1);
    while (this->stacks[h].id) {
        if (this->stacks[h].id == id)
            return &this->stacks[h];
        h = (h + 1) & (this->stack_cap - 1);
    }
    return NULL;
}

static void sites_grow(Applier *this)
{
    uint32_t ncap = this->site_cap ? this->site_cap * 2 : 256;
    SiteDef *n = calloc(ncap, sizeof *n);
    if (!n)
        abort();
    for (uint32_t i = 0; i < this->site_cap; i++) {
        if (!this->sites[i].id)
            continue;
        uint32_t h = hash32(this->sites[i].id) & (ncap - 1);
        while (n[h].id)
            h = (h + 1) & (ncap - 1);
        n[h] = this->sites[i];
    }
    free(this->sites);
    this->sites = n;
    this->site_cap = ncap;
}

static void stacks_grow(Applier *this)
{
    uint32_t ncap = this->stack_cap ? this->stack_cap * 2 : 256;
    StackDef *n = calloc(ncap, sizeof *n);
    if (!n)
        abort();
    for (uint32_t i = 0; i < this->stack_cap; i++) {
        if (!this->stacks[i].id)
            continue;
        uint32_t h = hash32(this->stacks[i].id) & (ncap - 1);
        while (n[h].id)
            h = (h + 1) & (ncap - 1);
        n[h] = this->stacks[i];
    }
    free(this->stacks);
    this->stacks = n;
    this->stack_cap = ncap;
}

static void site_put(Applier *this, const at_wire_site_t *s)
{
    if (!s->id) {
        this->model->rejected++;
        return;
    }
    if ((this->nsites + 1) * 2 > this->site_cap) {
        if (this->nsites >= APPLIER_MAX_SITES) {
            this->model->rejected++;
            return;
        }
        sites_grow(this);
    }
    uint32_t h = hash32(s->id) & (this->site_cap - 1);
    while (this->sites[h].id && this->sites[h].id != s->id)
        h = (h + 1) & (this->site_cap - 1);
    SiteDef *d = &this->sites[h];
    if (!d->id)
        this->nsites++;
    d->id = s->id;
    Model_setString(&d->func, s->loc.func && s->loc.func[0] ? s->loc.func : "?", SIZE_MAX);
    if (s->loc.file)
        Model_setString(&d->file, s->loc.file, SIZE_MAX);
    else {
        free(d->file);
        d->file = NULL;
    }
    d->line = s->loc.line;
    d->addr = s->loc.addr;
    free(d->build_id);
    d->build_id = BuildId_dup(s->loc.build_id);
}

static void stack_put(Applier *this, const at_wire_stack_t *s)
{
    if (!s->id) {
        this->model->rejected++;
        return;
    }
    if ((this->nstacks + 1) * 2 > this->stack_cap) {
        if (this->nstacks >= APPLIER_MAX_STACKS) {
            this->model->rejected++;
            return;
        }
        stacks_grow(this);
    }
    uint32_t h = hash32(s->id) & (this->stack_cap - 1);
    while (this->stacks[h].id && this->stacks[h].id != s->id)
        h = (h + 1) & (this->stack_cap - 1);
    StackDef *d = &this->stacks[h];
    if (!d->id)
        this->nstacks++;
    d->id = s->id;
    uint32_t n = s->n_sites < MODEL_MAX_FRAMES ? s->n_sites : MODEL_MAX_FRAMES;
    free(d->sites);
    d->sites = calloc(n ? n : 1, sizeof *d->sites);
    if (!d->sites)
        abort();
    if (n)
        memcpy(d->sites, s->sites, n * sizeof *d->sites);
    d->n = n;
}

static const char *base_name(const char *path)
{
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

void Applier_siteText(const Applier *this, uint32_t site, char *buf, size_t len)
{
    const SiteDef *d = site_get(this, site);
    if (!site)
        snprintf(buf, len, "?");
    else if (!d)
        snprintf(buf, len, "site #%" PRIu32, site);
    else if (d->file && d->line)
        snprintf(buf, len, "%s %s:%" PRIu32, d->func, base_name(d->file), d->line);
    else if (d->file)
        snprintf(buf, len, "%s %s", d->func, base_name(d->file));
    else
        snprintf(buf, len, "%s", d->func);
}

static const char *site_func(const Applier *this, uint32_t site)
{
    const SiteDef *d = site_get(this, site);
    return d ? d->func : NULL;
}

uint32_t Applier_stackDepth(const Applier *this, uint32_t stack)
{
    const StackDef *d = stack_get(this, stack);
    return d ? d->n : 0;
}

uint32_t Applier_stackSite(const Applier *this, uint32_t stack, uint32_t i)
{
    const StackDef *d = stack_get(this, stack);
    return d && i < d->n ? d->sites[i] : 0;
}

void Applier_stack(const Applier *this, uint32_t stack, Stack *out)
{
    const StackDef *d = stack_get(this, stack);
    if (!d)
        return;
    for (uint32_t i = 0; i < d->n; i++) {
        const SiteDef *s = site_get(this, d->sites[i]);
        if (s) {
            Stack_push(out, s->func, SIZE_MAX, s->file, SIZE_MAX, s->line, s->addr);
            Stack_setBuildId(out, s->build_id);
        } else
            Stack_push(out, "?", 1, NULL, 0, 0, 0);
    }
}

static void stack_from_locs(Stack *out, const at_wire_loc_t *locs, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++) {
        Stack_push(out, locs[i].func, SIZE_MAX, locs[i].file, SIZE_MAX, locs[i].line, locs[i].addr);
        Stack_setBuildId(out, locs[i].build_id);
    }
}

/* Sanity bound on process-time values: 100 years in ns. */
#define MAX_TIME_NS (100ull * 365 * 24 * 3600 * 1000000000ull)

static uint64_t us_to_ns(uint64_t us)
{
    return us > MAX_TIME_NS / 1000 ? 0 : us * 1000;
}

static uint64_t fnv_bytes(uint64_t h, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 0x100000001b3ull;
    return h;
}

/* A stack by content: the frames as the screens show them (function, file, line; the address
 * when there is no file), so equal stacks are equal whatever ids the process gave them. 0 when
 * the stack is unknown. */
static uint64_t stack_content_key(const Applier *this, const StackDef *sd)
{
    if (!sd || !sd->n)
        return 0;
    uint64_t h = 0xcbf29ce484222325ull;
    for (uint32_t i = 0; i < sd->n; i++) {
        const SiteDef *s = site_get(this, sd->sites[i]);
        if (!s) {
            h = fnv_bytes(h, "?", 2);
            continue;
        }
        h = fnv_bytes(h, s->func, strlen(s->func) + 1);
        if (s->file) {
            h = fnv_bytes(h, s->file, strlen(s->file) + 1);
            h = fnv_bytes(h, &s->line, sizeof s->line);
        } else {
            h = fnv_bytes(h, &s->addr, sizeof s->addr);
        }
    }
    return h ? h : 1;
}

static void apply_task(Applier *this, const at_wire_task_t *w, uint64_t now_ms)
{
    char waits[160], created[MODEL_MAX_STR], where[MODEL_MAX_STR], name[MODEL_MAX_STR];
    TaskRow r;
    memset(&r, 0, sizeof r);
    r.id = w->id;
    r.parent = w->parent;
    r.state = w->state < TS_OTHER ? w->state : TS_OTHER;
    if (w->name && w->name[0])
        r.name = w->name;
    else {
        const char *f = site_func(this, w->entry_site);
        snprintf(name, sizeof name, "%s", f ? f : "task");
        r.name = name;
    }
    r.name_len = SIZE_MAX;
    r.waits_described = w->wait_desc && w->wait_desc[0];
    if (r.waits_described) /* the runtime's own words, e.g. "sleep 5.000 s" */
        snprintf(waits, sizeof waits, "%s", w->wait_desc);
    else if (w->wait_kind == AT_WIRE_WAIT_NONE)
        waits[0] = '\0';
    else if (w->wait_obj)
        snprintf(waits, sizeof waits, "%s #%" PRIu64, Applier_waitKindName(w->wait_kind),
                 w->wait_obj);
    else
        snprintf(waits, sizeof waits, "%s", Applier_waitKindName(w->wait_kind));
    r.waits_on = waits;
    r.waits_on_len = SIZE_MAX;
    Applier_siteText(this, w->create_site, created, sizeof created);
    r.created_at = created;
    r.created_at_len = SIZE_MAX;
    const StackDef *sd = stack_get(this, w->stack);
    where[0] = '\0';
    if (sd && sd->n)
        Applier_siteText(this, sd->sites[0], where, sizeof where);
    r.where = where;
    r.where_len = SIZE_MAX;
    r.stack_key = w->stack;
    r.group_key = stack_content_key(this, sd);
    r.created_ns = us_to_ns(w->created_us);
    r.wait_since_ns = us_to_ns(w->wait_since_us);
    r.busy_ns = w->busy_ns;
    r.steps = w->steps;
    Model_upsertTask(this->model, &r, now_ms);
}

static void apply_stats(Applier *this, const at_wire_update_t *u)
{
    const at_wire_loop_stats_t *s = &u->stats;
    Model *m = this->model;
    LoopStats in;
    memset(&in, 0, sizeof in);
    uint32_t nlag = s->lag.n < AT_WIRE_HIST_BUCKETS ? s->lag.n : AT_WIRE_HIST_BUCKETS;
    uint64_t diff[AT_WIRE_HIST_BUCKETS];
    uint64_t ndiff = 0;
    for (uint32_t i = 0; i < nlag; i++) {
        uint64_t c = s->lag.counts[i];
        diff[i] = this->have_prev && c >= this->prev_lag[i] ? c - this->prev_lag[i] : c;
        ndiff += diff[i];
        in.lag_hist[Hist_bucket(at_wire_hist_lower(i))] += c;
    }
    /* busy_ns counts finished callbacks only: add the one running now, so a blocked loop
     * reads 100% while it is blocked, not 0% (the running time is counted once: when the
     * callback ends, busy_ns grows by its whole duration and the running part drops out). */
    uint64_t busy = s->busy_ns;
    if (u->running.present && u->ts_ns > u->running.since_ns)
        busy += u->ts_ns - u->running.since_ns;
    if (this->have_prev && u->ts_ns > this->prev_ts) {
        uint64_t db = busy >= this->prev_busy ? busy - this->prev_busy : 0;
        uint64_t di = s->idle_ns >= this->prev_idle ? s->idle_ns - this->prev_idle : 0;
        uint64_t dc =
            s->callbacks >= this->prev_callbacks ? s->callbacks - this->prev_callbacks : 0;
        in.utilisation = db + di ? (double)db / (double)(db + di) : 0;
        in.callbacks_per_s = (double)dc * 1e9 / (double)(u->ts_ns - this->prev_ts);
    } else {
        in.utilisation = busy + s->idle_ns ? (double)busy / (double)(busy + s->idle_ns) : 0;
        in.callbacks_per_s = u->ts_ns ? (double)s->callbacks * 1e9 / (double)u->ts_ns : 0;
    }
    if (ndiff) {
        /* the interval's samples: none exceeds the largest since start (when sent) */
        at_wire_hist_t h = {nlag, diff};
        uint64_t max = s->lag_max_ns ? s->lag_max_ns : UINT64_MAX;
        in.lag_p50_ns = at_wire_hist_quantile(&h, 0.5, 0, max);
        in.lag_p99_ns = at_wire_hist_quantile(&h, 0.99, 0, max);
    } else if (this->have_prev) {
        in.lag_p50_ns = m->loop.lag_p50_ns;
        in.lag_p99_ns = m->loop.lag_p99_ns;
    }
    in.nhandles = s->n_handles < MODEL_MAX_HANDLES ? s->n_handles : MODEL_MAX_HANDLES;
    for (uint32_t i = 0; i < in.nhandles; i++) {
        in.handles[i].name = (char *)(s->handles[i].name ? s->handles[i].name : "?");
        in.handles[i].value = s->handles[i].n;
    }
    in.exec_queue = s->exec_queued;
    in.exec_busy = s->exec_running;
    in.exec_threads = s->exec_threads;
    in.exec_done = s->exec_done;
    in.exec_wait_avg_ns = s->exec_done ? s->exec_wait_ns / s->exec_done : 0;
    in.slow_total = s->slow;
    in.errors_total = s->errors;
    in.iterations = s->iterations;
    in.has_tasks_by_state = true;
    /* both bounds: the wire's and the model's state counts may part ways */
    // NOLINTNEXTLINE(misc-redundant-expression)
    for (unsigned i = 0; i < AT_WIRE_TASK_NSTATES && i < TS_COUNT; i++)
        in.tasks_by_state[i] = s->tasks_by_state[i];
    Model_setLoop(m, &in);
    this->have_prev = true;
    this->prev_ts = u->ts_ns;
    this->prev_busy = busy;
    this->prev_idle = s->idle_ns;
    this->prev_callbacks = s->callbacks;
    memset(this->prev_lag, 0, sizeof this->prev_lag);
    for (uint32_t i = 0; i < nlag; i++)
        this->prev_lag[i] = s->lag.counts[i];
}

static void task_name_of(const Model *m, uint64_t id, char *buf, size_t len)
{
    const Task *t = Model_findTask(m, id);
    if (t)
        snprintf(buf, len, "%s", t->name);
    else if (id)
        snprintf(buf, len, "#%" PRIu64, id);
    else
        buf[0] = '\0';
}

static void apply_slow(Applier *this, const at_wire_slow_t *w)
{
    SlowEvent ev;
    char buf[MODEL_MAX_STR];
    memset(&ev, 0, sizeof ev);
    ev.when_ns = w->start_ns;
    ev.duration_ns = w->dur_ns;
    ev.task_id = w->task;
    const char *f = site_func(this, w->site);
    if (w->name && w->name[0])
        Model_setString(&ev.callback, w->name, SIZE_MAX);
    else if (f)
        Model_setString(&ev.callback, f, SIZE_MAX);
    else {
        snprintf(buf, sizeof buf, "(%s callback)", Applier_cbKindName(w->kind));
        Model_setString(&ev.callback, buf, SIZE_MAX);
    }
    if (w->site) {
        Applier_siteText(this, w->site, buf, sizeof buf);
        Model_setString(&ev.site, buf, SIZE_MAX);
    }
    task_name_of(this->model, w->task, buf, sizeof buf);
    Model_setString(&ev.task_name, buf, SIZE_MAX);
    Applier_stack(this, w->stack, &ev.stack);
    Applier_stack(this, w->sched_stack, &ev.scheduled_from);
    ev.profile = FlameView_fromWire(this, &w->profile);
    Model_addSlow(this->model, &ev);
}

static void apply_exc(Applier *this, const at_wire_exc_t *w)
{
    ExcEvent ev;
    char buf[MODEL_MAX_STR];
    memset(&ev, 0, sizeof ev);
    ev.when_ns = w->time_ns;
    ev.kind = w->kind < EXC_COUNT ? w->kind : EXC_WARNING;
    ev.task_id = w->task;
    /* The severity has a key of its own; code and domain are the error's own (protocol.md).
     * Servers before the `severity` key sent the severity as the domain, "error" or
     * "warning", with no code: read that as the severity, not as an error domain. */
    bool old_severity = !w->severity && w->domain && !w->code &&
                        (!strcmp(w->domain, "error") || !strcmp(w->domain, "warning"));
    const char *sev = w->severity ? w->severity : old_severity ? w->domain : NULL;
    if (sev)
        ev.severity = !strcmp(sev, "error") ? "error" : !strcmp(sev, "warning") ? "warning" : "?";
    /* else Model_addException takes it from the kind */
    ev.code = w->code;
    Model_setString(&ev.domain, old_severity ? NULL : w->domain, SIZE_MAX);
    Model_setString(&ev.message, w->message, SIZE_MAX);
    if (w->object)
        snprintf(buf, sizeof buf, "%s #%" PRIu64, w->obj_type ? w->obj_type : "object", w->object);
    else
        snprintf(buf, sizeof buf, "%s", w->obj_type ? w->obj_type : "");
    Model_setString(&ev.object, buf, SIZE_MAX);
    Applier_stack(this, w->raise_stack, &ev.raised);
    Applier_stack(this, w->create_stack, &ev.stack);
    if (ev.raised.n) {
        const StackFrame *f = &ev.raised.f[0];
        if (f->file)
            snprintf(buf, sizeof buf, "%s %s:%u", f->func, base_name(f->file), f->line);
        else
            snprintf(buf, sizeof buf, "%s", f->func);
        Model_setString(&ev.site, buf, SIZE_MAX);
    }
    Model_addException(this->model, &ev);
}

static void apply_site_stats(Applier *this, const at_wire_site_stats_t *w)
{
    if (!w->slow)
        return; /* the slow screen only lists sites that were slow */
    char buf[MODEL_MAX_STR];
    Applier_siteText(this, w->site, buf, sizeof buf);
    SlowSite *s = Model_site(this->model, buf);
    if (!s)
        return;
    s->runtime = true;
    s->calls = w->count;
    s->slow = w->slow;
    s->rt_max_ns = w->max_ns;
    s->rt_p99_ns = at_wire_hist_quantile(&w->hist, 0.99, w->has_min ? w->min_ns : 0, w->max_ns);
    this->model->slow_gen++;
}

static void apply_running(Applier *this, const at_wire_update_t *u, uint64_t now_ms)
{
    Model *m = this->model;
    const at_wire_running_t *r = &u->running;
    uint64_t dur = r->present && u->ts_ns > r->since_ns ? u->ts_ns - r->since_ns : 0;
    bool blocked = r->present && m->slow_threshold_ns && dur >= m->slow_threshold_ns;
    if (!blocked) {
        if (m->blocked)
            Model_setBlocked(m, false, 0, NULL, NULL, NULL, now_ms);
        return;
    }
    char cb[MODEL_MAX_STR], task[MODEL_MAX_STR];
    const char *f = site_func(this, r->site);
    if (r->name && r->name[0])
        snprintf(cb, sizeof cb, "%s", r->name);
    else if (f)
        snprintf(cb, sizeof cb, "%s", f);
    else
        snprintf(cb, sizeof cb, "(%s callback)", Applier_cbKindName(r->kind));
    if (r->task_name && r->task_name[0])
        snprintf(task, sizeof task, "%s", r->task_name);
    else
        task_name_of(m, r->task, task, sizeof task);
    Stack st = {0, NULL};
    Applier_stack(this, r->stack, &st);
    Model_setBlocked(m, true, dur, cb, task, &st, now_ms);
    Model_setBlockedProfile(m, FlameView_fromWire(this, &r->profile));
}

/* True when an event numbered seq is new on this connection: not one an earlier update
 * already delivered. A snapshot (the one after resume, or after the process found us slow)
 * resends the runtime's event log, so events seen before come again; they are recognised by
 * their seq (one sequence per loop for slow and exception events, docs/protocol.md). */
static bool event_new(const Applier *this, uint64_t seq)
{
    return !this->have_seq || seq > this->last_seq;
}

/* Slow and exception events share one sequence (docs/protocol.md): the numbers between the
 * newest seen before and the newest now that did not arrive were dropped on the way (the
 * runtime's event log overflowed between two updates). The first update only sets the
 * start: what happened before we attached is not missing. Called after the events of u
 * were applied (event_new compares with the newest of the earlier updates). */
static void count_gaps(Applier *this, const at_wire_update_t *u)
{
    uint64_t newest = this->last_seq, got = 0;
    bool any = false;
    for (uint32_t i = 0; i < u->n_slow; i++)
        if (event_new(this, u->slow[i].seq)) {
            got++;
            any = true;
            newest = u->slow[i].seq > newest ? u->slow[i].seq : newest;
        }
    for (uint32_t i = 0; i < u->n_exc; i++)
        if (event_new(this, u->exc[i].seq)) {
            got++;
            any = true;
            newest = u->exc[i].seq > newest ? u->exc[i].seq : newest;
        }
    if (this->have_seq && newest - this->last_seq > got)
        this->gaps += newest - this->last_seq - got;
    if (any) {
        this->last_seq = newest;
        this->have_seq = true;
    }
    this->model->missed = this->gaps;
}

static void apply_config(Model *m, const at_wire_config_t *c)
{
    if (c->has_slow_ns)
        m->slow_threshold_ns = c->slow_ns;
    if (c->has_debug)
        m->debug = c->debug;
}

/* hello.loops and update.loops -> the model's loop table. */
static void apply_loops(Applier *this, const at_wire_loop_info_t *w, uint32_t n, uint64_t ts)
{
    if (n > MODEL_MAX_LOOPS) {
        this->model->rejected += n - MODEL_MAX_LOOPS;
        n = MODEL_MAX_LOOPS;
    }
    LoopRow rows[MODEL_MAX_LOOPS];
    for (uint32_t i = 0; i < n; i++)
        rows[i] = (LoopRow){.id = w[i].id,
                            .tid = w[i].tid,
                            .addr = w[i].addr,
                            .name = w[i].name,
                            .thread = w[i].thread,
                            .kind = w[i].kind,
                            .has_stats = w[i].has_stats,
                            .busy_ns = w[i].busy_ns,
                            .idle_ns = w[i].idle_ns,
                            .callbacks = w[i].callbacks,
                            .slow = w[i].slow,
                            .pending = w[i].pending,
                            .running_ns = w[i].running_ns};
    Model_setLoops(this->model, rows, n, ts);
}

static void apply_update(Applier *this, const at_wire_update_t *u, uint64_t now_ms)
{
    Model *m = this->model;
    m->loop_id = u->loop;
    if (u->n_loops)
        apply_loops(this, u->loops, u->n_loops, u->ts_ns);
    if (u->loop_gone)
        m->loop_gone = true;
    if (u->full) {
        tables_free(this);
        Model_dropTasks(m);
    }
    this->updates++;
    if (u->ts_ns < MAX_TIME_NS)
        m->now_ns = u->ts_ns;
    m->now_local_ms = now_ms;
    apply_config(m, &u->config);
    for (uint32_t i = 0; i < u->n_sites; i++)
        site_put(this, &u->sites[i]);
    for (uint32_t i = 0; i < u->n_stacks; i++)
        stack_put(this, &u->stacks[i]);
    for (uint32_t i = 0; i < u->n_tasks_new; i++)
        apply_task(this, &u->tasks_new[i], now_ms);
    for (uint32_t i = 0; i < u->n_tasks_changed; i++)
        apply_task(this, &u->tasks_changed[i], now_ms);
    for (uint32_t i = 0; i < u->n_tasks_gone; i++) {
        /* how it ended, when the process says (tasks_gone_state runs parallel) */
        int final = -1;
        if (u->n_tasks_gone_state == u->n_tasks_gone && u->tasks_gone_state[i] < TS_OTHER)
            final = (int)u->tasks_gone_state[i];
        Model_removeTask(m, u->tasks_gone[i], now_ms, final);
    }
    if (u->has_stats)
        apply_stats(this, u);
    for (uint32_t i = 0; i < u->n_dropped; i++)
        Model_setDropped(m, u->dropped[i].name ? u->dropped[i].name : "?", SIZE_MAX,
                         u->dropped[i].n);
    for (uint32_t i = 0; i < u->n_site_stats; i++)
        apply_site_stats(this, &u->site_stats[i]);
    /* events already delivered by an earlier update (a snapshot resends the event log) are
     * not added again */
    for (uint32_t i = 0; i < u->n_slow; i++)
        if (event_new(this, u->slow[i].seq))
            apply_slow(this, &u->slow[i]);
    for (uint32_t i = 0; i < u->n_exc; i++)
        if (event_new(this, u->exc[i].seq))
            apply_exc(this, &u->exc[i]);
    count_gaps(this, u);
    apply_running(this, u, now_ms);
}

static void apply_hello(Applier *this, const at_wire_hello_t *h)
{
    Model *m = this->model;
    m->pid = h->pid;
    m->protocol = h->version;
    Model_setString(&m->program, h->program && h->program[0] ? h->program : "?", SIZE_MAX);
    Model_setString(&m->runtime_version, h->runtime_version, SIZE_MAX);
    char argv[MODEL_MAX_STR];
    size_t o = 0;
    argv[0] = '\0';
    for (uint32_t i = 0; i < h->n_argv && o + 1 < sizeof argv; i++) {
        int k =
            snprintf(argv + o, sizeof argv - o, "%s%s", i ? " " : "", h->argv[i] ? h->argv[i] : "");
        if (k < 0)
            break;
        o += (size_t)k;
    }
    Model_setString(&m->argv, argv, SIZE_MAX);
    m->start_wall_ns = h->start_time_ns;
    if (h->now_ns < MAX_TIME_NS)
        m->now_ns = h->now_ns;
    apply_config(m, &h->config);
    if (h->n_loops)
        apply_loops(this, h->loops, h->n_loops, h->now_ns);
}

static void apply_response(Applier *this, const at_wire_response_t *r)
{
    Model *m = this->model;
    if (r->has_config && r->status == 0)
        apply_config(m, &r->config);
    if (r->op == AT_WIRE_OP_TASK_DETAIL && m->detail_id) {
        if (r->status != 0) {
            if (!r->has_detail) {
                Model_setString(&m->detail_status, r->reason ? r->reason : "request failed",
                                SIZE_MAX);
                m->detail_ready = true;
            }
            return;
        }
        if (!r->has_detail || r->detail.task.id != m->detail_id)
            return;
        const at_wire_task_detail_t *d = &r->detail;
        Model_clearDetail(m, m->detail_id);
        Model_setString(&m->detail_wait, d->wait_desc, SIZE_MAX);
        Model_setString(&m->detail_error, d->error, SIZE_MAX);
        stack_from_locs(&m->detail_create, d->create, d->n_create);
        stack_from_locs(&m->detail_suspend, d->suspend, d->n_suspend);
        uint32_t nc = d->n_children < 4096 ? d->n_children : 4096;
        if (nc) {
            m->detail_children = calloc(nc, sizeof *m->detail_children);
            if (!m->detail_children)
                abort();
            memcpy(m->detail_children, d->children, nc * sizeof *m->detail_children);
        }
        m->detail_nchildren = nc;
        uint32_t nh = d->step_hist.n < AT_WIRE_HIST_BUCKETS ? d->step_hist.n : AT_WIRE_HIST_BUCKETS;
        for (uint32_t i = 0; i < nh; i++)
            m->detail_hist[Hist_bucket(at_wire_hist_lower(i))] += d->step_hist.counts[i];
        m->detail_ready = true;
    }
}

int Applier_apply(Applier *this, const at_wire_msg_t *msg, uint64_t now_ms)
{
    assert(this->model);
    switch (msg->type) {
    case AT_WIRE_HELLO:
        apply_hello(this, &msg->u.hello);
        return 0;
    case AT_WIRE_UPDATE:
        apply_update(this, &msg->u.update, now_ms);
        return 0;
    case AT_WIRE_RESPONSE:
        apply_response(this, &msg->u.response);
        return 0;
    default:
        return -1;
    }
}

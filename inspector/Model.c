/* Model.c: the bounded, validated mirror of a target's state (see Model.h). */
#include "Model.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *TaskState_name(unsigned state)
{
    const char *s = state <= TS_COUNT ? at_wire_task_state_name((int)state) : NULL;
    return s ? s : state == TS_OTHER ? "other" : "?";
}

const char *ExcKind_name(unsigned kind)
{
    if (kind == EXC_UNCLOSED_RESOURCE)
        return "unclosed_resource"; /* dump --json's word since it began; the wire's "unclosed" */
    const char *s = kind <= EXC_COUNT ? at_wire_exc_kind_name((int)kind) : NULL;
    return s ? s : "?";
}

static void *xcalloc(size_t n, size_t sz)
{
    void *p = calloc(n ? n : 1, sz);
    if (!p)
        abort(); /* the inspector cannot show anything without memory */
    return p;
}

static void *xrealloc(void *p, size_t sz)
{
    p = realloc(p, sz);
    if (!p)
        abort();
    return p;
}

/* Length of the valid UTF-8 sequence at s (at most n bytes), 0 if invalid. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
    unsigned c = s[0];
    size_t len;
    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf)
        len = 2;
    else if (c >= 0xe0 && c <= 0xef)
        len = 3;
    else if (c >= 0xf0 && c <= 0xf4)
        len = 4;
    else
        return 0;
    if (len > n)
        return 0;
    for (size_t i = 1; i < len; i++)
        if ((s[i] & 0xc0) != 0x80)
            return 0;
    if (c == 0xe0 && s[1] < 0xa0)
        return 0;
    if (c == 0xed && s[1] > 0x9f) /* surrogates */
        return 0;
    if (c == 0xf0 && s[1] < 0x90)
        return 0;
    if (c == 0xf4 && s[1] > 0x8f)
        return 0;
    return len;
}

void Model_setString(char **field, const char *s, size_t len)
{
    if (!s) {
        s = "";
        len = 0;
    } else if (len == SIZE_MAX) {
        len = strnlen(s, MODEL_MAX_STR + 4);
    }
    if (len > MODEL_MAX_STR)
        len = MODEL_MAX_STR;
    if (*field && strlen(*field) == len && !memcmp(*field, s, len))
        return;                          /* unchanged: common for deltas */
    char *out = xcalloc(3 * len + 1, 1); /* each invalid byte may become U+FFFD */
    size_t i = 0, o = 0;
    while (i < len) {
        unsigned char c = (unsigned char)s[i];
        if (c == 0)
            break;
        size_t l = c < 0x80 ? 1 : utf8_len((const unsigned char *)s + i, len - i);
        if (l == 0) {
            memcpy(out + o, "\xef\xbf\xbd", 3); /* U+FFFD */
            o += 3;
            i++;
            continue;
        }
        memcpy(out + o, s + i, l);
        o += l;
        i += l;
    }
    out[o] = '\0';
    free(*field);
    *field = out;
}

void Model_init(Model *this)
{
    memset(this, 0, sizeof *this);
    Model_setString(&this->program, "?", 1);
    Model_setString(&this->runtime_version, "", 0);
    Model_setString(&this->argv, "", 0);
}

static void task_free(Task *t)
{
    free(t->name);
    free(t->waits_on);
    free(t->created_at);
    free(t->where);
    free(t);
}

void Stack_free(Stack *s)
{
    for (uint32_t i = 0; i < s->n; i++) {
        free(s->f[i].func);
        free(s->f[i].file);
        free(s->f[i].build_id);
    }
    free(s->f);
    s->f = NULL;
    s->n = 0;
}

int Stack_push(Stack *s, const char *func, size_t func_len, const char *file, size_t file_len,
               uint32_t line, uint64_t addr)
{
    if (s->n >= MODEL_MAX_FRAMES)
        return -1;
    s->f = xrealloc(s->f, (s->n + 1) * sizeof *s->f);
    StackFrame *f = &s->f[s->n++];
    memset(f, 0, sizeof *f);
    bool has = func && (func_len == SIZE_MAX ? func[0] != '\0' : func_len > 0);
    Model_setString(&f->func, has ? func : "?", has ? func_len : 1);
    if (file)
        Model_setString(&f->file, file, file_len);
    f->line = line;
    f->addr = addr;
    return 0;
}

char *BuildId_dup(const char *hex)
{
    if (hex == NULL)
        return NULL;
    size_t n = 0;
    while (n <= 80 && ((hex[n] >= '0' && hex[n] <= '9') || (hex[n] >= 'a' && hex[n] <= 'f')))
        n++;
    if (hex[n] != '\0' || n < 2 || n > 80)
        return NULL;
    char *c = xcalloc(n + 1, 1);
    memcpy(c, hex, n);
    return c;
}

void Stack_setBuildId(Stack *s, const char *hex)
{
    if (s->n == 0)
        return;
    StackFrame *f = &s->f[s->n - 1];
    free(f->build_id);
    f->build_id = BuildId_dup(hex);
}

void Profile_free(Profile *p)
{
    if (p == NULL)
        return;
    for (uint32_t i = 0; i < p->n; i++)
        Stack_free(&p->stack[i]);
    free(p);
}

void SlowEvent_free(SlowEvent *ev)
{
    Profile_free(ev->profile);
    free(ev->callback);
    free(ev->site);
    free(ev->task_name);
    Stack_free(&ev->stack);
    Stack_free(&ev->scheduled_from);
    memset(ev, 0, sizeof *ev);
}

void ExcEvent_free(ExcEvent *ev)
{
    free(ev->domain);
    free(ev->message);
    free(ev->site);
    free(ev->object);
    Stack_free(&ev->raised);
    Stack_free(&ev->stack);
    memset(ev, 0, sizeof *ev);
}

void Model_clearDetail(Model *this, uint64_t id)
{
    free(this->detail_wait);
    free(this->detail_error);
    free(this->detail_status);
    this->detail_wait = this->detail_error = this->detail_status = NULL;
    Stack_free(&this->detail_create);
    Stack_free(&this->detail_suspend);
    free(this->detail_children);
    this->detail_children = NULL;
    this->detail_nchildren = 0;
    memset(this->detail_hist, 0, sizeof this->detail_hist);
    this->detail_id = id;
    this->detail_ready = false;
}

void Model_done(Model *this)
{
    for (uint32_t i = 0; i < this->ntasks; i++)
        task_free(this->tasks[i]);
    free(this->tasks);
    free(this->hash);
    for (unsigned i = 0; i < MODEL_MAX_SLOW; i++)
        SlowEvent_free(&this->slow[i]);
    for (uint32_t i = 0; i < this->nsites; i++)
        free(this->sites[i].site);
    free(this->sites);
    for (unsigned i = 0; i < MODEL_MAX_EXC; i++)
        ExcEvent_free(&this->exc[i]);
    for (uint32_t i = 0; i < this->loop.nhandles; i++)
        free(this->loop.handles[i].name);
    for (uint32_t i = 0; i < this->ndropped; i++)
        free(this->dropped[i].name);
    Model_clearDetail(this, 0);
    free(this->program);
    free(this->argv);
    free(this->runtime_version);
    free(this->blocked_callback);
    free(this->blocked_task);
    Stack_free(&this->blocked_stack);
    Profile_free(this->blocked_profile);
    memset(this, 0, sizeof *this);
}

void Model_reset(Model *this)
{
    /* gen never goes back: views built from the old tasks compare it to know they are stale */
    uint64_t gen = this->gen, slow_gen = this->slow_gen;
    Model_done(this);
    Model_init(this);
    this->gen = gen + 1;
    this->slow_gen = slow_gen + 1;
}

void Model_resetLoop(Model *this)
{
    /* what is about the process survives; the rest is the loop's */
    LoopInfo *loops = xcalloc(MODEL_MAX_LOOPS, sizeof *loops);
    memcpy(loops, this->loops, sizeof this->loops);
    uint32_t nloops = this->nloops, seen = this->loops_seen;
    uint64_t pid = this->pid, start = this->start_wall_ns, thr = this->slow_threshold_ns;
    bool debug = this->debug;
    uint32_t proto = this->protocol;
    uint64_t gen = this->gen, slow_gen = this->slow_gen; /* never back: see Model_reset */
    char *program = this->program, *argv = this->argv, *rt = this->runtime_version;
    this->program = this->argv = this->runtime_version = NULL;
    Model_done(this);
    Model_init(this);
    free(this->program);
    free(this->argv);
    free(this->runtime_version);
    this->program = program;
    this->argv = argv;
    this->runtime_version = rt;
    this->pid = pid;
    this->start_wall_ns = start;
    this->slow_threshold_ns = thr;
    this->debug = debug;
    this->protocol = proto;
    memcpy(this->loops, loops, sizeof this->loops);
    this->nloops = nloops;
    this->loops_seen = seen;
    this->gen = gen + 1;
    this->slow_gen = slow_gen + 1;
    free(loops);
}

/* ---- loops ----------------------------------------------------------------- */

/* Copies s into a fixed buffer, sanitised as Model_setString does, cut on a character. */
static void copy_fixed(char *dst, size_t cap, const char *s)
{
    char *tmp = NULL;
    Model_setString(&tmp, s, SIZE_MAX);
    size_t n = strlen(tmp);
    if (n >= cap) {
        n = cap - 1;
        while (n > 0 && ((unsigned char)tmp[n] & 0xc0) == 0x80)
            n--; /* do not split a UTF-8 sequence */
    }
    memcpy(dst, tmp, n);
    dst[n] = '\0';
    free(tmp);
}

static int loop_index(const Model *this, uint32_t id)
{
    for (uint32_t i = 0; i < this->nloops; i++)
        if (this->loops[i].id == id)
            return (int)i;
    return -1;
}

const LoopInfo *Model_loop(const Model *this, uint32_t id)
{
    int i = loop_index(this, id);
    return i < 0 ? NULL : &this->loops[i];
}

bool Model_showsRequests(const Model *this)
{
    const LoopInfo *l = Model_loop(this, this->loop_id);
    return l != NULL && strcmp(l->kind, "uv") == 0;
}

/* A new entry for id, kept in id order; NULL when the table is full of live loops. */
static LoopInfo *loop_insert(Model *this, uint32_t id)
{
    if (this->nloops == MODEL_MAX_LOOPS) {
        uint32_t victim = MODEL_MAX_LOOPS;
        for (uint32_t i = 0; i < this->nloops && victim == MODEL_MAX_LOOPS; i++)
            if (this->loops[i].gone && this->loops[i].id != this->loop_id)
                victim = i;
        if (victim == MODEL_MAX_LOOPS)
            return NULL;
        memmove(&this->loops[victim], &this->loops[victim + 1],
                (this->nloops - victim - 1) * sizeof this->loops[0]);
        this->nloops--;
    }
    uint32_t at = 0;
    while (at < this->nloops && this->loops[at].id < id)
        at++;
    memmove(&this->loops[at + 1], &this->loops[at], (this->nloops - at) * sizeof this->loops[0]);
    this->nloops++;
    LoopInfo *l = &this->loops[at];
    memset(l, 0, sizeof *l);
    l->id = id;
    return l;
}

static void loop_rates(LoopInfo *l, const LoopRow *r, uint64_t ts)
{
    /* busy_ns counts finished callbacks: the one running now counts too, so a stuck loop
     * reads 100% (as the header's utilisation does, Applier.c) */
    uint64_t busy = r->busy_ns + (r->running_ns < ts ? r->running_ns : 0);
    if (l->have_prev && ts > l->prev_ts) {
        uint64_t db = busy >= l->prev_busy ? busy - l->prev_busy : 0;
        uint64_t di = r->idle_ns >= l->prev_idle ? r->idle_ns - l->prev_idle : 0;
        uint64_t dc = r->callbacks >= l->prev_callbacks ? r->callbacks - l->prev_callbacks : 0;
        l->utilisation = db + di ? (double)db / (double)(db + di) : 0;
        l->callbacks_per_s = (double)dc * 1e9 / (double)(ts - l->prev_ts);
    } else if (!l->have_prev) {
        uint64_t t = busy + r->idle_ns;
        l->utilisation = t ? (double)busy / (double)t : 0;
        l->callbacks_per_s = ts ? (double)r->callbacks * 1e9 / (double)ts : 0;
    }
    if (l->utilisation > 1)
        l->utilisation = 1;
    l->have_prev = true;
    l->prev_ts = ts;
    l->prev_busy = busy;
    l->prev_idle = r->idle_ns;
    l->prev_callbacks = r->callbacks;
    l->slow = r->slow;
    l->pending = r->pending;
    l->running_ns = r->running_ns;
    l->has_stats = true;
}

void Model_setLoops(Model *this, const LoopRow *rows, uint32_t n, uint64_t ts_ns)
{
    /* first the loops no longer listed: closed (they may make room for new ones) */
    for (uint32_t i = 0; i < this->nloops; i++) {
        bool listed = false;
        for (uint32_t k = 0; k < n && !listed; k++)
            listed = rows[k].id == this->loops[i].id;
        if (!listed)
            this->loops[i].gone = true;
    }
    for (uint32_t k = 0; k < n; k++) {
        const LoopRow *r = &rows[k];
        int i = loop_index(this, r->id);
        LoopInfo *l = i >= 0 ? &this->loops[i] : loop_insert(this, r->id);
        if (!l) {
            this->rejected++;
            continue;
        }
        if (l->gone)
            continue; /* ids are not reused: a closed loop stays closed */
        l->tid = r->tid;
        l->addr = r->addr;
        copy_fixed(l->name, sizeof l->name, r->name);
        copy_fixed(l->thread, sizeof l->thread, r->thread);
        copy_fixed(l->kind, sizeof l->kind, r->kind);
        if (r->has_stats)
            loop_rates(l, r, ts_ns);
    }
    uint32_t live = Model_liveLoops(this);
    if (live > this->loops_seen)
        this->loops_seen = live;
    const LoopInfo *cur = Model_loop(this, this->loop_id);
    if (cur && cur->gone)
        this->loop_gone = true;
}

uint32_t Model_liveLoops(const Model *this)
{
    uint32_t n = 0;
    for (uint32_t i = 0; i < this->nloops; i++)
        n += !this->loops[i].gone;
    return n;
}

uint32_t Model_loopPosition(const Model *this, uint32_t id)
{
    uint32_t pos = 0;
    for (uint32_t i = 0; i < this->nloops; i++) {
        if (this->loops[i].gone)
            continue;
        pos++;
        if (this->loops[i].id == id)
            return pos;
    }
    return 0;
}

bool Model_nextLoop(const Model *this, uint32_t from, int dir, uint32_t *out)
{
    assert(dir != 0);
    const LoopInfo *best = NULL, *wrap = NULL;
    for (uint32_t i = 0; i < this->nloops; i++) {
        const LoopInfo *l = &this->loops[i];
        if (l->gone || l->id == from)
            continue;
        if (dir > 0) {
            if (l->id > from && (!best || l->id < best->id))
                best = l;
            if (!wrap || l->id < wrap->id)
                wrap = l;
        } else {
            if (l->id < from && (!best || l->id > best->id))
                best = l;
            if (!wrap || l->id > wrap->id)
                wrap = l;
        }
    }
    if (!best)
        best = wrap;
    if (!best)
        return false;
    *out = best->id;
    return true;
}

bool Model_fallbackLoop(const Model *this, uint32_t *out)
{
    for (uint32_t i = 0; i < this->nloops; i++)
        if (!this->loops[i].gone) { /* id order: 0, the main loop, comes first */
            *out = this->loops[i].id;
            return true;
        }
    return false;
}

bool LoopInfo_blocked(const LoopInfo *l, const Model *m)
{
    return !l->gone && l->has_stats && m->slow_threshold_ns &&
           l->running_ns >= m->slow_threshold_ns;
}

void LoopInfo_describe(const LoopInfo *l, char *buf, size_t len)
{
    size_t o = 0;
    int k;
    buf[0] = '\0';
#define PUT(...)                                                                                   \
    do {                                                                                           \
        k = snprintf(buf + o, len - o, __VA_ARGS__);                                               \
        if (k > 0)                                                                                 \
            o = o + (size_t)k < len ? o + (size_t)k : len - 1;                                     \
    } while (0)
    if (l->tid)
        PUT("thread %llu", (unsigned long long)l->tid);
    if (l->thread[0])
        PUT("%s'%s'", o ? " " : "thread ", l->thread);
    if (l->kind[0] || l->addr) {
        PUT("%s%s%sloop", o ? ", " : "", l->kind[0] ? l->kind : "", l->kind[0] ? " " : "");
        if (l->addr)
            PUT(" 0x%llx", (unsigned long long)l->addr);
    }
    if (!o)
        PUT("%s", l->name[0] ? l->name : "loop");
#undef PUT
}

/* ---- the task table ------------------------------------------------------ */

static uint32_t hash_id(uint64_t id)
{
    id ^= id >> 33;
    id *= 0xff51afd7ed558ccdull;
    id ^= id >> 33;
    return (uint32_t)id;
}

static void hash_rebuild(Model *this, uint32_t hcap)
{
    free(this->hash);
    this->hcap = hcap;
    this->hash = xcalloc(hcap, sizeof *this->hash);
    for (uint32_t i = 0; i < this->ntasks; i++) {
        uint32_t h = hash_id(this->tasks[i]->id) & (hcap - 1);
        while (this->hash[h])
            h = (h + 1) & (hcap - 1);
        this->hash[h] = i + 1;
    }
}

/* Slot in hash of id, or of the empty slot where it would go. */
static uint32_t hash_slot(const Model *this, uint64_t id)
{
    uint32_t h = hash_id(id) & (this->hcap - 1);
    while (this->hash[h] && this->tasks[this->hash[h] - 1]->id != id)
        h = (h + 1) & (this->hcap - 1);
    return h;
}

Task *Model_findTask(const Model *this, uint64_t id)
{
    if (!this->hcap || id == 0)
        return NULL;
    uint32_t h = hash_slot(this, id);
    return this->hash[h] ? this->tasks[this->hash[h] - 1] : NULL;
}

static bool state_finished(unsigned s)
{
    return s == TS_DONE || s == TS_CANCELLED || s == TS_FAILED;
}

int Model_upsertTask(Model *this, const TaskRow *row, uint64_t now_ms)
{
    if (row->id == 0 || row->state < 0 || row->state >= TS_COUNT) {
        this->rejected++;
        return -1;
    }
    Task *t = Model_findTask(this, row->id);
    if (!t) {
        if (this->ntasks >= MODEL_MAX_TASKS) {
            this->rejected++;
            return -1;
        }
        if (this->ntasks == this->cap) {
            this->cap = this->cap ? this->cap * 2 : 1024;
            this->tasks = xrealloc(this->tasks, this->cap * sizeof *this->tasks);
        }
        if ((uint64_t)(this->ntasks + 1) * 2 > this->hcap)
            hash_rebuild(this, this->hcap ? this->hcap * 2 : 2048);
        t = xcalloc(1, sizeof *t);
        t->id = row->id;
        t->state = TS_COUNT; /* not counted yet */
        uint32_t h = hash_slot(this, row->id);
        this->tasks[this->ntasks] = t;
        this->hash[h] = ++this->ntasks;
    }
    if (t->state < TS_COUNT && !t->gone_ms)
        this->by_state[t->state]--;
    t->parent = row->parent == row->id ? 0 : row->parent;
    Model_setString(&t->name, row->name, row->name ? row->name_len : 0);
    Model_setString(&t->waits_on, row->waits_on, row->waits_on ? row->waits_on_len : 0);
    Model_setString(&t->created_at, row->created_at, row->created_at ? row->created_at_len : 0);
    Model_setString(&t->where, row->where, row->where ? row->where_len : 0);
    t->stack_key = row->stack_key;
    t->group_key = row->group_key;
    t->waits_described = row->waits_described;
    t->state = (uint8_t)row->state;
    t->created_ns = row->created_ns;
    t->wait_since_ns = row->wait_since_ns;
    t->busy_ns = row->busy_ns;
    t->steps = row->steps;
    if (state_finished(t->state)) {
        if (!t->gone_ms) {
            t->gone_ms = now_ms ? now_ms : 1;
            this->nlinger++;
        }
    } else {
        if (t->gone_ms)
            this->nlinger--;
        t->gone_ms = 0;
        this->by_state[t->state]++;
    }
    this->gen++;
    return 0;
}

void Model_removeTask(Model *this, uint64_t id, uint64_t now_ms, int final_state)
{
    Task *t = Model_findTask(this, id);
    if (!t || t->gone_ms)
        return;
    this->by_state[t->state]--;
    t->gone_ms = now_ms ? now_ms : 1;
    /* Gone means ended and released. How it ended, when the process says so (it may have
     * been cancelled and released within one interval, never sent as cancelled); else a
     * task last seen pending ended normally, so it lingers as done, waiting on nothing. */
    bool finished =
        final_state == TS_DONE || final_state == TS_CANCELLED || final_state == TS_FAILED;
    if (finished)
        t->state = (uint8_t)final_state;
    if (t->state != TS_DONE && t->state != TS_CANCELLED && t->state != TS_FAILED)
        t->state = TS_DONE;
    if (finished || t->state == TS_DONE) {
        Model_setString(&t->waits_on, "", 0);
        t->waits_described = false;
        t->wait_since_ns = 0;
    }
    this->nlinger++;
    this->gen++;
}

void Model_dropTasks(Model *this)
{
    for (uint32_t i = 0; i < this->ntasks; i++)
        task_free(this->tasks[i]);
    this->ntasks = 0;
    this->nlinger = 0;
    memset(this->by_state, 0, sizeof this->by_state);
    if (this->hcap)
        memset(this->hash, 0, this->hcap * sizeof *this->hash);
    this->gen++;
}

uint32_t Model_purge(Model *this, uint64_t now_ms)
{
    if (!this->nlinger)
        return 0;
    uint32_t o = 0, freed = 0;
    for (uint32_t i = 0; i < this->ntasks; i++) {
        Task *t = this->tasks[i];
        if (t->gone_ms && now_ms >= t->gone_ms + MODEL_LINGER_MS) {
            task_free(t);
            freed++;
        } else {
            this->tasks[o++] = t;
        }
    }
    if (freed) {
        this->ntasks = o;
        this->nlinger -= freed;
        hash_rebuild(this, this->hcap);
        this->gen++;
    }
    return freed;
}

/* ---- histograms ---------------------------------------------------------- */

unsigned Hist_bucket(uint64_t ns)
{
    uint64_t us = ns / 1000;
    if (us == 0)
        return 0;
    unsigned b = 64u - (unsigned)__builtin_clzll(us); /* us in [2^(b-1), 2^b) */
    return b < MODEL_HIST_BUCKETS ? b : MODEL_HIST_BUCKETS - 1;
}

uint64_t Hist_bucketMax(unsigned b)
{
    assert(b < MODEL_HIST_BUCKETS);
    return (1ull << b) * 1000ull;
}

uint64_t SlowSite_percentile(const SlowSite *s, double p)
{
    at_wire_hist_t h = {AT_WIRE_HIST_BUCKETS, s->hist};
    return at_wire_hist_quantile(&h, p / 100.0, s->min_ns, s->max_ns);
}

/* ---- slow callbacks and exceptions --------------------------------------- */

static void ensure_str(char **s)
{
    if (!*s)
        Model_setString(s, "", 0);
}

SlowSite *Model_site(Model *this, const char *name)
{
    char *key = NULL;
    Model_setString(&key, name, SIZE_MAX);
    for (uint32_t i = 0; i < this->nsites; i++)
        if (!strcmp(this->sites[i].site, key)) {
            free(key);
            return &this->sites[i];
        }
    if (this->nsites >= MODEL_MAX_SITES) {
        free(key);
        this->rejected++;
        return NULL;
    }
    if (!(this->nsites & (this->nsites - 1)) || this->nsites == 0)
        this->sites =
            xrealloc(this->sites, (this->nsites ? this->nsites * 2 : 8) * sizeof *this->sites);
    SlowSite *site = &this->sites[this->nsites++];
    memset(site, 0, sizeof *site);
    site->site = key;
    this->slow_gen++;
    return site;
}

void Model_addSlow(Model *this, SlowEvent *ev)
{
    if (!ev->callback)
        Model_setString(&ev->callback, "?", 1);
    if (!ev->site || !ev->site[0])
        Model_setString(&ev->site, ev->callback, SIZE_MAX);
    ensure_str(&ev->task_name);
    SlowEvent *slot = &this->slow[this->nslow % MODEL_MAX_SLOW];
    SlowEvent_free(slot);
    *slot = *ev;
    memset(ev, 0, sizeof *ev);
    this->nslow++;
    this->slow_gen++;

    SlowSite *site = Model_site(this, slot->site);
    if (!site)
        return;
    if (site->count == 0 || slot->duration_ns < site->min_ns)
        site->min_ns = slot->duration_ns;
    site->count++;
    site->total_ns += slot->duration_ns;
    if (slot->duration_ns > site->max_ns)
        site->max_ns = slot->duration_ns;
    site->hist[at_wire_hist_index(slot->duration_ns)]++;
}

uint64_t Model_slowCount(const Model *this)
{
    return this->nslow < MODEL_MAX_SLOW ? this->nslow : MODEL_MAX_SLOW;
}

const SlowEvent *Model_slowAt(const Model *this, uint64_t i)
{
    if (i >= Model_slowCount(this))
        return NULL;
    return &this->slow[(this->nslow - 1 - i) % MODEL_MAX_SLOW];
}

void Model_addException(Model *this, ExcEvent *ev)
{
    if (ev->kind >= EXC_COUNT)
        ev->kind = EXC_WARNING;
    ensure_str(&ev->domain);
    if (!ev->severity)
        ev->severity = ev->kind == EXC_WARNING ? "warning" : "error";
    ensure_str(&ev->object);
    ensure_str(&ev->message);
    ensure_str(&ev->site);
    ExcEvent *slot = &this->exc[this->nexc % MODEL_MAX_EXC];
    ExcEvent_free(slot);
    *slot = *ev;
    memset(ev, 0, sizeof *ev);
    this->nexc++;
    this->exc_by_kind[slot->kind]++;
}

uint64_t Model_excCount(const Model *this)
{
    return this->nexc < MODEL_MAX_EXC ? this->nexc : MODEL_MAX_EXC;
}

const ExcEvent *Model_excAt(const Model *this, uint64_t i)
{
    if (i >= Model_excCount(this))
        return NULL;
    return &this->exc[(this->nexc - 1 - i) % MODEL_MAX_EXC];
}

/* ---- loop, dropped, blocked ---------------------------------------------- */

void Model_setLoop(Model *this, const LoopStats *in)
{
    LoopStats *l = &this->loop;
    for (uint32_t i = 0; i < l->nhandles; i++)
        free(l->handles[i].name);
    uint32_t nh = in->nhandles < MODEL_MAX_HANDLES ? in->nhandles : MODEL_MAX_HANDLES;
    *l = *in;
    l->nhandles = nh;
    for (uint32_t i = 0; i < nh; i++) {
        l->handles[i].name = NULL;
        Model_setString(&l->handles[i].name, in->handles[i].name, SIZE_MAX);
    }
    if (!(l->utilisation >= 0)) /* also catches NaN */
        l->utilisation = 0;
    if (l->utilisation > 1)
        l->utilisation = 1;
    if (!(l->callbacks_per_s >= 0) || l->callbacks_per_s > 1e12)
        l->callbacks_per_s = 0;
    unsigned h = this->nhistory % MODEL_HISTORY;
    this->util_hist[h] = (float)l->utilisation;
    this->lag_hist_ms[h] = (float)((double)l->lag_p99_ns / 1e6);
    this->nhistory++;
}

void Model_setDropped(Model *this, const char *name, size_t len, uint64_t value)
{
    char *tmp = NULL;
    Model_setString(&tmp, name, len);
    for (uint32_t i = 0; i < this->ndropped; i++)
        if (!strcmp(this->dropped[i].name, tmp)) {
            this->dropped[i].value = value;
            free(tmp);
            return;
        }
    if (this->ndropped >= MODEL_MAX_DROPPED) {
        free(tmp);
        this->rejected++;
        return;
    }
    this->dropped[this->ndropped].name = tmp;
    this->dropped[this->ndropped++].value = value;
}

uint64_t Model_droppedTotal(const Model *this)
{
    uint64_t sum = 0;
    for (uint32_t i = 0; i < this->ndropped; i++)
        sum += this->dropped[i].value;
    return sum;
}

void Model_setBlockedProfile(Model *this, Profile *p)
{
    Profile_free(this->blocked_profile);
    this->blocked_profile = p;
}

void Model_setBlocked(Model *this, bool blocked, uint64_t for_ns, const char *callback,
                      const char *task, Stack *stack, uint64_t now_ms)
{
    this->blocked = blocked;
    this->blocked_for_ns = blocked ? for_ns : 0;
    this->blocked_local_ms = now_ms;
    Model_setString(&this->blocked_callback, callback, SIZE_MAX);
    Model_setString(&this->blocked_task, task, SIZE_MAX);
    Stack_free(&this->blocked_stack);
    if (!blocked)
        Model_setBlockedProfile(this, NULL);
    if (stack) {
        this->blocked_stack = *stack;
        stack->n = 0;
        stack->f = NULL;
    }
}

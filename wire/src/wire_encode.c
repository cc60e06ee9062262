/* wire_encode.c: deterministic CBOR encoders for every v1 message, appending whole frames to a
 * buffer. */
#include "at_wire.h"
#include "at_wire_frame.h"
#include "wire_internal.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

/* Encoder state: the buffer and a latched error (ENOMEM). Every put_*
 * helper is a no-op once err is set; the frame function rolls back. */
typedef struct enc {
    at_wire_buf_t *b;
    int err;
} enc_t;

void at_wire_buf_init(at_wire_buf_t *b)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
}

void at_wire_buf_free(at_wire_buf_t *b)
{
    free(b->data);
    at_wire_buf_init(b);
}

void at_wire_buf_reset(at_wire_buf_t *b)
{
    b->len = 0;
}

static int reserve_slow(enc_t *e, size_t need)
{
    at_wire_buf_t *b = e->b;
    size_t cap = b->cap ? b->cap : 256;
    while (cap - b->len < need) {
        if (cap > SIZE_MAX / 2) {
            e->err = AT_WIRE_ENOMEM;
            return 0;
        }
        cap *= 2;
    }
    uint8_t *p = realloc(b->data, cap);
    if (!p) {
        e->err = AT_WIRE_ENOMEM;
        return 0;
    }
    b->data = p;
    b->cap = cap;
    return 1;
}

static inline int reserve(enc_t *e, size_t need)
{
    if (e->err)
        return 0;
    if (e->b->cap - e->b->len >= need)
        return 1;
    return reserve_slow(e, need);
}

/* A CBOR head (major type + argument) in its shortest form. */
static inline void put_head(enc_t *e, unsigned major, uint64_t v)
{
    if (!reserve(e, 9))
        return;
    uint8_t *p = e->b->data + e->b->len;
    uint8_t m = (uint8_t)(major << 5);
    if (v < 24) {
        p[0] = m | (uint8_t)v;
        e->b->len += 1;
    } else if (v <= 0xff) {
        p[0] = m | 24;
        p[1] = (uint8_t)v;
        e->b->len += 2;
    } else if (v <= 0xffff) {
        p[0] = m | 25;
        p[1] = (uint8_t)(v >> 8);
        p[2] = (uint8_t)v;
        e->b->len += 3;
    } else if (v <= 0xffffffffu) {
        p[0] = m | 26;
        p[1] = (uint8_t)(v >> 24);
        p[2] = (uint8_t)(v >> 16);
        p[3] = (uint8_t)(v >> 8);
        p[4] = (uint8_t)v;
        e->b->len += 5;
    } else {
        p[0] = m | 27;
        for (int i = 0; i < 8; i++)
            p[1 + i] = (uint8_t)(v >> (56 - 8 * i));
        e->b->len += 9;
    }
}

static inline void put_uint(enc_t *e, uint64_t v)
{
    put_head(e, 0, v);
}

static void put_int(enc_t *e, int64_t v)
{
    if (v >= 0)
        put_head(e, 0, (uint64_t)v);
    else
        put_head(e, 1, (uint64_t)(-(v + 1)));
}

static inline void put_simple(enc_t *e, uint8_t byte)
{
    if (!reserve(e, 1))
        return;
    e->b->data[e->b->len++] = byte;
}

static inline void put_bool(enc_t *e, bool v)
{
    put_simple(e, v ? 0xf5 : 0xf4);
}

static inline void put_null(enc_t *e)
{
    put_simple(e, 0xf6);
}

/* Text string; NULL is encoded as null. Invalid UTF-8 bytes become '?'. */
static void put_text(enc_t *e, const char *s)
{
    if (!s) {
        put_null(e);
        return;
    }
    size_t n = strlen(s);
    put_head(e, 3, n);
    if (!reserve(e, n))
        return;
    uint8_t *dst = e->b->data + e->b->len;
    memcpy(dst, s, n); // NOLINT(bugprone-not-null-terminated-result): CBOR text has a length
    e->b->len += n;
    if (!at__wire_utf8_ok(dst, n)) {
        /* Slow path: replace each byte that does not start a valid sequence. */
        size_t i = 0;
        while (i < n) {
            size_t k = 1;
            uint8_t c = dst[i];
            if (c >= 0xc0 && c < 0xf8)
                k = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : 2;
            if (c >= 0x80 && !(k > 1 && i + k <= n && at__wire_utf8_ok(dst + i, k))) {
                dst[i] = '?';
                k = 1;
            }
            i += k;
        }
    }
}

/* Key strings are short ASCII literals. */
static inline void put_key(enc_t *e, const char *k)
{
    size_t n = strlen(k);
    assert(n < 24);
    if (!reserve(e, n + 1))
        return;
    e->b->data[e->b->len++] = (uint8_t)(0x60 | n);
    memcpy(e->b->data + e->b->len, k, n);
    e->b->len += n;
}

/* Maps: every map we write has fewer than 24 pairs, so the head is one
 * byte, written as a placeholder and patched when the count is known. */
static inline size_t map_begin(enc_t *e)
{
    put_simple(e, 0xa0);
    return e->b->len - 1;
}

static inline void map_end(enc_t *e, size_t at, unsigned n)
{
    assert(n < 24);
    if (!e->err)
        e->b->data[at] = (uint8_t)(0xa0 | n);
}

#define KV_UINT(e, n, k, v)                                                                        \
    do {                                                                                           \
        put_key(e, k);                                                                             \
        put_uint(e, v);                                                                            \
        (n)++;                                                                                     \
    } while (0)
/* Optional uint: left out when 0. */
#define KV_UINT0(e, n, k, v)                                                                       \
    do {                                                                                           \
        if ((v) != 0)                                                                              \
            KV_UINT(e, n, k, v);                                                                   \
    } while (0)
#define KV_TEXT(e, n, k, v)                                                                        \
    do {                                                                                           \
        put_key(e, k);                                                                             \
        put_text(e, v);                                                                            \
        (n)++;                                                                                     \
    } while (0)
/* Optional text: left out when NULL. */
#define KV_TEXT0(e, n, k, v)                                                                       \
    do {                                                                                           \
        if ((v) != NULL)                                                                           \
            KV_TEXT(e, n, k, v);                                                                   \
    } while (0)
#define KV_BOOL(e, n, k, v)                                                                        \
    do {                                                                                           \
        put_key(e, k);                                                                             \
        put_bool(e, v);                                                                            \
        (n)++;                                                                                     \
    } while (0)

/* Starts a message map with "t" and "v"; returns the map's position. */
static size_t msg_begin(enc_t *e, int type, unsigned *n)
{
    size_t at = map_begin(e);
    put_key(e, "t");
    put_text(e, at__wire_type_names[type]);
    put_key(e, "v");
    put_uint(e, AT_WIRE_VERSION);
    *n = 2;
    return at;
}

static void put_caps(enc_t *e, uint32_t bits)
{
    unsigned n = 0;
    for (unsigned i = 0; i < AT_WIRE_CAP_COUNT; i++)
        n += (bits >> i) & 1u;
    put_head(e, 4, n);
    for (unsigned i = 0; i < AT_WIRE_CAP_COUNT; i++)
        if ((bits >> i) & 1u)
            put_text(e, at__wire_cap_names[i]);
}

static void put_config(enc_t *e, const at_wire_config_t *c)
{
    unsigned n = 0;
    size_t at = map_begin(e);
    if (c->has_slow_ns)
        KV_UINT(e, n, "slow_ns", c->slow_ns);
    if (c->has_debug)
        KV_BOOL(e, n, "debug", c->debug);
    map_end(e, at, n);
}

static void put_loc(enc_t *e, const at_wire_loc_t *l)
{
    put_head(e, 4, l->build_id != NULL ? 5 : 4);
    put_uint(e, l->addr);
    put_text(e, l->func);
    put_text(e, l->file);
    put_uint(e, l->line);
    if (l->build_id != NULL)
        put_text(e, l->build_id);
}

static void put_locs(enc_t *e, uint32_t n, const at_wire_loc_t *l)
{
    put_head(e, 4, n);
    for (uint32_t i = 0; i < n; i++)
        put_loc(e, &l[i]);
}

static void put_ids(enc_t *e, uint32_t n, const uint64_t *ids)
{
    put_head(e, 4, n);
    for (uint32_t i = 0; i < n; i++)
        put_uint(e, ids[i]);
}

static void put_hist(enc_t *e, const at_wire_hist_t *h)
{
    uint32_t n = h->n;
    while (n > 0 && h->counts[n - 1] == 0)
        n--; /* trailing empty buckets are left out */
    put_head(e, 4, n);
    for (uint32_t i = 0; i < n; i++)
        put_uint(e, h->counts[i]);
}

static void put_counts(enc_t *e, uint32_t n, const at_wire_count_t *c)
{
    put_head(e, 4, n);
    for (uint32_t i = 0; i < n; i++) {
        put_head(e, 4, 2);
        put_text(e, c[i].name);
        put_uint(e, c[i].n);
    }
}

static void put_task_row(enc_t *e, const at_wire_task_t *t)
{
    put_head(e, 4, t->wait_desc ? 14 : 13);
    put_uint(e, t->id);
    put_text(e, t->name);
    put_uint(e, t->state);
    put_uint(e, t->wait_kind);
    put_uint(e, t->wait_obj);
    put_uint(e, t->wait_since_us);
    put_uint(e, t->busy_ns);
    put_uint(e, t->steps);
    put_uint(e, t->parent);
    put_uint(e, t->created_us);
    put_uint(e, t->create_site);
    put_uint(e, t->entry_site);
    put_uint(e, t->stack);
    if (t->wait_desc)
        put_text(e, t->wait_desc);
}

static void put_tasks(enc_t *e, uint32_t n, const at_wire_task_t *t)
{
    put_head(e, 4, n);
    for (uint32_t i = 0; i < n; i++)
        put_task_row(e, &t[i]);
}

/* The `profile` key and its map, when p has samples (counted in *n). */
static void put_profile(enc_t *e, unsigned *n, const at_wire_profile_t *p)
{
    if (p->samples == 0)
        return;
    put_key(e, "profile");
    unsigned m = 0;
    size_t at = map_begin(e);
    KV_UINT(e, m, "samples", p->samples);
    KV_UINT(e, m, "interval_ns", p->interval_ns);
    KV_UINT0(e, m, "other", p->other);
    put_key(e, "stacks");
    put_head(e, 4, p->n_stacks);
    for (uint32_t i = 0; i < p->n_stacks; i++) {
        put_head(e, 4, 2);
        put_uint(e, p->stacks[i].stack);
        put_uint(e, p->stacks[i].count);
    }
    m++;
    map_end(e, at, m);
    (*n)++;
}

static void put_running(enc_t *e, const at_wire_running_t *r)
{
    unsigned n = 0;
    size_t at = map_begin(e);
    KV_UINT(e, n, "since_ns", r->since_ns);
    KV_UINT(e, n, "kind", r->kind);
    KV_UINT0(e, n, "site", r->site);
    KV_TEXT0(e, n, "name", r->name);
    KV_UINT0(e, n, "task", r->task);
    KV_UINT0(e, n, "stack", r->stack);
    KV_TEXT0(e, n, "task_name", r->task_name);
    put_profile(e, &n, &r->profile);
    map_end(e, at, n);
}

static void put_stats(enc_t *e, const at_wire_loop_stats_t *s)
{
    unsigned n = 0;
    size_t at = map_begin(e);
    KV_UINT(e, n, "busy_ns", s->busy_ns);
    KV_UINT(e, n, "idle_ns", s->idle_ns);
    KV_UINT(e, n, "iterations", s->iterations);
    KV_UINT(e, n, "callbacks", s->callbacks);
    KV_UINT(e, n, "slow", s->slow);
    KV_UINT(e, n, "errors", s->errors);
    put_key(e, "lag");
    put_hist(e, &s->lag);
    n++;
    KV_UINT0(e, n, "lag_max_ns", s->lag_max_ns);
    put_key(e, "tasks");
    put_head(e, 4, AT_WIRE_TASK_NSTATES);
    for (unsigned i = 0; i < AT_WIRE_TASK_NSTATES; i++)
        put_uint(e, s->tasks_by_state[i]);
    n++;
    put_key(e, "handles");
    put_counts(e, s->n_handles, s->handles);
    n++;
    put_key(e, "exec");
    unsigned m = 0;
    size_t at2 = map_begin(e);
    KV_UINT(e, m, "queued", s->exec_queued);
    KV_UINT(e, m, "running", s->exec_running);
    KV_UINT(e, m, "threads", s->exec_threads);
    KV_UINT(e, m, "done", s->exec_done);
    KV_UINT(e, m, "wait_ns", s->exec_wait_ns);
    map_end(e, at2, m);
    n++;
    map_end(e, at, n);
}

static void put_slow(enc_t *e, const at_wire_slow_t *s)
{
    unsigned n = 0;
    size_t at = map_begin(e);
    KV_UINT(e, n, "seq", s->seq);
    KV_UINT(e, n, "start_ns", s->start_ns);
    KV_UINT(e, n, "dur_ns", s->dur_ns);
    KV_UINT(e, n, "kind", s->kind);
    KV_UINT0(e, n, "site", s->site);
    KV_TEXT0(e, n, "name", s->name);
    KV_UINT0(e, n, "task", s->task);
    KV_UINT0(e, n, "stack", s->stack);
    KV_UINT0(e, n, "sched_stack", s->sched_stack);
    put_profile(e, &n, &s->profile);
    map_end(e, at, n);
}

static void put_exc(enc_t *e, const at_wire_exc_t *x)
{
    unsigned n = 0;
    size_t at = map_begin(e);
    KV_UINT(e, n, "seq", x->seq);
    KV_UINT(e, n, "time_ns", x->time_ns);
    KV_UINT(e, n, "kind", x->kind);
    put_key(e, "message");
    put_text(e, x->message ? x->message : "");
    n++;
    if (x->code != 0) {
        put_key(e, "code");
        put_int(e, x->code);
        n++;
    }
    KV_TEXT0(e, n, "domain", x->domain);
    KV_UINT0(e, n, "object", x->object);
    KV_TEXT0(e, n, "obj_type", x->obj_type);
    KV_UINT0(e, n, "task", x->task);
    KV_UINT0(e, n, "raise_stack", x->raise_stack);
    KV_UINT0(e, n, "create_stack", x->create_stack);
    KV_TEXT0(e, n, "severity", x->severity);
    map_end(e, at, n);
}

/* Runs `body` between a reserved length prefix and its patching. */
static int frame_begin(enc_t *e, at_wire_buf_t *b, size_t *start)
{
    e->b = b;
    e->err = 0;
    *start = b->len;
    if (!reserve(e, AT_WIRE_FRAME_HDR))
        return e->err;
    b->len += AT_WIRE_FRAME_HDR;
    return 0;
}

static int frame_end(enc_t *e, size_t start)
{
    at_wire_buf_t *b = e->b;
    if (!e->err) {
        size_t n = b->len - start - AT_WIRE_FRAME_HDR;
        if (n > 0xffffffffu) {
            e->err = AT_WIRE_ELIMIT;
        } else {
            uint8_t *p = b->data + start;
            p[0] = (uint8_t)(n >> 24);
            p[1] = (uint8_t)(n >> 16);
            p[2] = (uint8_t)(n >> 8);
            p[3] = (uint8_t)n;
        }
    }
    if (e->err)
        b->len = start;
    return e->err;
}

/* Loop info rows: 3 elements, 6 with thread/kind/addr, 12 with the counters. */
static void put_loops(enc_t *e, uint32_t n, const at_wire_loop_info_t *l)
{
    put_head(e, 4, n);
    for (uint32_t i = 0; i < n; i++) {
        bool ident = l[i].thread || l[i].kind || l[i].addr || l[i].has_stats;
        put_head(e, 4, l[i].has_stats ? 12 : ident ? 6 : 3);
        put_uint(e, l[i].id);
        put_text(e, l[i].name);
        put_uint(e, l[i].tid);
        if (!ident)
            continue;
        put_text(e, l[i].thread);
        put_text(e, l[i].kind);
        put_uint(e, l[i].addr);
        if (!l[i].has_stats)
            continue;
        put_uint(e, l[i].busy_ns);
        put_uint(e, l[i].idle_ns);
        put_uint(e, l[i].callbacks);
        put_uint(e, l[i].slow);
        put_uint(e, l[i].pending);
        put_uint(e, l[i].running_ns);
    }
}

int at_wire_encode_hello(at_wire_buf_t *b, const at_wire_hello_t *m)
{
    enc_t e;
    size_t start;
    unsigned n;
    if (frame_begin(&e, b, &start))
        return e.err;
    size_t at = msg_begin(&e, AT_WIRE_HELLO, &n);
    KV_UINT(&e, n, "pid", m->pid);
    KV_TEXT(&e, n, "program", m->program ? m->program : "");
    put_key(&e, "argv");
    put_head(&e, 4, m->n_argv);
    for (uint32_t i = 0; i < m->n_argv; i++)
        put_text(&e, m->argv[i] ? m->argv[i] : "");
    n++;
    KV_TEXT(&e, n, "runtime", m->runtime_version ? m->runtime_version : "");
    KV_UINT(&e, n, "start_time_ns", m->start_time_ns);
    KV_UINT(&e, n, "now_ns", m->now_ns);
    put_key(&e, "config");
    put_config(&e, &m->config);
    n++;
    put_key(&e, "caps");
    put_caps(&e, m->caps);
    n++;
    if (m->n_loops) {
        put_key(&e, "loops");
        put_loops(&e, m->n_loops, m->loops);
        n++;
    }
    map_end(&e, at, n);
    return frame_end(&e, start);
}

int at_wire_encode_subscribe(at_wire_buf_t *b, const at_wire_subscribe_t *m)
{
    enc_t e;
    size_t start;
    unsigned n;
    if (frame_begin(&e, b, &start))
        return e.err;
    size_t at = msg_begin(&e, AT_WIRE_SUBSCRIBE, &n);
    KV_UINT(&e, n, "interval_ms", m->interval_ms);
    if (m->what) {
        put_key(&e, "what");
        put_caps(&e, m->what);
        n++;
    }
    KV_UINT0(&e, n, "loop", m->loop);
    map_end(&e, at, n);
    return frame_end(&e, start);
}

int at_wire_encode_update(at_wire_buf_t *b, const at_wire_update_t *m)
{
    enc_t e;
    size_t start;
    unsigned n;
    if (frame_begin(&e, b, &start))
        return e.err;
    size_t at = msg_begin(&e, AT_WIRE_UPDATE, &n);
    KV_UINT(&e, n, "seq", m->seq);
    KV_UINT(&e, n, "ts_ns", m->ts_ns);
    KV_BOOL(&e, n, "full", m->full);
    put_key(&e, "config");
    put_config(&e, &m->config);
    n++;
    KV_UINT0(&e, n, "loop", m->loop);
    if (m->has_stats) {
        put_key(&e, "stats");
        put_stats(&e, &m->stats);
        n++;
    }
    if (m->running.present) {
        put_key(&e, "running");
        put_running(&e, &m->running);
        n++;
    }
    if (m->n_dropped) {
        put_key(&e, "dropped");
        put_counts(&e, m->n_dropped, m->dropped);
        n++;
    }
    if (m->n_sites) {
        put_key(&e, "sites");
        put_head(&e, 4, m->n_sites);
        for (uint32_t i = 0; i < m->n_sites; i++) {
            const at_wire_site_t *s = &m->sites[i];
            put_head(&e, 4, s->loc.build_id != NULL ? 6 : 5);
            put_uint(&e, s->id);
            put_uint(&e, s->loc.addr);
            put_text(&e, s->loc.func);
            put_text(&e, s->loc.file);
            put_uint(&e, s->loc.line);
            if (s->loc.build_id != NULL)
                put_text(&e, s->loc.build_id);
        }
        n++;
    }
    if (m->n_stacks) {
        put_key(&e, "stacks");
        put_head(&e, 4, m->n_stacks);
        for (uint32_t i = 0; i < m->n_stacks; i++) {
            const at_wire_stack_t *s = &m->stacks[i];
            put_head(&e, 4, 2);
            put_uint(&e, s->id);
            put_head(&e, 4, s->n_sites);
            for (uint32_t j = 0; j < s->n_sites; j++)
                put_uint(&e, s->sites[j]);
        }
        n++;
    }
    if (m->n_tasks_new) {
        put_key(&e, "tasks_new");
        put_tasks(&e, m->n_tasks_new, m->tasks_new);
        n++;
    }
    if (m->n_tasks_changed) {
        put_key(&e, "tasks_changed");
        put_tasks(&e, m->n_tasks_changed, m->tasks_changed);
        n++;
    }
    if (m->n_tasks_gone) {
        put_key(&e, "tasks_gone");
        put_ids(&e, m->n_tasks_gone, m->tasks_gone);
        n++;
    }
    if (m->n_site_stats) {
        put_key(&e, "site_stats");
        put_head(&e, 4, m->n_site_stats);
        for (uint32_t i = 0; i < m->n_site_stats; i++) {
            const at_wire_site_stats_t *s = &m->site_stats[i];
            put_head(&e, 4, s->has_min ? 8 : 7);
            put_uint(&e, s->site);
            put_uint(&e, s->kind);
            put_uint(&e, s->count);
            put_uint(&e, s->total_ns);
            put_uint(&e, s->max_ns);
            put_uint(&e, s->slow);
            put_hist(&e, &s->hist);
            if (s->has_min)
                put_uint(&e, s->min_ns);
        }
        n++;
    }
    if (m->n_slow) {
        put_key(&e, "slow");
        put_head(&e, 4, m->n_slow);
        for (uint32_t i = 0; i < m->n_slow; i++)
            put_slow(&e, &m->slow[i]);
        n++;
    }
    if (m->n_exc) {
        put_key(&e, "exc");
        put_head(&e, 4, m->n_exc);
        for (uint32_t i = 0; i < m->n_exc; i++)
            put_exc(&e, &m->exc[i]);
        n++;
    }
    if (m->n_inflight) {
        put_key(&e, "inflight");
        put_head(&e, 4, m->n_inflight);
        for (uint32_t i = 0; i < m->n_inflight; i++) {
            const at_wire_inflight_t *r = &m->inflight[i];
            put_head(&e, 4, 6);
            put_uint(&e, r->id);
            put_text(&e, r->kind ? r->kind : "");
            put_text(&e, r->name);
            put_uint(&e, r->task);
            put_uint(&e, r->start_us);
            put_uint(&e, r->stack);
        }
        n++;
    }
    if (m->n_inflight_gone) {
        put_key(&e, "inflight_gone");
        put_ids(&e, m->n_inflight_gone, m->inflight_gone);
        n++;
    }
    if (m->n_loops) {
        put_key(&e, "loops");
        put_loops(&e, m->n_loops, m->loops);
        n++;
    }
    if (m->loop_gone)
        KV_BOOL(&e, n, "loop_gone", true);
    if (m->n_tasks_gone_state) {
        put_key(&e, "tasks_gone_state");
        put_ids(&e, m->n_tasks_gone_state, m->tasks_gone_state);
        n++;
    }
    map_end(&e, at, n);
    return frame_end(&e, start);
}

static const char *op_wire_name(uint8_t op, const char *op_name)
{
    const char *s = at_wire_op_name(op);
    if (s)
        return s;
    return op_name ? op_name : "";
}

int at_wire_encode_request(at_wire_buf_t *b, const at_wire_request_t *m)
{
    enc_t e;
    size_t start;
    unsigned n;
    if (frame_begin(&e, b, &start))
        return e.err;
    size_t at = msg_begin(&e, AT_WIRE_REQUEST, &n);
    KV_UINT(&e, n, "id", m->id);
    KV_TEXT(&e, n, "op", op_wire_name(m->op, m->op_name));
    KV_UINT0(&e, n, "task", m->task);
    if (m->config.has_slow_ns || m->config.has_debug) {
        put_key(&e, "config");
        put_config(&e, &m->config);
        n++;
    }
    KV_UINT0(&e, n, "loop", m->loop);
    map_end(&e, at, n);
    return frame_end(&e, start);
}

int at_wire_encode_response(at_wire_buf_t *b, const at_wire_response_t *m)
{
    enc_t e;
    size_t start;
    unsigned n;
    if (frame_begin(&e, b, &start))
        return e.err;
    size_t at = msg_begin(&e, AT_WIRE_RESPONSE, &n);
    KV_UINT(&e, n, "id", m->id);
    KV_TEXT(&e, n, "op", op_wire_name(m->op, m->op_name));
    KV_UINT(&e, n, "status", m->status);
    KV_TEXT0(&e, n, "reason", m->reason);
    if (m->has_detail) {
        const at_wire_task_detail_t *d = &m->detail;
        unsigned k = 0;
        put_key(&e, "detail");
        size_t at2 = map_begin(&e);
        put_key(&e, "task");
        put_task_row(&e, &d->task);
        k++;
        KV_TEXT0(&e, k, "wait_desc", d->wait_desc);
        put_key(&e, "create");
        put_locs(&e, d->n_create, d->create);
        k++;
        put_key(&e, "suspend");
        put_locs(&e, d->n_suspend, d->suspend);
        k++;
        put_key(&e, "children");
        put_ids(&e, d->n_children, d->children);
        k++;
        put_key(&e, "step_hist");
        put_hist(&e, &d->step_hist);
        k++;
        KV_TEXT0(&e, k, "error", d->error);
        map_end(&e, at2, k);
        n++;
    }
    if (m->has_config) {
        put_key(&e, "config");
        put_config(&e, &m->config);
        n++;
    }
    if (m->has_stack) {
        put_key(&e, "stack");
        put_locs(&e, m->n_stack, m->stack);
        n++;
    }
    if (m->running.present) {
        put_key(&e, "running");
        put_running(&e, &m->running);
        n++;
    }
    map_end(&e, at, n);
    return frame_end(&e, start);
}

int at_wire_encode_error(at_wire_buf_t *b, const at_wire_error_t *m)
{
    enc_t e;
    size_t start;
    unsigned n;
    if (frame_begin(&e, b, &start))
        return e.err;
    size_t at = msg_begin(&e, AT_WIRE_ERROR, &n);
    KV_UINT(&e, n, "code", m->code);
    KV_TEXT(&e, n, "reason", m->reason ? m->reason : "");
    KV_BOOL(&e, n, "fatal", m->fatal);
    map_end(&e, at, n);
    return frame_end(&e, start);
}

int at_wire_encode_bye(at_wire_buf_t *b, const at_wire_bye_t *m)
{
    enc_t e;
    size_t start;
    unsigned n;
    if (frame_begin(&e, b, &start))
        return e.err;
    size_t at = msg_begin(&e, AT_WIRE_BYE, &n);
    KV_TEXT0(&e, n, "reason", m->reason);
    map_end(&e, at, n);
    return frame_end(&e, start);
}

int at_wire_encode(at_wire_buf_t *b, const at_wire_msg_t *m)
{
    switch (m->type) {
    case AT_WIRE_HELLO:
        return at_wire_encode_hello(b, &m->u.hello);
    case AT_WIRE_SUBSCRIBE:
        return at_wire_encode_subscribe(b, &m->u.subscribe);
    case AT_WIRE_UPDATE:
        return at_wire_encode_update(b, &m->u.update);
    case AT_WIRE_REQUEST:
        return at_wire_encode_request(b, &m->u.request);
    case AT_WIRE_RESPONSE:
        return at_wire_encode_response(b, &m->u.response);
    case AT_WIRE_ERROR:
        return at_wire_encode_error(b, &m->u.error);
    case AT_WIRE_BYE:
        return at_wire_encode_bye(b, &m->u.bye);
    default:
        return AT_WIRE_EUNKNOWNTYPE;
    }
}

/* fuzz_encode.c: structure-aware fuzz target for the encoders — builds a message of any type with
 * fuzzer-chosen field values (extreme integers, UTF-8 strings, empty and non-empty arrays), encodes
 * it, and requires the decoder to give back exactly that message. */
#include "at_wire.h"
#include "fuzz_common.h"
#include "wire_samples.h"

#include <stdlib.h>
#include <string.h>

/* Consumes the fuzzer's bytes; past the end everything reads as 0. */
typedef struct src {
    const uint8_t *p;
    size_t n;
    /* every allocation of one message, freed at the end */
    void *allocs[4096];
    size_t nallocs;
} src_t;

static uint8_t u8(src_t *s)
{
    if (!s->n)
        return 0;
    s->n--;
    return *s->p++;
}

/* Integers biased to the edges of CBOR's head sizes. */
static uint64_t u64(src_t *s)
{
    static const uint64_t edges[] = {
        0, 1, 23, 24, 255, 256, 65535, 65536, 0xffffffffu, 1ull << 32, UINT64_MAX, UINT64_MAX - 1};
    uint8_t k = u8(s);
    if (k < 128)
        return edges[k % (sizeof edges / sizeof edges[0])];
    uint64_t v = 0;
    for (int i = 0; i < (k & 7) + 1; i++)
        v = v << 8 | u8(s);
    return v;
}

static void *alloc(src_t *s, size_t n)
{
    if (s->nallocs == sizeof s->allocs / sizeof s->allocs[0])
        return NULL;
    void *p = calloc(1, n ? n : 1);
    if (!p)
        abort();
    s->allocs[s->nallocs++] = p;
    return p;
}

/* A valid UTF-8 string (or NULL when nullable and chosen). */
static const char *str(src_t *s, int nullable)
{
    static const char *const pieces[] = {"a",
                                         "Z",
                                         " ",
                                         "-",
                                         "/",
                                         "\"",
                                         "\\",
                                         "\x7f",
                                         "\xc3\xa9",
                                         "\xe2\x82\xac",
                                         "\xf0\x9f\x98\x80",
                                         "conn-",
                                         "12345",
                                         "\xdf\xbf",
                                         "\xef\xbf\xbf",
                                         "\xf4\x8f\xbf\xbf"};
    uint8_t k = u8(s);
    if (nullable && k == 0)
        return NULL;
    size_t count = k % 12;
    char *out = alloc(s, count * 8 + 1); /* pieces are at most 5 bytes */
    if (!out)
        return "";
    for (size_t i = 0; i < count; i++)
        strcat(out, pieces[u8(s) % (sizeof pieces / sizeof pieces[0])]);
    return out;
}

static uint32_t count(src_t *s)
{
    return u8(s) % 6;
}

static void loc(src_t *s, at_wire_loc_t *l)
{
    l->addr = u64(s);
    l->func = str(s, 1);
    l->file = str(s, 1);
    l->line = (uint32_t)u64(s);
}

static const at_wire_loc_t *locs(src_t *s, uint32_t *n)
{
    *n = count(s);
    at_wire_loc_t *v = alloc(s, *n * sizeof *v);
    if (!v)
        *n = 0;
    for (uint32_t i = 0; i < *n; i++)
        loc(s, &v[i]);
    return v;
}

static const uint64_t *ids(src_t *s, uint32_t *n)
{
    *n = count(s);
    uint64_t *v = alloc(s, *n * sizeof *v);
    if (!v)
        *n = 0;
    for (uint32_t i = 0; i < *n; i++)
        v[i] = u64(s);
    return v;
}

static at_wire_hist_t hist(src_t *s)
{
    at_wire_hist_t h;
    h.counts = ids(s, &h.n);
    return h;
}

static at_wire_config_t config(src_t *s, int full)
{
    uint8_t k = u8(s);
    at_wire_config_t c = {full || (k & 1), u64(s), full || (k & 2), (k & 4) != 0};
    if (!c.has_slow_ns)
        c.slow_ns = 0;
    if (!c.has_debug)
        c.debug = false;
    return c;
}

static void task(src_t *s, at_wire_task_t *t)
{
    *t = (at_wire_task_t){u64(s),           str(s, 1),        u8(s),           u8(s),  u64(s),
                          u64(s),           u64(s),           u64(s),          u64(s), u64(s),
                          (uint32_t)u64(s), (uint32_t)u64(s), (uint32_t)u64(s)};
}

static const at_wire_task_t *tasks(src_t *s, uint32_t *n)
{
    *n = count(s);
    at_wire_task_t *v = alloc(s, *n * sizeof *v);
    if (!v)
        *n = 0;
    for (uint32_t i = 0; i < *n; i++)
        task(s, &v[i]);
    return v;
}

static const at_wire_count_t *counts(src_t *s, uint32_t *n)
{
    *n = count(s);
    at_wire_count_t *v = alloc(s, *n * sizeof *v);
    if (!v)
        *n = 0;
    for (uint32_t i = 0; i < *n; i++)
        v[i] = (at_wire_count_t){str(s, 0), u64(s)};
    return v;
}

#define ARRAY(s, n, T) ((n) = count(s), (T *)alloc(s, (n) * sizeof(T)))

/* A profile (slow event, running): none when samples is 0, as the encoder leaves it out. */
static at_wire_profile_t profile(src_t *s)
{
    at_wire_profile_t p = {(uint32_t)u64(s), u64(s), (uint32_t)u64(s), 0, NULL};
    if (p.samples == 0)
        return (at_wire_profile_t){0};
    at_wire_profile_stack_t *v = ARRAY(s, p.n_stacks, at_wire_profile_stack_t);
    for (uint32_t i = 0; v && i < p.n_stacks; i++)
        v[i] = (at_wire_profile_stack_t){(uint32_t)u64(s), (uint32_t)u64(s)};
    if (!v)
        p.n_stacks = 0;
    p.stacks = v;
    return p;
}

static at_wire_running_t running(src_t *s)
{
    if (u8(s) & 1)
        return (at_wire_running_t){0};
    at_wire_running_t r = {true,      u64(s), u8(s),           (uint32_t)u64(s),
                           str(s, 1), u64(s), (uint32_t)u64(s)};
    r.profile = profile(s);
    return r;
}

static void update(src_t *s, at_wire_update_t *u)
{
    u->seq = u64(s);
    u->ts_ns = u64(s);
    u->loop = (uint32_t)u64(s);
    u->full = u8(s) & 1;
    u->config = config(s, 1);
    u->has_stats = u8(s) & 1;
    if (u->has_stats) {
        at_wire_loop_stats_t *t = &u->stats;
        t->busy_ns = u64(s);
        t->idle_ns = u64(s);
        t->iterations = u64(s);
        t->callbacks = u64(s);
        t->slow = u64(s);
        t->errors = u64(s);
        t->lag = hist(s);
        for (int i = 0; i < AT_WIRE_TASK_NSTATES; i++)
            t->tasks_by_state[i] = u64(s);
        t->handles = counts(s, &t->n_handles);
        t->exec_queued = u64(s);
        t->exec_running = u64(s);
        t->exec_threads = u64(s);
        t->exec_done = u64(s);
        t->exec_wait_ns = u64(s);
    }
    u->running = running(s);
    u->dropped = counts(s, &u->n_dropped);
    at_wire_site_t *sites = ARRAY(s, u->n_sites, at_wire_site_t);
    for (uint32_t i = 0; sites && i < u->n_sites; i++) {
        sites[i].id = (uint32_t)u64(s);
        loc(s, &sites[i].loc);
    }
    u->sites = sites;
    at_wire_stack_t *stacks = ARRAY(s, u->n_stacks, at_wire_stack_t);
    for (uint32_t i = 0; stacks && i < u->n_stacks; i++) {
        stacks[i].id = (uint32_t)u64(s);
        uint32_t n = count(s);
        uint32_t *v = alloc(s, n * sizeof *v);
        for (uint32_t j = 0; v && j < n; j++)
            v[j] = (uint32_t)u64(s);
        stacks[i].n_sites = v ? n : 0;
        stacks[i].sites = v;
    }
    u->stacks = stacks;
    u->tasks_new = tasks(s, &u->n_tasks_new);
    u->tasks_changed = tasks(s, &u->n_tasks_changed);
    u->tasks_gone = ids(s, &u->n_tasks_gone);
    at_wire_site_stats_t *ss = ARRAY(s, u->n_site_stats, at_wire_site_stats_t);
    for (uint32_t i = 0; ss && i < u->n_site_stats; i++)
        ss[i] = (at_wire_site_stats_t){(uint32_t)u64(s), u8(s),  u64(s), u64(s),
                                       u64(s),           u64(s), hist(s)};
    u->site_stats = ss;
    at_wire_slow_t *slow = ARRAY(s, u->n_slow, at_wire_slow_t);
    for (uint32_t i = 0; slow && i < u->n_slow; i++)
        slow[i] = (at_wire_slow_t){u64(s),           u64(s),    u64(s), u8(s),
                                   (uint32_t)u64(s), str(s, 1), u64(s), (uint32_t)u64(s),
                                   (uint32_t)u64(s), profile(s)};
    u->slow = slow;
    at_wire_exc_t *exc = ARRAY(s, u->n_exc, at_wire_exc_t);
    for (uint32_t i = 0; exc && i < u->n_exc; i++)
        exc[i] =
            (at_wire_exc_t){u64(s), u64(s),    u8(s),  (int64_t)u64(s),  str(s, 1),       str(s, 0),
                            u64(s), str(s, 1), u64(s), (uint32_t)u64(s), (uint32_t)u64(s)};
    u->exc = exc;
    at_wire_inflight_t *inf = ARRAY(s, u->n_inflight, at_wire_inflight_t);
    for (uint32_t i = 0; inf && i < u->n_inflight; i++)
        inf[i] =
            (at_wire_inflight_t){u64(s), str(s, 0), str(s, 1), u64(s), u64(s), (uint32_t)u64(s)};
    u->inflight = inf;
    u->inflight_gone = ids(s, &u->n_inflight_gone);
    /* arrays that failed to allocate count as empty */
    if (!u->sites)
        u->n_sites = 0;
    if (!u->stacks)
        u->n_stacks = 0;
    if (!u->site_stats)
        u->n_site_stats = 0;
    if (!u->slow)
        u->n_slow = 0;
    if (!u->exc)
        u->n_exc = 0;
    if (!u->inflight)
        u->n_inflight = 0;
}

static void build(src_t *s, at_wire_msg_t *m)
{
    memset(m, 0, sizeof *m);
    m->type = AT_WIRE_HELLO + u8(s) % 7;
    switch (m->type) {
    case AT_WIRE_HELLO: {
        at_wire_hello_t *h = &m->u.hello;
        h->pid = u64(s);
        h->program = str(s, 0);
        h->n_argv = count(s);
        const char **argv = alloc(s, h->n_argv * sizeof *argv);
        for (uint32_t i = 0; argv && i < h->n_argv; i++)
            argv[i] = str(s, 0);
        if (!argv)
            h->n_argv = 0;
        h->argv = argv;
        h->runtime_version = str(s, 0);
        h->start_time_ns = u64(s);
        h->now_ns = u64(s);
        h->config = config(s, 1);
        h->caps = (uint32_t)u64(s) & ((1u << AT_WIRE_CAP_COUNT) - 1);
        h->n_loops = count(s);
        at_wire_loop_info_t *l = alloc(s, h->n_loops * sizeof *l);
        for (uint32_t i = 0; l && i < h->n_loops; i++)
            l[i] = (at_wire_loop_info_t){(uint32_t)u64(s), str(s, 1), u64(s)};
        if (!l)
            h->n_loops = 0;
        h->loops = l;
        break;
    }
    case AT_WIRE_SUBSCRIBE:
        m->u.subscribe = (at_wire_subscribe_t){1, (uint32_t)u64(s),
                                               (uint32_t)u64(s) & ((1u << AT_WIRE_CAP_COUNT) - 1),
                                               (uint32_t)u64(s)};
        break;
    case AT_WIRE_UPDATE:
        update(s, &m->u.update);
        break;
    case AT_WIRE_REQUEST: {
        at_wire_request_t *r = &m->u.request;
        r->id = u64(s);
        r->op = u8(s) % 7;
        if (r->op == AT_WIRE_OP_UNKNOWN)
            r->op_name = str(s, 0);
        r->task = u64(s);
        r->config = config(s, 0);
        r->loop = (uint32_t)u64(s);
        break;
    }
    case AT_WIRE_RESPONSE: {
        at_wire_response_t *r = &m->u.response;
        r->id = u64(s);
        r->op = u8(s) % 7;
        if (r->op == AT_WIRE_OP_UNKNOWN)
            r->op_name = str(s, 0);
        r->status = (uint32_t)u64(s);
        r->reason = str(s, 1);
        r->has_detail = u8(s) & 1;
        if (r->has_detail) {
            task(s, &r->detail.task);
            r->detail.wait_desc = str(s, 1);
            r->detail.create = locs(s, &r->detail.n_create);
            r->detail.suspend = locs(s, &r->detail.n_suspend);
            r->detail.children = ids(s, &r->detail.n_children);
            r->detail.step_hist = hist(s);
            r->detail.error = str(s, 1);
        }
        r->has_config = u8(s) & 1;
        if (r->has_config)
            r->config = config(s, 0);
        r->has_stack = u8(s) & 1;
        if (r->has_stack)
            r->stack = locs(s, &r->n_stack);
        r->running = running(s);
        break;
    }
    case AT_WIRE_ERROR:
        m->u.error = (at_wire_error_t){1, (uint32_t)u64(s), str(s, 0), u8(s) & 1};
        break;
    case AT_WIRE_BYE:
        m->u.bye.reason = str(s, 1);
        break;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static src_t s; /* big: keep it off the stack */
    s.p = data;
    s.n = size;
    s.nallocs = 0;
    at_wire_msg_t in, out;
    build(&s, &in);
    at_wire_buf_t b;
    at_wire_buf_init(&b);
    if (at_wire_encode(&b, &in) != 0)
        abort();
    at_wire_err_t e;
    if (at_wire_decode(b.data + 4, b.len - 4, &at_wire_limits_s2c, &out, &e) != 0)
        abort();
    char why[128];
    if (!wire_msg_equal(&in, &out, why, sizeof why))
        abort();
    at_wire_msg_free(&out);
    /* and the decode oracle on the same bytes */
    fuzz_roundtrip(b.data + 4, b.len - 4, &at_wire_limits_s2c);
    at_wire_buf_free(&b);
    for (size_t i = 0; i < s.nallocs; i++)
        free(s.allocs[i]);
    return 0;
}

/* wire_encode.c: deterministic CBOR encoders for every v1 message, appending whole frames to a
 * buffer, walking the layouts of wire_table.c. */
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

#define put_uint(e, v) put_head(e, 0, v)

static void put_int(enc_t *e, int64_t v)
{
    put_head(e, v < 0 ? 1 : 0, v < 0 ? (uint64_t)(-(v + 1)) : (uint64_t)v);
}

static inline void put_simple(enc_t *e, uint8_t byte)
{
    if (!reserve(e, 1))
        return;
    e->b->data[e->b->len++] = byte;
}

/* Text string; NULL is encoded as null. Invalid UTF-8 bytes become '?'. */
static void put_text(enc_t *e, const char *s)
{
    if (!s) {
        put_simple(e, 0xf6); /* null */
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

static void put_hist(enc_t *e, const at_wire_hist_t *h)
{
    uint32_t n = h->n;
    while (n > 0 && h->counts[n - 1] == 0)
        n--; /* trailing empty buckets are left out */
    put_head(e, 4, n);
    for (uint32_t i = 0; i < n; i++)
        put_uint(e, h->counts[i]);
}

/* ---- the walkers over wire_table.c's layouts ------------------------------ */

#define AT(base, off, T) (*(const T *)((const char *)(base) + (off)))

static unsigned enc_value(enc_t *e, const at__wfield_t *f, const void *base);

/* Whether field f of the struct at base is set: its `has` bool when it has one, else a value
 * other than 0 / NULL / an empty array. */
/* The value of a scalar field (WT_U64 .. WT_CAPS) at p, as an integer of its width. */
static uint64_t scalar_at(const void *p, int type)
{
    size_t w = at__wire_width(type);
    return w == 8 ? *(const uint64_t *)p : w == 4 ? *(const uint32_t *)p : *(const uint8_t *)p;
}

static bool is_set(const at__wfield_t *f, const void *base)
{
    const void *p = (const char *)base + f->off;
    if (f->has)
        return AT(base, f->has - 1, bool);
    if (f->type <= WT_CAPS)
        return scalar_at(p, f->type) != 0;
    if (f->type == WT_MAP && (f->flags & WF_IF1ST))
        return scalar_at((const char *)p + f->sub->f[0].off, f->sub->f[0].type) != 0;
    if (f->type == WT_MAP || f->type == WT_ROW || f->type == WT_HIST)
        return true;        /* a map without pairs is left out by enc_pairs */
    if (f->type >= WT_U64S) /* arrays */
        return AT(base, f->n_off, uint32_t) != 0;
    return *(const void *const *)p != NULL; /* texts, custom */
}

/* The pairs of a map, in table order, leaving out what the table says is unset; returns how
 * many it wrote. */
static unsigned enc_pairs(enc_t *e, const at__wtable_t *t, const void *base)
{
    unsigned n = 0;
    for (uint32_t i = 0; i < t->n; i++) {
        const at__wfield_t *f = &t->f[i];
        if ((f->has || (f->flags & (WF_OMIT0 | WF_IF1ST))) && !is_set(f, base))
            continue;
        size_t mark = e->b->len;
        put_key(e, f->key);
        if (enc_value(e, f, base) == 0 && (f->flags & WF_OMIT0))
            e->b->len = mark; /* a map without pairs */
        else
            n++;
    }
    return n;
}

static unsigned enc_map(enc_t *e, const at__wtable_t *t, const void *base)
{
    size_t at = map_begin(e);
    unsigned n = enc_pairs(e, t, base);
    map_end(e, at, n);
    return n;
}

/* The task row by hand, for arrays of task rows (enc_array): the bulk of a big update, written
 * faster than by the walk of enc_row (bench wire_encode_update_100k_ms). Same bytes. */
static void put_task_row(enc_t *e, const at_wire_task_t *t)
{
    put_head(e, 4, t->wait_desc ? 14 : 13);
    put_uint(e, t->id);
    put_text(e, t->name);
    put_uint(e, t->state);
    put_uint(e, t->wait_kind);
#pragma GCC unroll 6 /* a branch site per field: the sizes differ by field */
    for (int i = 0; i < 6; i++)
        put_uint(e, AT(t, at__task_int_off(i), uint64_t));
#pragma GCC unroll 3
    for (int i = 6; i < 9; i++)
        put_uint(e, AT(t, at__task_int_off(i), uint32_t));
    if (t->wait_desc)
        put_text(e, t->wait_desc);
}

/* A row: the required elements, then the optional groups up to the last one set. */
static void enc_row(enc_t *e, const at__wtable_t *t, const void *base)
{
    uint32_t len = t->min;
    for (uint32_t i = t->min; i < t->n; i++)
        if (is_set(&t->f[i], base))
            len = at__wire_group_end(t, i);
    put_head(e, 4, len);
    for (uint32_t i = 0; i < len; i++)
        enc_value(e, &t->f[i], base);
}

static void enc_array(enc_t *e, const at__wfield_t *f, const void *base)
{
    uint32_t n = AT(base, f->n_off, uint32_t);
    const char *v = AT(base, f->off, char *);
    put_head(e, 4, n);
    for (uint32_t i = 0; i < n; i++) {
        const char *el = v + (size_t)i * (f->sub ? f->sub->size : 0);
        if (f->sub == &at__wire_task_row) /* the bulk of a big update */
            put_task_row(e, (const at_wire_task_t *)el);
        else if (f->type == WT_U64S)
            put_uint(e, ((const uint64_t *)v)[i]);
        else if (f->type == WT_U32S)
            put_uint(e, ((const uint32_t *)v)[i]);
        else if (f->type == WT_TEXTS)
            put_text(e, ((const char *const *)v)[i] ? ((const char *const *)v)[i] : "");
        else if (f->type == WT_ROWS)
            enc_row(e, f->sub, el);
        else /* WT_MAPS */
            enc_map(e, f->sub, el);
    }
}

/* WC_OP: the op's wire name, or the unknown name it was decoded from. */
static void enc_op(enc_t *e, const at__wfield_t *f, const void *base)
{
    const char *s = at_wire_op_name(AT(base, f->off, uint8_t));
    const char *unknown = AT(base, f->n_off, char *);
    put_text(e, s ? s : unknown ? unknown : "");
}

static void (*const enc_custom[])(enc_t *e, const at__wfield_t *f,
                                  const void *base) = {[WC_OP] = enc_op};

/* Writes the value of field f of the struct at base; returns 0 for a map without pairs. */
static unsigned enc_value(enc_t *e, const at__wfield_t *f, const void *base)
{
    const void *p = (const char *)base + f->off;
    uint64_t v = f->type <= WT_CAPS ? scalar_at(p, f->type) : 0;
    if (f->type == WT_BOOL)
        put_simple(e, v ? 0xf5 : 0xf4);
    else if (f->type == WT_I64)
        put_int(e, (int64_t)v);
    else if (f->type == WT_CAPS)
        put_caps(e, (uint32_t)v);
    else if (f->type <= WT_CAPS)
        put_uint(e, v);
    else if (f->type == WT_TEXT || f->type == WT_TEXTN)
        put_text(e, AT(p, 0, char *) || f->type == WT_TEXTN ? AT(p, 0, char *) : "");
    else if (f->type == WT_HIST)
        put_hist(e, p);
    else if (f->type == WT_MAP)
        return enc_map(e, f->sub, p);
    else if (f->type == WT_ROW)
        enc_row(e, f->sub, p);
    else if (f->type == WT_CUSTOM)
        enc_custom[f->cid](e, f, base);
    else
        enc_array(e, f, base);
    return 1;
}

/* One frame holding message m of `type`: the length prefix (reserved, then patched), "t",
 * "v", then the pairs of its table. On error the buffer is left as it was. */
static int enc_msg(at_wire_buf_t *b, int type, const void *m)
{
    enc_t e = {b, 0};
    size_t start = b->len;
    if (reserve(&e, AT_WIRE_FRAME_HDR))
        b->len += AT_WIRE_FRAME_HDR;
    size_t at = map_begin(&e);
    put_key(&e, "t");
    put_text(&e, at__wire_type_names[type]);
    put_key(&e, "v");
    put_uint(&e, AT_WIRE_VERSION);
    map_end(&e, at, 2 + enc_pairs(&e, at__wire_msg_tables[type], m));
    size_t n = b->len - start - AT_WIRE_FRAME_HDR;
    if (!e.err && n > 0xffffffffu)
        e.err = AT_WIRE_ELIMIT;
    if (e.err) {
        b->len = start;
        return e.err;
    }
    for (int i = 0; i < 4; i++)
        b->data[start + (size_t)i] = (uint8_t)(n >> (24 - 8 * i));
    return 0;
}

#define ENCODER(name, T, type)                                                                     \
    int at_wire_encode_##name(at_wire_buf_t *b, const T *m)                                        \
    {                                                                                              \
        return enc_msg(b, type, m);                                                                \
    }
ENCODER(hello, at_wire_hello_t, AT_WIRE_HELLO)
ENCODER(subscribe, at_wire_subscribe_t, AT_WIRE_SUBSCRIBE)
ENCODER(update, at_wire_update_t, AT_WIRE_UPDATE)
ENCODER(request, at_wire_request_t, AT_WIRE_REQUEST)
ENCODER(response, at_wire_response_t, AT_WIRE_RESPONSE)
ENCODER(error, at_wire_error_t, AT_WIRE_ERROR)
ENCODER(bye, at_wire_bye_t, AT_WIRE_BYE)

int at_wire_encode(at_wire_buf_t *b, const at_wire_msg_t *m)
{
    if (m->type < AT_WIRE_HELLO || m->type > AT_WIRE_BYE)
        return AT_WIRE_EUNKNOWNTYPE;
    return enc_msg(b, m->type, &m->u);
}

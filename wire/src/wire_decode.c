/* wire_decode.c: bounded streaming decoder (libcbor cbor_stream_decode) from untrusted bytes into
 * v1 message structs, walking the layouts of wire_table.c. */
#include "at_wire.h"
#include "wire_internal.h"

#include <assert.h>
#include <cbor.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- arena: every allocation of one decoded message, freed at once -------- */

typedef struct arena_block {
    struct arena_block *next;
    size_t used, size;
    _Alignas(16) unsigned char data[];
} arena_block_t;

typedef struct arena {
    arena_block_t *head;
    size_t total; /* bytes requested from malloc, headers included */
} arena_t;

#define ARENA_BLOCK (64u * 1024u)

static void arena_free(arena_t *a)
{
    if (!a)
        return;
    arena_block_t *b = a->head;
    while (b) {
        arena_block_t *next = b->next;
        free(b);
        b = next;
    }
    free(a);
}

/* ---- the pull reader ---------------------------------------------------- */

enum kind {
    K_NONE,
    K_UINT,
    K_NEG,
    K_BYTES,
    K_TEXT,
    K_ARRAY,
    K_MAP,
    K_BOOL,
    K_NULL,
    K_FLOAT,
    K_BAD, /* tag, undefined, indefinite item, break: never used by the protocol */
};

static const char *const kind_names[] = {
    "nothing",
    "unsigned integer",
    "negative integer",
    "byte string",
    "text string",
    "array",
    "map",
    "bool",
    "null",
    "float",
    "unsupported item",
};

typedef struct rd {
    const uint8_t *base, *p, *end;
    const at_wire_limits_t *lim;
    at_wire_err_t *err;
    int code; /* latched first error */
    uint64_t total;
    uint32_t depth;
    arena_t *arena;
    const char *what; /* message type name, for error messages */
    /* the item just read */
    int kind;
    uint64_t u;
    const uint8_t *s;
    size_t slen;
    bool b;
    const char *bad; /* description of a K_BAD item */
} rd_t;

static void fail(rd_t *r, int code, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void fail(rd_t *r, int code, const char *key, const char *fmt, ...)
{
    if (r->code)
        return; /* the first error sticks */
    r->code = code;
    if (!r->err)
        return;
    r->err->code = code;
    r->err->key = key;
    r->err->offset = (size_t)(r->p - r->base);
    int off = snprintf(r->err->msg, sizeof r->err->msg, "%s: ", r->what ? r->what : "message");
    if (off < 0 || (size_t)off >= sizeof r->err->msg)
        off = 0;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->err->msg + off, sizeof r->err->msg - (size_t)off, fmt, ap);
    va_end(ap);
}

static void *arena_alloc(rd_t *r, size_t size)
{
    if (r->code)
        return NULL;
    size = (size + 15u) & ~(size_t)15u;
    arena_t *a = r->arena;
    arena_block_t *b = a->head;
    if (!b || b->size - b->used < size) {
        size_t bsize = size > ARENA_BLOCK / 4 ? size : ARENA_BLOCK;
        size_t need = sizeof(arena_block_t) + bsize;
        if (a->total + need > r->lim->max_memory) {
            fail(r, AT_WIRE_ELIMIT, NULL,
                 "decoding needs more than %zu bytes of memory (limit max_memory)",
                 r->lim->max_memory);
            return NULL;
        }
        arena_block_t *nb = malloc(need);
        if (!nb) {
            fail(r, AT_WIRE_ENOMEM, NULL, "out of memory");
            return NULL;
        }
        a->total += need;
        nb->size = bsize;
        nb->used = 0;
        if (bsize == size && b) {
            /* a dedicated block: keep filling the current one afterwards */
            nb->next = b->next;
            b->next = nb;
        } else {
            nb->next = b;
            a->head = nb;
        }
        b = nb;
    }
    void *p = b->data + b->used;
    b->used += size;
    memset(p, 0, size);
    return p;
}

/* libcbor callbacks: record the one item cbor_stream_decode saw. */
#define CTX ((rd_t *)ctx)
#define CB_NUM(name, T, k)                                                                         \
    static void name(void *ctx, T v)                                                               \
    {                                                                                              \
        CTX->kind = k;                                                                             \
        CTX->u = v;                                                                                \
    }
CB_NUM(cb_u8, uint8_t, K_UINT)
CB_NUM(cb_u16, uint16_t, K_UINT)
CB_NUM(cb_u32, uint32_t, K_UINT)
CB_NUM(cb_u64, uint64_t, K_UINT)
CB_NUM(cb_n8, uint8_t, K_NEG)
CB_NUM(cb_n16, uint16_t, K_NEG)
CB_NUM(cb_n32, uint32_t, K_NEG)
CB_NUM(cb_n64, uint64_t, K_NEG)
CB_NUM(cb_array, size_t, K_ARRAY)
CB_NUM(cb_map, size_t, K_MAP)
#define CB_STR(name, k)                                                                            \
    static void name(void *ctx, cbor_data d, size_t n)                                             \
    {                                                                                              \
        CTX->kind = k;                                                                             \
        CTX->s = d;                                                                                \
        CTX->slen = n;                                                                             \
    }
CB_STR(cb_bytes, K_BYTES)
CB_STR(cb_text, K_TEXT)
#define CB_BAD(name, why)                                                                          \
    static void name(void *ctx)                                                                    \
    {                                                                                              \
        CTX->kind = K_BAD;                                                                         \
        CTX->bad = why;                                                                            \
    }
CB_BAD(cb_indef, "an indefinite-length item (the protocol uses definite lengths only)")
CB_BAD(cb_break, "a stray break byte")
CB_BAD(cb_undef, "the undefined value")
static void cb_tag(void *ctx, uint64_t v)
{
    CTX->kind = K_BAD;
    CTX->bad = "a CBOR tag (the protocol uses no tags)";
}
static void cb_null(void *ctx)
{
    CTX->kind = K_NULL;
}
static void cb_bool(void *ctx, bool v)
{
    CTX->kind = K_BOOL;
    CTX->b = v;
}
static void cb_f4(void *ctx, float v)
{
    CTX->kind = K_FLOAT;
}
static void cb_f8(void *ctx, double v)
{
    CTX->kind = K_FLOAT;
}
#undef CTX

static const struct cbor_callbacks callbacks = {
    .uint8 = cb_u8,
    .uint16 = cb_u16,
    .uint32 = cb_u32,
    .uint64 = cb_u64,
    .negint8 = cb_n8,
    .negint16 = cb_n16,
    .negint32 = cb_n32,
    .negint64 = cb_n64,
    .byte_string_start = cb_indef,
    .byte_string = cb_bytes,
    .string = cb_text,
    .string_start = cb_indef,
    .indef_array_start = cb_indef,
    .array_start = cb_array,
    .indef_map_start = cb_indef,
    .map_start = cb_map,
    .tag = cb_tag,
    .float2 = cb_f4,
    .float4 = cb_f4,
    .float8 = cb_f8,
    .undefined = cb_undef,
    .null = cb_null,
    .boolean = cb_bool,
    .indef_break = cb_break,
};

/* The argument of the CBOR head at p (for error messages on NEDATA). */
static int peek_head(const uint8_t *p, const uint8_t *end, unsigned *major, uint64_t *v)
{
    if (p >= end)
        return 0;
    *major = p[0] >> 5;
    unsigned info = p[0] & 31u;
    size_t n = info < 24    ? 0
               : info == 24 ? 1
               : info == 25 ? 2
               : info == 26 ? 4
               : info == 27 ? 8
                            : 9;
    if (n == 9 || (size_t)(end - p) < 1 + n)
        return 0;
    uint64_t x = info < 24 ? info : 0;
    for (size_t i = 0; i < n; i++)
        x = (x << 8) | p[1 + i];
    *v = x;
    return 1;
}

/* Reads the next data item into r->kind/u/s/slen/b and checks the limits
 * that apply to it. Returns 0 once an error has latched. */
static int next(rd_t *r, const char *key)
{
    if (r->code)
        return 0;
    if (r->p >= r->end) {
        fail(r, AT_WIRE_ETRUNCATED, key, "the item ends early (%s expected at byte %zu)",
             key ? key : "a value", (size_t)(r->p - r->base));
        return 0;
    }
    if (++r->total > r->lim->max_total) {
        fail(r, AT_WIRE_ELIMIT, key, "more than %" PRIu64 " data items (limit max_total)",
             r->lim->max_total);
        return 0;
    }
    r->kind = K_NONE;
    struct cbor_decoder_result res =
        cbor_stream_decode(r->p, (size_t)(r->end - r->p), &callbacks, r);
    if (res.status == CBOR_DECODER_NEDATA) {
        unsigned major;
        uint64_t v;
        if (peek_head(r->p, r->end, &major, &v) && (major == 2 || major == 3) &&
            v > r->lim->max_string) {
            fail(r, AT_WIRE_ELIMIT, key,
                 "a string of %" PRIu64 " bytes (limit max_string %" PRIu32 ")%s%s", v,
                 r->lim->max_string, key ? " in key " : "", key ? key : "");
        } else {
            fail(r, AT_WIRE_ETRUNCATED, key,
                 "the frame (%zu bytes) ends inside the item at byte %zu%s%s",
                 (size_t)(r->end - r->base), (size_t)(r->p - r->base), key ? " for key " : "",
                 key ? key : "");
        }
        return 0;
    }
    if (res.status != CBOR_DECODER_FINISHED || r->kind == K_NONE) {
        fail(r, AT_WIRE_EMALFORMED, key, "malformed CBOR at byte %zu", (size_t)(r->p - r->base));
        return 0;
    }
    r->p += res.read;
    size_t left = (size_t)(r->end - r->p);
    switch (r->kind) {
    case K_BAD:
        fail(r, AT_WIRE_EMALFORMED, key, "%s at byte %zu", r->bad,
             (size_t)(r->p - r->base - res.read));
        return 0;
    case K_BYTES:
    case K_TEXT:
        if (r->slen > r->lim->max_string) {
            fail(r, AT_WIRE_ELIMIT, key, "a string of %zu bytes (limit max_string %" PRIu32 ")",
                 r->slen, r->lim->max_string);
            return 0;
        }
        break;
    case K_ARRAY:
    case K_MAP:
        if (r->u > r->lim->max_items) {
            fail(r, AT_WIRE_ELIMIT, key,
                 "%s %s declares %" PRIu64 " elements (limit max_items %" PRIu32 ")",
                 kind_names[r->kind], key ? key : "", r->u, r->lim->max_items);
            return 0;
        }
        /* every element takes at least one byte: refuse counts that cannot
         * be there before anyone allocates for them */
        if (r->u > left || (r->kind == K_MAP && r->u * 2 > left)) {
            fail(r, AT_WIRE_ETRUNCATED, key,
                 "%s %s declares %" PRIu64 " elements but only %zu bytes remain",
                 kind_names[r->kind], key ? key : "", r->u, left);
            return 0;
        }
        break;
    default:
        break;
    }
    return 1;
}

static void wrong_type(rd_t *r, const char *key, const char *want)
{
    fail(r, AT_WIRE_ETYPE, key, "key \"%s\": expected %s, got %s", key ? key : "?", want,
         kind_names[r->kind]);
}

/* Skips one complete value (any kind), bounded by depth and the limits. */
static void skip(rd_t *r, const char *key)
{
    if (!next(r, key))
        return;
    if (r->kind != K_ARRAY && r->kind != K_MAP)
        return;
    uint64_t n = r->kind == K_MAP ? r->u * 2 : r->u;
    if (++r->depth > r->lim->max_depth) {
        fail(r, AT_WIRE_ELIMIT, key, "nesting deeper than %" PRIu32 " (limit max_depth)",
             r->lim->max_depth);
        return;
    }
    for (uint64_t i = 0; i < n && !r->code; i++)
        skip(r, key);
    r->depth--;
}

static uint64_t get_uint(rd_t *r, const char *key)
{
    /* Fast path for the bulk of every update (task rows are mostly
     * integers): an unsigned integer is nothing but its head, so read it
     * here with the same checks (bytes present, item count) instead of a
     * call through libcbor. Everything else, and every item that
     * allocates (arrays, maps, strings), goes through cbor_stream_decode. */
    if (!r->code && r->p < r->end && (r->p[0] >> 5) == 0 && r->total < r->lim->max_total) {
        unsigned info = r->p[0] & 31u;
        size_t left = (size_t)(r->end - r->p);
        uint64_t v;
        size_t n;
        if (info < 24) {
            v = info;
            n = 1;
        } else if (info == 24 && left >= 2) {
            v = r->p[1];
            n = 2;
        } else if (info == 25 && left >= 3) {
            v = (uint64_t)r->p[1] << 8 | r->p[2];
            n = 3;
        } else if (info == 26 && left >= 5) {
            v = (uint64_t)r->p[1] << 24 | (uint64_t)r->p[2] << 16 | (uint64_t)r->p[3] << 8 |
                r->p[4];
            n = 5;
        } else {
            goto slow; /* 8-byte form, truncation, reserved values: the general path */
        }
        r->p += n;
        r->total++;
        r->kind = K_UINT;
        r->u = v;
        return v;
    }
slow:
    if (!next(r, key))
        return 0;
    if (r->kind != K_UINT) {
        wrong_type(r, key, "an unsigned integer");
        return 0;
    }
    return r->u;
}

static uint64_t get_uint_max(rd_t *r, const char *key, uint64_t max)
{
    uint64_t v = get_uint(r, key);
    if (v > max) {
        fail(r, AT_WIRE_EVALUE, key, "key \"%s\": %" PRIu64 " is out of range (max %" PRIu64 ")",
             key, v, max);
        return 0;
    }
    return v;
}
#define get_u32(r, key) ((uint32_t)get_uint_max(r, key, UINT32_MAX))
#define get_u8(r, key)  ((uint8_t)get_uint_max(r, key, UINT8_MAX))

static int64_t get_int(rd_t *r, const char *key)
{
    if (!next(r, key))
        return 0;
    if ((r->kind != K_UINT && r->kind != K_NEG)) {
        wrong_type(r, key, "an integer");
        return 0;
    }
    if (r->u > (uint64_t)INT64_MAX) {
        fail(r, AT_WIRE_EVALUE, key, "key \"%s\": integer out of the 64-bit signed range", key);
        return 0;
    }
    return r->kind == K_UINT ? (int64_t)r->u : -1 - (int64_t)r->u;
}

static bool get_bool(rd_t *r, const char *key)
{
    if (!next(r, key))
        return false;
    if (r->kind != K_BOOL) {
        wrong_type(r, key, "a bool");
        return false;
    }
    return r->b;
}

/* Copies the current text item into the arena as a C string. */
static const char *text_copy(rd_t *r, const char *key)
{
    if (!at__wire_utf8_ok(r->s, r->slen)) {
        fail(r, AT_WIRE_EVALUE, key, "key \"%s\": text is not valid UTF-8 or contains NUL",
             key ? key : "?");
        return NULL;
    }
    char *s = arena_alloc(r, r->slen + 1);
    if (!s)
        return NULL;
    memcpy(s, r->s, r->slen);
    s[r->slen] = '\0';
    return s;
}

static const char *get_text(rd_t *r, const char *key)
{
    if (!next(r, key))
        return NULL;
    if (r->kind != K_TEXT) {
        wrong_type(r, key, "a text string");
        return NULL;
    }
    return text_copy(r, key);
}

/* Text or null (NULL). */
static const char *get_text_null(rd_t *r, const char *key)
{
    if (!next(r, key))
        return NULL;
    if (r->kind == K_NULL)
        return NULL;
    if (r->kind != K_TEXT) {
        wrong_type(r, key, "a text string or null");
        return NULL;
    }
    return text_copy(r, key);
}

/* Opens a container of kind `kind` (K_ARRAY or K_MAP): returns its count,
 * with depth accounted; the caller reads the elements and calls leave(). */
static uint32_t enter(rd_t *r, const char *key, int kind)
{
    if (!next(r, key))
        return 0;
    if (r->kind != kind) {
        wrong_type(r, key, kind == K_ARRAY ? "an array" : "a map");
        return 0;
    }
    if (++r->depth > r->lim->max_depth) {
        fail(r, AT_WIRE_ELIMIT, key, "nesting deeper than %" PRIu32 " (limit max_depth)",
             r->lim->max_depth);
        return 0;
    }
    return (uint32_t)r->u; /* <= max_items, checked in next() */
}

static void leave(rd_t *r)
{
    if (r->depth)
        r->depth--;
}

/* Allocates an array of n elements of `size` bytes (n already bounded). */
static void *alloc_array(rd_t *r, uint32_t n, size_t size)
{
    if (n == 0)
        return NULL;
    return arena_alloc(r, (size_t)n * size);
}

/* Reads a map key: returns 1 with r->s/slen set to a text key, or 0 when the
 * key is not text (its value must then be skipped) or on error. */
static int get_key(rd_t *r)
{
    if (!next(r, "map key"))
        return 0;
    if (r->kind == K_TEXT)
        return 1;
    if (r->kind == K_ARRAY || r->kind == K_MAP) {
        /* a container as a key: skip its content too */
        uint64_t n = r->kind == K_MAP ? r->u * 2 : r->u;
        if (++r->depth > r->lim->max_depth) {
            fail(r, AT_WIRE_ELIMIT, NULL, "nesting deeper than %" PRIu32 " (limit max_depth)",
                 r->lim->max_depth);
            return 0;
        }
        for (uint64_t i = 0; i < n && !r->code; i++)
            skip(r, "map key");
        r->depth--;
    }
    return 0;
}

#define IS(r, lit) ((r)->slen == sizeof(lit) - 1 && memcmp((r)->s, lit, sizeof(lit) - 1) == 0)

static uint32_t get_caps(rd_t *r, const char *key)
{
    uint32_t bits = 0;
    uint32_t n = enter(r, key, K_ARRAY);
    for (uint32_t i = 0; i < n && !r->code; i++) {
        if (!next(r, key))
            break;
        if (r->kind != K_TEXT) {
            wrong_type(r, key, "an array of text strings");
            break;
        }
        for (unsigned b = 0; b < AT_WIRE_CAP_COUNT; b++) {
            const char *c = at__wire_cap_names[b];
            if (strlen(c) == r->slen && memcmp(c, r->s, r->slen) == 0)
                bits |= 1u << b;
        } /* unknown names are ignored */
    }
    leave(r);
    return bits;
}

static void get_hist(rd_t *r, const char *key, at_wire_hist_t *h)
{
    uint32_t n = enter(r, key, K_ARRAY);
    if (n > AT_WIRE_MAX_HIST) {
        fail(r, AT_WIRE_ELIMIT, key, "key \"%s\": a histogram of %" PRIu32 " buckets (max %d)", key,
             n, AT_WIRE_MAX_HIST);
        return;
    }
    uint64_t *v = alloc_array(r, n, sizeof *v);
    for (uint32_t i = 0; i < n && !r->code; i++)
        v[i] = get_uint(r, key);
    leave(r);
    h->n = r->code ? 0 : n;
    h->counts = r->code ? NULL : v;
}

/* ---- the walkers over wire_table.c's layouts ------------------------------ */

#define AT(base, off, T) (*(T *)((char *)(base) + (off)))

static bool dec_value(rd_t *r, const char *key, const at__wfield_t *f, void *base);

/* Reads the n pairs of a map (its head already read) into the struct at base, laid out by t:
 * unknown keys are skipped, then the first required key missing (in table order) is reported.
 * `what` names the map in messages; at the top level (top) "t" and "v" are skipped. */
static void dec_pairs(rd_t *r, const char *what, const at__wtable_t *t, void *base, uint32_t n,
                      bool top)
{
    uint32_t seen = 0;
    for (uint32_t i = 0; i < n && !r->code; i++) {
        const at__wfield_t *f = NULL;
        if (!get_key(r) || (top && (IS(r, "t") || IS(r, "v")))) {
            skip(r, what);
            continue;
        }
        for (uint32_t j = 0; j < t->n && !f; j++)
            if (strlen(t->f[j].key) == r->slen && memcmp(t->f[j].key, r->s, r->slen) == 0)
                f = &t->f[j];
        if (!f) {
            skip(r, what);
            continue;
        }
        if (dec_value(r, f->key, f, base) && f->has)
            AT(base, f->has - 1, bool) = true;
        seen |= 1u << (f - t->f);
    }
    for (uint32_t j = 0; j < t->n && !r->code; j++)
        if ((t->f[j].flags & WF_REQ) && !((seen >> j) & 1u))
            fail(r, AT_WIRE_EMISSING, t->f[j].key, "missing required key \"%s\"", t->f[j].key);
}

/* A map value into the struct at p; false when it was null (allowed with WF_NULL). */
static bool dec_map(rd_t *r, const char *key, const at__wfield_t *f, void *p)
{
    uint32_t n;
    if (!(f->flags & WF_NULL)) {
        n = enter(r, key, K_MAP);
    } else {
        if (!next(r, key) || r->kind == K_NULL)
            return false;
        if (r->kind != K_MAP) {
            wrong_type(r, key, "a map or null");
            return false;
        }
        n = (uint32_t)r->u; /* the head is read: account the container by hand */
        if (++r->depth > r->lim->max_depth) {
            fail(r, AT_WIRE_ELIMIT, key, "nesting deeper than %" PRIu32 " (limit max_depth)",
                 r->lim->max_depth);
            return false;
        }
    }
    dec_pairs(r, key, f->sub, p, n, false);
    leave(r);
    return true;
}

/* The task row by hand: it is the bulk of a big update, and straight-line code reads it
 * faster than the walk of dec_row (bench wire_decode_update_100k_ms). Same rules. */
static void dec_task_row(rd_t *r, const char *key, at_wire_task_t *t);

/* A row (positional array) into the struct at base, laid out by t: t->min elements required,
 * then each optional group the row holds whole; elements past those are skipped. */
static void dec_row(rd_t *r, const char *key, const at__wtable_t *t, void *base)
{
    if (t == &at__wire_task_row) {
        dec_task_row(r, key, base);
        return;
    }
    uint32_t c = enter(r, key, K_ARRAY), i = 0;
    if (r->code)
        return;
    if (c < t->min) {
        fail(r, AT_WIRE_EVALUE, key,
             "key \"%s\": a row of %" PRIu32 " elements, %" PRIu32 " needed", key, c,
             (uint32_t)t->min);
        return;
    }
    for (uint32_t end = t->min; end <= c && i < end && !r->code; end = at__wire_group_end(t, end))
        for (; i < end && !r->code; i++)
            if (dec_value(r, key, &t->f[i], base) && t->f[i].has)
                AT(base, t->f[i].has - 1, bool) = true;
    for (; i < c && !r->code; i++)
        skip(r, key); /* forward compatibility */
    leave(r);
}

static void dec_task_row(rd_t *r, const char *key, at_wire_task_t *t)
{
    uint32_t n = enter(r, key, K_ARRAY);
    if (r->code)
        return;
    if (n < 13) {
        fail(r, AT_WIRE_EVALUE, key, "key \"%s\": a row of %" PRIu32 " elements, 13 needed", key,
             n);
        return;
    }
    t->id = get_uint(r, key);
    t->name = get_text_null(r, key);
    t->state = get_u8(r, key);
    t->wait_kind = get_u8(r, key);
    t->wait_obj = get_uint(r, key);
    t->wait_since_us = get_uint(r, key);
    t->busy_ns = get_uint(r, key);
    t->steps = get_uint(r, key);
    t->parent = get_uint(r, key);
    t->created_us = get_uint(r, key);
    t->create_site = get_u32(r, key);
    t->entry_site = get_u32(r, key);
    t->stack = get_u32(r, key);
    if (n > 13)
        t->wait_desc = get_text_null(r, key);
    for (uint32_t i = n > 13 ? 14 : 13; i < n && !r->code; i++)
        skip(r, key);
    leave(r);
}

/* An array (pointer at f->off, count at f->n_off) of the elements f->type says. */
static void dec_array(rd_t *r, const char *key, const at__wfield_t *f, void *base)
{
    static const size_t sizes[] = {[WT_U64S] = 8, [WT_U32S] = 4, [WT_TEXTS] = sizeof(char *)};
    uint32_t n = enter(r, key, K_ARRAY);
    size_t size = f->sub ? f->sub->size : sizes[f->type];
    char *v = alloc_array(r, n, size);
    for (uint32_t i = 0; i < n && !r->code; i++) {
        void *e = v + (size_t)i * size;
        if (f->type == WT_U64S) {
            *(uint64_t *)e = get_uint(r, key);
        } else if (f->type == WT_U32S) {
            *(uint32_t *)e = get_u32(r, key);
        } else if (f->type == WT_TEXTS) {
            *(const char **)e = get_text(r, key);
        } else if (f->type == WT_ROWS) {
            dec_row(r, key, f->sub, e);
        } else { /* WT_MAPS */
            uint32_t k = enter(r, key, K_MAP);
            dec_pairs(r, key, f->sub, e, k, false);
            leave(r);
        }
    }
    leave(r);
    AT(base, f->n_off, uint32_t) = r->code ? 0 : n;
    AT(base, f->off, void *) = r->code ? NULL : v;
}

static uint8_t op_code(const uint8_t *s, size_t n)
{
    for (int i = AT_WIRE_OP_TASK_DETAIL; i <= AT_WIRE_OP_RESUME; i++) {
        const char *name = at__wire_op_names[i];
        if (strlen(name) == n && memcmp(name, s, n) == 0)
            return (uint8_t)i;
    }
    return AT_WIRE_OP_UNKNOWN;
}

/* WC_OP: the op name; an unknown one is kept in the const char * at n_off. */
static void dec_op(rd_t *r, const char *key, const at__wfield_t *f, void *base)
{
    const char *s = get_text(r, key);
    if (!s)
        return;
    AT(base, f->off, uint8_t) = op_code((const uint8_t *)s, strlen(s));
    AT(base, f->n_off, const char *) = AT(base, f->off, uint8_t) == AT_WIRE_OP_UNKNOWN ? s : NULL;
}

static void (*const dec_custom[])(rd_t *r, const char *key, const at__wfield_t *f,
                                  void *base) = {[WC_OP] = dec_op};

/* Reads the value of field f of the struct at base; false when it was absent (a null map). */
static bool dec_value(rd_t *r, const char *key, const at__wfield_t *f, void *base)
{
    void *p = (char *)base + f->off;
    switch (f->type) {
    case WT_U64:
        *(uint64_t *)p = get_uint(r, key);
        break;
    case WT_U32:
        *(uint32_t *)p = get_u32(r, key);
        break;
    case WT_U8:
        *(uint8_t *)p = get_u8(r, key);
        break;
    case WT_I64:
        *(int64_t *)p = get_int(r, key);
        break;
    case WT_BOOL:
        *(bool *)p = get_bool(r, key);
        break;
    case WT_TEXT:
        *(const char **)p = get_text(r, key);
        break;
    case WT_TEXTN:
        *(const char **)p = get_text_null(r, key);
        break;
    case WT_HIST:
        get_hist(r, key, p);
        break;
    case WT_CAPS:
        *(uint32_t *)p = get_caps(r, key);
        break;
    case WT_MAP:
        return dec_map(r, key, f, p);
    case WT_ROW:
        dec_row(r, key, f->sub, p);
        break;
    case WT_CUSTOM:
        dec_custom[f->cid](r, key, f, base);
        break;
    default:
        dec_array(r, key, f, base);
    }
    return true;
}

/* ---- entry points ----------------------------------------------------------- */

/* First pass over the top-level map: finds "t" and "v" (our encoder writes
 * them first, so this normally reads four items). */
static int find_type(rd_t *r, uint32_t n, int *type, uint64_t *version)
{
    bool have_t = false, have_v = false;
    for (uint32_t i = 0; i < n && !r->code && !(have_t && have_v); i++) {
        if (!get_key(r)) {
            skip(r, NULL);
        } else if (IS(r, "t")) {
            if (!next(r, "t"))
                break;
            if (r->kind != K_TEXT) {
                wrong_type(r, "t", "a text string (the message type)");
                break;
            }
            *type = 0;
            for (int k = AT_WIRE_HELLO; k <= AT_WIRE_BYE; k++) {
                const char *name = at__wire_type_names[k];
                if (strlen(name) == r->slen && memcmp(name, r->s, r->slen) == 0)
                    *type = k;
            }
            if (!*type) {
                int len = r->slen > 40 ? 40 : (int)r->slen;
                fail(r, AT_WIRE_EUNKNOWNTYPE, "t", "unknown message type \"%.*s\"", len,
                     (const char *)r->s);
            }
            have_t = true;
        } else if (IS(r, "v")) {
            *version = get_uint(r, "v");
            have_v = true;
            if (r->err && !r->code)
                r->err->peer_version = *version;
        } else {
            skip(r, NULL);
        }
    }
    if (r->code)
        return r->code;
    if (!have_t) {
        fail(r, AT_WIRE_EMISSING, "t", "missing required key \"t\" (message type)");
        return r->code;
    }
    r->what = at__wire_type_names[*type];
    if (!have_v) {
        fail(r, AT_WIRE_EMISSING, "v", "missing required key \"v\" (protocol version)");
        return r->code;
    }
    if (*version != AT_WIRE_VERSION) {
        fail(r, AT_WIRE_EVERSION, "v",
             "protocol version %" PRIu64 " is not supported (this side speaks %d)", *version,
             AT_WIRE_VERSION);
        return r->code;
    }
    return 0;
}

int at_wire_decode(const uint8_t *cbor, size_t len, const at_wire_limits_t *lim, at_wire_msg_t *out,
                   at_wire_err_t *err)
{
    assert(lim && out);
    memset(out, 0, sizeof *out);
    if (err) {
        err->code = 0;
        err->key = NULL;
        err->offset = 0;
        err->msg[0] = '\0';
        err->peer_version = 0;
    }
    rd_t r = {.base = cbor, .p = cbor, .end = cbor + len, .lim = lim, .err = err};
    if (len > lim->max_frame) {
        fail(&r, AT_WIRE_ELIMIT, NULL, "a frame of %zu bytes (limit max_frame %zu)", len,
             lim->max_frame);
        return r.code;
    }
    if (len == 0) {
        fail(&r, AT_WIRE_ETRUNCATED, NULL, "empty frame: no CBOR item");
        return r.code;
    }
    /* the top-level item must be a definite map */
    if ((cbor[0] >> 5) != 5 || (cbor[0] & 31u) == 31u) {
        fail(&r, AT_WIRE_ENOTMAP, NULL,
             "the frame holds a CBOR %s, not a definite-length map (first byte 0x%02x)",
             (cbor[0] >> 5) == 4   ? "array"
             : (cbor[0] >> 5) == 5 ? "indefinite map"
                                   : "item",
             cbor[0]);
        return r.code;
    }
    uint32_t n = enter(&r, NULL, K_MAP);
    if (r.code)
        return r.code;
    int type = 0;
    uint64_t version = 0;
    if (find_type(&r, n, &type, &version))
        return r.code;

    /* second pass: decode the fields, from the start of the map */
    r.p = r.base;
    r.total = 0;
    r.depth = 0;
    n = enter(&r, NULL, K_MAP);
    r.arena = calloc(1, sizeof *r.arena);
    if (!r.arena) {
        fail(&r, AT_WIRE_ENOMEM, NULL, "out of memory");
        return r.code;
    }
    out->type = type;
    out->u.hello.version = AT_WIRE_VERSION; /* every message struct starts with it */
    dec_pairs(&r, r.what, at__wire_msg_tables[type], &out->u, n, true);
    leave(&r);
    if (!r.code && r.p != r.end)
        fail(&r, AT_WIRE_ETRAILING, NULL, "%zu bytes follow the message inside the frame",
             (size_t)(r.end - r.p));
    if (r.code) {
        arena_free(r.arena);
        memset(out, 0, sizeof *out);
        return r.code;
    }
    out->arena_ = r.arena;
    return 0;
}

int at_wire_decode_expect(const uint8_t *cbor, size_t len, int type, const at_wire_limits_t *lim,
                          at_wire_msg_t *out, at_wire_err_t *err)
{
    int rc = at_wire_decode(cbor, len, lim, out, err);
    if (rc)
        return rc;
    if (out->type != type) {
        if (err) {
            err->code = AT_WIRE_EUNEXPECTED;
            err->key = "t";
            snprintf(err->msg, sizeof err->msg, "expected a %s message, got %s",
                     at_wire_type_name(type) ? at_wire_type_name(type) : "?",
                     at_wire_type_name(out->type));
        }
        at_wire_msg_free(out);
        return AT_WIRE_EUNEXPECTED;
    }
    return 0;
}

void at_wire_msg_free(at_wire_msg_t *m)
{
    if (!m)
        return;
    arena_free(m->arena_);
    memset(m, 0, sizeof *m);
}

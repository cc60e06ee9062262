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

/* ---- the pull reader ---------------------------------------------------- */

enum kind { /* K_BAD: tag, undefined, indefinite item, break: never used by the protocol */
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
            K_BAD
};

static const char *const kind_names[] = {"nothing",
                                         "unsigned integer",
                                         "negative integer",
                                         "byte string",
                                         "text string",
                                         "array",
                                         "map",
                                         "bool",
                                         "null",
                                         "float",
                                         "unsupported item"};

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

/* Latches the first error (code, key, a message) and returns 0, for `return fail(...)`. */
__attribute__((format(printf, 4, 5))) static int fail(rd_t *r, int code, const char *key,
                                                      const char *fmt, ...)
{
    if (r->code)
        return 0; /* the first error sticks */
    r->code = code;
    if (!r->err)
        return 0;
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
    return 0;
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
/* clang-format off */
static void cb_u8(void *ctx, uint8_t v) { CTX->kind = K_UINT; CTX->u = v; }
static void cb_u16(void *ctx, uint16_t v) { CTX->kind = K_UINT; CTX->u = v; }
static void cb_u32(void *ctx, uint32_t v) { CTX->kind = K_UINT; CTX->u = v; }
static void cb_u64(void *ctx, uint64_t v) { CTX->kind = K_UINT; CTX->u = v; }
static void cb_n8(void *ctx, uint8_t v) { CTX->kind = K_NEG; CTX->u = v; }
static void cb_n16(void *ctx, uint16_t v) { CTX->kind = K_NEG; CTX->u = v; }
static void cb_n32(void *ctx, uint32_t v) { CTX->kind = K_NEG; CTX->u = v; }
static void cb_n64(void *ctx, uint64_t v) { CTX->kind = K_NEG; CTX->u = v; }
static void cb_array(void *ctx, size_t n) { CTX->kind = K_ARRAY; CTX->u = n; }
static void cb_map(void *ctx, size_t n) { CTX->kind = K_MAP; CTX->u = n; }
static void cb_bytes(void *ctx, cbor_data d, size_t n) { CTX->kind = K_BYTES; CTX->s = d; CTX->slen = n; }
static void cb_text(void *ctx, cbor_data d, size_t n) { CTX->kind = K_TEXT; CTX->s = d; CTX->slen = n; }
static void cb_null(void *ctx) { CTX->kind = K_NULL; }
static void cb_bool(void *ctx, bool v) { CTX->kind = K_BOOL; CTX->b = v; }
static void cb_f4(void *ctx, float v) { CTX->kind = K_FLOAT; }
static void cb_f8(void *ctx, double v) { CTX->kind = K_FLOAT; }
static void cb_indef(void *ctx)
{ CTX->kind = K_BAD; CTX->bad = "an indefinite-length item (the protocol uses definite lengths only)"; }
static void cb_break(void *ctx) { CTX->kind = K_BAD; CTX->bad = "a stray break byte"; }
static void cb_undef(void *ctx) { CTX->kind = K_BAD; CTX->bad = "the undefined value"; }
static void cb_tag(void *ctx, uint64_t v) { CTX->kind = K_BAD; CTX->bad = "a CBOR tag (the protocol uses no tags)"; }
/* clang-format on */
#undef CTX

/* clang-format off */
static const struct cbor_callbacks callbacks = {
    .uint8 = cb_u8, .uint16 = cb_u16, .uint32 = cb_u32, .uint64 = cb_u64,
    .negint8 = cb_n8, .negint16 = cb_n16, .negint32 = cb_n32, .negint64 = cb_n64,
    .byte_string_start = cb_indef, .byte_string = cb_bytes, .string = cb_text,
    .string_start = cb_indef, .indef_array_start = cb_indef, .array_start = cb_array,
    .indef_map_start = cb_indef, .map_start = cb_map, .tag = cb_tag, .float2 = cb_f4,
    .float4 = cb_f4, .float8 = cb_f8, .undefined = cb_undef, .null = cb_null, .boolean = cb_bool,
    .indef_break = cb_break,
};
/* clang-format on */

/* The length of the CBOR head at p (p < end) with its argument in *v, or 0 when it is cut short
 * or not a plain argument (reserved values, indefinite lengths). */
static inline size_t head(const uint8_t *p, const uint8_t *end, uint64_t *v)
{
    unsigned info = p[0] & 31u;
    size_t n = info < 24 ? 1 : info < 28 ? 1 + ((size_t)1 << (info - 24)) : 0;
    if (n == 0 || (size_t)(end - p) < n)
        return 0;
    if (n == 1) /* unrolled: this is the task rows' hot path */
        *v = info;
    else if (n == 2)
        *v = p[1];
    else if (n == 3)
        *v = (uint64_t)p[1] << 8 | p[2];
    else if (n == 5)
        *v = (uint64_t)p[1] << 24 | (uint64_t)p[2] << 16 | (uint64_t)p[3] << 8 | p[4];
    else
        for (size_t i = 1; i < 9; i++)
            *v = (i == 1 ? 0 : *v << 8) | p[i];
    return n;
}

/* Reads the next data item into r->kind/u/s/slen/b and checks the limits
 * that apply to it. Returns 0 once an error has latched. */
static int next(rd_t *r, const char *key)
{
    if (r->code)
        return 0;
    if (r->p >= r->end)
        return fail(r, AT_WIRE_ETRUNCATED, key, "the item ends early (%s expected at byte %zu)",
                    key ? key : "a value", (size_t)(r->p - r->base));
    if (++r->total > r->lim->max_total)
        return fail(r, AT_WIRE_ELIMIT, key, "more than %" PRIu64 " data items (limit max_total)",
                    r->lim->max_total);
    r->kind = K_NONE;
    struct cbor_decoder_result res =
        cbor_stream_decode(r->p, (size_t)(r->end - r->p), &callbacks, r);
    if (res.status == CBOR_DECODER_NEDATA) {
        unsigned major = r->p[0] >> 5;
        uint64_t v;
        if (head(r->p, r->end, &v) && (major == 2 || major == 3) && v > r->lim->max_string) {
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
    if (res.status != CBOR_DECODER_FINISHED || r->kind == K_NONE)
        return fail(r, AT_WIRE_EMALFORMED, key, "malformed CBOR at byte %zu",
                    (size_t)(r->p - r->base));
    r->p += res.read;
    size_t left = (size_t)(r->end - r->p);
    switch (r->kind) {
    case K_BAD:
        return fail(r, AT_WIRE_EMALFORMED, key, "%s at byte %zu", r->bad,
                    (size_t)(r->p - r->base - res.read));
    case K_BYTES:
    case K_TEXT:
        if (r->slen > r->lim->max_string)
            return fail(r, AT_WIRE_ELIMIT, key,
                        "a string of %zu bytes (limit max_string %" PRIu32 ")", r->slen,
                        r->lim->max_string);
        break;
    case K_ARRAY:
    case K_MAP:
        if (r->u > r->lim->max_items)
            return fail(r, AT_WIRE_ELIMIT, key,
                        "%s %s declares %" PRIu64 " elements (limit max_items %" PRIu32 ")",
                        kind_names[r->kind], key ? key : "", r->u, r->lim->max_items);
        /* every element takes at least one byte: refuse counts that cannot
         * be there before anyone allocates for them */
        if (r->u > left || (r->kind == K_MAP && r->u * 2 > left))
            return fail(r, AT_WIRE_ETRUNCATED, key,
                        "%s %s declares %" PRIu64 " elements but only %zu bytes remain",
                        kind_names[r->kind], key ? key : "", r->u, left);
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

/* Accounts one more level of nesting; 0 (and the error) past max_depth. */
static inline int descend(rd_t *r, const char *key)
{
    if (++r->depth <= r->lim->max_depth)
        return 1;
    return fail(r, AT_WIRE_ELIMIT, key, "nesting deeper than %" PRIu32 " (limit max_depth)",
                r->lim->max_depth);
}

static void skip(rd_t *r, const char *key);

/* Skips the content of the item just read if it is a container, bounded by depth. */
static void skip_content(rd_t *r, const char *key)
{
    if ((r->kind != K_ARRAY && r->kind != K_MAP) || !descend(r, key))
        return;
    uint64_t n = r->kind == K_MAP ? r->u * 2 : r->u;
    for (uint64_t i = 0; i < n && !r->code; i++)
        skip(r, key);
    r->depth--;
}

/* Skips one complete value (any kind), bounded by depth and the limits. */
static void skip(rd_t *r, const char *key)
{
    if (next(r, key))
        skip_content(r, key);
}

/* Reads the next item: 1 when it is of kind `kind` or `alt` (K_NONE: no alternative), else 0
 * and an error saying what was wanted. */
static inline int expect(rd_t *r, const char *key, int kind, int alt, const char *want)
{
    if (!next(r, key))
        return 0;
    if (r->kind == kind || r->kind == alt)
        return 1;
    wrong_type(r, key, want);
    return 0;
}

static uint64_t get_uint(rd_t *r, const char *key)
{
    /* Fast path for the bulk of every update (task rows are mostly
     * integers): an unsigned integer is nothing but its head, so read it
     * here with the same checks (bytes present, item count) instead of a
     * call through libcbor. Everything else, and every item that
     * allocates (arrays, maps, strings), goes through cbor_stream_decode. */
    uint64_t v;
    size_t n;
    if (!r->code && r->p < r->end && (r->p[0] >> 5) == 0 && r->total < r->lim->max_total &&
        (n = head(r->p, r->end, &v)) != 0) {
        r->p += n;
        r->total++;
        r->kind = K_UINT;
        r->u = v;
        return v;
    }
    return expect(r, key, K_UINT, K_NONE, "an unsigned integer") ? r->u : 0;
}

static uint64_t get_uint_max(rd_t *r, const char *key, uint64_t max)
{
    uint64_t v = get_uint(r, key);
    if (v > max)
        return fail(r, AT_WIRE_EVALUE, key,
                    "key \"%s\": %" PRIu64 " is out of range (max %" PRIu64 ")", key, v, max);
    return v;
}
#define get_u32(r, key) ((uint32_t)get_uint_max(r, key, UINT32_MAX))
#define get_u8(r, key)  ((uint8_t)get_uint_max(r, key, UINT8_MAX))

static int64_t get_int(rd_t *r, const char *key)
{
    if (!expect(r, key, K_UINT, K_NEG, "an integer"))
        return 0;
    if (r->u > (uint64_t)INT64_MAX)
        return fail(r, AT_WIRE_EVALUE, key, "key \"%s\": integer out of the 64-bit signed range",
                    key);
    return r->kind == K_UINT ? (int64_t)r->u : -1 - (int64_t)r->u;
}

static bool get_bool(rd_t *r, const char *key)
{
    return expect(r, key, K_BOOL, K_NONE, "a bool") && r->b;
}

/* Copies the current text item into the arena as a C string. */
static const char *text_copy(rd_t *r, const char *key)
{
    char *s = NULL;
    if (!at__wire_utf8_ok(r->s, r->slen))
        fail(r, AT_WIRE_EVALUE, key, "key \"%s\": text is not valid UTF-8 or contains NUL",
             key ? key : "?");
    else
        s = arena_alloc(r, r->slen + 1);
    if (!s)
        return NULL;
    memcpy(s, r->s, r->slen);
    s[r->slen] = '\0';
    return s;
}

static const char *get_text(rd_t *r, const char *key)
{
    return expect(r, key, K_TEXT, K_NONE, "a text string") ? text_copy(r, key) : NULL;
}

/* Text or null (NULL). */
static const char *get_text_null(rd_t *r, const char *key)
{
    if (!expect(r, key, K_TEXT, K_NULL, "a text string or null") || r->kind == K_NULL)
        return NULL;
    return text_copy(r, key);
}

/* Opens a container of kind `kind` (K_ARRAY or K_MAP): returns its count, with depth
 * accounted; the caller reads the elements and calls leave(). With null_ok, a null is no error
 * and returns ABSENT (then there is nothing to leave). */
#define ABSENT UINT32_MAX
static uint32_t enter(rd_t *r, const char *key, int kind, bool null_ok)
{
    const char *want = kind == K_ARRAY ? "an array" : null_ok ? "a map or null" : "a map";
    if (!expect(r, key, kind, null_ok ? K_NULL : K_NONE, want))
        return 0;
    if (r->kind == K_NULL)
        return ABSENT;
    return descend(r, key) ? (uint32_t)r->u : 0; /* <= max_items, checked in next() */
}

static void leave(rd_t *r)
{
    if (r->depth)
        r->depth--;
}

/* Reads a map key: returns 1 with r->s/slen set to a text key, or 0 when the
 * key is not text (its value must then be skipped) or on error. */
static int get_key(rd_t *r)
{
    if (!next(r, "map key"))
        return 0;
    if (r->kind == K_TEXT)
        return 1;
    skip_content(r, "map key"); /* a container as a key: its content too */
    return 0;
}

#define IS(r, lit) ((r)->slen == sizeof(lit) - 1 && memcmp((r)->s, lit, sizeof(lit) - 1) == 0)

/* The index i in [lo, hi) of names[i] equal to the text item just read, or -1. */
static int name_index(const rd_t *r, const char *const *names, int lo, int hi)
{
    for (int i = lo; i < hi; i++)
        if (strlen(names[i]) == r->slen && memcmp(names[i], r->s, r->slen) == 0)
            return i;
    return -1;
}

static uint32_t get_caps(rd_t *r, const char *key)
{
    uint32_t bits = 0;
    uint32_t n = enter(r, key, K_ARRAY, false);
    for (uint32_t i = 0; i < n && !r->code; i++) {
        if (!next(r, key))
            break;
        if (r->kind != K_TEXT) {
            wrong_type(r, key, "an array of text strings");
            break;
        }
        int b = name_index(r, at__wire_cap_names, 0, AT_WIRE_CAP_COUNT);
        if (b >= 0) /* unknown names are ignored */
            bits |= 1u << b;
    }
    leave(r);
    return bits;
}

static void get_hist(rd_t *r, const char *key, at_wire_hist_t *h)
{
    uint32_t n = enter(r, key, K_ARRAY, false);
    if (n > AT_WIRE_MAX_HIST) {
        fail(r, AT_WIRE_ELIMIT, key, "key \"%s\": a histogram of %" PRIu32 " buckets (max %d)", key,
             n, AT_WIRE_MAX_HIST);
        return;
    }
    uint64_t *v = n ? arena_alloc(r, n * sizeof *v) : NULL; /* n <= max_items */
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
    uint32_t seen = 0; /* bit j: t->f[j] was read */
    assert(t->n <= 32);
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
    uint32_t n = enter(r, key, K_MAP, f->flags & WF_NULL);
    if (n == ABSENT)
        return false;
    dec_pairs(r, key, f->sub, p, n, false);
    leave(r);
    return true;
}

/* A row (positional array) into the struct at base, laid out by t: t->min elements required,
 * then each optional group the row holds whole; elements past those are skipped. */
static void dec_row(rd_t *r, const char *key, const at__wtable_t *t, void *base)
{
    uint32_t c = enter(r, key, K_ARRAY, false), i = 0;
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

/* The task row by hand, for arrays of task rows (dec_array): the bulk of a big update, read
 * faster than by the walk of dec_row (bench wire_decode_update_100k_ms). Same rules. */
static void dec_task_row(rd_t *r, const char *key, at_wire_task_t *t)
{
    uint32_t n = enter(r, key, K_ARRAY, false);
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
#pragma GCC unroll 6 /* a branch site per field: the sizes differ by field */
    for (int i = 0; i < 6; i++)
        AT(t, at__task_int_off(i), uint64_t) = get_uint(r, key);
#pragma GCC unroll 3
    for (int i = 6; i < 9; i++)
        AT(t, at__task_int_off(i), uint32_t) = get_u32(r, key);
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
    uint32_t n = enter(r, key, K_ARRAY, false);
    size_t size = f->sub ? f->sub->size : sizes[f->type];
    char *v = n ? arena_alloc(r, n * size) : NULL; /* n <= max_items */
    for (uint32_t i = 0; i < n && !r->code; i++) {
        void *e = v + (size_t)i * size;
        if (f->sub == &at__wire_task_row) /* the bulk of a big update */
            dec_task_row(r, key, e);
        else if (f->type == WT_U64S)
            *(uint64_t *)e = get_uint(r, key);
        else if (f->type == WT_U32S)
            *(uint32_t *)e = get_u32(r, key);
        else if (f->type == WT_TEXTS)
            *(const char **)e = get_text(r, key);
        else if (f->type == WT_ROWS)
            dec_row(r, key, f->sub, e);
        else /* WT_MAPS */
            dec_map(r, key, f, e);
    }
    leave(r);
    AT(base, f->n_off, uint32_t) = r->code ? 0 : n;
    AT(base, f->off, void *) = r->code ? NULL : v;
}

/* WC_OP: the op name; an unknown one is kept in the const char * at n_off. */
static void dec_op(rd_t *r, const char *key, const at__wfield_t *f, void *base)
{
    const char *s = get_text(r, key);
    if (!s)
        return;
    int op = name_index(r, at__wire_op_names, AT_WIRE_OP_TASK_DETAIL, AT_WIRE_OP_RESUME + 1);
    AT(base, f->off, uint8_t) = op < 0 ? AT_WIRE_OP_UNKNOWN : (uint8_t)op;
    AT(base, f->n_off, const char *) = op < 0 ? s : NULL;
}

static void (*const dec_custom[])(rd_t *r, const char *key, const at__wfield_t *f,
                                  void *base) = {[WC_OP] = dec_op};

/* A scalar (WT_U64 .. WT_CAPS) into the field at p, as an integer of its width. */
static void dec_scalar(rd_t *r, const char *key, int type, void *p)
{
    uint64_t max = type == WT_U8 ? UINT8_MAX : type == WT_U32 ? UINT32_MAX : UINT64_MAX;
    uint64_t v = type == WT_I64    ? (uint64_t)get_int(r, key)
                 : type == WT_BOOL ? get_bool(r, key)
                 : type == WT_CAPS ? get_caps(r, key)
                                   : get_uint_max(r, key, max);
    size_t w = at__wire_width(type);
    if (w == 8)
        *(uint64_t *)p = v;
    else if (w == 4)
        *(uint32_t *)p = (uint32_t)v;
    else /* uint8_t, or a bool (0 or 1) */
        *(uint8_t *)p = (uint8_t)v;
}

/* A WF_IF1ST map: one whose first field is 0 reads as absent (all zero), as the encoder leaves
 * it out, so that a round trip keeps what was read (a profile of 0 samples with stacks). */
static bool dec_map_if1st(rd_t *r, const char *key, const at__wfield_t *f, void *p)
{
    bool present = dec_map(r, key, f, p);
    const at__wfield_t *first = &f->sub->f[0];
    const char *v = (const char *)p + first->off;
    size_t w = at__wire_width(first->type);
    uint64_t x = w == 8   ? *(const uint64_t *)v
                 : w == 4 ? *(const uint32_t *)v
                          : *(const uint8_t *)v;
    if (present && x == 0)
        memset(p, 0, f->sub->size);
    return present;
}

/* Reads the value of field f of the struct at base; false when it was absent (a null map). */
static bool dec_value(rd_t *r, const char *key, const at__wfield_t *f, void *base)
{
    void *p = (char *)base + f->off;
    if (f->type <= WT_CAPS)
        dec_scalar(r, key, f->type, p);
    else if (f->type == WT_TEXT || f->type == WT_TEXTN)
        *(const char **)p = f->type == WT_TEXT ? get_text(r, key) : get_text_null(r, key);
    else if (f->type == WT_HIST)
        get_hist(r, key, p);
    else if (f->type == WT_MAP && (f->flags & WF_IF1ST))
        return dec_map_if1st(r, key, f, p);
    else if (f->type == WT_MAP)
        return dec_map(r, key, f, p);
    else if (f->type == WT_ROW)
        dec_row(r, key, f->sub, p);
    else if (f->type == WT_CUSTOM)
        dec_custom[f->cid](r, key, f, base);
    else
        dec_array(r, key, f, base);
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
            int k = name_index(r, at__wire_type_names, AT_WIRE_HELLO, AT_WIRE_BYE + 1);
            *type = k > 0 ? k : 0;
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
    if (err)
        memset(err, 0, sizeof *err);
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
    uint32_t n = enter(&r, NULL, K_MAP, false);
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
    n = enter(&r, NULL, K_MAP, false);
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
    out->arena_ = r.arena;
    if (r.code)
        at_wire_msg_free(out);
    return r.code;
}

int at_wire_decode_expect(const uint8_t *cbor, size_t len, int type, const at_wire_limits_t *lim,
                          at_wire_msg_t *out, at_wire_err_t *err)
{
    int rc = at_wire_decode(cbor, len, lim, out, err);
    if (rc == 0 && out->type != type) {
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
    return rc;
}

void at_wire_msg_free(at_wire_msg_t *m)
{
    if (!m)
        return;
    arena_t *a = m->arena_;
    for (arena_block_t *b = a ? a->head : NULL, *next; b; b = next) {
        next = b->next;
        free(b);
    }
    free(a);
    memset(m, 0, sizeof *m);
}

/* wire_decode.c: bounded streaming decoder (libcbor cbor_stream_decode) from untrusted bytes into
 * v1 message structs. */
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
#define CB_CTX ((rd_t *)ctx)
static void cb_u8(void *ctx, uint8_t v)
{
    CB_CTX->kind = K_UINT;
    CB_CTX->u = v;
}
static void cb_u16(void *ctx, uint16_t v)
{
    CB_CTX->kind = K_UINT;
    CB_CTX->u = v;
}
static void cb_u32(void *ctx, uint32_t v)
{
    CB_CTX->kind = K_UINT;
    CB_CTX->u = v;
}
static void cb_u64(void *ctx, uint64_t v)
{
    CB_CTX->kind = K_UINT;
    CB_CTX->u = v;
}
static void cb_n8(void *ctx, uint8_t v)
{
    CB_CTX->kind = K_NEG;
    CB_CTX->u = v;
}
static void cb_n16(void *ctx, uint16_t v)
{
    CB_CTX->kind = K_NEG;
    CB_CTX->u = v;
}
static void cb_n32(void *ctx, uint32_t v)
{
    CB_CTX->kind = K_NEG;
    CB_CTX->u = v;
}
static void cb_n64(void *ctx, uint64_t v)
{
    CB_CTX->kind = K_NEG;
    CB_CTX->u = v;
}
static void cb_bytes(void *ctx, cbor_data d, size_t n)
{
    CB_CTX->kind = K_BYTES;
    CB_CTX->s = d;
    CB_CTX->slen = n;
}
static void cb_text(void *ctx, cbor_data d, size_t n)
{
    CB_CTX->kind = K_TEXT;
    CB_CTX->s = d;
    CB_CTX->slen = n;
}
static void cb_array(void *ctx, size_t n)
{
    CB_CTX->kind = K_ARRAY;
    CB_CTX->u = n;
}
static void cb_map(void *ctx, size_t n)
{
    CB_CTX->kind = K_MAP;
    CB_CTX->u = n;
}
static void cb_indef(void *ctx)
{
    CB_CTX->kind = K_BAD;
    CB_CTX->bad = "an indefinite-length item (the protocol uses definite lengths only)";
}
static void cb_break(void *ctx)
{
    CB_CTX->kind = K_BAD;
    CB_CTX->bad = "a stray break byte";
}
static void cb_tag(void *ctx, uint64_t v)
{
    CB_CTX->kind = K_BAD;
    CB_CTX->bad = "a CBOR tag (the protocol uses no tags)";
}
static void cb_undef(void *ctx)
{
    CB_CTX->kind = K_BAD;
    CB_CTX->bad = "the undefined value";
}
static void cb_null(void *ctx)
{
    CB_CTX->kind = K_NULL;
}
static void cb_bool(void *ctx, bool v)
{
    CB_CTX->kind = K_BOOL;
    CB_CTX->b = v;
}
static void cb_f4(void *ctx, float v)
{
    CB_CTX->kind = K_FLOAT;
}
static void cb_f8(void *ctx, double v)
{
    CB_CTX->kind = K_FLOAT;
}
#undef CB_CTX

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

/* Skips `extra` trailing row elements (forward compatibility). */
static void skip_rest(rd_t *r, uint32_t n, uint32_t known, const char *key)
{
    for (uint32_t i = known; i < n && !r->code; i++)
        skip(r, key);
}

static int row_open(rd_t *r, const char *key, uint32_t known)
{
    uint32_t n = enter(r, key, K_ARRAY);
    if (r->code)
        return -1;
    if (n < known) {
        fail(r, AT_WIRE_EVALUE, key,
             "key \"%s\": a row of %" PRIu32 " elements, %" PRIu32 " needed", key, n, known);
        return -1;
    }
    return (int)n;
}

/* Reports the first required key (bit i of `need` = names[i]) missing. */
static void check_required(rd_t *r, uint32_t seen, uint32_t need, const char *const *names)
{
    if (r->code)
        return;
    uint32_t miss = need & ~seen;
    if (miss) {
        const char *k = names[__builtin_ctz(miss)];
        fail(r, AT_WIRE_EMISSING, k, "missing required key \"%s\"", k);
    }
}

/* ---- building blocks ------------------------------------------------------- */

static void get_config(rd_t *r, const char *key, at_wire_config_t *c, bool need_all)
{
    static const char *const names[] = {"slow_ns", "debug"};
    uint32_t seen = 0;
    uint32_t n = enter(r, key, K_MAP);
    for (uint32_t i = 0; i < n && !r->code; i++) {
        if (!get_key(r)) {
            skip(r, key);
        } else if (IS(r, "slow_ns")) {
            c->slow_ns = get_uint(r, "slow_ns");
            c->has_slow_ns = true;
            seen |= 1;
        } else if (IS(r, "debug")) {
            c->debug = get_bool(r, "debug");
            c->has_debug = true;
            seen |= 2;
        } else {
            skip(r, key);
        }
    }
    leave(r);
    if (need_all)
        check_required(r, seen, 3, names);
}

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

static void get_loc(rd_t *r, const char *key, at_wire_loc_t *l)
{
    int n = row_open(r, key, 4);
    if (n < 0)
        return;
    l->addr = get_uint(r, key);
    l->func = get_text_null(r, key);
    l->file = get_text_null(r, key);
    l->line = get_u32(r, key);
    if (n > 4)
        l->build_id = get_text_null(r, key);
    skip_rest(r, (uint32_t)n, n > 4 ? 5 : 4, key);
    leave(r);
}

static const at_wire_loc_t *get_locs(rd_t *r, const char *key, uint32_t *count)
{
    uint32_t n = enter(r, key, K_ARRAY);
    at_wire_loc_t *v = alloc_array(r, n, sizeof *v);
    for (uint32_t i = 0; i < n && !r->code; i++)
        get_loc(r, key, &v[i]);
    leave(r);
    *count = r->code ? 0 : n;
    return r->code ? NULL : v;
}

static const uint64_t *get_ids(rd_t *r, const char *key, uint32_t *count)
{
    uint32_t n = enter(r, key, K_ARRAY);
    uint64_t *v = alloc_array(r, n, sizeof *v);
    for (uint32_t i = 0; i < n && !r->code; i++)
        v[i] = get_uint(r, key);
    leave(r);
    *count = r->code ? 0 : n;
    return r->code ? NULL : v;
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

static const at_wire_count_t *get_counts(rd_t *r, const char *key, uint32_t *count)
{
    uint32_t n = enter(r, key, K_ARRAY);
    at_wire_count_t *v = alloc_array(r, n, sizeof *v);
    for (uint32_t i = 0; i < n && !r->code; i++) {
        int k = row_open(r, key, 2);
        if (k < 0)
            break;
        v[i].name = get_text(r, key);
        v[i].n = get_uint(r, key);
        skip_rest(r, (uint32_t)k, 2, key);
        leave(r);
    }
    leave(r);
    *count = r->code ? 0 : n;
    return r->code ? NULL : v;
}

static void get_task_row(rd_t *r, const char *key, at_wire_task_t *t)
{
    int n = row_open(r, key, 13);
    if (n < 0)
        return;
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
    skip_rest(r, (uint32_t)n, n > 13 ? 14 : 13, key);
    leave(r);
}

static const at_wire_task_t *get_tasks(rd_t *r, const char *key, uint32_t *count)
{
    uint32_t n = enter(r, key, K_ARRAY);
    at_wire_task_t *v = alloc_array(r, n, sizeof *v);
    for (uint32_t i = 0; i < n && !r->code; i++)
        get_task_row(r, key, &v[i]);
    leave(r);
    *count = r->code ? 0 : n;
    return r->code ? NULL : v;
}

/* A `profile` map (slow event, running): samples and interval_ns required, [stack, count]
 * rows (extra trailing elements ignored). */
static void get_profile(rd_t *r, const char *key, at_wire_profile_t *p)
{
    static const char *const names[] = {"samples", "interval_ns"};
    uint32_t seen = 0;
    uint32_t n = enter(r, key, K_MAP);
    for (uint32_t i = 0; i < n && !r->code; i++) {
        if (!get_key(r)) {
            skip(r, key);
        } else if (IS(r, "samples")) {
            p->samples = get_u32(r, "samples");
            seen |= 1;
        } else if (IS(r, "interval_ns")) {
            p->interval_ns = get_uint(r, "interval_ns");
            seen |= 2;
        } else if (IS(r, "other")) {
            p->other = get_u32(r, "other");
        } else if (IS(r, "stacks")) {
            uint32_t k = enter(r, "stacks", K_ARRAY);
            at_wire_profile_stack_t *v = alloc_array(r, k, sizeof *v);
            for (uint32_t j = 0; j < k && !r->code; j++) {
                int m = row_open(r, "stacks", 2);
                if (m < 0)
                    break;
                v[j].stack = get_u32(r, "stacks");
                v[j].count = get_u32(r, "stacks");
                skip_rest(r, (uint32_t)m, 2, "stacks");
                leave(r);
            }
            leave(r);
            p->n_stacks = r->code ? 0 : k;
            p->stacks = r->code ? NULL : v;
        } else {
            skip(r, key);
        }
    }
    leave(r);
    check_required(r, seen, 3, names);
}

static void get_running(rd_t *r, const char *key, at_wire_running_t *x)
{
    static const char *const names[] = {"since_ns", "kind"};
    uint32_t seen = 0;
    if (!next(r, key))
        return;
    if (r->kind == K_NULL)
        return; /* idle */
    if (r->kind != K_MAP) {
        wrong_type(r, key, "a map or null");
        return;
    }
    /* we consumed the head: account the container by hand */
    uint32_t n = (uint32_t)r->u;
    if (++r->depth > r->lim->max_depth) {
        fail(r, AT_WIRE_ELIMIT, key, "nesting deeper than %" PRIu32 " (limit max_depth)",
             r->lim->max_depth);
        return;
    }
    x->present = true;
    for (uint32_t i = 0; i < n && !r->code; i++) {
        if (!get_key(r)) {
            skip(r, key);
        } else if (IS(r, "since_ns")) {
            x->since_ns = get_uint(r, "since_ns");
            seen |= 1;
        } else if (IS(r, "kind")) {
            x->kind = get_u8(r, "kind");
            seen |= 2;
        } else if (IS(r, "site")) {
            x->site = get_u32(r, "site");
        } else if (IS(r, "name")) {
            x->name = get_text_null(r, "name");
        } else if (IS(r, "task")) {
            x->task = get_uint(r, "task");
        } else if (IS(r, "stack")) {
            x->stack = get_u32(r, "stack");
        } else if (IS(r, "task_name")) {
            x->task_name = get_text_null(r, "task_name");
        } else if (IS(r, "profile")) {
            get_profile(r, "profile", &x->profile);
        } else {
            skip(r, key);
        }
    }
    leave(r);
    check_required(r, seen, 3, names);
}

static void get_stats(rd_t *r, const char *key, at_wire_loop_stats_t *s)
{
    static const char *const names[] = {"busy_ns", "idle_ns", "iterations", "callbacks", "slow",
                                        "errors",  "lag",     "tasks",      "handles",   "exec"};
    uint32_t seen = 0;
    uint32_t n = enter(r, key, K_MAP);
    for (uint32_t i = 0; i < n && !r->code; i++) {
        if (!get_key(r)) {
            skip(r, key);
        } else if (IS(r, "busy_ns")) {
            s->busy_ns = get_uint(r, "busy_ns");
            seen |= 1u << 0;
        } else if (IS(r, "idle_ns")) {
            s->idle_ns = get_uint(r, "idle_ns");
            seen |= 1u << 1;
        } else if (IS(r, "iterations")) {
            s->iterations = get_uint(r, "iterations");
            seen |= 1u << 2;
        } else if (IS(r, "callbacks")) {
            s->callbacks = get_uint(r, "callbacks");
            seen |= 1u << 3;
        } else if (IS(r, "slow")) {
            s->slow = get_uint(r, "slow");
            seen |= 1u << 4;
        } else if (IS(r, "errors")) {
            s->errors = get_uint(r, "errors");
            seen |= 1u << 5;
        } else if (IS(r, "lag")) {
            get_hist(r, "lag", &s->lag);
            seen |= 1u << 6;
        } else if (IS(r, "lag_max_ns")) {
            s->lag_max_ns = get_uint(r, "lag_max_ns");
        } else if (IS(r, "tasks")) {
            int k = row_open(r, "tasks", AT_WIRE_TASK_NSTATES);
            if (k < 0)
                break;
            for (unsigned j = 0; j < AT_WIRE_TASK_NSTATES; j++)
                s->tasks_by_state[j] = get_uint(r, "tasks");
            skip_rest(r, (uint32_t)k, AT_WIRE_TASK_NSTATES, "tasks");
            leave(r);
            seen |= 1u << 7;
        } else if (IS(r, "handles")) {
            s->handles = get_counts(r, "handles", &s->n_handles);
            seen |= 1u << 8;
        } else if (IS(r, "exec")) {
            static const char *const en[] = {"queued", "running", "threads", "done", "wait_ns"};
            uint32_t eseen = 0;
            uint32_t m = enter(r, "exec", K_MAP);
            for (uint32_t j = 0; j < m && !r->code; j++) {
                if (!get_key(r)) {
                    skip(r, "exec");
                } else if (IS(r, "queued")) {
                    s->exec_queued = get_uint(r, "queued");
                    eseen |= 1;
                } else if (IS(r, "running")) {
                    s->exec_running = get_uint(r, "running");
                    eseen |= 2;
                } else if (IS(r, "threads")) {
                    s->exec_threads = get_uint(r, "threads");
                    eseen |= 4;
                } else if (IS(r, "done")) {
                    s->exec_done = get_uint(r, "done");
                    eseen |= 8;
                } else if (IS(r, "wait_ns")) {
                    s->exec_wait_ns = get_uint(r, "wait_ns");
                    eseen |= 16;
                } else {
                    skip(r, "exec");
                }
            }
            leave(r);
            check_required(r, eseen, 31, en);
            seen |= 1u << 9;
        } else {
            skip(r, key);
        }
    }
    leave(r);
    check_required(r, seen, (1u << 10) - 1, names);
}

static void get_slow(rd_t *r, const char *key, at_wire_slow_t *s)
{
    static const char *const names[] = {"seq", "start_ns", "dur_ns", "kind"};
    uint32_t seen = 0;
    uint32_t n = enter(r, key, K_MAP);
    for (uint32_t i = 0; i < n && !r->code; i++) {
        if (!get_key(r)) {
            skip(r, key);
        } else if (IS(r, "seq")) {
            s->seq = get_uint(r, "seq");
            seen |= 1;
        } else if (IS(r, "start_ns")) {
            s->start_ns = get_uint(r, "start_ns");
            seen |= 2;
        } else if (IS(r, "dur_ns")) {
            s->dur_ns = get_uint(r, "dur_ns");
            seen |= 4;
        } else if (IS(r, "kind")) {
            s->kind = get_u8(r, "kind");
            seen |= 8;
        } else if (IS(r, "site")) {
            s->site = get_u32(r, "site");
        } else if (IS(r, "name")) {
            s->name = get_text_null(r, "name");
        } else if (IS(r, "task")) {
            s->task = get_uint(r, "task");
        } else if (IS(r, "stack")) {
            s->stack = get_u32(r, "stack");
        } else if (IS(r, "sched_stack")) {
            s->sched_stack = get_u32(r, "sched_stack");
        } else if (IS(r, "profile")) {
            get_profile(r, "profile", &s->profile);
        } else {
            skip(r, key);
        }
    }
    leave(r);
    check_required(r, seen, 15, names);
}

static void get_exc(rd_t *r, const char *key, at_wire_exc_t *x)
{
    static const char *const names[] = {"seq", "time_ns", "kind", "message"};
    uint32_t seen = 0;
    uint32_t n = enter(r, key, K_MAP);
    for (uint32_t i = 0; i < n && !r->code; i++) {
        if (!get_key(r)) {
            skip(r, key);
        } else if (IS(r, "seq")) {
            x->seq = get_uint(r, "seq");
            seen |= 1;
        } else if (IS(r, "time_ns")) {
            x->time_ns = get_uint(r, "time_ns");
            seen |= 2;
        } else if (IS(r, "kind")) {
            x->kind = get_u8(r, "kind");
            seen |= 4;
        } else if (IS(r, "message")) {
            x->message = get_text(r, "message");
            seen |= 8;
        } else if (IS(r, "code")) {
            x->code = get_int(r, "code");
        } else if (IS(r, "domain")) {
            x->domain = get_text_null(r, "domain");
        } else if (IS(r, "object")) {
            x->object = get_uint(r, "object");
        } else if (IS(r, "obj_type")) {
            x->obj_type = get_text_null(r, "obj_type");
        } else if (IS(r, "task")) {
            x->task = get_uint(r, "task");
        } else if (IS(r, "raise_stack")) {
            x->raise_stack = get_u32(r, "raise_stack");
        } else if (IS(r, "create_stack")) {
            x->create_stack = get_u32(r, "create_stack");
        } else if (IS(r, "severity")) {
            x->severity = get_text_null(r, "severity");
        } else {
            skip(r, key);
        }
    }
    leave(r);
    check_required(r, seen, 15, names);
}

/* ---- messages: each decodes the body of the top-level map (count n) ------- */

/* Common: "t" and "v" were validated by the caller; skip their values. */
#define COMMON_KEYS(r)                                                                             \
    if (IS(r, "t") || IS(r, "v")) {                                                                \
        skip(r, "t");                                                                              \
        continue;                                                                                  \
    }

/* Loop info rows (hello.loops, update.loops): 3 elements required, then the optional groups
 * thread/kind/addr (3..5) and the counters (6..10, then 11); anything after is skipped. */
static const at_wire_loop_info_t *get_loops(rd_t *r, uint32_t *count)
{
    uint32_t k = enter(r, "loops", K_ARRAY);
    at_wire_loop_info_t *v = alloc_array(r, k, sizeof *v);
    for (uint32_t j = 0; j < k && !r->code; j++) {
        int c = row_open(r, "loops", 3);
        if (c < 0)
            break;
        v[j].id = get_u32(r, "loops");
        v[j].name = get_text_null(r, "loops");
        v[j].tid = get_uint(r, "loops");
        uint32_t known = 3;
        if (c >= 6) {
            v[j].thread = get_text_null(r, "loops");
            v[j].kind = get_text_null(r, "loops");
            v[j].addr = get_uint(r, "loops");
            known = 6;
        }
        if (c >= 11) {
            v[j].has_stats = true;
            v[j].busy_ns = get_uint(r, "loops");
            v[j].idle_ns = get_uint(r, "loops");
            v[j].callbacks = get_uint(r, "loops");
            v[j].slow = get_uint(r, "loops");
            v[j].pending = get_uint(r, "loops");
            known = 11;
        }
        if (c >= 12) {
            v[j].running_ns = get_uint(r, "loops");
            known = 12;
        }
        skip_rest(r, (uint32_t)c, known, "loops");
        leave(r);
    }
    leave(r);
    *count = r->code ? 0 : k;
    return v;
}

static void dec_hello(rd_t *r, uint32_t n, at_wire_hello_t *m)
{
    static const char *const names[] = {"pid",           "program", "argv",   "runtime",
                                        "start_time_ns", "now_ns",  "config", "caps"};
    uint32_t seen = 0;
    m->version = AT_WIRE_VERSION;
    for (uint32_t i = 0; i < n && !r->code; i++) {
        if (!get_key(r)) {
            skip(r, "hello");
            continue;
        }
        COMMON_KEYS(r)
        if (IS(r, "pid")) {
            m->pid = get_uint(r, "pid");
            seen |= 1u << 0;
        } else if (IS(r, "program")) {
            m->program = get_text(r, "program");
            seen |= 1u << 1;
        } else if (IS(r, "argv")) {
            uint32_t k = enter(r, "argv", K_ARRAY);
            const char **v = alloc_array(r, k, sizeof *v);
            for (uint32_t j = 0; j < k && !r->code; j++)
                v[j] = get_text(r, "argv");
            leave(r);
            m->n_argv = r->code ? 0 : k;
            m->argv = v;
            seen |= 1u << 2;
        } else if (IS(r, "runtime")) {
            m->runtime_version = get_text(r, "runtime");
            seen |= 1u << 3;
        } else if (IS(r, "start_time_ns")) {
            m->start_time_ns = get_uint(r, "start_time_ns");
            seen |= 1u << 4;
        } else if (IS(r, "now_ns")) {
            m->now_ns = get_uint(r, "now_ns");
            seen |= 1u << 5;
        } else if (IS(r, "config")) {
            get_config(r, "config", &m->config, true);
            seen |= 1u << 6;
        } else if (IS(r, "caps")) {
            m->caps = get_caps(r, "caps");
            seen |= 1u << 7;
        } else if (IS(r, "loops")) {
            m->loops = get_loops(r, &m->n_loops);
        } else {
            skip(r, "hello");
        }
    }
    check_required(r, seen, 0xff, names);
}

static void dec_subscribe(rd_t *r, uint32_t n, at_wire_subscribe_t *m)
{
    static const char *const names[] = {"interval_ms"};
    uint32_t seen = 0;
    m->version = AT_WIRE_VERSION;
    for (uint32_t i = 0; i < n && !r->code; i++) {
        if (!get_key(r)) {
            skip(r, "subscribe");
            continue;
        }
        COMMON_KEYS(r)
        if (IS(r, "interval_ms")) {
            m->interval_ms = get_u32(r, "interval_ms");
            seen |= 1;
        } else if (IS(r, "what")) {
            m->what = get_caps(r, "what");
        } else if (IS(r, "loop")) {
            m->loop = get_u32(r, "loop");
        } else {
            skip(r, "subscribe");
        }
    }
    check_required(r, seen, 1, names);
}

static void dec_update(rd_t *r, uint32_t n, at_wire_update_t *m)
{
    static const char *const names[] = {"seq", "ts_ns", "full", "config"};
    uint32_t seen = 0;
    m->version = AT_WIRE_VERSION;
    for (uint32_t i = 0; i < n && !r->code; i++) {
        if (!get_key(r)) {
            skip(r, "update");
            continue;
        }
        COMMON_KEYS(r)
        if (IS(r, "seq")) {
            m->seq = get_uint(r, "seq");
            seen |= 1;
        } else if (IS(r, "ts_ns")) {
            m->ts_ns = get_uint(r, "ts_ns");
            seen |= 2;
        } else if (IS(r, "full")) {
            m->full = get_bool(r, "full");
            seen |= 4;
        } else if (IS(r, "config")) {
            get_config(r, "config", &m->config, true);
            seen |= 8;
        } else if (IS(r, "loop")) {
            m->loop = get_u32(r, "loop");
        } else if (IS(r, "stats")) {
            get_stats(r, "stats", &m->stats);
            m->has_stats = true;
        } else if (IS(r, "running")) {
            get_running(r, "running", &m->running);
        } else if (IS(r, "dropped")) {
            m->dropped = get_counts(r, "dropped", &m->n_dropped);
        } else if (IS(r, "sites")) {
            uint32_t k = enter(r, "sites", K_ARRAY);
            at_wire_site_t *v = alloc_array(r, k, sizeof *v);
            for (uint32_t j = 0; j < k && !r->code; j++) {
                int c = row_open(r, "sites", 5);
                if (c < 0)
                    break;
                v[j].id = get_u32(r, "sites");
                v[j].loc.addr = get_uint(r, "sites");
                v[j].loc.func = get_text_null(r, "sites");
                v[j].loc.file = get_text_null(r, "sites");
                v[j].loc.line = get_u32(r, "sites");
                if (c > 5)
                    v[j].loc.build_id = get_text_null(r, "sites");
                skip_rest(r, (uint32_t)c, c > 5 ? 6 : 5, "sites");
                leave(r);
            }
            leave(r);
            m->n_sites = r->code ? 0 : k;
            m->sites = v;
        } else if (IS(r, "stacks")) {
            uint32_t k = enter(r, "stacks", K_ARRAY);
            at_wire_stack_t *v = alloc_array(r, k, sizeof *v);
            for (uint32_t j = 0; j < k && !r->code; j++) {
                int c = row_open(r, "stacks", 2);
                if (c < 0)
                    break;
                v[j].id = get_u32(r, "stacks");
                uint32_t f = enter(r, "stacks", K_ARRAY);
                uint32_t *ids = alloc_array(r, f, sizeof *ids);
                for (uint32_t q = 0; q < f && !r->code; q++)
                    ids[q] = get_u32(r, "stacks");
                leave(r);
                v[j].n_sites = r->code ? 0 : f;
                v[j].sites = ids;
                skip_rest(r, (uint32_t)c, 2, "stacks");
                leave(r);
            }
            leave(r);
            m->n_stacks = r->code ? 0 : k;
            m->stacks = v;
        } else if (IS(r, "tasks_new")) {
            m->tasks_new = get_tasks(r, "tasks_new", &m->n_tasks_new);
        } else if (IS(r, "tasks_changed")) {
            m->tasks_changed = get_tasks(r, "tasks_changed", &m->n_tasks_changed);
        } else if (IS(r, "tasks_gone")) {
            m->tasks_gone = get_ids(r, "tasks_gone", &m->n_tasks_gone);
        } else if (IS(r, "site_stats")) {
            uint32_t k = enter(r, "site_stats", K_ARRAY);
            at_wire_site_stats_t *v = alloc_array(r, k, sizeof *v);
            for (uint32_t j = 0; j < k && !r->code; j++) {
                int c = row_open(r, "site_stats", 7);
                if (c < 0)
                    break;
                v[j].site = get_u32(r, "site_stats");
                v[j].kind = get_u8(r, "site_stats");
                v[j].count = get_uint(r, "site_stats");
                v[j].total_ns = get_uint(r, "site_stats");
                v[j].max_ns = get_uint(r, "site_stats");
                v[j].slow = get_uint(r, "site_stats");
                get_hist(r, "site_stats", &v[j].hist);
                v[j].has_min = c > 7;
                if (c > 7)
                    v[j].min_ns = get_uint(r, "site_stats");
                skip_rest(r, (uint32_t)c, c > 7 ? 8 : 7, "site_stats");
                leave(r);
            }
            leave(r);
            m->n_site_stats = r->code ? 0 : k;
            m->site_stats = v;
        } else if (IS(r, "slow")) {
            uint32_t k = enter(r, "slow", K_ARRAY);
            at_wire_slow_t *v = alloc_array(r, k, sizeof *v);
            for (uint32_t j = 0; j < k && !r->code; j++)
                get_slow(r, "slow", &v[j]);
            leave(r);
            m->n_slow = r->code ? 0 : k;
            m->slow = v;
        } else if (IS(r, "exc")) {
            uint32_t k = enter(r, "exc", K_ARRAY);
            at_wire_exc_t *v = alloc_array(r, k, sizeof *v);
            for (uint32_t j = 0; j < k && !r->code; j++)
                get_exc(r, "exc", &v[j]);
            leave(r);
            m->n_exc = r->code ? 0 : k;
            m->exc = v;
        } else if (IS(r, "inflight")) {
            uint32_t k = enter(r, "inflight", K_ARRAY);
            at_wire_inflight_t *v = alloc_array(r, k, sizeof *v);
            for (uint32_t j = 0; j < k && !r->code; j++) {
                int c = row_open(r, "inflight", 6);
                if (c < 0)
                    break;
                v[j].id = get_uint(r, "inflight");
                v[j].kind = get_text(r, "inflight");
                v[j].name = get_text_null(r, "inflight");
                v[j].task = get_uint(r, "inflight");
                v[j].start_us = get_uint(r, "inflight");
                v[j].stack = get_u32(r, "inflight");
                skip_rest(r, (uint32_t)c, 6, "inflight");
                leave(r);
            }
            leave(r);
            m->n_inflight = r->code ? 0 : k;
            m->inflight = v;
        } else if (IS(r, "inflight_gone")) {
            m->inflight_gone = get_ids(r, "inflight_gone", &m->n_inflight_gone);
        } else if (IS(r, "loops")) {
            m->loops = get_loops(r, &m->n_loops);
        } else if (IS(r, "loop_gone")) {
            m->loop_gone = get_bool(r, "loop_gone");
        } else if (IS(r, "tasks_gone_state")) {
            m->tasks_gone_state = get_ids(r, "tasks_gone_state", &m->n_tasks_gone_state);
        } else {
            skip(r, "update");
        }
    }
    check_required(r, seen, 15, names);
}

/* Maps an op name to its code; 0 (unknown) otherwise. */
static uint8_t op_code(const uint8_t *s, size_t n)
{
    for (int i = AT_WIRE_OP_TASK_DETAIL; i <= AT_WIRE_OP_RESUME; i++) {
        const char *name = at__wire_op_names[i];
        if (strlen(name) == n && memcmp(name, s, n) == 0)
            return (uint8_t)i;
    }
    return AT_WIRE_OP_UNKNOWN;
}

static void dec_request(rd_t *r, uint32_t n, at_wire_request_t *m)
{
    static const char *const names[] = {"id", "op"};
    uint32_t seen = 0;
    m->version = AT_WIRE_VERSION;
    for (uint32_t i = 0; i < n && !r->code; i++) {
        if (!get_key(r)) {
            skip(r, "request");
            continue;
        }
        COMMON_KEYS(r)
        if (IS(r, "id")) {
            m->id = get_uint(r, "id");
            seen |= 1;
        } else if (IS(r, "op")) {
            const char *s = get_text(r, "op");
            if (s) {
                m->op = op_code((const uint8_t *)s, strlen(s));
                m->op_name = m->op == AT_WIRE_OP_UNKNOWN ? s : NULL;
            }
            seen |= 2;
        } else if (IS(r, "task")) {
            m->task = get_uint(r, "task");
        } else if (IS(r, "config")) {
            get_config(r, "config", &m->config, false);
        } else if (IS(r, "loop")) {
            m->loop = get_u32(r, "loop");
        } else {
            skip(r, "request");
        }
    }
    check_required(r, seen, 3, names);
}

static void get_detail(rd_t *r, const char *key, at_wire_task_detail_t *d)
{
    static const char *const names[] = {"task"};
    uint32_t seen = 0;
    uint32_t n = enter(r, key, K_MAP);
    for (uint32_t i = 0; i < n && !r->code; i++) {
        if (!get_key(r)) {
            skip(r, key);
        } else if (IS(r, "task")) {
            get_task_row(r, "task", &d->task);
            seen |= 1;
        } else if (IS(r, "wait_desc")) {
            d->wait_desc = get_text_null(r, "wait_desc");
        } else if (IS(r, "create")) {
            d->create = get_locs(r, "create", &d->n_create);
        } else if (IS(r, "suspend")) {
            d->suspend = get_locs(r, "suspend", &d->n_suspend);
        } else if (IS(r, "children")) {
            d->children = get_ids(r, "children", &d->n_children);
        } else if (IS(r, "step_hist")) {
            get_hist(r, "step_hist", &d->step_hist);
        } else if (IS(r, "error")) {
            d->error = get_text_null(r, "error");
        } else {
            skip(r, key);
        }
    }
    leave(r);
    check_required(r, seen, 1, names);
}

static void dec_response(rd_t *r, uint32_t n, at_wire_response_t *m)
{
    static const char *const names[] = {"id", "op", "status"};
    uint32_t seen = 0;
    m->version = AT_WIRE_VERSION;
    for (uint32_t i = 0; i < n && !r->code; i++) {
        if (!get_key(r)) {
            skip(r, "response");
            continue;
        }
        COMMON_KEYS(r)
        if (IS(r, "id")) {
            m->id = get_uint(r, "id");
            seen |= 1;
        } else if (IS(r, "op")) {
            const char *op = get_text(r, "op");
            if (op) {
                m->op = op_code((const uint8_t *)op, strlen(op));
                m->op_name = m->op == AT_WIRE_OP_UNKNOWN ? op : NULL;
            }
            seen |= 2;
        } else if (IS(r, "status")) {
            m->status = get_u32(r, "status");
            seen |= 4;
        } else if (IS(r, "reason")) {
            m->reason = get_text_null(r, "reason");
        } else if (IS(r, "detail")) {
            get_detail(r, "detail", &m->detail);
            m->has_detail = true;
        } else if (IS(r, "config")) {
            get_config(r, "config", &m->config, false);
            m->has_config = true;
        } else if (IS(r, "stack")) {
            m->stack = get_locs(r, "stack", &m->n_stack);
            m->has_stack = true;
        } else if (IS(r, "running")) {
            get_running(r, "running", &m->running);
        } else {
            skip(r, "response");
        }
    }
    check_required(r, seen, 7, names);
}

static void dec_error(rd_t *r, uint32_t n, at_wire_error_t *m)
{
    static const char *const names[] = {"code", "reason", "fatal"};
    uint32_t seen = 0;
    m->version = AT_WIRE_VERSION;
    for (uint32_t i = 0; i < n && !r->code; i++) {
        if (!get_key(r)) {
            skip(r, "error");
            continue;
        }
        COMMON_KEYS(r)
        if (IS(r, "code")) {
            m->code = get_u32(r, "code");
            seen |= 1;
        } else if (IS(r, "reason")) {
            m->reason = get_text(r, "reason");
            seen |= 2;
        } else if (IS(r, "fatal")) {
            m->fatal = get_bool(r, "fatal");
            seen |= 4;
        } else {
            skip(r, "error");
        }
    }
    check_required(r, seen, 7, names);
}

static void dec_bye(rd_t *r, uint32_t n, at_wire_bye_t *m)
{
    m->version = AT_WIRE_VERSION;
    for (uint32_t i = 0; i < n && !r->code; i++) {
        if (!get_key(r)) {
            skip(r, "bye");
            continue;
        }
        COMMON_KEYS(r)
        if (IS(r, "reason"))
            m->reason = get_text_null(r, "reason");
        else
            skip(r, "bye");
    }
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
    switch (type) {
    case AT_WIRE_HELLO:
        dec_hello(&r, n, &out->u.hello);
        break;
    case AT_WIRE_SUBSCRIBE:
        dec_subscribe(&r, n, &out->u.subscribe);
        break;
    case AT_WIRE_UPDATE:
        dec_update(&r, n, &out->u.update);
        break;
    case AT_WIRE_REQUEST:
        dec_request(&r, n, &out->u.request);
        break;
    case AT_WIRE_RESPONSE:
        dec_response(&r, n, &out->u.response);
        break;
    case AT_WIRE_ERROR:
        dec_error(&r, n, &out->u.error);
        break;
    case AT_WIRE_BYE:
        dec_bye(&r, n, &out->u.bye);
        break;
    default:
        assert(0 && "find_type returned a known type");
    }
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

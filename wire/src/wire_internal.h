/* wire_internal.h: helpers shared by the wire library's source files (not installed, not API). */
#ifndef AT_WIRE_INTERNAL_H
#define AT_WIRE_INTERNAL_H

#include "at_wire.h"

#include <stddef.h>
#include <stdint.h>

/* Wire names of the enumerations, indexed by value (NULL-free, sized by the
 * *_COUNT macros). Defined in wire_common.c. */
extern const char *const at__wire_type_names[8];
extern const char *const at__wire_cap_names[];
extern const char *const at__wire_op_names[7];

/* Returns 1 if s[0..n) is valid UTF-8 without NUL bytes, else 0. */
int at__wire_utf8_ok(const uint8_t *s, size_t n);

/* ---- message layouts as data (wire_table.c; how to add a field is told there) ---- */

/* What a field holds, and so how it is encoded and decoded. */
typedef enum at__wtype {
    WT_U64,    /* uint64_t */
    WT_U32,    /* uint32_t (decoding refuses larger values) */
    WT_U8,     /* uint8_t (decoding refuses larger values) */
    WT_I64,    /* int64_t */
    WT_BOOL,   /* bool */
    WT_CAPS,   /* uint32_t of AT_WIRE_CAP_* bits, an array of their names */
    WT_TEXT,   /* const char *, text on the wire (NULL is encoded as "") */
    WT_TEXTN,  /* const char *, text or null (NULL) */
    WT_HIST,   /* at_wire_hist_t */
    WT_U64S,   /* const uint64_t * at off, uint32_t count at n_off */
    WT_U32S,   /* const uint32_t * at off, uint32_t count at n_off */
    WT_TEXTS,  /* const char *const * at off (NULL elements encoded as ""), count at n_off */
    WT_MAP,    /* a struct at off, a map described by sub */
    WT_MAPS,   /* an array (pointer at off, count at n_off) of structs, each a map (sub) */
    WT_ROW,    /* a struct at off, a positional array described by sub */
    WT_ROWS,   /* an array (pointer at off, count at n_off) of structs, each a row (sub) */
    WT_CUSTOM, /* coded by the functions numbered cid in wire_encode.c and wire_decode.c */
} at__wtype_t;

/* Bytes of the C type of a scalar field (WT_U64 .. WT_CAPS); the codecs move them as integers. */
static inline size_t at__wire_width(int type)
{
    return type == WT_U64 || type == WT_I64 ? 8 : type == WT_U32 || type == WT_CAPS ? 4 : 1;
}

/* Custom codecs (WT_CUSTOM), one pair per value, in enc_custom[] / dec_custom[]. */
enum { WC_OP }; /* op name <-> uint8_t op at off and the unknown name (const char *) at n_off */

enum {
    WF_REQ = 1,    /* maps: decoding fails with AT_WIRE_EMISSING when the key is absent */
    WF_OMIT0 = 2,  /* the encoder leaves it out when 0 / NULL / false / empty (maps: no pairs;
                    * custom: the pointer at off is NULL) */
    WF_NULL = 4,   /* WT_MAP: null on the wire is accepted (and "absent") */
    WF_GEND = 8,   /* rows: the last element of an optional trailing group */
    WF_IF1ST = 16, /* WT_MAP: the encoder leaves it out while the first field of its table (a
                    * scalar) is 0 — a profile with no samples — and the decoder reads such a
                    * map as absent (all zero) */
};

/* One key of a map, or one element of a row. */
typedef struct at__wfield {
    const char *key; /* map key; NULL for a row element */
    uint8_t type;    /* at__wtype_t */
    uint8_t flags;   /* WF_* */
    uint8_t cid;     /* WT_CUSTOM: which codec */
    uint16_t off;    /* offset of the value in the struct */
    uint16_t n_off;  /* arrays: offset of the uint32_t count */
    uint16_t has;    /* 0, or 1 + offset of a bool: set when decoded; encoded only when set */
    const struct at__wtable *sub; /* WT_MAP/MAPS/ROW/ROWS: the layout of the elements */
} at__wfield_t;

/* A map (any key order on the wire, table order when encoding) or a row (positional: `min`
 * elements required, then optional groups, each read only when the row holds all of it and
 * written when one of its fields is set, or a later group is). At most 32 fields. */
typedef struct at__wtable {
    uint16_t size; /* sizeof the struct */
    uint8_t n;     /* fields */
    uint8_t min;   /* rows: elements required */
    const at__wfield_t *f;
} at__wtable_t;

/* The layout of each message body, indexed by at_wire_type_t (0: NULL); "t" and "v" are not
 * in them (the codecs write and check those first). */
extern const at__wtable_t *const at__wire_msg_tables[8];
/* One past the last element of the optional row group that element i starts or is in. */
uint32_t at__wire_group_end(const at__wtable_t *t, uint32_t i);
/* The task row, for the codecs' hand-written fast path (the bulk of a big update), and its
 * integer runs by offset: elements 4..9 (uint64_t, i = 0..5) and 10..12 (uint32_t, i = 6..8), known
 * at compile time so that the unrolled loops over them are as fast as naming each field. */
extern const at__wtable_t at__wire_task_row;
static inline size_t at__task_int_off(int i)
{
    static const uint16_t off[9] = {
        offsetof(at_wire_task_t, wait_obj),    offsetof(at_wire_task_t, wait_since_us),
        offsetof(at_wire_task_t, busy_ns),     offsetof(at_wire_task_t, steps),
        offsetof(at_wire_task_t, parent),      offsetof(at_wire_task_t, created_us),
        offsetof(at_wire_task_t, create_site), offsetof(at_wire_task_t, entry_site),
        offsetof(at_wire_task_t, stack)};
    return off[i];
}

#endif

/* test-wire.c: unit tests of wire/ — round trips, golden frames, hostile input, limits, the frame
 * reader. */
#include "at_wire.h"
#include "at_wire_frame.h"
#include "at_wire_limits.h"
#include "wire_samples.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

static const char *golden_dir = "tests/wire/golden";

/* ---- allocation accounting: the wire library is linked statically into
 * this program with -Wl,--wrap=malloc,... so every byte it asks for is
 * counted here. ---- */
void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t m);
void *__real_realloc(void *p, size_t n);
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t n, size_t m);
void *__wrap_realloc(void *p, size_t n);
static size_t alloc_bytes;  /* requested since the last reset */
static size_t alloc_single; /* largest single request */

static void count(size_t n)
{
    alloc_bytes += n;
    if (n > alloc_single)
        alloc_single = n;
}
void *__wrap_malloc(size_t n)
{
    count(n);
    return __real_malloc(n);
}
void *__wrap_calloc(size_t n, size_t m)
{
    count(n * m);
    return __real_calloc(n, m);
}
void *__wrap_realloc(void *p, size_t n)
{
    count(n);
    return __real_realloc(p, n);
}

/* ---- a tiny CBOR writer for hand-made (often invalid) messages ---- */
typedef struct cb {
    uint8_t d[4096];
    size_t n;
} cb_t;

static void cb_head(cb_t *c, unsigned major, uint64_t v)
{
    uint8_t m = (uint8_t)(major << 5);
    if (v < 24) {
        c->d[c->n++] = m | (uint8_t)v;
    } else if (v <= 0xff) {
        c->d[c->n++] = m | 24;
        c->d[c->n++] = (uint8_t)v;
    } else if (v <= 0xffff) {
        c->d[c->n++] = m | 25;
        c->d[c->n++] = (uint8_t)(v >> 8);
        c->d[c->n++] = (uint8_t)v;
    } else if (v <= 0xffffffffu) {
        c->d[c->n++] = m | 26;
        for (int i = 3; i >= 0; i--)
            c->d[c->n++] = (uint8_t)(v >> (8 * i));
    } else {
        c->d[c->n++] = m | 27;
        for (int i = 7; i >= 0; i--)
            c->d[c->n++] = (uint8_t)(v >> (8 * i));
    }
}
static void cb_text(cb_t *c, const char *s)
{
    size_t n = strlen(s);
    cb_head(c, 3, n);
    memcpy(c->d + c->n, s, n);
    c->n += n;
}
static void cb_raw(cb_t *c, const void *p, size_t n)
{
    memcpy(c->d + c->n, p, n);
    c->n += n;
}
/* "t": type, "v": version — the first two pairs of a message map */
static void cb_tv(cb_t *c, const char *type, uint64_t v)
{
    cb_text(c, "t");
    cb_text(c, type);
    cb_text(c, "v");
    cb_head(c, 0, v);
}

static int decode(const cb_t *c, const at_wire_limits_t *lim, at_wire_msg_t *m, at_wire_err_t *e)
{
    return at_wire_decode(c->d, c->n, lim, m, e);
}

/* Encodes a message into a fresh buffer and checks the length prefix. */
static void encode_sample(const at_wire_msg_t *m, at_wire_buf_t *b)
{
    at_wire_buf_init(b);
    assert_int_equal(at_wire_encode(b, m), 0);
    assert_true(b->len > AT_WIRE_FRAME_HDR);
    size_t n = ((size_t)b->data[0] << 24) | ((size_t)b->data[1] << 16) | ((size_t)b->data[2] << 8) |
               b->data[3];
    assert_int_equal(n, b->len - AT_WIRE_FRAME_HDR);
}

/* ---- round trips ---- */

static void test_roundtrip_every_sample(void **state)
{
    size_t n;
    const wire_sample_t *s = wire_samples(&n);
    assert_true(n >= 20);
    int seen[8] = {0};
    for (size_t i = 0; i < n; i++) {
        at_wire_buf_t b;
        encode_sample(&s[i].msg, &b);
        at_wire_msg_t m;
        at_wire_err_t e;
        int rc = at_wire_decode(b.data + 4, b.len - 4, &at_wire_limits_s2c, &m, &e);
        if (rc)
            fail_msg("%s: decode failed: %s", s[i].name, e.msg);
        char why[128];
        if (!wire_msg_equal(&s[i].msg, &m, why, sizeof why))
            fail_msg("%s: %s after a round trip", s[i].name, why);
        /* and encoding the decoded message gives the same bytes */
        at_wire_buf_t b2;
        encode_sample(&m, &b2);
        assert_int_equal(b.len, b2.len);
        assert_memory_equal(b.data, b2.data, b.len);
        seen[m.type] = 1;
        at_wire_msg_free(&m);
        at_wire_msg_free(&m); /* idempotent */
        at_wire_buf_free(&b);
        at_wire_buf_free(&b2);
    }
    for (int t = AT_WIRE_HELLO; t <= AT_WIRE_BYE; t++)
        assert_true(seen[t]);
}

/* Every sample's client messages also pass the small client limits. */
static void test_client_messages_fit_c2s_limits(void **state)
{
    size_t n;
    const wire_sample_t *s = wire_samples(&n);
    for (size_t i = 0; i < n; i++) {
        int t = s[i].msg.type;
        if (t != AT_WIRE_SUBSCRIBE && t != AT_WIRE_REQUEST && t != AT_WIRE_BYE &&
            t != AT_WIRE_ERROR)
            continue;
        at_wire_buf_t b;
        encode_sample(&s[i].msg, &b);
        at_wire_msg_t m;
        assert_int_equal(at_wire_decode(b.data + 4, b.len - 4, &at_wire_limits_c2s, &m, NULL), 0);
        at_wire_msg_free(&m);
        at_wire_buf_free(&b);
    }
}

/* Changing any single field changes the bytes and the decoded value: the
 * round trip covers every field, not just the ones that happen to be 0. */
static void test_every_task_field_travels(void **state)
{
    at_wire_task_t base = {1, "a", 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
    for (int f = 0; f < 13; f++) {
        at_wire_task_t t = base;
        switch (f) {
        case 0:
            t.id = 1000001;
            break;
        case 1:
            t.name = NULL;
            break;
        case 2:
            t.state = 250;
            break;
        case 3:
            t.wait_kind = 251;
            break;
        case 4:
            t.wait_obj = UINT64_MAX;
            break;
        case 5:
            t.wait_since_us = 1u << 30;
            break;
        case 6:
            t.busy_ns = 1ull << 40;
            break;
        case 7:
            t.steps = 65536;
            break;
        case 8:
            t.parent = 77;
            break;
        case 9:
            t.created_us = 123456789012ull;
            break;
        case 10:
            t.create_site = UINT32_MAX;
            break;
        case 11:
            t.entry_site = 65535;
            break;
        case 12:
            t.stack = 70000;
            break;
        }
        at_wire_msg_t in = {.type = AT_WIRE_UPDATE};
        in.u.update.config = (at_wire_config_t){true, 1, true, true};
        in.u.update.n_tasks_new = 1;
        in.u.update.tasks_new = &t;
        at_wire_buf_t b;
        encode_sample(&in, &b);
        at_wire_msg_t m;
        assert_int_equal(at_wire_decode(b.data + 4, b.len - 4, &at_wire_limits_s2c, &m, NULL), 0);
        char why[128];
        assert_true(wire_msg_equal(&in, &m, why, sizeof why));
        /* and it differs from the base row */
        at_wire_msg_t base_msg = in;
        base_msg.u.update.tasks_new = &base;
        assert_false(wire_msg_equal(&base_msg, &m, why, sizeof why));
        at_wire_msg_free(&m);
        at_wire_buf_free(&b);
    }
}

static void test_big_update_roundtrip(void **state)
{
    const uint32_t N = 100000;
    at_wire_task_t *rows = calloc(N, sizeof *rows);
    char(*names)[16] = calloc(N, 16);
    assert_non_null(rows);
    assert_non_null(names);
    for (uint32_t i = 0; i < N; i++) {
        snprintf(names[i], 16, "conn-%u", i);
        rows[i] = (at_wire_task_t){i + 1,      names[i],     (uint8_t)(i % 6), (uint8_t)(i % 16),
                                   i * 7u,     1000000u + i, i * 1000ull,      i % 100,
                                   i / 2,      500000u + i,  1 + i % 50,       1 + i % 7,
                                   1 + i % 300};
    }
    at_wire_msg_t in = {.type = AT_WIRE_UPDATE};
    in.u.update.full = true;
    in.u.update.config = (at_wire_config_t){true, 100000000, true, false};
    in.u.update.n_tasks_new = N;
    in.u.update.tasks_new = rows;
    at_wire_buf_t b;
    encode_sample(&in, &b);
    assert_true(b.len / N < 64); /* the size budget, per row */
    assert_true(b.len - 4 <= AT_WIRE_MAX_FRAME_S2C);
    at_wire_msg_t m;
    at_wire_err_t e;
    int rc = at_wire_decode(b.data + 4, b.len - 4, &at_wire_limits_s2c, &m, &e);
    if (rc)
        fail_msg("%s", e.msg);
    char why[128];
    assert_true(wire_msg_equal(&in, &m, why, sizeof why));
    /* a client may not send such a thing */
    at_wire_msg_t m2;
    assert_int_equal(at_wire_decode(b.data + 4, b.len - 4, &at_wire_limits_c2s, &m2, &e),
                     AT_WIRE_ELIMIT);
    at_wire_msg_free(&m);
    at_wire_buf_free(&b);
    free(rows);
    free(names);
}

static void test_invalid_utf8_is_replaced(void **state)
{
    at_wire_bye_t bye = {.reason = "bad \xff byte \xc3 end \xe2\x82"};
    at_wire_buf_t b;
    at_wire_buf_init(&b);
    assert_int_equal(at_wire_encode_bye(&b, &bye), 0);
    at_wire_msg_t m;
    assert_int_equal(at_wire_decode(b.data + 4, b.len - 4, &at_wire_limits_c2s, &m, NULL), 0);
    assert_string_equal(m.u.bye.reason, "bad ? byte ? end ??");
    at_wire_msg_free(&m);
    at_wire_buf_free(&b);
}

/* ---- golden frames ---- */

static size_t read_hex(const char *path, uint8_t *out, size_t cap)
{
    FILE *f = fopen(path, "r");
    if (!f)
        fail_msg("cannot open golden file %s (regenerate: test-wire --write-golden DIR)", path);
    size_t n = 0;
    int c, hi = -1, comment = 0;
    while ((c = fgetc(f)) != EOF) {
        if (c == '#')
            comment = 1;
        if (c == '\n')
            comment = 0;
        if (comment || c == ' ' || c == '\n' || c == '\t' || c == '\r')
            continue;
        int v = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
        assert_true(v >= 0);
        if (hi < 0) {
            hi = v;
        } else {
            assert_true(n < cap);
            out[n++] = (uint8_t)(hi << 4 | v);
            hi = -1;
        }
    }
    assert_int_equal(hi, -1);
    fclose(f);
    return n;
}

static void test_golden_frames(void **state)
{
    size_t n;
    const wire_sample_t *s = wire_samples(&n);
    static uint8_t buf[1 << 16];
    for (size_t i = 0; i < n; i++) {
        char path[512];
        snprintf(path, sizeof path, "%s/%s.hex", golden_dir, s[i].name);
        size_t len = read_hex(path, buf, sizeof buf);
        /* our encoder reproduces it byte for byte */
        at_wire_buf_t b;
        encode_sample(&s[i].msg, &b);
        if (b.len != len || memcmp(b.data, buf, len) != 0)
            fail_msg("%s: the encoder no longer reproduces %s", s[i].name, path);
        at_wire_buf_free(&b);
        /* our frame reader and decoder read it back to the sample */
        at_wire_reader_t r;
        at_wire_reader_init(&r, AT_WIRE_MAX_FRAME_S2C);
        assert_int_equal(at_wire_reader_push(&r, buf, len), 0);
        const uint8_t *body;
        size_t blen;
        assert_int_equal(at_wire_reader_next(&r, &body, &blen), 1);
        at_wire_msg_t m;
        at_wire_err_t e;
        if (at_wire_decode(body, blen, &at_wire_limits_s2c, &m, &e))
            fail_msg("%s: %s", path, e.msg);
        char why[128];
        if (!wire_msg_equal(&s[i].msg, &m, why, sizeof why))
            fail_msg("%s: %s", path, why);
        at_wire_msg_free(&m);
        assert_int_equal(at_wire_reader_next(&r, &body, &blen), 0);
        at_wire_reader_free(&r);
    }
}

static int write_golden(const char *dir)
{
    size_t n;
    const wire_sample_t *s = wire_samples(&n);
    for (size_t i = 0; i < n; i++) {
        char path[512];
        snprintf(path, sizeof path, "%s/%s.hex", dir, s[i].name);
        at_wire_buf_t b;
        at_wire_buf_init(&b);
        if (at_wire_encode(&b, &s[i].msg) != 0)
            return 1;
        FILE *f = fopen(path, "w");
        if (!f) {
            perror(path);
            return 1;
        }
        fprintf(f, "# %s: golden frame (4-byte length + CBOR), see docs/protocol.md\n", s[i].name);
        for (size_t j = 0; j < b.len; j++)
            fprintf(f, "%02x%s", b.data[j], (j % 32 == 31 || j + 1 == b.len) ? "\n" : "");
        fclose(f);
        at_wire_buf_free(&b);
    }
    return 0;
}

/* ---- errors ---- */

static void expect_err(const cb_t *c, const at_wire_limits_t *lim, int code, const char *key,
                       const char *needle)
{
    at_wire_msg_t m;
    at_wire_err_t e;
    int rc = decode(c, lim, &m, &e);
    if (rc != code)
        fail_msg("expected %s (%d), got %d: %s", at_wire_strerror(code), code, rc, e.msg);
    assert_int_equal(e.code, code);
    if (key)
        assert_string_equal(e.key, key);
    if (needle && !strstr(e.msg, needle))
        fail_msg("message \"%s\" lacks \"%s\"", e.msg, needle);
    assert_int_equal(m.type, 0);
    assert_null(m.arena_);
}

static void test_error_codes(void **state)
{
    cb_t c;
    /* not a map */
    c = (cb_t){.n = 0};
    cb_head(&c, 4, 0);
    expect_err(&c, &at_wire_limits_c2s, AT_WIRE_ENOTMAP, NULL, "not a definite-length map");
    c = (cb_t){.n = 0};
    cb_raw(&c, "\xbf\xff", 2); /* indefinite map */
    expect_err(&c, &at_wire_limits_c2s, AT_WIRE_ENOTMAP, NULL, "indefinite");
    /* missing "t" */
    c = (cb_t){.n = 0};
    cb_head(&c, 5, 1);
    cb_text(&c, "v");
    cb_head(&c, 0, 1);
    expect_err(&c, &at_wire_limits_c2s, AT_WIRE_EMISSING, "t", "\"t\"");
    /* missing "v" */
    c = (cb_t){.n = 0};
    cb_head(&c, 5, 1);
    cb_text(&c, "t");
    cb_text(&c, "bye");
    expect_err(&c, &at_wire_limits_c2s, AT_WIRE_EMISSING, "v", "protocol version");
    /* unknown type */
    c = (cb_t){.n = 0};
    cb_head(&c, 5, 2);
    cb_tv(&c, "helo", 1);
    expect_err(&c, &at_wire_limits_c2s, AT_WIRE_EUNKNOWNTYPE, "t", "\"helo\"");
    /* unsupported version */
    c = (cb_t){.n = 0};
    cb_head(&c, 5, 2);
    cb_tv(&c, "bye", 2);
    expect_err(&c, &at_wire_limits_c2s, AT_WIRE_EVERSION, "v", "version 2");
    {
        /* the version the peer speaks is readable without parsing the message */
        at_wire_msg_t m;
        at_wire_err_t e;
        assert_int_equal(at_wire_decode(c.d, c.n, &at_wire_limits_c2s, &m, &e), AT_WIRE_EVERSION);
        assert_int_equal(e.peer_version, 2);
    }
    /* missing required key, named */
    c = (cb_t){.n = 0};
    cb_head(&c, 5, 2);
    cb_tv(&c, "subscribe", 1);
    expect_err(&c, &at_wire_limits_c2s, AT_WIRE_EMISSING, "interval_ms", "\"interval_ms\"");
    /* wrong type, named */
    c = (cb_t){.n = 0};
    cb_head(&c, 5, 3);
    cb_tv(&c, "subscribe", 1);
    cb_text(&c, "interval_ms");
    cb_text(&c, "1000");
    expect_err(&c, &at_wire_limits_c2s, AT_WIRE_ETYPE, "interval_ms", "unsigned integer");
    /* value out of range */
    c = (cb_t){.n = 0};
    cb_head(&c, 5, 3);
    cb_tv(&c, "subscribe", 1);
    cb_text(&c, "interval_ms");
    cb_head(&c, 0, 1ull << 40);
    expect_err(&c, &at_wire_limits_c2s, AT_WIRE_EVALUE, "interval_ms", "out of range");
    /* truncated: the map promises more pairs */
    c = (cb_t){.n = 0};
    cb_head(&c, 5, 3);
    cb_tv(&c, "subscribe", 1);
    cb_text(&c, "interval_ms");
    expect_err(&c, &at_wire_limits_c2s, AT_WIRE_ETRUNCATED, NULL, NULL);
    /* trailing bytes */
    c = (cb_t){.n = 0};
    cb_head(&c, 5, 2);
    cb_tv(&c, "bye", 1);
    cb_head(&c, 0, 0);
    expect_err(&c, &at_wire_limits_c2s, AT_WIRE_ETRAILING, NULL, "1 bytes follow");
    /* tags are refused (libcbor 0.8 mis-decodes some; we use none) */
    c = (cb_t){.n = 0};
    cb_head(&c, 5, 3);
    cb_tv(&c, "bye", 1);
    cb_text(&c, "reason");
    cb_raw(&c, "\xc0\x60", 2);
    expect_err(&c, &at_wire_limits_c2s, AT_WIRE_EMALFORMED, NULL, "tag");
    /* indefinite-length items are refused */
    c = (cb_t){.n = 0};
    cb_head(&c, 5, 3);
    cb_tv(&c, "bye", 1);
    cb_text(&c, "x");
    cb_raw(&c, "\x9f\xff", 2);
    expect_err(&c, &at_wire_limits_c2s, AT_WIRE_EMALFORMED, NULL, "indefinite");
    /* reserved additional info 28 is malformed CBOR */
    c = (cb_t){.n = 0};
    cb_head(&c, 5, 3);
    cb_tv(&c, "bye", 1);
    cb_text(&c, "x");
    cb_raw(&c, "\x1c", 1);
    expect_err(&c, &at_wire_limits_c2s, AT_WIRE_EMALFORMED, NULL, "malformed");
    /* NUL inside a text string */
    c = (cb_t){.n = 0};
    cb_head(&c, 5, 3);
    cb_tv(&c, "bye", 1);
    cb_text(&c, "reason");
    cb_raw(&c, "\x62\x61\x00", 3);
    expect_err(&c, &at_wire_limits_c2s, AT_WIRE_EVALUE, "reason", "NUL");
    /* a short task row */
    c = (cb_t){.n = 0};
    cb_head(&c, 5, 7);
    cb_tv(&c, "update", 1);
    cb_text(&c, "seq");
    cb_head(&c, 0, 1);
    cb_text(&c, "ts_ns");
    cb_head(&c, 0, 1);
    cb_text(&c, "full");
    cb_raw(&c, "\xf4", 1);
    cb_text(&c, "config");
    cb_head(&c, 5, 2);
    cb_text(&c, "slow_ns");
    cb_head(&c, 0, 5);
    cb_text(&c, "debug");
    cb_raw(&c, "\xf5", 1);
    cb_text(&c, "tasks_new");
    cb_head(&c, 4, 1);
    cb_head(&c, 4, 2);
    cb_head(&c, 0, 1);
    cb_head(&c, 0, 1);
    expect_err(&c, &at_wire_limits_s2c, AT_WIRE_EVALUE, "tasks_new", "13 needed");
    /* decode_expect */
    c = (cb_t){.n = 0};
    cb_head(&c, 5, 2);
    cb_tv(&c, "bye", 1);
    at_wire_msg_t m;
    at_wire_err_t e;
    assert_int_equal(at_wire_decode_expect(c.d, c.n, AT_WIRE_HELLO, &at_wire_limits_s2c, &m, &e),
                     AT_WIRE_EUNEXPECTED);
    assert_non_null(strstr(e.msg, "expected a hello message, got bye"));
    assert_int_equal(at_wire_decode_expect(c.d, c.n, AT_WIRE_BYE, &at_wire_limits_s2c, &m, &e), 0);
    at_wire_msg_free(&m);
    /* strerror: distinct, non-empty */
    for (int a = AT_WIRE_EUNEXPECTED; a <= AT_WIRE_ETRUNCATED; a++) {
        for (int b = a + 1; b <= AT_WIRE_ETRUNCATED; b++)
            assert_string_not_equal(at_wire_strerror(a), at_wire_strerror(b));
        assert_string_not_equal(at_wire_strerror(a), "unknown wire error");
    }
    assert_string_equal(at_wire_strerror(12345), "unknown wire error");
}

/* Unknown keys anywhere, non-text keys, extra row elements and unknown
 * names are ignored (forward compatibility). */
static void test_unknown_keys_ignored(void **state)
{
    cb_t c = {.n = 0};
    cb_head(&c, 5, 7);
    cb_text(&c, "future_key"); /* before "t": decoder must look for t/v */
    cb_head(&c, 5, 1);
    cb_text(&c, "deep");
    cb_head(&c, 4, 3);
    cb_raw(&c, "\xfb\x40\x09\x21\xf9\xf0\x1b\x86\x6e", 9); /* a float inside an unknown value */
    cb_raw(&c, "\xf6\x40", 2);
    cb_tv(&c, "subscribe", 1);
    cb_head(&c, 0, 42); /* an integer key */
    cb_text(&c, "ignored");
    cb_text(&c, "interval_ms");
    cb_head(&c, 0, 250);
    cb_text(&c, "what");
    cb_head(&c, 4, 3);
    cb_text(&c, "tasks");
    cb_text(&c, "telepathy");
    cb_text(&c, "slow");
    cb_text(&c, "loop");
    cb_head(&c, 0, 2);
    at_wire_msg_t m;
    at_wire_err_t e;
    if (decode(&c, &at_wire_limits_c2s, &m, &e))
        fail_msg("%s", e.msg);
    assert_int_equal(m.type, AT_WIRE_SUBSCRIBE);
    assert_int_equal(m.u.subscribe.interval_ms, 250);
    assert_int_equal(m.u.subscribe.what, AT_WIRE_CAP_TASKS | AT_WIRE_CAP_SLOW);
    assert_int_equal(m.u.subscribe.loop, 2);
    at_wire_msg_free(&m);

    /* a task row with wait_desc (element 13) and one extra trailing element */
    c = (cb_t){.n = 0};
    cb_head(&c, 5, 5);
    cb_tv(&c, "response", 1);
    cb_text(&c, "id");
    cb_head(&c, 0, 9);
    cb_text(&c, "op");
    cb_text(&c, "task_detail");
    cb_text(&c, "detail");
    cb_head(&c, 5, 1);
    cb_text(&c, "task");
    cb_head(&c, 4, 15);
    for (int i = 0; i < 15; i++)
        if (i == 1)
            cb_text(&c, "n");
        else if (i == 13)
            cb_text(&c, "sleep 5.000 s");
        else
            cb_head(&c, 0, (uint64_t)i);
    /* "status" last */
    c.d[0] = 0xa6;
    cb_text(&c, "status");
    cb_head(&c, 0, 0);
    if (decode(&c, &at_wire_limits_s2c, &m, &e))
        fail_msg("%s", e.msg);
    assert_true(m.u.response.has_detail);
    assert_string_equal(m.u.response.detail.task.name, "n");
    assert_int_equal(m.u.response.detail.task.stack, 12);
    assert_string_equal(m.u.response.detail.task.wait_desc, "sleep 5.000 s");
    assert_int_equal(m.u.response.op, AT_WIRE_OP_TASK_DETAIL);
    at_wire_msg_free(&m);
}

/* Every prefix of every sample is refused, never crashes, allocates little. */
/* A profile of 0 samples reads as none, as the encoder leaves such a profile out: a round trip
 * keeps what was read (fuzz-decode found `profile: {samples: 0, stacks: [[2, 31]]}` come back
 * without its stacks). */
static void test_profile_without_samples_reads_as_none(void **state)
{
    (void)state;
    cb_t c = {.n = 0};
    cb_head(&c, 5, 6);
    cb_tv(&c, "response", 1);
    cb_text(&c, "id");
    cb_head(&c, 0, 9);
    cb_text(&c, "op");
    cb_text(&c, "loop_stack");
    cb_text(&c, "status");
    cb_head(&c, 0, 0);
    cb_text(&c, "running");
    cb_head(&c, 5, 3);
    cb_text(&c, "since_ns");
    cb_head(&c, 0, 7);
    cb_text(&c, "kind");
    cb_head(&c, 0, 1);
    cb_text(&c, "profile");
    cb_head(&c, 5, 3);
    cb_text(&c, "samples");
    cb_head(&c, 0, 0);
    cb_text(&c, "interval_ns");
    cb_head(&c, 0, 5000000);
    cb_text(&c, "stacks");
    cb_head(&c, 4, 1);
    cb_head(&c, 4, 2);
    cb_head(&c, 0, 2);
    cb_head(&c, 0, 31);
    at_wire_msg_t m, again;
    at_wire_err_t e;
    if (decode(&c, &at_wire_limits_s2c, &m, &e))
        fail_msg("%s", e.msg);
    assert_true(m.u.response.running.present);
    assert_int_equal(m.u.response.running.since_ns, 7);
    assert_int_equal(m.u.response.running.profile.samples, 0);
    assert_int_equal(m.u.response.running.profile.n_stacks, 0);
    assert_int_equal(m.u.response.running.profile.interval_ns, 0);
    at_wire_buf_t b;
    encode_sample(&m, &b);
    if (at_wire_decode(b.data + AT_WIRE_FRAME_HDR, b.len - AT_WIRE_FRAME_HDR, &at_wire_limits_s2c,
                       &again, &e))
        fail_msg("%s", e.msg);
    assert_int_equal(again.u.response.running.profile.n_stacks, 0);
    assert_int_equal(again.u.response.running.since_ns, 7);
    at_wire_msg_free(&again);
    at_wire_buf_free(&b);
    at_wire_msg_free(&m);
}

static void test_every_truncation_fails(void **state)
{
    size_t n;
    const wire_sample_t *s = wire_samples(&n);
    for (size_t i = 0; i < n; i++) {
        at_wire_buf_t b;
        encode_sample(&s[i].msg, &b);
        size_t len = b.len - 4;
        for (size_t cut = 0; cut < len; cut++) {
            /* copy to an exact-size heap block so ASan sees over-reads */
            uint8_t *p = malloc(cut ? cut : 1);
            memcpy(p, b.data + 4, cut);
            at_wire_msg_t m;
            at_wire_err_t e;
            int rc = at_wire_decode(p, cut, &at_wire_limits_s2c, &m, &e);
            if (rc == 0)
                fail_msg("%s cut at %zu decoded", s[i].name, cut);
            assert_true(rc == AT_WIRE_ETRUNCATED);
            free(p);
        }
        at_wire_buf_free(&b);
    }
}

/* ---- hostile headers: memory stays bounded ---- */

static void hostile(const uint8_t *p, size_t n, const at_wire_limits_t *lim, int code)
{
    uint8_t *copy = malloc(n);
    memcpy(copy, p, n);
    at_wire_msg_t m;
    at_wire_err_t e;
    alloc_bytes = alloc_single = 0;
    int rc = at_wire_decode(copy, n, lim, &m, &e);
    size_t used = alloc_bytes;
    if (rc != code)
        fail_msg("expected %d, got %d (%s)", code, rc, e.msg);
    /* a few KiB at most: the arena's first block, never what a header claims */
    if (used > 128 * 1024)
        fail_msg("decoder allocated %zu bytes for a %zu-byte frame", used, n);
    free(copy);
}

static void test_hostile_headers_bounded(void **state)
{
    /* the classic: an array header claiming 2^28 elements (cbor_load
     * would allocate 2 GiB for these 6 bytes) */
    static const uint8_t arr[] = {0x9a, 0x10, 0x00, 0x00, 0x00, 0x01};
    hostile(arr, sizeof arr, &at_wire_limits_s2c, AT_WIRE_ENOTMAP);
    /* the same as the value of a known key, inside a valid message */
    cb_t c = {.n = 0};
    cb_head(&c, 5, 3);
    cb_tv(&c, "update", 1);
    cb_text(&c, "tasks_new");
    cb_raw(&c, arr, sizeof arr);
    hostile(c.d, c.n, &at_wire_limits_s2c, AT_WIRE_ELIMIT);
    /* below max_items but more than the bytes left */
    c = (cb_t){.n = 0};
    cb_head(&c, 5, 3);
    cb_tv(&c, "update", 1);
    cb_text(&c, "tasks_new");
    cb_head(&c, 4, 1000000);
    hostile(c.d, c.n, &at_wire_limits_s2c, AT_WIRE_ETRUNCATED);
    /* as the value of an unknown key (skipped, not allocated) */
    c = (cb_t){.n = 0};
    cb_head(&c, 5, 3);
    cb_tv(&c, "update", 1);
    cb_text(&c, "zzz");
    cb_raw(&c, arr, sizeof arr);
    hostile(c.d, c.n, &at_wire_limits_s2c, AT_WIRE_ELIMIT);
    /* a top-level map claiming 2^64-1 pairs */
    static const uint8_t bigmap[] = {0xbb, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    hostile(bigmap, sizeof bigmap, &at_wire_limits_s2c, AT_WIRE_ELIMIT);
    /* a map claiming 2^31 pairs */
    static const uint8_t map2[] = {0xba, 0x80, 0x00, 0x00, 0x00, 0x60};
    hostile(map2, sizeof map2, &at_wire_limits_s2c, AT_WIRE_ELIMIT);
    /* a text string claiming 2 GiB */
    c = (cb_t){.n = 0};
    cb_head(&c, 5, 3);
    cb_tv(&c, "bye", 1);
    cb_text(&c, "reason");
    cb_raw(&c, "\x7a\x7f\xff\xff\xff", 5);
    hostile(c.d, c.n, &at_wire_limits_s2c, AT_WIRE_ELIMIT);
    /* a byte string claiming 2^63 as a key */
    c = (cb_t){.n = 0};
    cb_head(&c, 5, 3);
    cb_tv(&c, "bye", 1);
    cb_raw(&c, "\x5b\x80\0\0\0\0\0\0\0", 9);
    hostile(c.d, c.n, &at_wire_limits_s2c, AT_WIRE_ELIMIT);
    /* a string within max_string but longer than the frame */
    c = (cb_t){.n = 0};
    cb_head(&c, 5, 3);
    cb_tv(&c, "bye", 1);
    cb_text(&c, "reason");
    cb_raw(&c, "\x79\x10\x00", 3);
    hostile(c.d, c.n, &at_wire_limits_s2c, AT_WIRE_ETRUNCATED);
    /* nesting bomb: arrays inside arrays, deeper than max_depth */
    c = (cb_t){.n = 0};
    cb_head(&c, 5, 3);
    cb_tv(&c, "bye", 1);
    cb_text(&c, "deep");
    for (int i = 0; i < 1000; i++)
        cb_raw(&c, "\x81", 1);
    cb_raw(&c, "\x00", 1);
    hostile(c.d, c.n, &at_wire_limits_s2c, AT_WIRE_ELIMIT);
}

/* The same, as the kernel sees it: in a child whose address space may grow
 * by at most 64 MiB, decode hostile headers (each claiming gigabytes) with
 * the large server->client limits. Skipped under ASan, whose shadow memory
 * needs terabytes of address space. */
static void test_hostile_under_rlimit_as(void **state)
{
#if defined(__SANITIZE_ADDRESS__)
    skip();
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
    skip();
#endif
#endif
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        /* current address-space size from /proc/self/statm (pages) */
        unsigned long pages = 0;
        FILE *f = fopen("/proc/self/statm", "r");
        if (!f || fscanf(f, "%lu", &pages) != 1)
            _exit(2);
        fclose(f);
        rlim_t cap = (rlim_t)pages * (rlim_t)sysconf(_SC_PAGESIZE) + 64u * 1024u * 1024u;
        struct rlimit rl = {cap, cap};
        if (setrlimit(RLIMIT_AS, &rl) != 0)
            _exit(3);
        /* the cap is real: what cbor_load would do for these bytes fails */
        void *big = malloc(512u * 1024u * 1024u);
        if (big != NULL)
            _exit(6);
        static const uint8_t items[][10] = {
            {0x9a, 0x10, 0x00, 0x00, 0x01},                         /* array, 2^28+1 */
            {0xa3, 0x61, 't', 0x9a, 0x10, 0x00, 0x00, 0x01},        /* as a value */
            {0xbb, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, /* map, 2^64-1 */
            {0xa1, 0x7a, 0x7f, 0xff, 0xff, 0xff},                   /* 2 GiB key */
        };
        for (size_t i = 0; i < sizeof items / sizeof items[0]; i++) {
            for (int rep = 0; rep < 1000; rep++) {
                at_wire_msg_t m;
                if (at_wire_decode(items[i], sizeof items[i], &at_wire_limits_s2c, &m, NULL) == 0)
                    _exit(4);
            }
        }
        /* and a frame reader told 4 GiB - 1 is coming */
        at_wire_reader_t r;
        at_wire_reader_init(&r, AT_WIRE_MAX_FRAME_S2C);
        static const uint8_t huge[] = {0xff, 0xff, 0xff, 0xff, 0xa0};
        if (at_wire_reader_push(&r, huge, sizeof huge) != AT_WIRE_ELIMIT)
            _exit(5);
        at_wire_reader_free(&r);
        _exit(0);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

/* The decoder's own memory limit applies to valid-looking input too. */
static void test_memory_limit(void **state)
{
    /* a response with 200 stack frames (each decoded into 32 bytes) passes
     * the default c2s limits of items... but not a 4 KiB memory cap */
    cb_t c = {.n = 0};
    cb_head(&c, 5, 6);
    cb_tv(&c, "response", 1);
    cb_text(&c, "id");
    cb_head(&c, 0, 1);
    cb_text(&c, "op");
    cb_text(&c, "loop_stack");
    cb_text(&c, "status");
    cb_head(&c, 0, 0);
    cb_text(&c, "stack");
    cb_head(&c, 4, 200);
    for (int i = 0; i < 200; i++) {
        cb_head(&c, 4, 4);
        cb_head(&c, 0, 1);
        cb_raw(&c, "\xf6\xf6", 2);
        cb_head(&c, 0, 1);
    }
    at_wire_limits_t lim = at_wire_limits_c2s;
    at_wire_msg_t m;
    at_wire_err_t e;
    assert_int_equal(at_wire_decode(c.d, c.n, &lim, &m, &e), 0);
    assert_int_equal(m.u.response.n_stack, 200);
    at_wire_msg_free(&m);
    lim.max_memory = 4096;
    assert_int_equal(at_wire_decode(c.d, c.n, &lim, &m, &e), AT_WIRE_ELIMIT);
    assert_non_null(strstr(e.msg, "max_memory"));
    /* items per array */
    lim = at_wire_limits_c2s;
    lim.max_items = 199;
    assert_int_equal(at_wire_decode(c.d, c.n, &lim, &m, &e), AT_WIRE_ELIMIT);
    assert_non_null(strstr(e.msg, "max_items"));
    /* total items */
    lim = at_wire_limits_c2s;
    lim.max_total = 500;
    assert_int_equal(at_wire_decode(c.d, c.n, &lim, &m, &e), AT_WIRE_ELIMIT);
    assert_non_null(strstr(e.msg, "max_total"));
    /* frame size */
    lim = at_wire_limits_c2s;
    lim.max_frame = c.n - 1;
    assert_int_equal(at_wire_decode(c.d, c.n, &lim, &m, &e), AT_WIRE_ELIMIT);
    assert_non_null(strstr(e.msg, "max_frame"));
    /* string length */
    lim = at_wire_limits_c2s;
    lim.max_string = 5;
    assert_int_equal(at_wire_decode(c.d, c.n, &lim, &m, &e), AT_WIRE_ELIMIT);
    assert_non_null(strstr(e.msg, "max_string"));
}

/* ---- the frame reader ---- */

typedef struct stream {
    uint8_t *data;
    size_t len;
    size_t nframes;
    size_t off[64], flen[64]; /* body offset and length of each frame */
} stream_t;

static void make_stream(stream_t *st)
{
    size_t n;
    const wire_sample_t *s = wire_samples(&n);
    at_wire_buf_t b;
    at_wire_buf_init(&b);
    st->nframes = 0;
    for (size_t i = 0; i < n && i < 64; i++) {
        size_t before = b.len;
        assert_int_equal(at_wire_encode(&b, &s[i].msg), 0);
        st->off[st->nframes] = before + 4;
        st->flen[st->nframes] = b.len - before - 4;
        st->nframes++;
    }
    st->data = b.data;
    st->len = b.len;
}

/* Drains frames and checks them against the stream; returns count seen. */
static size_t drain(at_wire_reader_t *r, const stream_t *st, size_t seen)
{
    const uint8_t *body;
    size_t len;
    int rc;
    while ((rc = at_wire_reader_next(r, &body, &len)) == 1) {
        assert_true(seen < st->nframes);
        assert_int_equal(len, st->flen[seen]);
        assert_memory_equal(body, st->data + st->off[seen], len);
        seen++;
    }
    assert_int_equal(rc, 0);
    return seen;
}

static void test_reader_all_at_once_and_bytewise(void **state)
{
    stream_t st;
    make_stream(&st);
    at_wire_reader_t r;
    at_wire_reader_init(&r, AT_WIRE_MAX_FRAME_S2C);
    assert_int_equal(at_wire_reader_push(&r, st.data, st.len), 0);
    assert_int_equal(drain(&r, &st, 0), st.nframes);
    assert_int_equal(at_wire_reader_pending(&r), 0);
    /* one byte at a time */
    size_t seen = 0;
    for (size_t i = 0; i < st.len; i++) {
        assert_int_equal(at_wire_reader_push(&r, st.data + i, 1), 0);
        seen = drain(&r, &st, seen);
    }
    assert_int_equal(seen, st.nframes);
    assert_int_equal(at_wire_reader_pending(&r), 0);
    at_wire_reader_free(&r);
    free(st.data);
}

/* Every split point of the whole stream, and each frame split at every
 * byte boundary (exhaustive), in two pushes and through space/commit. */
static void test_reader_every_split(void **state)
{
    stream_t st;
    make_stream(&st);
    for (size_t cut = 0; cut <= st.len; cut++) {
        at_wire_reader_t r;
        at_wire_reader_init(&r, AT_WIRE_MAX_FRAME_S2C);
        assert_int_equal(at_wire_reader_push(&r, st.data, cut), 0);
        size_t seen = drain(&r, &st, 0);
        /* zero-copy path for the rest */
        size_t avail;
        uint8_t *p = at_wire_reader_space(&r, st.len - cut + 1, &avail);
        assert_non_null(p);
        assert_true(avail >= st.len - cut + 1);
        memcpy(p, st.data + cut, st.len - cut);
        assert_int_equal(at_wire_reader_commit(&r, st.len - cut), 0);
        seen = drain(&r, &st, seen);
        assert_int_equal(seen, st.nframes);
        assert_int_equal(at_wire_reader_pending(&r), 0);
        at_wire_reader_free(&r);
    }
    /* three pieces: every (a, b) split of the first three frames */
    size_t len3 = st.off[3] - 4;
    for (size_t a = 0; a <= len3; a++) {
        for (size_t b = a; b <= len3; b += 7) {
            at_wire_reader_t r;
            at_wire_reader_init(&r, AT_WIRE_MAX_FRAME_S2C);
            assert_int_equal(at_wire_reader_push(&r, st.data, a), 0);
            size_t seen = drain(&r, &st, 0);
            assert_int_equal(at_wire_reader_push(&r, st.data + a, b - a), 0);
            seen = drain(&r, &st, seen);
            assert_int_equal(at_wire_reader_push(&r, st.data + b, len3 - b), 0);
            seen = drain(&r, &st, seen);
            assert_int_equal(seen, 3);
            at_wire_reader_free(&r);
        }
    }
    free(st.data);
}

static void test_reader_oversize_and_zero(void **state)
{
    at_wire_reader_t r;
    at_wire_reader_init(&r, 1000);
    /* a frame of 1000 is fine, 1001 is refused as soon as the header is in */
    uint8_t hdr[8] = {0, 0, 0x03, 0xe9, 0xa0, 0xa0, 0xa0, 0xa0};
    assert_int_equal(at_wire_reader_push(&r, hdr, 3), 0);
    assert_int_equal(at_wire_reader_push(&r, hdr + 3, 5), AT_WIRE_ELIMIT);
    assert_non_null(strstr(r.msg, "1001"));
    /* the body was not buffered */
    assert_true(at_wire_reader_pending(&r) <= 4);
    /* latched */
    const uint8_t *body;
    size_t len;
    assert_int_equal(at_wire_reader_next(&r, &body, &len), AT_WIRE_ELIMIT);
    assert_int_equal(at_wire_reader_push(&r, hdr, 1), AT_WIRE_ELIMIT);
    at_wire_reader_free(&r);

    /* 4 GiB - 1 announced to a small reader: no allocation follows */
    at_wire_reader_init(&r, AT_WIRE_MAX_FRAME_C2S);
    static const uint8_t huge[] = {0xff, 0xff, 0xff, 0xff, 0x9a, 0x10, 0, 0, 0, 1};
    alloc_single = 0;
    assert_int_equal(at_wire_reader_push(&r, huge, sizeof huge), AT_WIRE_ELIMIT);
    assert_true(alloc_single <= 4096);
    at_wire_reader_free(&r);

    /* zero length */
    at_wire_reader_init(&r, 1000);
    static const uint8_t zero[] = {0, 0, 0, 0};
    assert_int_equal(at_wire_reader_push(&r, zero, 4), AT_WIRE_EFRAME);
    assert_int_equal(at_wire_reader_next(&r, &body, &len), AT_WIRE_EFRAME);
    at_wire_reader_free(&r);

    /* oversize through space/commit */
    at_wire_reader_init(&r, 1000);
    size_t avail;
    uint8_t *p = at_wire_reader_space(&r, 64, &avail);
    assert_non_null(p);
    memcpy(p, hdr, 8);
    assert_int_equal(at_wire_reader_commit(&r, 8), AT_WIRE_ELIMIT);
    assert_null(at_wire_reader_space(&r, 64, &avail));
    at_wire_reader_free(&r);

    /* a good frame then a bad header in one read: the frame is delivered,
     * then the error */
    at_wire_reader_init(&r, 1000);
    static const uint8_t good_bad[] = {0, 0, 0, 1, 0xa0, 0xff, 0xff, 0xff, 0xff, 0x00};
    assert_int_equal(at_wire_reader_push(&r, good_bad, sizeof good_bad), AT_WIRE_ELIMIT);
    assert_int_equal(at_wire_reader_next(&r, &body, &len), 1);
    assert_int_equal(len, 1);
    assert_int_equal(body[0], 0xa0);
    assert_int_equal(at_wire_reader_next(&r, &body, &len), AT_WIRE_ELIMIT);
    at_wire_reader_free(&r);

    /* a partial frame is "pending": a client that died mid-frame */
    at_wire_reader_init(&r, 1000);
    static const uint8_t part[] = {0, 0, 0, 5, 0xa0};
    assert_int_equal(at_wire_reader_push(&r, part, sizeof part), 0);
    assert_int_equal(at_wire_reader_next(&r, &body, &len), 0);
    assert_int_equal(at_wire_reader_pending(&r), 5);
    at_wire_reader_free(&r);
}

/* ---- histogram helpers ---- */
static void test_hist_scheme(void **state)
{
    assert_int_equal(at_wire_hist_index(0), 0);
    assert_int_equal(at_wire_hist_index(3), 3);
    assert_int_equal(at_wire_hist_index(4), 4);
    assert_int_equal(at_wire_hist_index(7), 7);
    assert_int_equal(at_wire_hist_index(8), 8);
    assert_int_equal(at_wire_hist_index(UINT64_MAX), AT_WIRE_HIST_BUCKETS - 1);
    for (unsigned i = 0; i < AT_WIRE_HIST_BUCKETS; i++) {
        uint64_t lo = at_wire_hist_lower(i);
        assert_int_equal(at_wire_hist_index(lo), i);
        if (i + 1 < AT_WIRE_HIST_BUCKETS) {
            uint64_t next = at_wire_hist_lower(i + 1);
            assert_true(next > lo);
            assert_int_equal(at_wire_hist_index(next - 1), i);
            /* relative width at most 25% */
            if (i >= 4)
                assert_true((next - lo) * 4 <= lo);
        }
    }
    /* 99 samples at 1 ms, 1 at 1 s: p50 ~1 ms, p99 ~1 ms, p100 ~1 s */
    uint64_t counts[AT_WIRE_HIST_BUCKETS] = {0};
    counts[at_wire_hist_index(1000000)] = 99;
    counts[at_wire_hist_index(1000000000)] = 1;
    at_wire_hist_t h = {AT_WIRE_HIST_BUCKETS, counts};
    uint64_t p50 = at_wire_hist_quantile(&h, 0.5, 0, UINT64_MAX);
    uint64_t p99 = at_wire_hist_quantile(&h, 0.99, 0, UINT64_MAX);
    uint64_t p100 = at_wire_hist_quantile(&h, 1.0, 0, UINT64_MAX);
    unsigned b1ms = at_wire_hist_index(1000000), b1s = at_wire_hist_index(1000000000);
    assert_true(p50 >= at_wire_hist_lower(b1ms) && p50 < at_wire_hist_upper(b1ms));
    assert_true(p99 >= p50 && p99 < at_wire_hist_upper(b1ms));
    assert_true(p100 >= at_wire_hist_lower(b1s) && p100 < at_wire_hist_upper(b1s));
    /* with the recorded extremes known, p100 is the max and nothing is below the min */
    assert_int_equal(at_wire_hist_quantile(&h, 1.0, 1000000, 1000000000), 1000000000);
    assert_int_equal(at_wire_hist_quantile(&h, 0.01, 1000000, 1000000000), 1000000);
    at_wire_hist_t empty = {0, NULL};
    assert_int_equal(at_wire_hist_quantile(&empty, 0.5, 0, UINT64_MAX), 0);
    assert_int_equal(at_wire_hist_upper(AT_WIRE_HIST_BUCKETS - 1), UINT64_MAX);
}

/* Issue 14: ten callbacks of exactly 200 ms read "MAX 200ms P99 167ms" (the bucket's lower
 * bound, below every sample). Within the recorded min..max they read 200 ms exactly. */
static void test_hist_quantile_equal_samples(void **state)
{
    uint64_t counts[AT_WIRE_HIST_BUCKETS] = {0};
    counts[at_wire_hist_index(200000000)] = 10;
    at_wire_hist_t h = {AT_WIRE_HIST_BUCKETS, counts};
    assert_int_equal(at_wire_hist_quantile(&h, 0.5, 200000000, 200000000), 200000000);
    assert_int_equal(at_wire_hist_quantile(&h, 0.99, 200000000, 200000000), 200000000);
    /* with only the max known, p99 is still within 1% of it (rank 9.9 of 10 in the bucket) */
    uint64_t p99 = at_wire_hist_quantile(&h, 0.99, 0, 200000000);
    assert_true(p99 <= 200000000 && p99 >= 198000000);
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* A uniform spread over several octaves against the exact quantile of the samples: the
 * interpolation is exact for evenly spread samples up to discreteness, so the error must
 * stay below 1% (the bucket's width, 25%, is the bound for arbitrary samples, and the lower
 * bound alone was off by up to that). Also on a spread of random samples: within the
 * width of the exact value's bucket. */
static void test_hist_quantile_vs_exact(void **state)
{
    enum { N = 20000 };
    static uint64_t v[N];
    for (int pass = 0; pass < 2; pass++) {
        uint64_t counts[AT_WIRE_HIST_BUCKETS] = {0};
        uint64_t seed = 12345;
        for (int k = 0; k < N; k++) {
            if (pass == 0) {
                v[k] = 1000000 + (uint64_t)k * 5000; /* 1 ms .. 101 ms evenly */
            } else {
                seed = seed * 6364136223846793005ull + 1442695040888963407ull;
                v[k] = 1000 + (seed >> 33) % 50000000; /* 1 us .. 50 ms at random */
            }
            counts[at_wire_hist_index(v[k])]++;
        }
        qsort(v, N, sizeof v[0], cmp_u64);
        at_wire_hist_t h = {AT_WIRE_HIST_BUCKETS, counts};
        const double qs[] = {0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99, 0.999};
        for (size_t i = 0; i < sizeof qs / sizeof qs[0]; i++) {
            size_t rank = (size_t)(qs[i] * N + 0.999999); /* ceil, 1-based */
            double exact = (double)v[rank - 1];
            double got = (double)at_wire_hist_quantile(&h, qs[i], v[0], v[N - 1]);
            unsigned b = at_wire_hist_index(v[rank - 1]);
            double width = (double)(at_wire_hist_upper(b) - at_wire_hist_lower(b));
            assert_true(got >= (double)v[0] && got <= (double)v[N - 1]);
            assert_true(fabs(got - exact) <= width);
            if (pass == 0)
                assert_true(fabs(got - exact) <= exact * 0.01);
        }
    }
}

static void test_names(void **state)
{
    assert_string_equal(at_wire_type_name(AT_WIRE_HELLO), "hello");
    assert_string_equal(at_wire_type_name(AT_WIRE_BYE), "bye");
    assert_null(at_wire_type_name(0));
    assert_null(at_wire_type_name(8));
    assert_string_equal(at_wire_op_name(AT_WIRE_OP_SET_CONFIG), "set_config");
    assert_null(at_wire_op_name(0));
    assert_string_equal(at_wire_cap_name(0), "tasks");
    assert_null(at_wire_cap_name(AT_WIRE_CAP_COUNT));
    assert_string_equal(at_wire_task_state_name(AT_WIRE_TASK_WAITING), "waiting");
    assert_string_equal(at_wire_task_state_name(AT_WIRE_TASK_FAILED), "failed");
    assert_null(at_wire_task_state_name(AT_WIRE_TASK_NSTATES));
    assert_null(at_wire_task_state_name(-1));
    assert_string_equal(at_wire_wait_kind_name(AT_WIRE_WAIT_SLEEP), "sleep");
    assert_string_equal(at_wire_wait_kind_name(AT_WIRE_WAIT_OTHER), "other");
    assert_null(at_wire_wait_kind_name(AT_WIRE_WAIT_OTHER + 1));
    assert_string_equal(at_wire_cb_kind_name(AT_WIRE_CB_TASK_STEP), "task_step");
    assert_string_equal(at_wire_cb_kind_name(AT_WIRE_CB_CALL_SOON), "call_soon");
    assert_null(at_wire_cb_kind_name(AT_WIRE_CB_CALL_SOON + 1));
    assert_string_equal(at_wire_exc_kind_name(AT_WIRE_EXC_NEVER_AWAITED), "never_awaited");
    assert_string_equal(at_wire_exc_kind_name(AT_WIRE_EXC_UNHANDLED), "unhandled");
    assert_null(at_wire_exc_kind_name(AT_WIRE_EXC_UNHANDLED + 1));
    assert_string_equal(at_wire_status_name(AT_WIRE_ST_NO_SUCH_TASK), "no_such_task");
    assert_string_equal(at_wire_status_name(AT_WIRE_ST_RATE_LIMITED), "rate_limited");
    assert_null(at_wire_status_name(AT_WIRE_ST_RATE_LIMITED + 1));
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "--write-golden") == 0)
        return write_golden(argv[2]);
    if (argc == 2)
        golden_dir = argv[1];
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip_every_sample),
        cmocka_unit_test(test_client_messages_fit_c2s_limits),
        cmocka_unit_test(test_every_task_field_travels),
        cmocka_unit_test(test_big_update_roundtrip),
        cmocka_unit_test(test_invalid_utf8_is_replaced),
        cmocka_unit_test(test_golden_frames),
        cmocka_unit_test(test_error_codes),
        cmocka_unit_test(test_unknown_keys_ignored),
        cmocka_unit_test(test_profile_without_samples_reads_as_none),
        cmocka_unit_test(test_every_truncation_fails),
        cmocka_unit_test(test_hostile_headers_bounded),
        cmocka_unit_test(test_hostile_under_rlimit_as),
        cmocka_unit_test(test_memory_limit),
        cmocka_unit_test(test_reader_all_at_once_and_bytewise),
        cmocka_unit_test(test_reader_every_split),
        cmocka_unit_test(test_reader_oversize_and_zero),
        cmocka_unit_test(test_hist_scheme),
        cmocka_unit_test(test_hist_quantile_equal_samples),
        cmocka_unit_test(test_hist_quantile_vs_exact),
        cmocka_unit_test(test_names),
    };
    return cmocka_run_group_tests_name("wire", tests, NULL, NULL);
}

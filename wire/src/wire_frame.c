/* wire_frame.c: the incremental frame reader — length checked before buffering, any split of the
 * input. */
#include "at_wire_frame.h"
#include "at_wire.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void at_wire_reader_init(at_wire_reader_t *r, size_t max_frame)
{
    assert(r && max_frame > 0);
    memset(r, 0, sizeof *r);
    r->max_frame = max_frame;
}

void at_wire_reader_free(at_wire_reader_t *r)
{
    free(r->buf);
    r->buf = NULL;
    r->cap = r->start = r->scan = r->len = 0;
}

static int latch(at_wire_reader_t *r, int code, size_t n)
{
    r->err = code;
    if (code == AT_WIRE_EFRAME)
        snprintf(r->msg, sizeof r->msg, "a zero-length frame (every frame holds one CBOR map)");
    else if (code == AT_WIRE_ELIMIT)
        snprintf(r->msg, sizeof r->msg, "a frame of %zu bytes announced (limit %zu)", n,
                 r->max_frame);
    else
        snprintf(r->msg, sizeof r->msg, "out of memory buffering a frame");
    return code;
}

/* Bytes still missing from the frame at r->scan (its header first, then its
 * body), advancing r->scan over frames that are complete. Returns the count
 * (> 0), or a latched negative error for a bad header. */
static long missing(at_wire_reader_t *r)
{
    for (;;) {
        size_t have = r->len - r->scan;
        if (have < AT_WIRE_FRAME_HDR)
            return (long)(AT_WIRE_FRAME_HDR - have);
        const uint8_t *p = r->buf + r->scan;
        size_t n = ((size_t)p[0] << 24) | ((size_t)p[1] << 16) | ((size_t)p[2] << 8) | p[3];
        if (n == 0)
            return latch(r, AT_WIRE_EFRAME, 0);
        if (n > r->max_frame)
            return latch(r, AT_WIRE_ELIMIT, n);
        if (have < AT_WIRE_FRAME_HDR + n)
            return (long)(AT_WIRE_FRAME_HDR + n - have);
        r->scan += AT_WIRE_FRAME_HDR + n;
    }
}

/* Makes room for `want` more bytes after r->len: compacts consumed bytes
 * away first, then grows. */
static int room(at_wire_reader_t *r, size_t want)
{
    if (r->cap - r->len >= want)
        return 0;
    if (r->start > 0) {
        memmove(r->buf, r->buf + r->start, r->len - r->start);
        r->len -= r->start;
        r->scan -= r->start;
        r->start = 0;
        if (r->cap - r->len >= want)
            return 0;
    }
    size_t need = r->len + want;
    size_t cap = r->cap ? r->cap : 4096;
    while (cap < need)
        cap *= 2;
    uint8_t *p = realloc(r->buf, cap);
    if (!p)
        return latch(r, AT_WIRE_ENOMEM, 0);
    r->buf = p;
    r->cap = cap;
    return 0;
}

int at_wire_reader_push(at_wire_reader_t *r, const void *data, size_t n)
{
    const uint8_t *src = data;
    if (r->err)
        return r->err;
    /* Store only what the frame at r->scan still needs, so that a bad header
     * is refused before any of its body is buffered. */
    while (n > 0) {
        long m = missing(r);
        if (m < 0)
            return (int)m;
        size_t take = (size_t)m < n ? (size_t)m : n;
        if (room(r, take))
            return r->err;
        memcpy(r->buf + r->len, src, take);
        r->len += take;
        src += take;
        n -= take;
    }
    long m = missing(r); /* advance scan over a frame just completed */
    return m < 0 ? (int)m : 0;
}

uint8_t *at_wire_reader_space(at_wire_reader_t *r, size_t want, size_t *avail)
{
    assert(want > 0 && avail);
    *avail = 0;
    if (r->err)
        return NULL;
    if (room(r, want))
        return NULL;
    *avail = r->cap - r->len;
    return r->buf + r->len;
}

int at_wire_reader_commit(at_wire_reader_t *r, size_t n)
{
    if (r->err)
        return r->err;
    assert(n <= r->cap - r->len);
    r->len += n;
    long m = missing(r);
    return m < 0 ? (int)m : 0;
}

int at_wire_reader_next(at_wire_reader_t *r, const uint8_t **body, size_t *len)
{
    /* frames completed before a bad header are still delivered, then the error */
    if (r->start == r->scan)
        return r->err;
    const uint8_t *p = r->buf + r->start;
    size_t n = ((size_t)p[0] << 24) | ((size_t)p[1] << 16) | ((size_t)p[2] << 8) | p[3];
    *body = p + AT_WIRE_FRAME_HDR;
    *len = n;
    r->start += AT_WIRE_FRAME_HDR + n;
    if (r->start == r->len) {
        /* nothing buffered: rewind for free */
        r->start = r->scan = r->len = 0;
    }
    return 1;
}

size_t at_wire_reader_pending(const at_wire_reader_t *r)
{
    return r->len - r->start;
}

/* at_wire_frame.h: incremental frame reader for non-blocking sockets (4-byte length + CBOR item).
 */
#ifndef AT_WIRE_FRAME_H
#define AT_WIRE_FRAME_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Bytes of the big-endian length prefix of every frame. */
#define AT_WIRE_FRAME_HDR 4u

/*
 * Feed it whatever bytes a read returned (any split: partial frames, several
 * frames at once); take whole frames out with at_wire_reader_next(). A
 * frame's declared length is checked against max_frame as soon as its 4
 * header bytes have arrived, before any of its body is buffered; a length of
 * 0 is an error too. Errors latch: push/space/commit return the error from
 * then on; next() still hands out the frames that were complete before the
 * bad header, then returns the error. The connection should be dropped.
 *
 * Memory: at_wire_reader_push() stores only bytes of frames whose header
 * has passed the checks, so the buffer holds at most the complete frames not
 * yet taken plus one partial frame of at most max_frame bytes. With
 * at_wire_reader_space() the caller bounds the extra by `want`. Consumed
 * bytes are compacted away.
 * Not thread-safe; one reader per connection.
 */
typedef struct at_wire_reader {
    uint8_t *buf;
    size_t cap;
    size_t start; /* first byte not yet returned by at_wire_reader_next */
    size_t scan;  /* start of the first frame not known to be complete */
    size_t len;   /* end of buffered bytes */
    size_t max_frame;
    int err; /* latched AT_WIRE_E* code, 0 while fine */
    char msg[96];
} at_wire_reader_t;

/* max_frame: the largest frame body accepted (AT_WIRE_MAX_FRAME_C2S on a
 * server, AT_WIRE_MAX_FRAME_S2C on a client). Allocates nothing yet. */
void at_wire_reader_init(at_wire_reader_t *r, size_t max_frame);
void at_wire_reader_free(at_wire_reader_t *r);

/* Copies n bytes in. Returns 0, AT_WIRE_ENOMEM, or the latched error. */
int at_wire_reader_push(at_wire_reader_t *r, const void *data, size_t n);

/* For zero-copy reads (libuv alloc_cb): returns a writable area of at least
 * `want` bytes (want > 0) after the buffered data and its size in *avail, or
 * NULL on ENOMEM / latched error. Follow with at_wire_reader_commit(r, n)
 * for the n <= *avail bytes actually read. The area is valid until the next
 * call on r. */
uint8_t *at_wire_reader_space(at_wire_reader_t *r, size_t want, size_t *avail);
int at_wire_reader_commit(at_wire_reader_t *r, size_t n);

/* Takes the next whole frame: returns 1 and sets *body and *len (the CBOR
 * without the prefix; valid until the next push/space/next call), 0 when no
 * whole frame is buffered yet, or a negative AT_WIRE_E* (AT_WIRE_ELIMIT for
 * a frame over max_frame, AT_WIRE_EFRAME for a zero length); r->msg then
 * says what happened. */
int at_wire_reader_next(at_wire_reader_t *r, const uint8_t **body, size_t *len);

/* Bytes buffered but not yet returned as frames (0 at a frame boundary:
 * useful to tell a clean EOF from a client that died mid-frame). */
size_t at_wire_reader_pending(const at_wire_reader_t *r);

#ifdef __cplusplus
}
#endif

#endif

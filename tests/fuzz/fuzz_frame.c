/* fuzz_frame.c: fuzz target for the frame reader — a byte stream fed in fuzzer-chosen pieces must
 * yield the same frames as in one piece, each decoded and round-tripped. */
#include "at_wire_frame.h"
#include "fuzz_common.h"

#include <stdlib.h>
#include <string.h>

#define MAX_FRAME 4096u

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* the whole input is the stream (the seeds are golden frames); its
     * last byte and length choose how it is cut into pieces */
    if (size < 1)
        return 0;
    unsigned seed = data[size - 1] ^ (unsigned)size;

    /* reference: the whole stream in one push */
    at_wire_reader_t ref;
    at_wire_reader_init(&ref, MAX_FRAME);
    int ref_rc = at_wire_reader_push(&ref, data, size);

    at_wire_reader_t r;
    at_wire_reader_init(&r, MAX_FRAME);
    size_t off = 0, frames = 0;
    int rc = 0;
    unsigned state = seed * 2654435761u + 1;
    while (off < size && rc == 0) {
        state = state * 1103515245u + 12345u;
        size_t piece = 1 + (state >> 16) % 64u;
        if (piece > size - off)
            piece = size - off;
        if (state & 0x8000u) {
            rc = at_wire_reader_push(&r, data + off, piece);
        } else {
            size_t avail;
            uint8_t *p = at_wire_reader_space(&r, piece, &avail);
            if (!p) {
                rc = r.err;
                break;
            }
            if (avail < piece)
                abort();
            memcpy(p, data + off, piece);
            rc = at_wire_reader_commit(&r, piece);
        }
        off += piece;
        const uint8_t *body, *rbody;
        size_t len, rlen;
        int k;
        while ((k = at_wire_reader_next(&r, &body, &len)) == 1) {
            /* the same frame must come out of the one-piece reader */
            if (at_wire_reader_next(&ref, &rbody, &rlen) != 1 || rlen != len ||
                memcmp(body, rbody, len) != 0)
                abort();
            if (len == 0 || len > MAX_FRAME)
                abort();
            fuzz_roundtrip(body, len, &at_wire_limits_c2s);
            frames++;
        }
        if (k < 0)
            rc = k;
    }
    /* both readers agree on errors and on what is left over */
    const uint8_t *rbody;
    size_t rlen;
    int tail = at_wire_reader_next(&ref, &rbody, &rlen);
    if (rc != 0) {
        if (tail != rc || ref_rc != rc)
            abort();
    } else {
        if (tail != 0 || ref_rc != 0)
            abort();
        if (at_wire_reader_pending(&r) != at_wire_reader_pending(&ref))
            abort();
    }
    (void)frames;
    at_wire_reader_free(&r);
    at_wire_reader_free(&ref);
    return 0;
}

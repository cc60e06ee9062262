/* fuzz_common.c: the round-trip oracle of the wire fuzz targets. */
#include "fuzz_common.h"
#include "wire_samples.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void die(const char *what, const char *detail)
{
    fprintf(stderr, "fuzz: %s: %s\n", what, detail ? detail : "");
    abort();
}

int fuzz_roundtrip(const uint8_t *item, size_t len, const at_wire_limits_t *lim)
{
    at_wire_msg_t m1, m2;
    at_wire_err_t e;
    int rc = at_wire_decode(item, len, lim, &m1, &e);
    if (rc != 0) {
        /* errors must be latched with a message and leave nothing behind */
        if (rc >= 0 || e.code != rc || e.msg[0] == '\0' || m1.arena_ || m1.type)
            die("bad error report", e.msg);
        return rc;
    }
    at_wire_buf_t b1, b2;
    at_wire_buf_init(&b1);
    at_wire_buf_init(&b2);
    if (at_wire_encode(&b1, &m1) != 0)
        die("encode of a decoded message failed", at_wire_type_name(m1.type));
    /* what we encode we must accept again: the server's own limits */
    rc = at_wire_decode(b1.data + 4, b1.len - 4, &at_wire_limits_s2c, &m2, &e);
    if (rc != 0)
        die("decode of our own encoding failed", e.msg);
    char why[128];
    if (!wire_msg_equal(&m1, &m2, why, sizeof why))
        die("round trip changed the message", why);
    if (at_wire_encode(&b2, &m2) != 0)
        die("second encode failed", NULL);
    if (b1.len != b2.len || memcmp(b1.data, b2.data, b1.len) != 0)
        die("re-encoding is not stable", NULL);
    at_wire_msg_free(&m1);
    at_wire_msg_free(&m2);
    at_wire_buf_free(&b1);
    at_wire_buf_free(&b2);
    return 0;
}

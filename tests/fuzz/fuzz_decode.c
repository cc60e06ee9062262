/* fuzz_decode.c: fuzz target for the message decoder — any bytes as a frame body, both limit sets,
 * round-tripped. With FUZZ_REQUIRE_ALL=1 in the environment (the replay test over the golden
 * frames), it also fails at exit unless the inputs reached the decoder of every message type and
 * of every request and response op: so a new message or op cannot go unfuzzed for want of a seed.
 */
#include "fuzz_common.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define NTYPES (AT_WIRE_BYE + 1)
#define NOPS   (AT_WIRE_OP_RESUME + 1)
static unsigned char seen_type[NTYPES], seen_req[NOPS], seen_resp[NOPS];

static void note_reached(const uint8_t *item, size_t len)
{
    at_wire_msg_t m;
    at_wire_err_t e;
    if (at_wire_decode(item, len, &at_wire_limits_s2c, &m, &e) != 0)
        return;
    if (m.type > 0 && m.type < NTYPES)
        seen_type[m.type] = 1;
    if (m.type == AT_WIRE_REQUEST && m.u.request.op < NOPS)
        seen_req[m.u.request.op] = 1;
    if (m.type == AT_WIRE_RESPONSE && m.u.response.op < NOPS)
        seen_resp[m.u.response.op] = 1;
    at_wire_msg_free(&m);
}

static const char *op_name(int op)
{
    return at_wire_op_name(op) ? at_wire_op_name(op) : "(unknown op)";
}

__attribute__((destructor)) static void check_reached(void)
{
    const char *want = getenv("FUZZ_REQUIRE_ALL");
    if (!want || strcmp(want, "1") != 0)
        return;
    int missing = 0;
    for (int t = 1; t < NTYPES; t++)
        if (!seen_type[t]) {
            fprintf(stderr, "fuzz-decode: no seed decodes as a '%s' message\n",
                    at_wire_type_name(t));
            missing = 1;
        }
    for (int op = 0; op < NOPS; op++) {
        if (!seen_req[op]) {
            fprintf(stderr, "fuzz-decode: no seed is a '%s' request\n", op_name(op));
            missing = 1;
        }
        if (!seen_resp[op] && op != AT_WIRE_OP_PAUSE && op != AT_WIRE_OP_RESUME) {
            /* pause/resume responses carry nothing of their own: the plain response decoder */
            fprintf(stderr, "fuzz-decode: no seed is a '%s' response\n", op_name(op));
            missing = 1;
        }
    }
    if (missing) {
        fprintf(stderr, "fuzz-decode: add a golden frame (tests/wire/golden) for each\n");
        _exit(1);
    }
    fprintf(stderr, "fuzz-decode: the seeds reach every message type and every op\n");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* Inputs are frames (the seeds are the golden frames): skip the 4-byte
     * length prefix, whatever it says; the body is the untrusted CBOR. */
    if (size < 4)
        return 0;
    fuzz_roundtrip(data + 4, size - 4, &at_wire_limits_c2s);
    fuzz_roundtrip(data + 4, size - 4, &at_wire_limits_s2c);
    note_reached(data + 4, size - 4);
    return 0;
}

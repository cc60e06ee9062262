/* fuzz_decode.c: fuzz target for the message decoder — any bytes as a frame body, both limit sets,
 * round-tripped. */
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* Inputs are frames (the seeds are the golden frames): skip the 4-byte
     * length prefix, whatever it says; the body is the untrusted CBOR. */
    if (size < 4)
        return 0;
    fuzz_roundtrip(data + 4, size - 4, &at_wire_limits_c2s);
    fuzz_roundtrip(data + 4, size - 4, &at_wire_limits_s2c);
    return 0;
}

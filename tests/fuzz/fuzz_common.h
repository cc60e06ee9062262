/* fuzz_common.h: the round-trip oracle shared by the wire fuzz targets (decode -> encode -> decode
 * must agree). */
#ifndef FUZZ_COMMON_H
#define FUZZ_COMMON_H

#include "at_wire.h"

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Decodes `item` under `lim`; if that succeeds, encodes the message,
 * decodes the encoding again and aborts unless both decodes are equal
 * field by field and re-encoding gives the same bytes. Returns the first
 * decode's result. */
int fuzz_roundtrip(const uint8_t *item, size_t len, const at_wire_limits_t *lim);

#endif

/* wire_samples.h: sample v1 messages (every field set) and deep equality, shared by wire tests,
 * golden checks and fuzzers. */
#ifndef WIRE_SAMPLES_H
#define WIRE_SAMPLES_H

#include "at_wire.h"

#include <stddef.h>

/* A named sample: the golden file tests/wire/golden/<name>.hex holds its frame. */
typedef struct wire_sample {
    const char *name;
    at_wire_msg_t msg;
} wire_sample_t;

/* All samples (static storage, never freed); *n receives the count. */
const wire_sample_t *wire_samples(size_t *n);

/* Deep comparison of two messages, field by field. Returns 1 when equal;
 * otherwise 0 and a description of the first difference in why[]. */
int wire_msg_equal(const at_wire_msg_t *a, const at_wire_msg_t *b, char *why, size_t whylen);

#endif

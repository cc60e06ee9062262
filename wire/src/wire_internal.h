/* wire_internal.h: helpers shared by the wire library's source files (not installed, not API). */
#ifndef AT_WIRE_INTERNAL_H
#define AT_WIRE_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

/* Wire names of the enumerations, indexed by value (NULL-free, sized by the
 * *_COUNT macros). Defined in wire_common.c. */
extern const char *const at__wire_type_names[8];
extern const char *const at__wire_cap_names[];
extern const char *const at__wire_op_names[7];

/* Returns 1 if s[0..n) is valid UTF-8 without NUL bytes, else 0. */
int at__wire_utf8_ok(const uint8_t *s, size_t n);

#endif

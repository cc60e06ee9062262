/* Duration.h: parsing and formatting of human durations ("50ms", "0.2s", "250"). */
#ifndef ASYNCTOP_DURATION_H
#define ASYNCTOP_DURATION_H

#include <stddef.h>
#include <stdint.h>

/* Largest duration Duration_parse accepts: one hour. */
#define DURATION_MAX_NS (3600ull * 1000000000ull)

/* Parses `text` into nanoseconds. Accepts an optional run of blanks, a
 * non-negative decimal number with at most 9 fractional digits (always '.',
 * whatever the locale), optional blanks, and a unit: ns, us, µs, ms, s. A bare
 * number is milliseconds ("250" is 250 ms). Returns 0 and sets *out_ns, or -1
 * with a short message a user can act on in err (NUL-terminated, at most
 * errlen bytes; errlen may be 0). Never reads past the terminating NUL; any
 * input, including NULL, is safe. Any thread. */
int Duration_parse(const char *text, uint64_t *out_ns, char *err, size_t errlen);

/* Formats ns compactly ("850us", "12ms", "1.5s", "2m05s") into buf (at least
 * 16 bytes). Returns buf. */
char *Duration_format(uint64_t ns, char *buf, size_t len);

#endif

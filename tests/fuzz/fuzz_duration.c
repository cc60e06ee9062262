/* fuzz_duration.c: fuzz target for the inspector's duration parser (the threshold typed after
 * `t`, `asynctop set slow=...`) and formatter: any bytes as text, never a crash or an over-read,
 * an accepted value within DURATION_MAX_NS, a refusal always with a reason. */
#include "Duration.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* exactly the input, NUL-terminated on the heap: ASan sees any read past the end */
    char *s = malloc(size + 1);
    if (!s)
        return 0;
    memcpy(s, data, size);
    s[size] = '\0';
    uint64_t ns = 0;
    char err[64] = "";
    int rc = Duration_parse(s, &ns, err, sizeof err);
    if (rc == 0 && ns > DURATION_MAX_NS) {
        fprintf(stderr, "fuzz-duration: accepted %llu ns > max from '%s'\n", (unsigned long long)ns,
                s);
        abort();
    }
    if (rc != 0 && (rc != -1 || err[0] == '\0')) {
        fprintf(stderr, "fuzz-duration: refused '%s' without a reason (rc %d)\n", s, rc);
        abort();
    }
    /* a tiny error buffer and none at all must be safe too */
    char tiny[2];
    (void)Duration_parse(s, &ns, tiny, sizeof tiny);
    (void)Duration_parse(s, &ns, NULL, 0);
    /* the formatter, on what was parsed and on raw bits from the input */
    char out[16];
    Duration_format(ns, out, sizeof out);
    if (memchr(out, '\0', sizeof out) == NULL)
        abort();
    uint64_t raw = 0;
    memcpy(&raw, data, size < sizeof raw ? size : sizeof raw);
    Duration_format(raw, out, sizeof out);
    if (memchr(out, '\0', sizeof out) == NULL)
        abort();
    free(s);
    return 0;
}

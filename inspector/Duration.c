/* Duration.c: the duration parser behind `t`, `asynctop set slow=...`, and the formatter. */
#include "Duration.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

__attribute__((format(printf, 3, 4))) static int fail(char *err, size_t errlen, const char *fmt,
                                                      ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return -1;
}

static int is_blank(char c)
{
    return c == ' ' || c == '\t';
}

int Duration_parse(const char *text, uint64_t *out_ns, char *err, size_t errlen)
{
    if (err && errlen)
        err[0] = '\0';
    if (!text)
        return fail(err, errlen, "empty duration");
    const char *p = text;
    while (is_blank(*p))
        p++;
    if (*p == '\0')
        return fail(err, errlen, "empty duration (try 50ms, 0.2s or 250)");
    if (*p == '-')
        return fail(err, errlen, "a duration cannot be negative");
    if (*p == '+')
        p++;
    uint64_t whole = 0, frac = 0, frac_scale = 1;
    int digits = 0, frac_digits = 0;
    while (*p >= '0' && *p <= '9') {
        if (whole > DURATION_MAX_NS) /* already far too large, keep scanning */
            whole = DURATION_MAX_NS + 1;
        else
            whole = whole * 10 + (uint64_t)(*p - '0');
        digits++;
        p++;
    }
    if (*p == '.') {
        p++;
        while (*p >= '0' && *p <= '9') {
            if (frac_digits < 9) {
                frac = frac * 10 + (uint64_t)(*p - '0');
                frac_scale *= 10;
                frac_digits++;
            }
            digits++;
            p++;
        }
    }
    if (digits == 0)
        return fail(err, errlen, "not a number (try 50ms, 0.2s or 250)");
    while (is_blank(*p))
        p++;
    uint64_t unit;
    const char *u = p;
    size_t ulen = strlen(u);
    while (ulen && is_blank(u[ulen - 1]))
        ulen--;
    if (ulen == 0 || (ulen == 2 && !strncmp(u, "ms", 2)))
        unit = 1000000ull;
    else if (ulen == 1 && u[0] == 's')
        unit = 1000000000ull;
    else if ((ulen == 2 && !strncmp(u, "us", 2)) || (ulen == 3 && !strncmp(u, "\xc2\xb5s", 3)))
        unit = 1000ull;
    else if (ulen == 2 && !strncmp(u, "ns", 2))
        unit = 1ull;
    else
        return fail(err, errlen, "unknown unit '%.*s' (use ns, us, ms or s)",
                    (int)(ulen > 8 ? 8 : ulen), u);
    if (whole > DURATION_MAX_NS / unit)
        return fail(err, errlen, "too long (at most 1 hour)");
    /* frac < frac_scale <= 1e9 and unit <= 1e9: the product fits in 64 bits. */
    uint64_t ns = whole * unit + (frac * unit) / frac_scale;
    if (ns > DURATION_MAX_NS)
        return fail(err, errlen, "too long (at most 1 hour)");
    if (out_ns)
        *out_ns = ns;
    return 0;
}

char *Duration_format(uint64_t ns, char *buf, size_t len)
{
    if (ns < 1000ull)
        snprintf(buf, len, "%lluns", (unsigned long long)ns);
    else if (ns < 1000000ull)
        snprintf(buf, len, "%lluus", (unsigned long long)(ns / 1000));
    else if (ns < 10000000ull)
        snprintf(buf, len, "%.1fms", (double)ns / 1e6);
    else if (ns < 1000000000ull)
        snprintf(buf, len, "%llums", (unsigned long long)(ns / 1000000));
    else if (ns < 60000000000ull)
        snprintf(buf, len, "%.1fs", (double)ns / 1e9);
    else if (ns < 3600000000000ull)
        snprintf(buf, len, "%llum%02llus", (unsigned long long)(ns / 60000000000ull),
                 (unsigned long long)(ns / 1000000000ull % 60));
    else if (ns < 86400000000000ull)
        snprintf(buf, len, "%lluh%02llum", (unsigned long long)(ns / 3600000000000ull),
                 (unsigned long long)(ns / 60000000000ull % 60));
    else
        snprintf(buf, len, "%llud%02lluh", (unsigned long long)(ns / 86400000000000ull),
                 (unsigned long long)(ns / 3600000000000ull % 24));
    return buf;
}

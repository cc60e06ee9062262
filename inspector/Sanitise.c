/* Sanitise.c: the sanitiser of another process's text on its way to a terminal (see
 * Sanitise.h). */
#include "Sanitise.h"

#include <langinfo.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <wchar.h>

/* Invisible characters that reorder or hide text, or break lines: never written as they are
 * (bidi marks, embeddings, overrides and isolates are the "Trojan Source" characters). */
static bool is_format(uint32_t cp)
{
    return cp == 0x061c                         /* ARABIC LETTER MARK */
           || cp == 0x180e                      /* MONGOLIAN VOWEL SEPARATOR */
           || (cp >= 0x200b && cp <= 0x200f)    /* zero-width space/joiners, LRM, RLM */
           || (cp >= 0x2028 && cp <= 0x202e)    /* line/paragraph separator, LRE..RLO */
           || (cp >= 0x2060 && cp <= 0x206f)    /* word joiner, invisible operators, LRI..PDI */
           || cp == 0xfeff                      /* zero-width no-break space (BOM) */
           || (cp >= 0xfff9 && cp <= 0xfffb)    /* interlinear annotation */
           || (cp >= 0xe0000 && cp <= 0xe007f); /* tags */
}

size_t Sanitise_decode(const char *str, size_t len, SanChar *c)
{
    const unsigned char *s = (const unsigned char *)str;
    unsigned char b = s[0];
    memset(c, 0, sizeof *c);
    c->len = 1;
    c->cp = b;
    if (b < 0x80) {
        if (b == '\n')
            c->cls = SAN_NEWLINE;
        else if (b == '\t')
            c->cls = SAN_TAB;
        else if (b < 0x20 || b == 0x7f)
            c->cls = SAN_CONTROL;
        else {
            c->cls = SAN_PRINT;
            c->width = 1;
        }
        return 1;
    }
    size_t n;
    uint32_t cp, min;
    if (b >= 0xc2 && b <= 0xdf) {
        n = 2, cp = b & 0x1f, min = 0x80;
    } else if (b >= 0xe0 && b <= 0xef) {
        n = 3, cp = b & 0x0f, min = 0x800;
    } else if (b >= 0xf0 && b <= 0xf4) {
        n = 4, cp = b & 0x07, min = 0x10000;
    } else {
        c->cls = SAN_INVALID; /* a continuation byte, C0/C1 overlong lead, or 0xf5.. */
        return 1;
    }
    if (len < n) {
        c->cls = SAN_INVALID;
        return 1;
    }
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80) {
            c->cls = SAN_INVALID;
            return 1;
        }
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
        c->cls = SAN_INVALID;
        return 1;
    }
    c->cp = cp;
    c->len = n;
    if (cp <= 0x9f) {
        c->cls = SAN_CONTROL; /* C1 */
        return n;
    }
    if (is_format(cp)) {
        c->cls = SAN_FORMAT;
        return n;
    }
    int w = wcwidth((wchar_t)cp);
    if (w < 0) {
        c->cls = SAN_UNPRINTABLE;
        return n;
    }
    c->cls = SAN_PRINT;
    c->width = w;
    return n;
}

bool Sanitise_passes(const SanChar *c, unsigned flags)
{
    switch (c->cls) {
    case SAN_PRINT:
        return !(flags & SAN_ASCII) || c->cp < 0x80;
    case SAN_NEWLINE:
    case SAN_TAB:
        return flags & SAN_MULTILINE;
    default:
        return false;
    }
}

const char *Sanitise_show(const SanChar *c, const char *in, unsigned flags, char out[8], int *width)
{
    *width = 1;
    if (Sanitise_passes(c, flags)) {
        memcpy(out, in, c->len);
        out[c->len] = '\0';
        *width = c->cls == SAN_PRINT ? c->width : c->cls == SAN_TAB ? 8 : 0;
        return out;
    }
    const char *m;
    if (flags & SAN_ASCII)
        m = c->cls == SAN_NEWLINE ? "|" : "?";
    else if (c->cls == SAN_NEWLINE)
        m = "\u23ce"; /* ⏎ */
    else if (c->cls == SAN_TAB || (c->cls == SAN_CONTROL && c->cp < 0x20)) {
        /* the control picture U+2400 + c: "␛" for ESC */
        out[0] = (char)0xe2, out[1] = (char)0x90, out[2] = (char)(0x80 + c->cp), out[3] = '\0';
        return out;
    } else if (c->cls == SAN_CONTROL && c->cp == 0x7f)
        m = "\u2421"; /* ␡ */
    else
        m = "\ufffd"; /* � */
    strcpy(out, m);
    return out;
}

unsigned Sanitise_localeFlags(void)
{
    const char *cs = nl_langinfo(CODESET);
    return cs && (!strcasecmp(cs, "UTF-8") || !strcasecmp(cs, "utf8")) ? 0 : SAN_ASCII;
}

int Sanitise_width(const char *s, unsigned flags)
{
    int w = 0;
    size_t len = s ? strlen(s) : 0;
    while (len) {
        SanChar c;
        char buf[8];
        int cw;
        size_t k = Sanitise_decode(s, len, &c);
        Sanitise_show(&c, s, flags, buf, &cw);
        w += cw;
        s += k;
        len -= k;
    }
    return w;
}

char *Sanitise_copy(char *out, size_t outlen, const char *s, unsigned flags)
{
    size_t o = 0, len = s ? strlen(s) : 0;
    while (len) {
        SanChar c;
        char buf[8];
        int cw;
        size_t k = Sanitise_decode(s, len, &c);
        const char *v = Sanitise_show(&c, s, flags, buf, &cw);
        size_t vl = strlen(v);
        if (o + vl >= outlen)
            break;
        memcpy(out + o, v, vl);
        o += vl;
        s += k;
        len -= k;
    }
    out[o] = '\0';
    return out;
}

/* Writes s sanitised under flags; returns its columns. */
static int put(FILE *f, const char *s, size_t len, unsigned flags)
{
    int w = 0;
    while (len) {
        SanChar c;
        char buf[8];
        int cw;
        size_t k = Sanitise_decode(s, len, &c);
        fputs(Sanitise_show(&c, s, flags, buf, &cw), f);
        w += cw;
        s += k;
        len -= k;
    }
    return w;
}

int Sanitise_fput(FILE *f, const char *s, int width)
{
    unsigned flags = Sanitise_localeFlags();
    if (!s)
        s = "";
    int pad = width < 0 ? -width : width;
    int tw = width < 0 ? Sanitise_width(s, flags) : 0;
    int w = 0;
    for (; width < 0 && w < pad - tw; w++)
        fputc(' ', f);
    w += put(f, s, strlen(s), flags);
    for (; w < pad; w++)
        fputc(' ', f);
    return w;
}

void Sanitise_printf(FILE *f, const char *fmt, ...)
{
    char small[1024];
    va_list ap, ap2;
    va_start(ap, fmt);
    va_copy(ap2, ap);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    char *buf = small;
    if (n >= (int)sizeof small && (buf = malloc((size_t)n + 1)) != NULL)
        vsnprintf(buf, (size_t)n + 1, fmt, ap2);
    else if (!buf)
        buf = small; /* out of memory: the message cut */
    va_end(ap2);
    size_t len = n > 0 ? strlen(buf) : 0;
    bool nl = len && buf[len - 1] == '\n';
    put(f, buf, len - nl, Sanitise_localeFlags()); /* one line: a process's '\n' gets a marker */
    if (nl)
        fputc('\n', f);
    if (buf != small)
        free(buf);
}

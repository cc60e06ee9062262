/* Json.c: the JSON writer behind `asynctop dump --json` (see Json.h). */
#include "Json.h"

#include "Sanitise.h"

#include <assert.h>
#include <inttypes.h>
#include <math.h>
#include <string.h>

void Json_init(Json *j, FILE *f)
{
    j->f = f;
    j->depth = 0;
    j->need_comma[0] = false;
    j->after_key = false;
}

static void value_prefix(Json *j)
{
    if (j->after_key) {
        j->after_key = false;
        return;
    }
    if (j->need_comma[j->depth])
        fputc(',', j->f);
    j->need_comma[j->depth] = true;
}

static void open_(Json *j, char c)
{
    value_prefix(j);
    fputc(c, j->f);
    assert(j->depth + 1 < JSON_MAX_DEPTH);
    j->need_comma[++j->depth] = false;
}

void Json_object(Json *j)
{
    open_(j, '{');
}

void Json_array(Json *j)
{
    open_(j, '[');
}

void Json_end(Json *j, char close)
{
    assert(j->depth > 0);
    j->depth--;
    fputc(close, j->f);
    if (j->depth == 0)
        fputc('\n', j->f);
}

/* A JSON string: valid UTF-8 only, and nothing a terminal would act on: what the sanitiser
 * would not write as it is (controls, C1, bidi and format characters, code points the locale
 * cannot print, non-ASCII in a non-UTF-8 locale) is a \u escape, invalid bytes are \ufffd. */
static void write_str(FILE *f, const char *s)
{
    unsigned flags = Sanitise_localeFlags();
    size_t len = strlen(s);
    fputc('"', f);
    while (len) {
        SanChar c;
        size_t k = Sanitise_decode(s, len, &c);
        if (c.cls == SAN_PRINT &&
            (c.cp >= 0x80 ? !(flags & SAN_ASCII) : c.cp != '"' && c.cp != '\\'))
            fwrite(s, 1, k, f);
        else if (c.cp == '"' || c.cp == '\\')
            fprintf(f, "\\%c", (char)c.cp);
        else if (c.cls == SAN_NEWLINE)
            fputs("\\n", f);
        else if (c.cls == SAN_TAB)
            fputs("\\t", f);
        else if (c.cp == '\r')
            fputs("\\r", f);
        else if (c.cls == SAN_INVALID)
            fputs("\\ufffd", f);
        else if (c.cp >= 0x10000) /* a surrogate pair */
            fprintf(f, "\\u%04x\\u%04x", 0xd800 + ((c.cp - 0x10000) >> 10),
                    0xdc00 + ((c.cp - 0x10000) & 0x3ff));
        else
            fprintf(f, "\\u%04x", c.cp);
        s += k;
        len -= k;
    }
    fputc('"', f);
}

void Json_key(Json *j, const char *key)
{
    value_prefix(j);
    write_str(j->f, key);
    fputc(':', j->f);
    j->after_key = true;
}

void Json_str(Json *j, const char *s)
{
    value_prefix(j);
    if (s)
        write_str(j->f, s);
    else
        fputs("null", j->f);
}

void Json_u64(Json *j, uint64_t v)
{
    value_prefix(j);
    fprintf(j->f, "%" PRIu64, v);
}

void Json_i64(Json *j, int64_t v)
{
    value_prefix(j);
    fprintf(j->f, "%" PRId64, v);
}

void Json_num(Json *j, double v)
{
    value_prefix(j);
    if (isfinite(v))
        fprintf(j->f, "%.6g", v);
    else
        fputs("null", j->f);
}

void Json_bool(Json *j, bool v)
{
    value_prefix(j);
    fputs(v ? "true" : "false", j->f);
}

void Json_null(Json *j)
{
    value_prefix(j);
    fputs("null", j->f);
}

void Json_fieldStr(Json *j, const char *key, const char *s)
{
    Json_key(j, key);
    Json_str(j, s);
}

void Json_fieldU64(Json *j, const char *key, uint64_t v)
{
    Json_key(j, key);
    Json_u64(j, v);
}

void Json_fieldNum(Json *j, const char *key, double v)
{
    Json_key(j, key);
    Json_num(j, v);
}

void Json_fieldBool(Json *j, const char *key, bool v)
{
    Json_key(j, key);
    Json_bool(j, v);
}

/* Json.c: the JSON writer behind `asynctop dump --json` (see Json.h). */
#include "Json.h"

#include <assert.h>
#include <inttypes.h>
#include <math.h>

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

static void write_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        switch (*p) {
        case '"':
            fputs("\\\"", f);
            break;
        case '\\':
            fputs("\\\\", f);
            break;
        case '\n':
            fputs("\\n", f);
            break;
        case '\r':
            fputs("\\r", f);
            break;
        case '\t':
            fputs("\\t", f);
            break;
        default:
            if (*p < 0x20 || *p == 0x7f)
                fprintf(f, "\\u%04x", *p);
            else
                fputc(*p, f);
        }
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

/* FlameView.c: a stall's profile as text and JSON (see FlameView.h). */
#include "FlameView.h"

#include "CRT.h"
#include "Duration.h"
#include "Sanitise.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

Profile *FlameView_fromWire(const Applier *a, const at_wire_profile_t *w)
{
    if (w == NULL || w->samples == 0)
        return NULL;
    Profile *p = calloc(1, sizeof *p);
    if (p == NULL)
        return NULL;
    p->samples = w->samples;
    p->interval_ns = w->interval_ns;
    uint64_t listed = 0;
    for (uint32_t i = 0; i < w->n_stacks && w->stacks != NULL; i++) {
        uint32_t c = w->stacks[i].count;
        if (c == 0 || listed + c > p->samples)
            break; /* counts beyond the total are not believed */
        if (p->n == MODEL_MAX_PROFILE)
            break;
        Applier_stack(a, w->stacks[i].stack, &p->stack[p->n]);
        p->count[p->n++] = c;
        listed += c;
    }
    p->other = (uint32_t)(p->samples - listed); /* unlisted samples, whatever the server said */
    return p;
}

char *FlameView_line(const Profile *p, uint32_t i, int width, bool ascii, char *out, size_t outlen)
{
    unsigned flags = ascii ? SAN_ASCII : Sanitise_localeFlags();
    const char *arrow = ascii || (flags & SAN_ASCII) ? " <- " : " \u2190 ";
    const char *more = ascii || (flags & SAN_ASCII) ? " ..." : " \u2026";
    unsigned pct =
        p->samples ? (unsigned)((p->count[i] * 100ull + p->samples / 2) / p->samples) : 0;
    int n = snprintf(out, outlen, "%3u%%", pct);
    size_t len = n < 0 ? 0 : (size_t)n < outlen ? (size_t)n : outlen - 1;
    int cols = (int)len;
    const Stack *s = &p->stack[i];
    for (uint32_t k = 0; k < s->n; k++) {
        char name[256];
        Sanitise_copy(name, sizeof name, s->f[k].func, flags);
        int w = Sanitise_width(name, flags) + (k ? Sanitise_width(arrow, flags) : 1);
        /* the last frame that fits, leaving room for the cut mark unless it is the last */
        int room = width - cols - (k + 1 < s->n ? Sanitise_width(more, flags) : 0);
        if (w > room || len + strlen(name) + strlen(arrow) + strlen(more) + 1 > outlen) {
            snprintf(out + len, outlen - len, "%s", more);
            return out;
        }
        len += (size_t)snprintf(out + len, outlen - len, "%s%s", k ? arrow : " ", name);
        cols += w;
    }
    return out;
}

void FlameView_lines(TextLines *t, const Profile *p, int width, const char *none)
{
    if (p == NULL) {
        if (none)
            TextLines_add(t, CRT_colors[C_DIM], "  %s", none);
        return;
    }
    char iv[32];
    if (p->interval_ns)
        TextLines_add(t, CRT_colors[C_NORMAL], "  %u samples, one every %s; heaviest first",
                      p->samples, Duration_format(p->interval_ns, iv, sizeof iv));
    else
        TextLines_add(t, CRT_colors[C_NORMAL], "  %u sample%s (profiling is off)", p->samples,
                      p->samples == 1 ? "" : "s");
    char line[1024];
    for (uint32_t i = 0; i < p->n; i++)
        TextLines_add(t, CRT_colors[C_NORMAL], "  %s",
                      FlameView_line(p, i, width - 3, CRT_ascii, line, sizeof line));
    if (p->other)
        TextLines_add(t, CRT_colors[C_DIM], "  %3u%% other stacks (%u samples)",
                      (unsigned)((p->other * 100ull + p->samples / 2) / p->samples), p->other);
}

void FlameView_json(Json *j, const char *key, const Profile *p)
{
    Json_key(j, key);
    if (p == NULL) {
        Json_null(j);
        return;
    }
    Json_object(j);
    Json_key(j, "samples");
    Json_u64(j, p->samples);
    Json_key(j, "interval_ns");
    Json_u64(j, p->interval_ns);
    Json_key(j, "other");
    Json_u64(j, p->other);
    Json_key(j, "stacks");
    Json_array(j);
    for (uint32_t i = 0; i < p->n; i++) {
        Json_object(j);
        Json_key(j, "count");
        Json_u64(j, p->count[i]);
        Json_key(j, "share");
        Json_num(j, p->samples ? (double)p->count[i] / p->samples : 0);
        Json_key(j, "frames");
        Json_array(j);
        for (uint32_t k = 0; k < p->stack[i].n; k++) {
            const StackFrame *f = &p->stack[i].f[k];
            Json_object(j);
            Json_key(j, "func");
            Json_str(j, f->func);
            Json_key(j, "file");
            Json_str(j, f->file);
            Json_key(j, "line");
            Json_u64(j, f->line);
            Json_end(j, '}');
        }
        Json_end(j, ']');
        Json_end(j, '}');
    }
    Json_end(j, ']');
    Json_end(j, '}');
}

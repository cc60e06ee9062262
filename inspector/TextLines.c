/* TextLines.c: scrollable pages of text lines (detail, help and loop screens). */
#include "CRT.h"
#include "Duration.h"
#include "Sanitise.h"
#include "Screens.h"

#include <curses.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Appends an owned line. */
static void push(TextLines *t, int attr, char *owned)
{
    if (t->n == t->cap) {
        t->cap = t->cap ? t->cap * 2 : 64;
        t->text = realloc(t->text, t->cap * sizeof *t->text);
        t->attr = realloc(t->attr, t->cap * sizeof *t->attr);
        if (!t->text || !t->attr)
            abort();
    }
    if (!owned)
        abort();
    t->text[t->n] = owned;
    t->attr[t->n++] = attr;
}

void TextLines_add(TextLines *t, int attr, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char buf[512];
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    push(t, attr, strdup(buf));
}

void TextLines_wrap(TextLines *t, int attr, const char *label, const char *text, int width)
{
    unsigned flags = Sanitise_localeFlags();
    int indent = CRT_width(label);
    int room = width - indent > 10 ? width - indent : 10;
    size_t ll = strlen(label);
    bool first = true;
    const char *line = text;
    do {
        const char *p = line, *end = line + strcspn(line, "\n");
        do {
            /* the longest piece of at most room columns; back to its last blank if any */
            const char *q = p, *blank = NULL;
            int w = 0;
            while (q < end) {
                SanChar c;
                char buf[8];
                int cw;
                size_t k = Sanitise_decode(q, (size_t)(end - q), &c);
                Sanitise_show(&c, q, flags, buf, &cw);
                if (w + cw > room && q > p)
                    break;
                if (c.cp == ' ' && q > p)
                    blank = q;
                w += cw;
                q += k;
            }
            if (q < end && blank)
                q = blank + 1;
            size_t pre = first ? ll : (size_t)indent, n = (size_t)(q - p);
            char *l = malloc(pre + n + 1);
            if (!l)
                abort();
            if (first)
                memcpy(l, label, ll);
            else
                memset(l, ' ', pre);
            memcpy(l + pre, p, n);
            l[pre + n] = '\0';
            push(t, attr, l);
            first = false;
            p = q;
        } while (p < end);
        line = *end ? end + 1 : NULL;
    } while (line && *line);
}

static const char *base_name(const char *path)
{
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

void TextLines_stack(TextLines *t, const Stack *s, const char *none)
{
    if (!s->n) {
        TextLines_add(t, CRT_colors[C_DIM], "    %s", none);
        return;
    }
    for (uint32_t i = 0; i < s->n; i++) {
        const StackFrame *f = &s->f[i];
        if (f->file && f->line)
            TextLines_add(t, CRT_colors[C_NORMAL], "  #%-2u %s  %s:%u", i, f->func,
                          base_name(f->file), f->line);
        else if (f->file)
            TextLines_add(t, CRT_colors[C_NORMAL], "  #%-2u %s  %s", i, f->func,
                          base_name(f->file));
        else if (f->build_id) /* module+0xoffset: the build to symbolise it against later */
            TextLines_add(t, CRT_colors[C_NORMAL], "  #%-2u %s  0x%llx  build-id %s", i, f->func,
                          (unsigned long long)f->addr, f->build_id);
        else
            TextLines_add(t, CRT_colors[C_NORMAL], "  #%-2u %s  0x%llx", i, f->func,
                          (unsigned long long)f->addr);
    }
}

void TextLines_hist(TextLines *t, const uint64_t *b, unsigned n, int width)
{
    uint64_t max = 0;
    unsigned lo = n, hi = 0;
    for (unsigned i = 0; i < n; i++) {
        if (b[i] > max)
            max = b[i];
        if (b[i]) {
            if (lo == n)
                lo = i;
            hi = i;
        }
    }
    if (!max) {
        TextLines_add(t, CRT_colors[C_DIM], "    (no samples)");
        return;
    }
    int bar = width - 30;
    if (bar < 10)
        bar = 10;
    if (bar > 50)
        bar = 50;
    for (unsigned i = lo; i <= hi; i++) {
        char d[32], line[128];
        int len = (int)((double)b[i] * bar / (double)max + 0.5);
        if (b[i] && len == 0)
            len = 1;
        size_t o = 0;
        for (int k = 0; k < len && o + 4 < sizeof line; k++) {
            const char *g = CRT_spark(7);
            size_t gl = strlen(g);
            memcpy(line + o, g, gl);
            o += gl;
        }
        line[o] = '\0';
        Duration_format(Hist_bucketMax(i), d, sizeof d);
        TextLines_add(t, CRT_colors[C_NORMAL], "    < %-7s %-*s %llu", d, 1, line,
                      (unsigned long long)b[i]);
    }
}

void TextLines_free(TextLines *t)
{
    for (uint32_t i = 0; i < t->n; i++)
        free(t->text[i]);
    free(t->text);
    free(t->attr);
    memset(t, 0, sizeof *t);
}

typedef struct DrawCtx {
    TextLines *t;
    int w;
} DrawCtx;

static void draw_line(void *arg, uint32_t i, int y, bool sel)
{
    DrawCtx *c = arg;
    CRT_put(y, 0, c->t->text[i], c->w, sel ? CRT_colors[C_SELECTED] : c->t->attr[i], sel);
}

void TextLines_draw(TextLines *t, Screen *s, int y, int h, int w)
{
    Panel_setCount(&s->panel, t->n);
    DrawCtx c = {t, w};
    Panel_draw(&s->panel, y, h, draw_line, &c);
}

void TextLines_page(Screen *s, App *app, int y, int h, int w,
                    void (*fill)(App *app, TextLines *t, int w))
{
    TextLines t;
    memset(&t, 0, sizeof t);
    fill(app, &t, w);
    TextLines_draw(&t, s, y, h, w);
    TextLines_free(&t);
}

void Screens_clock(const Model *m, uint64_t ns, char *buf, size_t len)
{
    if (!m->start_wall_ns) {
        char d[32];
        snprintf(buf, len, "+%s", Duration_format(ns, d, sizeof d));
        return;
    }
    time_t t = (time_t)((m->start_wall_ns + ns) / 1000000000ull);
    struct tm tm;
    localtime_r(&t, &tm);
    strftime(buf, len, "%H:%M:%S", &tm);
}

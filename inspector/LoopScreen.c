/* LoopScreen.c: utilisation and lag over time, lag histogram, handles, executor, and the
 * process's other loops at a glance. */
#include "CRT.h"
#include "Duration.h"
#include "FlameView.h"
#include "Header.h"
#include "Screens.h"

#include <stdio.h>
#include <string.h>

/* Sparkline of the last `width` samples of ring (scaled to max). */
static void spark(char *out, size_t len, const float *ring, uint32_t total, int width, float max)
{
    size_t o = 0;
    uint32_t n = total < MODEL_HISTORY ? total : MODEL_HISTORY;
    if ((uint32_t)width > n)
        width = (int)n;
    out[0] = '\0';
    for (int i = width; i > 0 && o + 4 < len; i--) {
        float v = ring[(total - (uint32_t)i) % MODEL_HISTORY];
        unsigned level = max > 0 ? (unsigned)(v / max * 7.0f + 0.5f) : 0;
        const char *g = CRT_spark(level);
        size_t gl = strlen(g);
        memcpy(out + o, g, gl);
        o += gl;
        out[o] = '\0';
    }
}

static void loop_draw(Screen *s, App *app, int y, int h, int w)
{
    Model *m = &app->model;
    LoopStats *l = &m->loop;
    TextLines t;
    memset(&t, 0, sizeof t);
    char line[2048], d1[32], d2[32], rate[32];
    if (m->blocked) { /* the BLOCKED view: where the stuck callback spends its time */
        TextLines_add(&t, CRT_colors[C_WARN], "BLOCKED in %s: where the time goes",
                      m->blocked_callback ? m->blocked_callback : "?");
        FlameView_lines(&t, m->blocked_profile, w, "(no profile yet)");
    }
    int sw = w - 24 > 0 ? w - 24 : 1;
    if (sw > 240)
        sw = 240;
    spark(line, sizeof line, m->util_hist, m->nhistory, sw, 1.0f);
    TextLines_add(&t, CRT_colors[C_NORMAL], "utilisation %4.0f%%    %s", l->utilisation * 100,
                  line);
    float lmax = 0;
    for (unsigned i = 0; i < MODEL_HISTORY && i < m->nhistory; i++)
        if (m->lag_hist_ms[i] > lmax)
            lmax = m->lag_hist_ms[i];
    spark(line, sizeof line, m->lag_hist_ms, m->nhistory, sw, lmax);
    TextLines_add(&t, CRT_colors[C_NORMAL], "lag p99 %9s    %s",
                  Duration_format(l->lag_p99_ns, d1, sizeof d1), line);
    TextLines_add(&t, CRT_colors[C_DIM], "  (one sample per update; lag scale max %.1f ms)",
                  (double)lmax);
    Header_rate(l->callbacks_per_s, rate, sizeof rate);
    TextLines_add(&t, CRT_colors[C_NORMAL],
                  "callbacks %s/s   iterations %llu   slow %llu   errors %llu", rate,
                  (unsigned long long)l->iterations, (unsigned long long)l->slow_total,
                  (unsigned long long)l->errors_total);
    TextLines_add(&t, CRT_colors[C_NORMAL], "lag p50 %s  p99 %s",
                  Duration_format(l->lag_p50_ns, d1, sizeof d1),
                  Duration_format(l->lag_p99_ns, d2, sizeof d2));
    TextLines_add(&t, CRT_colors[C_HEADER], "Executor");
    TextLines_add(&t, CRT_colors[C_NORMAL],
                  "  queued %llu   running %llu   threads %llu   done %llu   avg queue wait %s",
                  (unsigned long long)l->exec_queue, (unsigned long long)l->exec_busy,
                  (unsigned long long)l->exec_threads, (unsigned long long)l->exec_done,
                  Duration_format(l->exec_wait_avg_ns, d1, sizeof d1));
    TextLines_add(&t, CRT_colors[C_HEADER], "Handles by type");
    if (!l->nhandles)
        TextLines_add(&t, CRT_colors[C_DIM], "  (none reported)");
    size_t o = 0;
    line[0] = '\0';
    for (uint32_t i = 0; i < l->nhandles; i++) {
        int k = snprintf(line + o, sizeof line - o, "  %s %llu", l->handles[i].name,
                         (unsigned long long)l->handles[i].value);
        if (k < 0 || (size_t)k >= sizeof line - o)
            break;
        o += (size_t)k;
        if (o > (size_t)w - 16 || i + 1 == l->nhandles) {
            TextLines_add(&t, CRT_colors[C_NORMAL], "%s", line);
            o = 0;
            line[0] = '\0';
        }
    }
    if (m->nloops >= 2) { /* the other loops at a glance; L to pick one */
        TextLines_add(&t, CRT_colors[C_HEADER], "Loops of the process (L: pick one, ] [: step)");
        for (uint32_t i = 0; i < m->nloops; i++) {
            const LoopInfo *li = &m->loops[i];
            char what[160], cbs[32];
            LoopInfo_describe(li, what, sizeof what);
            Header_rate(li->callbacks_per_s, cbs, sizeof cbs);
            if (li->gone || !li->has_stats)
                TextLines_add(&t, CRT_colors[C_DIM], "%s %3u  %s%s",
                              li->id == m->loop_id ? "*" : " ", li->id, what,
                              li->gone ? "  (closed)" : "");
            else
                TextLines_add(&t, CRT_colors[LoopInfo_blocked(li, m) ? C_WARN : C_NORMAL],
                              "%s %3u  util %3.0f%%  %s cb/s  slow %llu  pending %llu  %s%s",
                              li->id == m->loop_id ? "*" : " ", li->id, li->utilisation * 100, cbs,
                              (unsigned long long)li->slow, (unsigned long long)li->pending, what,
                              LoopInfo_blocked(li, m) ? "  BLOCKED" : "");
        }
    }
    TextLines_add(&t, CRT_colors[C_HEADER], "Loop lag histogram (since start)");
    TextLines_hist(&t, l->lag_hist, MODEL_HIST_BUCKETS, w);
    TextLines_draw(&t, s, y, h, w);
    TextLines_free(&t);
}

const ScreenClass LoopScreen_class = {SCR_LOOP, "Loop", loop_draw, NULL};

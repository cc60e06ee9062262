/* SlowScreen.c: recent slow callbacks and the per-call-site aggregate. */
#include "CRT.h"
#include "Duration.h"
#include "Screens.h"

#include <curses.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const TableColumn columns[] = {{"TIME", 8, false},
                                      {"DURATION", 8, true},
                                      {"CALLBACK", 24, false},
                                      {"TASK", 14, false},
                                      {"CALL SITE", 0, false}};

static const TableColumn site_columns[] = {{"SLOW", 6, true},
                                           {"CALLS", 9, true},
                                           {"MAX", 7, true},
                                           {"P99", 7, true},
                                           {"BY CALL SITE", 0, false}};

static bool event_matches(const SlowEvent *e, const char *f)
{
    return !f[0] || strcasestr(e->callback, f) || strcasestr(e->task_name, f) ||
           strcasestr(e->site, f);
}

/* Index (0 newest, as Model_slowAt) of the row-th event that matches the filter, or -1. */
static int64_t nth_match(const App *app, uint32_t row)
{
    uint64_t n = Model_slowCount(&app->model);
    for (uint64_t i = 0; i < n; i++)
        if (event_matches(Model_slowAt(&app->model, i), app->slow_filter) && row-- == 0)
            return (int64_t)i;
    return -1;
}

static void draw_row(const ListScreen *ls, uint32_t i, int y, bool sel)
{
    int64_t k = nth_match(ls->app, i);
    const SlowEvent *e = k < 0 ? NULL : Model_slowAt(&ls->app->model, (uint64_t)k);
    if (!e)
        return;
    char when[32], dur[32];
    Screens_clock(&ls->app->model, e->when_ns, when, sizeof when);
    Duration_format(e->duration_ns, dur, sizeof dur);
    const char *cells[] = {when, dur, e->callback, e->task_name, e->site};
    ListScreen_row(ls, y, cells, sel ? CRT_colors[C_SELECTED] : CRT_colors[C_NORMAL]);
}

static int cmp_site(const void *a, const void *b)
{
    const SlowSite *x = *(SlowSite *const *)a, *y = *(SlowSite *const *)b;
    uint64_t cx = x->runtime ? x->slow : x->count, cy = y->runtime ? y->slow : y->count;
    return (cx < cy) - (cx > cy);
}

static void slow_draw(Screen *s, App *app, int y, int h, int w)
{
    Model *m = &app->model;
    uint64_t held = Model_slowCount(m), n = 0;
    for (uint64_t i = 0; i < held; i++)
        n += event_matches(Model_slowAt(m, i), app->slow_filter);
    Panel_setCount(&s->panel, (uint32_t)n);
    int sites_h =
        m->nsites ? (int)(m->nsites + 2 < (uint32_t)h / 3 ? m->nsites + 2 : (uint32_t)h / 3) : 0;
    if (sites_h < 3 && m->nsites)
        sites_h = h > 8 ? 3 : 0;
    int list_h = h - 1 - sites_h;
    char info[160], d[32];
    if (app->slow_filter[0])
        snprintf(info, sizeof info,
                 "%llu of %llu slow callbacks match \"%.40s\" (Esc clears); Enter: stack",
                 (unsigned long long)n, (unsigned long long)held, app->slow_filter);
    else
        snprintf(info, sizeof info,
                 "%llu slow callbacks (threshold %s); newest first; Enter: stack",
                 (unsigned long long)n, Duration_format(m->slow_threshold_ns, d, sizeof d));
    ListScreen ls = {app, w, columns, 5, draw_row};
    ListScreen_draw(&ls, s, y, list_h + 1, NULL, (uint32_t)n,
                    held ? "no slow callback matches the filter (Esc clears it)"
                         : "no slow callbacks yet");
    if (!sites_h)
        return;
    int sy = y + 1 + list_h;
    CRT_put(sy, 0, info, w, CRT_colors[C_DIM], true);
    Table_head(sy + 1, w, 5, site_columns, -1, false);
    SlowSite **order = malloc(m->nsites * sizeof *order);
    if (!order)
        return;
    for (uint32_t i = 0; i < m->nsites; i++)
        order[i] = &m->sites[i];
    qsort(order, m->nsites, sizeof *order, cmp_site);
    for (uint32_t i = 0; i < m->nsites && sy + 2 + (int)i < y + h; i++) {
        const SlowSite *ss = order[i];
        char cnt[24], calls[24], mx[32], p99[32];
        snprintf(cnt, sizeof cnt, "%llu", (unsigned long long)(ss->runtime ? ss->slow : ss->count));
        if (ss->runtime)
            snprintf(calls, sizeof calls, "%llu", (unsigned long long)ss->calls);
        else
            snprintf(calls, sizeof calls, "-");
        Duration_format(ss->runtime && ss->rt_max_ns > ss->max_ns ? ss->rt_max_ns : ss->max_ns, mx,
                        sizeof mx);
        Duration_format(ss->runtime ? ss->rt_p99_ns : SlowSite_percentile(ss, 99), p99, sizeof p99);
        const char *cells[] = {cnt, calls, mx, p99, ss->site};
        Table_row(sy + 2 + (int)i, w, 5, cells, site_columns, CRT_colors[C_NORMAL]);
    }
    free(order);
}

static Reaction slow_enter(Screen *s, App *app)
{
    int64_t k = nth_match(app, s->panel.selected);
    if (k < 0)
        return R_HANDLED;
    /* remember the event by its absolute number so new events do not move it */
    app->slow_index = app->model.nslow - 1 - (uint64_t)k;
    ScreenManager_push(&app->sm, SCR_SLOW_DETAIL);
    return R_HANDLED | R_REDRAW;
}

const ScreenClass SlowScreen_class = {SCR_SLOW, "Slow", slow_draw, slow_enter};

/* LoopsScreen.c: the loop picker — every event loop of the process with its load, Enter shows it.
 */
#include "CRT.h"
#include "Header.h"
#include "Screens.h"

#include <stdio.h>
#include <string.h>

#define NCOLS 9
static const char *const titles[NCOLS] = {"",        "LOOP", "UTIL", "CB/S",  "SLOW",
                                          "PENDING", "NOW",  "KIND", "THREAD"};
static const int widths[NCOLS] = {1, 5, 5, 7, 7, 8, 14, 8, 0};
static const bool right[NCOLS] = {false, true, true, true, true, true, false, false, false};

typedef struct Ctx {
    App *app;
    int w;
} Ctx;

static void draw_row(void *arg, uint32_t i, int y, bool sel)
{
    Ctx *c = arg;
    const Model *m = &c->app->model;
    const LoopInfo *l = &m->loops[i];
    char id[16], util[16], cbs[24], slow[24], pend[24], thread[128], now[32] = "";
    bool blocked = LoopInfo_blocked(l, m);
    if (blocked) { /* stuck in one callback for at least the threshold */
        char secs[24];
        Header_seconds(l->running_ns, secs, sizeof secs);
        snprintf(now, sizeof now, "BLOCKED %s", secs);
    }
    snprintf(id, sizeof id, "%u", l->id);
    if (l->has_stats && !l->gone) {
        snprintf(util, sizeof util, "%.0f%%", l->utilisation * 100);
        Header_rate(l->callbacks_per_s, cbs, sizeof cbs);
        snprintf(slow, sizeof slow, "%llu", (unsigned long long)l->slow);
        snprintf(pend, sizeof pend, "%llu", (unsigned long long)l->pending);
    } else {
        snprintf(util, sizeof util, "-");
        snprintf(cbs, sizeof cbs, "-");
        snprintf(slow, sizeof slow, "-");
        snprintf(pend, sizeof pend, "-");
    }
    char addr[32] = "";
    if (l->addr)
        snprintf(addr, sizeof addr, "  0x%llx", (unsigned long long)l->addr);
    snprintf(thread, sizeof thread, "%llu %s%s%s%s%s", (unsigned long long)l->tid,
             l->thread[0] ? "'" : "", l->thread, l->thread[0] ? "'" : "", addr,
             l->gone ? "  (closed)" : "");
    const char *cells[NCOLS] = {l->id == m->loop_id ? "*" : " ", id,    util, cbs, slow, pend, now,
                                l->kind[0] ? l->kind : "?",      thread};
    int attr = sel       ? CRT_colors[C_SELECTED]
               : l->gone ? CRT_colors[C_DIM]
               : blocked ? CRT_colors[C_WARN]
                         : CRT_colors[C_NORMAL];
    Table_row(y, c->w, NCOLS, cells, widths, right, attr);
}

static void loops_draw(Screen *s, App *app, int y, int h, int w)
{
    const Model *m = &app->model;
    char info[200];
    snprintf(info, sizeof info,
             "Event loops of %s[%llu] (* = shown; Enter shows the loop under the cursor, [ ] "
             "step, Esc back)",
             m->program, (unsigned long long)m->pid);
    CRT_put(y, 0, info, w, CRT_colors[C_DIM], true);
    Table_head(y + 1, w, NCOLS, titles, widths, right, -1, false);
    Panel_setCount(&s->panel, m->nloops);
    if (!m->nloops) {
        CRT_put(y + 2, 1, "the process lists no loops: it runs only its main loop (0)", w - 1,
                CRT_colors[C_DIM], false);
        return;
    }
    Ctx c = {app, w};
    Panel_draw(&s->panel, y + 2, h - 2, draw_row, &c);
}

static Reaction loops_enter(Screen *s, App *app)
{
    const Model *m = &app->model;
    if (s->panel.selected >= m->nloops)
        return R_HANDLED;
    const LoopInfo *l = &m->loops[s->panel.selected];
    if (l->id == m->loop_id && !m->loop_gone) {
        App_pop(app);
        return R_HANDLED | R_REDRAW;
    }
    App_switchLoop(app, l->id);
    if (app->switching)
        App_pop(app);
    return R_HANDLED | R_REDRAW;
}

const ScreenClass LoopsScreen_class = {SCR_LOOPS, "Loops", loops_draw, loops_enter};

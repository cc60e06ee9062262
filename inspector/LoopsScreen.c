/* LoopsScreen.c: the loop picker — every event loop of the process with its load, Enter shows it.
 */
#include "CRT.h"
#include "Header.h"
#include "Screens.h"

#include <stdio.h>
#include <string.h>

#define NCOLS 9
static const TableColumn columns[NCOLS] = {
    {"", 1, false},     {"LOOP", 5, true},  {"UTIL", 5, true},
    {"CB/S", 7, true},  {"SLOW", 7, true},  {"PENDING", 8, true},
    {"NOW", 14, false}, {"KIND", 8, false}, {"THREAD", 0, false}};

static void draw_row(const ListScreen *ls, uint32_t i, int y, bool sel)
{
    const Model *m = &ls->app->model;
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
    ListScreen_row(ls, y, cells, attr);
}

static void loops_draw(Screen *s, App *app, int y, int h, int w)
{
    const Model *m = &app->model;
    char info[200];
    snprintf(info, sizeof info,
             "Event loops of %s[%llu] (* = shown; Enter shows the loop under the cursor, [ ] "
             "step, Esc back)",
             m->program, (unsigned long long)m->pid);
    ListScreen ls = {app, w, columns, NCOLS, draw_row};
    ListScreen_draw(&ls, s, y, h, info, m->nloops,
                    "the process lists no loops: it runs only its main loop (0)");
}

static Reaction loops_enter(Screen *s, App *app)
{
    const Model *m = &app->model;
    if (s->panel.selected >= m->nloops)
        return R_HANDLED;
    const LoopInfo *l = &m->loops[s->panel.selected];
    if (l->id == m->loop_id && !m->loop_gone) {
        ScreenManager_pop(&app->sm);
        return R_HANDLED | R_REDRAW;
    }
    App_switchLoop(app, l->id);
    if (app->switching)
        ScreenManager_pop(&app->sm);
    return R_HANDLED | R_REDRAW;
}

const ScreenClass LoopsScreen_class = {SCR_LOOPS, "Loops", loops_draw, loops_enter};

/* GroupsScreen.c: tasks grouped by identical suspension stack, largest first. */
#include "Applier.h"
#include "CRT.h"
#include "Duration.h"
#include "Screens.h"
#include "TaskColumn.h"
#include "TaskView.h"

#include <curses.h>
#include <stdio.h>
#include <string.h>

static const TableColumn columns[] = {{"TASKS", 7, true},
                                      {"LONGEST", 9, true},
                                      {"WAITING AT (top of the suspension stack)", 0, false}};

/* Callers named after the top frame, at most. */
#define LABEL_CALLERS 3
/* Groups compared with one row to tell it apart, at most (bounds the work of a draw). */
#define LABEL_PEERS 256

/* Text of frame i of group g's stack, "" past its end. */
static void frame_text(const App *app, const TaskGroup *g, uint32_t i, char *buf, size_t len)
{
    uint32_t site = Applier_stackSite(&app->applier, (uint32_t)g->example->stack_key, i);
    if (site)
        Applier_siteText(&app->applier, site, buf, len);
    else
        buf[0] = '\0';
}

/* How many caller frames row i needs so that it does not read like another group's row with
 * the same top frame and kind of wait (different stacks below it): the first depth where its
 * stack and theirs differ, at most LABEL_CALLERS. */
static uint32_t callers_needed(const App *app, uint32_t i)
{
    const TaskGroups *gs = &app->groups;
    const TaskGroup *g = &gs->g[i];
    size_t kind = Task_waitKindLen(g->example);
    uint32_t need = 0, peers = 0;
    for (uint32_t j = 0; j < gs->n && peers < LABEL_PEERS && need < LABEL_CALLERS; j++) {
        const TaskGroup *o = &gs->g[j];
        if (j == i || strcmp(o->example->where, g->example->where) != 0 ||
            Task_waitKindLen(o->example) != kind ||
            strncmp(o->example->waits_on, g->example->waits_on, kind) != 0)
            continue;
        peers++;
        for (uint32_t d = 1; d <= LABEL_CALLERS; d++) {
            char a[MODEL_MAX_STR], b[MODEL_MAX_STR];
            frame_text(app, g, d, a, sizeof a);
            frame_text(app, o, d, b, sizeof b);
            if (strcmp(a, b) != 0) {
                if (d > need)
                    need = d;
                break;
            }
            if (!a[0])
                break; /* both ended: they differ in nothing shown */
        }
    }
    return need;
}

static void draw_row(const ListScreen *ls, uint32_t i, int y, bool sel)
{
    const TaskGroup *g = &ls->app->groups.g[i];
    char count[24], wait[32], where[2 * MODEL_MAX_STR + 80];
    snprintf(count, sizeof count, "%u", g->count);
    Duration_format(g->longest_wait_ns, wait, sizeof wait);
    /* what the group waits on: the kind (the part all its tasks share when they have no
     * stack), not its example task's object number or time left */
    char waits[64];
    snprintf(waits, sizeof waits, "%.*s", (int)Task_waitKindLen(g->example), g->example->waits_on);
    /* the top frame, and the callers that tell this group from others with the same top */
    char callers[MODEL_MAX_STR] = "";
    size_t o = 0;
    for (uint32_t d = 1, n = callers_needed(ls->app, i); d <= n && o < sizeof callers; d++) {
        char f[MODEL_MAX_STR];
        frame_text(ls->app, g, d, f, sizeof f);
        int k = snprintf(callers + o, sizeof callers - o, " < %s", f[0] ? f : "?");
        if (k < 0)
            break;
        o += (size_t)k;
    }
    snprintf(where, sizeof where, "%s%s%s%s",
             g->example->where[0] ? g->example->where : "(stack unknown)", callers,
             waits[0] ? "  waits on " : "", waits);
    const char *cells[] = {count, wait, where};
    ListScreen_row(ls, y, cells, sel ? CRT_colors[C_SELECTED] : CRT_colors[C_NORMAL]);
}

static void groups_draw(Screen *s, App *app, int y, int h, int w)
{
    TaskGroups_update(&app->groups, &app->model);
    Panel_setCount(&s->panel, app->groups.n); /* the cursor in range before it is read */
    char info[96];
    snprintf(info, sizeof info, "%u groups of identical stacks, largest first (Enter: its tasks)",
             app->groups.n);
    /* the selected group's whole stack below the list when there is room */
    int list_h = h - 2;
    Stack st = {0, NULL};
    if (h > 14 && app->groups.n) {
        const TaskGroup *g =
            &app->groups.g[s->panel.selected < app->groups.n ? s->panel.selected : 0];
        Applier_stack(&app->applier, (uint32_t)g->example->stack_key, &st);
        int want = (int)st.n + 2;
        if (want > h / 2)
            want = h / 2;
        list_h = h - 2 - want;
    }
    ListScreen ls = {app, w, columns, 3, draw_row};
    ListScreen_draw(&ls, s, y, list_h + 2, info, app->groups.n, "no live tasks");
    if (list_h < h - 2) {
        int sy = y + 2 + list_h;
        CRT_put(sy, 0, "Stack of the selected group (innermost first):", w,
                CRT_colors[C_LABEL] | A_BOLD, true);
        if (!st.n)
            CRT_put(sy + 1, 2, "(the runtime sent no suspension stack)", w - 2, CRT_colors[C_DIM],
                    false);
        for (uint32_t i = 0; i < st.n && sy + 1 + (int)i < y + h; i++) {
            char line[600];
            const StackFrame *f = &st.f[i];
            snprintf(line, sizeof line, "  #%-2u %s  %s:%u", i, f->func, f->file ? f->file : "?",
                     f->line);
            CRT_put(sy + 1 + (int)i, 0, line, w, CRT_colors[C_NORMAL], true);
        }
    }
    Stack_free(&st);
}

static Reaction groups_enter(Screen *s, App *app)
{
    if (s->panel.selected >= app->groups.n)
        return R_HANDLED;
    const TaskGroup *g = &app->groups.g[s->panel.selected];
    app->group_tasks.by_group = true;
    app->group_tasks.group_key = g->key;
    app->group_tasks.dirty = true;
    ScreenManager_push(&app->sm, SCR_GROUP_TASKS);
    return R_HANDLED | R_REDRAW;
}

const ScreenClass GroupsScreen_class = {SCR_GROUPS, "Groups", groups_draw, groups_enter};

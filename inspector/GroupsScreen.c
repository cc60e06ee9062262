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

typedef struct Ctx {
    App *app;
    int w;
} Ctx;

static void draw_row(void *arg, uint32_t i, int y, bool sel)
{
    Ctx *c = arg;
    const TaskGroup *g = &c->app->groups.g[i];
    char count[24], wait[32], where[MODEL_MAX_STR + 40];
    snprintf(count, sizeof count, "%u", g->count);
    Duration_format(g->longest_wait_ns, wait, sizeof wait);
    /* what the group waits on: the kind (the part all its tasks share when they have no
     * stack), not its example task's object number or time left */
    char waits[64];
    snprintf(waits, sizeof waits, "%.*s", (int)Task_waitKindLen(g->example), g->example->waits_on);
    snprintf(where, sizeof where, "%s%s%s",
             g->example->where[0] ? g->example->where : "(stack unknown)",
             waits[0] ? "  waits on " : "", waits);
    const char *cells[] = {count, wait, where};
    int widths[] = {7, 9, 0};
    bool right[] = {true, true, false};
    Table_row(y, c->w, 3, cells, widths, right,
              sel ? CRT_colors[C_SELECTED] : CRT_colors[C_NORMAL]);
}

static void groups_draw(Screen *s, App *app, int y, int h, int w)
{
    TaskGroups_update(&app->groups, &app->model);
    Panel_setCount(&s->panel, app->groups.n);
    const char *titles[] = {"TASKS", "LONGEST", "WAITING AT (top of the suspension stack)"};
    int widths[] = {7, 9, 0};
    bool right[] = {true, true, false};
    char info[96];
    snprintf(info, sizeof info, "%u groups of identical stacks, largest first (Enter: its tasks)",
             app->groups.n);
    CRT_put(y, 0, info, w, CRT_colors[C_DIM], true);
    Table_head(y + 1, w, 3, titles, widths, right, -1, false);
    if (!app->groups.n) {
        CRT_put(y + 2, 1, "no live tasks", w - 1, CRT_colors[C_DIM], false);
        return;
    }
    /* the selected group's whole stack below the list when there is room */
    int list_h = h - 2;
    Stack st = {0, NULL};
    if (h > 14) {
        const TaskGroup *g =
            &app->groups.g[s->panel.selected < app->groups.n ? s->panel.selected : 0];
        Applier_stack(&app->applier, (uint32_t)g->example->stack_key, &st);
        int want = (int)st.n + 2;
        if (want > h / 2)
            want = h / 2;
        list_h = h - 2 - want;
    }
    Ctx c = {app, w};
    Panel_draw(&s->panel, y + 2, list_h, draw_row, &c);
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
    App_push(app, SCR_GROUP_TASKS);
    return R_HANDLED | R_REDRAW;
}

const ScreenClass GroupsScreen_class = {SCR_GROUPS, "Groups", groups_draw, groups_enter};

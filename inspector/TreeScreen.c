/* TreeScreen.c: the spawn hierarchy, like pstree. */
#include "CRT.h"
#include "Screens.h"
#include "TaskColumn.h"

#include <stdio.h>
#include <string.h>

static const TableColumn columns[] = {
    {"     ID", 7, true}, {"STATE", 8, false}, {"TASK TREE", 0, false}};

/* One line, not cells: the tree's prefix runs into the name. */
static void draw_row(const ListScreen *ls, uint32_t i, int y, bool sel)
{
    const TreeRow *r = &ls->app->tree.rows[i];
    const Task *t = r->task;
    char prefix[TASKTREE_MAX_INDENT * 8 + 16], line[600];
    size_t o = 0;
    uint32_t depth = r->depth < TASKTREE_MAX_INDENT ? r->depth : TASKTREE_MAX_INDENT;
    prefix[0] = '\0';
    for (uint32_t d = 1; d < depth; d++)
        o += (size_t)snprintf(prefix + o, sizeof prefix - o, "%s",
                              CRT_glyph(r->more & (1u << (d - 1)) ? G_TREE_BAR : G_TREE_NONE));
    if (depth)
        snprintf(prefix + o, sizeof prefix - o, "%s",
                 CRT_glyph(r->last ? G_TREE_LAST : G_TREE_MID));
    snprintf(line, sizeof line, "%7llu %-8s %s%s%s%s%s", (unsigned long long)t->id,
             TaskState_name(t->state), prefix, t->name, t->waits_on[0] ? "  waits " : "",
             t->waits_on, r->cycle ? "  (parent cycle)" : "");
    int attr = sel ? CRT_colors[C_SELECTED] : t->gone_ms ? CRT_colors[C_DIM] : CRT_colors[C_NORMAL];
    CRT_put(y, 0, line, ls->w, attr, true);
}

static void tree_draw(Screen *s, App *app, int y, int h, int w)
{
    TaskTree_update(&app->tree, &app->model);
    ListScreen ls = {app, w, columns, 3, draw_row};
    ListScreen_draw(&ls, s, y, h, NULL, app->tree.n, "no tasks");
}

static Reaction tree_enter(Screen *s, App *app)
{
    if (s->panel.selected < app->tree.n)
        App_openTask(app, app->tree.rows[s->panel.selected].task->id);
    return R_HANDLED | R_REDRAW;
}

const ScreenClass TreeScreen_class = {SCR_TREE, "Tree", tree_draw, tree_enter};

/* TasksScreen.c: the task table (and the same table for one stack group). */
#include "CRT.h"
#include "Duration.h"
#include "Screens.h"
#include "TaskColumn.h"

#include <stdio.h>
#include <string.h>

/* Columns dropped first when the terminal is narrow (never the sorted one). The first
 * CHEAP_DROPS give way so that CREATED AT keeps TASKCOLUMN_CREATED_MIN columns (enough for a
 * file:line); the others only so that it keeps TASKCOLUMN_CREATED_FLOOR. */
static const TaskColumn drop_order[] = {TC_STEPS, TC_BUSY, TC_AGE, TC_WAITS_ON, TC_STATE};
#define CHEAP_DROPS 2

typedef struct RowCtx {
    App *app;
    TaskView *v;
    int w, n;
    TaskColumn ids[TC_COUNT];
    TableColumn cols[TC_COUNT];
} RowCtx;

static void layout(RowCtx *c, TaskView *v, int w)
{
    bool shown[TC_COUNT];
    for (int i = 0; i < TC_COUNT; i++)
        shown[i] = true;
    for (size_t d = 0;; d++) {
        int need = 0;
        for (int i = 0; i < TC_COUNT; i++)
            if (shown[i] && TaskColumn_info[i].width)
                need += TaskColumn_info[i].width + 1;
        int created = d < CHEAP_DROPS ? TASKCOLUMN_CREATED_MIN : TASKCOLUMN_CREATED_FLOOR;
        if (need <= w - created || d >= sizeof drop_order / sizeof drop_order[0])
            break;
        if (drop_order[d] != v->sort)
            shown[drop_order[d]] = false;
    }
    c->n = 0;
    for (int i = 0; i < TC_COUNT; i++) {
        if (!shown[i])
            continue;
        c->ids[c->n] = (TaskColumn)i;
        c->cols[c->n] = (TableColumn){TaskColumn_info[i].title, TaskColumn_info[i].width,
                                      TaskColumn_info[i].right};
        c->n++;
    }
}

static void draw_row(void *arg, uint32_t i, int y, bool sel)
{
    RowCtx *c = arg;
    Task *t = c->v->rows[i];
    char buf[TC_COUNT][MODEL_MAX_STR + 8];
    const char *cells[TC_COUNT];
    int x = 0;
    for (int k = 0; k < c->n; k++) {
        if (c->ids[k] == TC_CREATED_AT && !c->cols[k].width) /* the rest of the line */
            TaskColumn_fitCreatedAt(t->created_at, (size_t)(c->w > x ? c->w - x : 0), buf[k],
                                    sizeof buf[k]);
        else
            TaskColumn_format(c->ids[k], t, &c->app->model, buf[k], sizeof buf[k]);
        cells[k] = buf[k];
        x += c->cols[k].width + 1;
    }
    int attr = sel ? CRT_colors[C_SELECTED] : t->gone_ms ? CRT_colors[C_DIM] : CRT_colors[C_NORMAL];
    if (!sel && t->state == TS_FAILED)
        attr = CRT_colors[C_ERROR];
    Table_row(y, c->w, c->n, cells, c->cols, attr);
}

/* Rebuilds v if needed and keeps the cursor on the same task across re-sorts and updates. */
static void sync_view(Screen *s, App *app, TaskView *v)
{
    bool rebuilt = TaskView_update(v, &app->model);
    Panel *p = &s->panel;
    if (rebuilt && s->sel_id && (p->selected >= v->n || v->rows[p->selected]->id != s->sel_id)) {
        int64_t at = TaskView_find(v, s->sel_id);
        if (at >= 0)
            p->selected = (uint32_t)at;
    }
    Panel_setCount(p, v->n);
}

TaskView *TasksScreen_view(App *app)
{
    ScreenId id = ScreenManager_currentId(&app->sm);
    if (id != SCR_TASKS && id != SCR_GROUP_TASKS)
        return NULL;
    TaskView *v = id == SCR_TASKS ? &app->tasks : &app->group_tasks;
    sync_view(ScreenManager_current(&app->sm), app, v);
    return v;
}

TaskView *TasksScreen_keyView(App *app)
{
    return ScreenManager_currentId(&app->sm) == SCR_GROUP_TASKS ? &app->group_tasks : &app->tasks;
}

static void draw_view(Screen *s, App *app, TaskView *v, int y, int h, int w, const char *title)
{
    sync_view(s, app, v);
    Panel *p = &s->panel;
    RowCtx c;
    memset(&c, 0, sizeof c);
    c.app = app;
    c.v = v;
    c.w = w;
    layout(&c, v, w);
    char info[200];
    bool req = Model_showsRequests(&app->model);
    snprintf(info, sizeof info, "%s%u %s%s%s%s%s%s", title, v->n, req ? "request" : "task",
             v->n == 1 ? "" : "s", req ? " in flight" : "", v->filter[0] ? "  filter: " : "",
             v->filter,
             app->model.nlinger ? "  (finished tasks shown dimmed for a few seconds)" : "");
    CRT_put(y, 0, info, w, CRT_colors[C_DIM], true);
    int hl = -1;
    for (int k = 0; k < c.n; k++)
        if (c.ids[k] == v->sort)
            hl = k;
    Table_head(y + 1, w, c.n, c.cols, hl, v->descending);
    if (v->n == 0) {
        CRT_put(y + 2, 1,
                v->filter[0]
                    ? "no row matches the filter (Esc clears it)"
                    : (app->model.conn == CONN_CONNECTING ? "waiting for the first update..."
                       : req                              ? "no requests in flight"
                                                          : "no tasks"),
                w - 1, CRT_colors[C_DIM], false);
        s->sel_id = 0;
        return;
    }
    Panel_draw(p, y + 2, h - 2, draw_row, &c);
    s->sel_id = v->rows[p->selected]->id;
}

/* after_key: the key may have moved the cursor; remember the task under it so the next
 * rebuild (new data, new sort) keeps the cursor on that task. */
static void sync_selection(Screen *s, App *app)
{
    TaskView *v = s->cls->id == SCR_TASKS ? &app->tasks : &app->group_tasks;
    /* rows may point at purged tasks once the model moved on: only read them
     * while they are the build of the current model */
    if (v->rows && v->built_gen == app->model.gen && s->panel.selected < v->n)
        s->sel_id = v->rows[s->panel.selected]->id;
    else
        s->sel_id = 0;
}

static void tasks_draw(Screen *s, App *app, int y, int h, int w)
{
    draw_view(s, app, &app->tasks, y, h, w, "");
}

static Reaction open_selected(Screen *s, App *app, TaskView *v)
{
    if (s->panel.selected >= v->n)
        return R_HANDLED;
    App_openTask(app, v->rows[s->panel.selected]->id);
    return R_HANDLED | R_REDRAW;
}

static Reaction tasks_enter(Screen *s, App *app)
{
    return open_selected(s, app, &app->tasks);
}

const ScreenClass TasksScreen_class = {SCR_TASKS, "Tasks", tasks_draw, tasks_enter, sync_selection};

static void group_draw(Screen *s, App *app, int y, int h, int w)
{
    draw_view(s, app, &app->group_tasks, y, h, w, "tasks of one stack group: ");
}

static Reaction group_enter(Screen *s, App *app)
{
    return open_selected(s, app, &app->group_tasks);
}

const ScreenClass GroupTasksScreen_class = {SCR_GROUP_TASKS, "Group tasks", group_draw, group_enter,
                                            sync_selection};

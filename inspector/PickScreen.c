/* PickScreen.c: the attachable processes found in the socket directory. */
#include "CRT.h"
#include "Duration.h"
#include "Screens.h"

#include <stdio.h>
#include <string.h>

typedef struct Ctx {
    App *app;
    int w;
} Ctx;

static void draw_row(void *arg, uint32_t i, int y, bool sel)
{
    Ctx *c = arg;
    const PickEntry *e = &c->app->pick[i];
    char pid[24], up[32], tasks[24];
    snprintf(pid, sizeof pid, "%llu", (unsigned long long)e->target.pid);
    if (e->answered) {
        Duration_format(e->uptime_ns, up, sizeof up);
        snprintf(tasks, sizeof tasks, "%llu", (unsigned long long)e->tasks);
    } else {
        snprintf(up, sizeof up, "-");
        snprintf(tasks, sizeof tasks, "-");
    }
    const char *status = e->answered ? "answers" : e->probing ? "asking..." : e->note;
    const char *cells[] = {pid, e->program[0] ? e->program : e->target.comm, up, tasks, status};
    int widths[] = {8, 20, 9, 8, 0};
    bool right[] = {true, false, true, true, false};
    int attr = sel           ? CRT_colors[C_SELECTED]
               : e->answered ? CRT_colors[C_NORMAL]
                             : CRT_colors[C_DIM];
    Table_row(y, c->w, 5, cells, widths, right, attr);
}

static void pick_draw(Screen *s, App *app, int y, int h, int w)
{
    char dir[200], info[300];
    Discovery_dir(dir, sizeof dir);
    snprintf(info, sizeof info,
             "Processes running the asynctop runtime (sockets in %s); Enter attaches, q quits",
             dir);
    CRT_put(y, 0, info, w, CRT_colors[C_DIM], true);
    const char *titles[] = {"PID", "PROGRAM", "UPTIME", "TASKS", "STATUS"};
    int widths[] = {8, 20, 9, 8, 0};
    bool right[] = {true, false, true, true, false};
    Table_head(y + 1, w, 5, titles, widths, right, -1, false);
    Panel_setCount(&s->panel, (uint32_t)app->npick);
    if (!app->npick) {
        CRT_put(y + 2, 1,
                "no process found: start one linked with libasynctop (or asynctop --demo)", w - 1,
                CRT_colors[C_DIM], false);
        return;
    }
    Ctx c = {app, w};
    Panel_draw(&s->panel, y + 2, h - 2, draw_row, &c);
}

static Reaction pick_enter(Screen *s, App *app)
{
    if (s->panel.selected >= app->npick)
        return R_HANDLED;
    PickEntry *e = &app->pick[s->panel.selected];
    if (!e->answered) {
        App_status(app, "pid %llu: %s", (unsigned long long)e->target.pid,
                   e->note[0] ? e->note : "does not answer");
        return R_HANDLED | R_REDRAW;
    }
    app->loop_id = 0; /* another process: its main loop first */
    App_attach(app, e->target.pid, e->target.path);
    return R_HANDLED | R_REDRAW;
}

const ScreenClass PickScreen_class = {SCR_PICK, "Pick a process", pick_draw, pick_enter};

/* PickScreen.c: the attachable processes found in the socket directory. */
#include "CRT.h"
#include "Duration.h"
#include "Screens.h"

#include <stdio.h>
#include <string.h>

static const TableColumn columns[] = {{"PID", 8, true},
                                      {"PROGRAM", 20, false},
                                      {"UPTIME", 9, true},
                                      {"TASKS", 8, true},
                                      {"STATUS", 0, false}};

static void draw_row(const ListScreen *ls, uint32_t i, int y, bool sel)
{
    const PickEntry *e = &ls->app->picker.entries[i];
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
    int attr = sel           ? CRT_colors[C_SELECTED]
               : e->answered ? CRT_colors[C_NORMAL]
                             : CRT_colors[C_DIM];
    ListScreen_row(ls, y, cells, attr);
}

static void pick_draw(Screen *s, App *app, int y, int h, int w)
{
    char dir[200], info[300];
    Discovery_dir(dir, sizeof dir);
    snprintf(info, sizeof info,
             "Processes running the asynctop runtime (sockets in %s); Enter attaches, q quits",
             dir);
    ListScreen ls = {app, w, columns, 5, draw_row};
    ListScreen_draw(&ls, s, y, h, info, (uint32_t)app->picker.n,
                    "no process found: start one linked with libasynctop (or asynctop --demo)");
}

static Reaction pick_enter(Screen *s, App *app)
{
    if (s->panel.selected >= app->picker.n)
        return R_HANDLED;
    PickEntry *e = &app->picker.entries[s->panel.selected];
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

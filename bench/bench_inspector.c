/* bench_inspector.c: the inspector with 100,000 tasks: applying a snapshot,
 * a full redraw of the task table (into a curses screen on /dev/null), a key
 * press (cursor move + redraw), a re-sort, and resident memory. */
#include "bench.h"

#include <curses.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "Action.h"
#include "App.h"
#include "CRT.h"
#include "ScreenManager.h"

#define NTASKS 100000

static App *app;
static SCREEN *scr;
static FILE *devnull;
static at_wire_task_t *rows;

static void apply_snapshot(void)
{
    static const at_wire_site_t sites[] = {{1, {0x10, "handle_conn", "server.c", 120}},
                                           {2, {0x20, "at_stream_read", "io.c", 31}}};
    static const uint32_t st[] = {2, 1};
    static const at_wire_stack_t stacks[] = {{1, 2, st}};
    if (!rows) {
        rows = calloc(NTASKS, sizeof *rows);
        for (uint32_t i = 0; i < NTASKS; i++)
            rows[i] = (at_wire_task_t){.id = i + 1,
                                       .state = AT_WIRE_TASK_WAITING,
                                       .wait_kind = AT_WIRE_WAIT_READ,
                                       .wait_obj = i,
                                       .wait_since_us = i,
                                       .busy_ns = (i * 7919u) % 100000,
                                       .steps = i % 50,
                                       .parent = i ? 1 : 0,
                                       .created_us = i,
                                       .create_site = 1,
                                       .entry_site = 1,
                                       .stack = 1};
    }
    at_wire_msg_t msg;
    memset(&msg, 0, sizeof msg);
    msg.type = AT_WIRE_UPDATE;
    msg.u.update.full = true;
    msg.u.update.ts_ns = 1000000000000ull;
    msg.u.update.n_sites = 2;
    msg.u.update.sites = sites;
    msg.u.update.n_stacks = 1;
    msg.u.update.stacks = stacks;
    msg.u.update.n_tasks_new = NTASKS;
    msg.u.update.tasks_new = rows;
    Applier_apply(&app->applier, &msg, 1);
}

static void setup(void)
{
    if (app)
        return;
    app = calloc(1, sizeof *app);
    static uv_loop_t loop;
    uv_loop_init(&loop);
    app->loop = &loop;
    Model_init(&app->model);
    Applier_init(&app->applier, &app->model);
    TaskView_init(&app->tasks);
    TaskView_init(&app->group_tasks);
    TaskTree_init(&app->tree);
    TaskGroups_init(&app->groups);
    ScreenManager_init(&app->sm);
    app->model.conn = CONN_LIVE;
    devnull = fopen("/dev/null", "w+");
    scr = newterm("xterm-256color", devnull, devnull);
    set_term(scr);
    CRTOptions o = {false, false};
    (void)o;
    memset(CRT_colors, 0, sizeof CRT_colors);
    resizeterm(50, 200);
    apply_snapshot();
    ScreenManager_render(app, 50, 200); /* first build of the view */
}

BENCH(inspector_apply_100k_ms, "ms", "apply a 100k-task snapshot to the model")
{
    setup();
    uint64_t t0 = bench_now_ns();
    apply_snapshot();
    return (double)(bench_now_ns() - t0) / 1e6;
}

BENCH(inspector_redraw_100k_ms, "ms", "full redraw of the task table, 100k tasks (200x50)")
{
    setup();
    ScreenManager_render(app, 50, 200); /* view already built: what every frame costs */
    uint64_t t0 = bench_now_ns();
    for (int i = 0; i < 20; i++) {
        ScreenManager_render(app, 50, 200);
        wnoutrefresh(stdscr);
        doupdate();
    }
    return (double)(bench_now_ns() - t0) / 20 / 1e6;
}

BENCH(inspector_keypress_100k_ms, "ms", "key press (j) handled and redrawn, 100k tasks")
{
    setup();
    uint64_t t0 = bench_now_ns();
    for (int i = 0; i < 20; i++) {
        Action_dispatch(app, 'j');
        ScreenManager_render(app, 50, 200);
        wnoutrefresh(stdscr);
        doupdate();
    }
    return (double)(bench_now_ns() - t0) / 20 / 1e6;
}

BENCH(inspector_resort_100k_ms, "ms", "re-sort by another column and redraw, 100k tasks")
{
    setup();
    uint64_t t0 = bench_now_ns();
    Action_dispatch(app, '>');
    ScreenManager_render(app, 50, 200);
    wnoutrefresh(stdscr);
    doupdate();
    return (double)(bench_now_ns() - t0) / 1e6;
}

BENCH(inspector_update_redraw_100k_ms, "ms", "a new snapshot arrives: apply, rebuild view, redraw")
{
    setup();
    uint64_t t0 = bench_now_ns();
    apply_snapshot();
    ScreenManager_render(app, 50, 200);
    wnoutrefresh(stdscr);
    doupdate();
    return (double)(bench_now_ns() - t0) / 1e6;
}

BENCH(inspector_rss_100k_mb, "MB", "resident memory of the process with 100k tasks mirrored")
{
    setup();
    return (double)bench_rss_bytes() / (1024.0 * 1024.0);
}

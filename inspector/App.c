/* App.c: the interactive inspector's event loop: the connection and its requests, stdin,
 * signals, the redraw timer, reattaching, and scanning for processes to pick. */
#include "App.h"

#include "Sanitise.h"

#include "Action.h"
#include "CRT.h"
#include "Duration.h"
#include "ScreenManager.h"

#include <curses.h>
#include <errno.h>
#include <stdarg.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define TICK_MS           200
#define DETAIL_REFRESH_MS 2000
#define SCAN_MS           1000

uint64_t App_now(App *app)
{
    return uv_now(app->loop);
}

void App_status(App *app, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(app->status, sizeof app->status, fmt, ap);
    va_end(ap);
    app->status_ms = App_now(app);
    app->dirty = true;
}

bool App_live(const App *app)
{
    return app->client.state == CL_LIVE;
}

void App_printLoops(FILE *f, const Model *m, uint32_t wanted)
{
    fprintf(f, "asynctop: process %llu has no loop %u; its loops:\n", (unsigned long long)m->pid,
            wanted);
    if (!m->nloops)
        fprintf(f, "  0  the main loop (the process lists no others)\n");
    for (uint32_t i = 0; i < m->nloops; i++) {
        char what[160];
        LoopInfo_describe(&m->loops[i], what, sizeof what);
        Sanitise_printf(f, "  %u  %s%s\n", m->loops[i].id, what,
                        m->loops[i].gone ? " (closed)" : "");
    }
}

int App_exitCode(ClientEnd end)
{
    switch (end) {
    case END_NONE:
    case END_EOF:
        return EXIT_OK;
    case END_NOSOCKET:
    case END_REFUSED:
        return EXIT_NORUNTIME;
    case END_PERMISSION:
        return EXIT_PERM;
    case END_VERSION:
    case END_PROTOCOL:
        return EXIT_PROTO;
    case END_TIMEOUT:
        return EXIT_NOANSWER;
    case END_ERROR:
        return EXIT_FAIL;
    }
    return EXIT_FAIL;
}

int App_resolve(uint64_t pid, const char *path, char *out, size_t len)
{
    if (path) {
        snprintf(out, len, "%s", path);
        return EXIT_OK;
    }
    if (!Discovery_alive(pid)) {
        fprintf(stderr, "asynctop: no such process: %" PRIu64 "\n", pid);
        return EXIT_NOPROC;
    }
    Discovery_path(pid, out, len);
    struct stat st;
    if (lstat(out, &st) != 0) {
        char comm[64];
        Discovery_comm(pid, comm, sizeof comm);
        if (errno == EACCES)
            fprintf(stderr,
                    "asynctop: permission refused: cannot look at %s (only the user "
                    "running the process, or root, may attach)\n",
                    out);
        else
            fprintf(stderr,
                    "asynctop: process %" PRIu64 " (%s) is not running the asynctop runtime: "
                    "no socket at %s\n"
                    "  (it must be linked with libasynctop and not started with "
                    "ASYNCTOP_SOCKET=off; if it uses another socket, pass -s PATH)\n",
                    pid, comm[0] ? comm : "?", out);
        return errno == EACCES ? EXIT_PERM : EXIT_NORUNTIME;
    }
    return EXIT_OK;
}

/* ---- connection ------------------------------------------------------------------- */

static void on_msg(Client *c, const at_wire_msg_t *msg)
{
    App *app = c->data;
    Model *m = &app->model;
    uint64_t now = App_now(app);
    Applier_apply(&app->applier, msg, now);
    if (msg->type == AT_WIRE_HELLO) {
        m->conn = CONN_LIVE;
        app->pending_slow_ns = 0;
        if (app->reattaching) /* replaces "reattaching..." */
            App_status(app, "reattached to %s, pid %llu", m->program, (unsigned long long)m->pid);
        app->reattaching = false;
        app->exited = false;
        app->reattach_pid = 0;
    } else if (msg->type == AT_WIRE_RESPONSE) {
        const at_wire_response_t *r = &msg->u.response;
        char d[32];
        if (r->id == app->req_config) {
            app->pending_slow_ns = 0;
            if (r->status == 0 && r->has_config)
                App_status(app, "the process now uses: slow threshold %s, debug %s",
                           Duration_format(m->slow_threshold_ns, d, sizeof d),
                           m->debug ? "on" : "off");
            else
                App_status(app, "the process refused the change: %s",
                           r->reason ? r->reason : "no reason");
        } else if (r->id == app->req_cancel) {
            if (r->status == 0)
                App_status(app, "task %llu cancelled", (unsigned long long)app->req_cancel_task);
            else
                App_status(app, "cancel refused: %s", r->reason ? r->reason : "no reason");
        } else if (r->id == app->req_pause && r->status != 0) {
            App_status(app, "pause/resume refused: %s", r->reason ? r->reason : "no reason");
        }
    } else if (msg->type == AT_WIRE_UPDATE && m->loop_gone && !app->loop_gone_seen) {
        /* the loop watched has closed: say so, and watch another one of the process */
        app->loop_gone_seen = true;
        const LoopInfo *l = Model_loop(m, m->loop_id);
        char what[160];
        if (l)
            LoopInfo_describe(l, what, sizeof what);
        else
            snprintf(what, sizeof what, "loop");
        uint32_t next;
        if (Model_fallbackLoop(m, &next)) {
            App_switchLoop(app, next);
            const LoopInfo *n = Model_loop(m, next);
            char nw[160];
            LoopInfo_describe(n, nw, sizeof nw);
            App_status(app, "loop %u (%s) closed; now showing loop %u (%s)", m->loop_id, what, next,
                       nw);
        } else if (m->loops_seen >= 2 || m->loop_id != 0) {
            /* (a process's only loop closing is its exit: "EXITED" says it better) */
            App_status(app, "loop %u (%s) closed; the process has no other loop", m->loop_id, what);
        }
    }
    app->dirty = true;
}

static void on_end(Client *c)
{
    App *app = c->data;
    Model *m = &app->model;
    if (app->switching) { /* our own close, to watch another loop */
        m->conn = CONN_CONNECTING;
        app->dirty = true;
        return;
    }
    snprintf(app->end_message, sizeof app->end_message, "%s", c->error);
    if (m->conn == CONN_LIVE || m->conn == CONN_PAUSED) {
        bool gone = !Discovery_alive(app->pid);
        m->conn = gone || c->end == END_EOF ? CONN_EXITED : CONN_LOST;
        if (m->blocked)
            Model_setBlocked(m, false, 0, NULL, NULL, NULL, App_now(app));
        app->exited = true;
        App_status(
            app, "%s %s; showing its last state (q quits)",
            m->conn == CONN_EXITED ? "the process has exited:" : "connection lost:", c->error);
    } else {
        m->conn = CONN_LOST;
    }
    app->paused = false;
    app->dirty = true;
}

static void on_closed(Client *c)
{
    App *app = c->data;
    app->client_open = false;
    if (app->switching)
        app->switch_ready = true; /* reconnect from the check handle, outside this callback */
    app->dirty = true;
}

/* Opens the connection to pid/path on loop app->loop_id; keep_loops: the same process, another
 * loop (the loop table and config stay). */
static void attach(App *app, uint64_t pid, const char *path, bool keep_loops)
{
    if (app->client_open && app->client.state != CL_CLOSED) {
        if (app->client.state == CL_CLOSING) {
            App_status(app, "still closing the previous connection; try again");
            return;
        }
        Client_close(&app->client);
        App_status(app, "still closing the previous connection; try again");
        return;
    }
    if (keep_loops)
        Model_resetLoop(&app->model);
    else
        Model_reset(&app->model);
    Applier_done(&app->applier);
    Applier_init(&app->applier, &app->model);
    app->tasks.dirty = app->group_tasks.dirty = true;
    app->tree.built = app->groups.built = false;
    app->pid = pid;
    if (path != app->path)
        snprintf(app->path, sizeof app->path, "%s", path);
    app->model.pid = pid;
    app->model.loop_id = app->loop_id;
    app->model.conn = CONN_CONNECTING;
    app->exited = false;
    app->reattach_pid = 0;
    app->paused = false;
    app->loop_gone_seen = false;
    app->switching = app->switch_ready = false;
    /* request ids are per connection: answers to the old one's must not match the new one's */
    app->req_config = app->req_cancel = app->req_detail = app->req_pause = 0;
    app->pending_slow_ns = 0;
    memset(&app->client, 0, sizeof app->client);
    app->client.loop_id = app->loop_id;
    app->client.data = app;
    app->client.on_msg = on_msg;
    app->client.on_end = on_end;
    app->client.on_closed = on_closed;
    if (Client_connect(&app->client, app->loop, path, app->interval_ms, true) != 0) {
        App_status(app, "%s", app->client.error);
        app->model.conn = CONN_LOST;
        return;
    }
    app->client_open = true;
    app->picker.active = false;
    if (ScreenManager_currentId(&app->sm) == SCR_PICK)
        ScreenManager_popAll(&app->sm);
    app->dirty = true;
}

void App_attach(App *app, uint64_t pid, const char *path)
{
    attach(app, pid, path, false);
}

void App_switchLoop(App *app, uint32_t id)
{
    Model *m = &app->model;
    const LoopInfo *l = Model_loop(m, id);
    if (app->switching) {
        app->switch_to = id; /* the latest choice wins */
        return;
    }
    if (app->client.state != CL_LIVE || app->exited) {
        App_status(app, "not connected: cannot switch loops");
        return;
    }
    if (!l || l->gone) {
        App_status(app, "loop %u %s", id, l ? "has closed" : "is not one of this process's loops");
        return;
    }
    if (id == m->loop_id && !m->loop_gone) {
        App_status(app, "already showing loop %u", id);
        return;
    }
    app->switching = true;
    app->switch_to = id;
    Client_close(&app->client);
}

/* The old connection is closed: open the one on the chosen loop. */
static void finish_switch(App *app)
{
    app->switch_ready = false;
    app->loop_id = app->switch_to;
    /* screens about one row of the old loop (a task, an event) and a pending "cancel task?"
     * make no sense on the new one */
    ScreenId cur = ScreenManager_currentId(&app->sm);
    if (cur >= SCR_NTABS && cur != SCR_HELP && cur != SCR_LOOPS)
        ScreenManager_popAll(&app->sm);
    if (app->prompt.mode == PROMPT_CONFIRM_CANCEL)
        app->prompt.mode = PROMPT_NONE;
    attach(app, app->pid, app->path, true);
    const LoopInfo *l = Model_loop(&app->model, app->loop_id);
    char what[160] = "";
    if (l)
        LoopInfo_describe(l, what, sizeof what);
    if (!app->status[0] || App_now(app) - app->status_ms > 200) /* keep a "closed" notice */
        App_status(app, "showing loop %u (%s)", app->loop_id, what);
}

uint64_t App_request(App *app, const at_wire_request_t *req)
{
    at_wire_request_t r = *req; /* Client_request assigns its id */
    uint64_t id = Client_request(&app->client, &r);
    char d[32];
    switch (req->op) {
    case AT_WIRE_OP_SET_CONFIG:
        app->req_config = id;
        app->pending_slow_ns = id && req->config.has_slow_ns ? req->config.slow_ns : 0;
        if (!id)
            App_status(app, "not connected");
        else if (req->config.has_slow_ns)
            App_status(app, "asking the process for a slow threshold of %s...",
                       Duration_format(req->config.slow_ns, d, sizeof d));
        else
            App_status(app, "asking the process to turn debug mode %s...",
                       req->config.debug ? "on" : "off");
        break;
    case AT_WIRE_OP_CANCEL:
        app->req_cancel = id;
        app->req_cancel_task = req->task;
        App_status(app, id ? "cancelling task %llu..." : "not connected (task %llu)",
                   (unsigned long long)req->task);
        break;
    case AT_WIRE_OP_PAUSE:
    case AT_WIRE_OP_RESUME:
        app->req_pause = id;
        app->paused = req->op == AT_WIRE_OP_PAUSE;
        app->model.conn = app->paused ? CONN_PAUSED : CONN_LIVE;
        App_status(app, app->paused ? "paused: the screen keeps the last state (space resumes)"
                                    : "resumed");
        break;
    case AT_WIRE_OP_TASK_DETAIL:
        app->req_detail = id;
        app->last_detail_ms = App_now(app);
        break;
    default:
        break;
    }
    return id;
}

void App_setConfig(App *app, const at_wire_config_t *cfg)
{
    at_wire_request_t req;
    memset(&req, 0, sizeof req);
    req.op = AT_WIRE_OP_SET_CONFIG;
    req.config = *cfg;
    App_request(app, &req);
}

static void request_detail(App *app)
{
    at_wire_request_t req;
    memset(&req, 0, sizeof req);
    req.op = AT_WIRE_OP_TASK_DETAIL;
    req.task = app->model.detail_id;
    App_request(app, &req);
}

void App_openTask(App *app, uint64_t id)
{
    Model_clearDetail(&app->model, id);
    ScreenManager_push(&app->sm, SCR_DETAIL);
    app->dirty = true;
    if (App_live(app))
        request_detail(app);
    else {
        app->model.detail_ready = true;
        Model_setString(&app->model.detail_status, "not connected", SIZE_MAX);
    }
}

/* ---- reattach ------------------------------------------------------------------------ */

static void scan_reattach(App *app)
{
    Target *t = calloc(DISCOVERY_MAX, sizeof *t);
    if (!t)
        return;
    size_t n = Discovery_list(t, DISCOVERY_MAX);
    for (size_t i = 0; i < n; i++) {
        if (!t[i].alive || t[i].pid == app->pid)
            continue;
        /* comm is the program name cut at 15 bytes */
        if (t[i].comm[0] && !strncmp(t[i].comm, app->model.program, 15)) {
            if (app->reattach_pid != t[i].pid)
                App_status(app, "%s is running again as pid %llu: press r to reattach",
                           app->model.program, (unsigned long long)t[i].pid);
            app->reattach_pid = t[i].pid;
            break;
        }
    }
    free(t);
}

/* ---- loop handles --------------------------------------------------------------------- */

static void on_tick(uv_timer_t *t)
{
    App *app = t->data;
    uint64_t now = App_now(app);
    if (Model_purge(&app->model, now))
        app->dirty = true;
    if (app->model.blocked || (app->status[0] && now - app->status_ms < APP_STATUS_MS + TICK_MS))
        app->dirty = true;
    if (now / 1000 != (now - TICK_MS) / 1000)
        app->dirty = true; /* uptime */
    if (app->picker.active && now - app->last_scan_ms >= 2000) {
        app->last_scan_ms = now;
        Picker_scan(&app->picker);
    }
    if (app->exited && now - app->last_scan_ms >= SCAN_MS) {
        app->last_scan_ms = now;
        scan_reattach(app);
    }
    if (ScreenManager_currentId(&app->sm) == SCR_DETAIL && App_live(app) && !app->paused &&
        now - app->last_detail_ms >= DETAIL_REFRESH_MS)
        request_detail(app);
}

static void on_check(uv_check_t *h)
{
    App *app = h->data;
    if (app->quit) {
        uv_stop(app->loop);
        return;
    }
    if (app->switch_ready)
        finish_switch(app);
    if (app->dirty && CRT_active) {
        app->dirty = false;
        ScreenManager_draw(app);
    }
}

static void on_input(uv_poll_t *p, int status, int events)
{
    App *app = p->data;
    int ch;
    if (status < 0) {
        app->quit = true;
        return;
    }
    while ((ch = getch()) != ERR) {
        if (ch == KEY_RESIZE) {
            app->dirty = true;
            continue;
        }
        Reaction r = Action_dispatch(app, ch);
        if (r & R_QUIT)
            app->quit = true;
        if (r & R_REDRAW)
            app->dirty = true;
    }
    if (app->quit)
        uv_stop(app->loop);
}

static void on_signal(uv_signal_t *s, int signum)
{
    App *app = s->data;
    if (signum == SIGWINCH) {
        CRT_resize();
        app->dirty = true;
        return;
    }
    app->quit = true;
    app->exit_code = 128 + signum;
    uv_stop(app->loop);
}

static void close_cb(uv_handle_t *h)
{
    (void)h;
}

static void start_signals(App *app)
{
    uv_signal_t *sigs[] = {&app->sig_winch, &app->sig_int, &app->sig_term, &app->sig_hup};
    int nums[] = {SIGWINCH, SIGINT, SIGTERM, SIGHUP};
    for (int i = 0; i < 4; i++) {
        uv_signal_init(app->loop, sigs[i]);
        sigs[i]->data = app;
        uv_signal_start(sigs[i], on_signal, nums[i]);
        uv_unref((uv_handle_t *)sigs[i]);
    }
}

static void close_all(App *app)
{
    uv_handle_t *hs[] = {(uv_handle_t *)&app->sig_winch, (uv_handle_t *)&app->sig_int,
                         (uv_handle_t *)&app->sig_term,  (uv_handle_t *)&app->sig_hup,
                         (uv_handle_t *)&app->tick,      (uv_handle_t *)&app->check,
                         (uv_handle_t *)&app->stdin_poll};
    for (size_t i = 0; i < sizeof hs / sizeof hs[0]; i++)
        if (hs[i]->loop && !uv_is_closing(hs[i]))
            uv_close(hs[i], close_cb);
    if (app->client_open)
        Client_close(&app->client);
    Picker_close(&app->picker);
    uv_run(app->loop, UV_RUN_DEFAULT);
}

static void app_free(App *app)
{
    TaskView_done(&app->tasks);
    TaskView_done(&app->group_tasks);
    TaskTree_done(&app->tree);
    TaskGroups_done(&app->groups);
    Applier_done(&app->applier);
    Model_done(&app->model);
    Picker_done(&app->picker);
}

int App_run(const AppOptions *opt)
{
    App *app = calloc(1, sizeof *app);
    uv_loop_t loop;
    int rc = EXIT_OK;
    if (!app)
        return EXIT_FAIL;
    uv_loop_init(&loop);
    app->loop = &loop;
    app->interval_ms = opt->interval_ms ? opt->interval_ms : 1000;
    Model_init(&app->model);
    Applier_init(&app->applier, &app->model);
    TaskView_init(&app->tasks);
    TaskView_init(&app->group_tasks);
    TaskView_setSort(&app->tasks, TC_ID, false);
    TaskTree_init(&app->tree);
    TaskGroups_init(&app->groups);
    ScreenManager_init(&app->sm);
    Picker_init(&app->picker, &loop, &app->dirty);
    /* SIGWINCH first: ncurses must find a handler and leave resizing to us */
    start_signals(app);

    if (opt->pid || opt->path) {
        char path[256];
        rc = App_resolve(opt->pid, opt->path, path, sizeof path);
        if (rc != EXIT_OK)
            goto out;
        app->loop_id = opt->loop;
        App_attach(app, opt->pid, path);
        /* wait for hello or failure before taking the terminal, so errors
         * are plain lines on stderr */
        while (app->client.state == CL_CONNECTING || app->client.state == CL_HELLO)
            uv_run(&loop, UV_RUN_ONCE);
        if (app->client.state != CL_LIVE) {
            Sanitise_printf(stderr, "asynctop: %s\n",
                            app->client.error[0] ? app->client.error : "cannot attach");
            rc = App_exitCode(app->client.end);
            if (rc == EXIT_OK)
                rc = EXIT_FAIL;
            goto out;
        }
        if (opt->loop != 0 && !Model_loop(&app->model, opt->loop)) {
            App_printLoops(stderr, &app->model, opt->loop);
            rc = EXIT_USAGE;
            goto out;
        }
    } else {
        app->picker.active = true;
        ScreenManager_push(&app->sm, SCR_PICK);
        Picker_scan(&app->picker);
        app->last_scan_ms = App_now(app);
    }

    CRTOptions copt = {opt->ascii, opt->no_color};
    if (CRT_init(&copt) != 0) {
        rc = EXIT_FAIL;
        goto out;
    }
    uv_timer_init(&loop, &app->tick);
    app->tick.data = app;
    uv_timer_start(&app->tick, on_tick, TICK_MS, TICK_MS);
    uv_check_init(&loop, &app->check);
    app->check.data = app;
    uv_check_start(&app->check, on_check);
    uv_poll_init(&loop, &app->stdin_poll, 0);
    app->stdin_poll.data = app;
    uv_poll_start(&app->stdin_poll, UV_READABLE, on_input);
    app->dirty = true;
    ScreenManager_draw(app);
    uv_run(&loop, UV_RUN_DEFAULT);
    if (app->exit_code)
        rc = app->exit_code;
    CRT_done();
    if (app->exited && app->end_message[0])
        Sanitise_printf(stderr, "asynctop: %s\n", app->end_message);
out:
    close_all(app);
    app_free(app);
    if (uv_loop_close(&loop) != 0) {
        uv_run(&loop, UV_RUN_DEFAULT);
        uv_loop_close(&loop);
    }
    free(app);
    return rc;
}

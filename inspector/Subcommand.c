/* Subcommand.c: ls, ps, pstree, dump --json and set, without a terminal. */
#include "Subcommand.h"

#include "App.h"
#include "Duration.h"
#include "Report.h"
#include "Sanitise.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FETCH_TIMEOUT_MS 5000

typedef struct Fetch {
    uv_loop_t loop;
    uv_timer_t timer;
    Client client;
    Model model;
    Applier applier;
    bool got_update, timed_out, done;
    uint64_t req_id;
    bool got_response;
    uint32_t status;
    char reason[256];
} Fetch;

static void fetch_msg(Client *c, const at_wire_msg_t *msg)
{
    Fetch *f = c->data;
    Applier_apply(&f->applier, msg, uv_now(&f->loop));
    if (msg->type == AT_WIRE_UPDATE)
        f->got_update = true;
    if (msg->type == AT_WIRE_RESPONSE && msg->u.response.id == f->req_id && f->req_id) {
        f->got_response = true;
        f->status = msg->u.response.status;
        snprintf(f->reason, sizeof f->reason, "%s",
                 msg->u.response.reason ? msg->u.response.reason : "no reason given");
    }
}

static void fetch_timeout(uv_timer_t *t)
{
    Fetch *f = t->data;
    f->timed_out = true;
}

static void noop_close(uv_handle_t *h)
{
    (void)h;
}

/* Connects to pid/path and runs until `until` holds, the connection ends or
 * the timeout. Returns EXIT_OK or an EXIT_* with a message on stderr. */
static int fetch_open(Fetch *f, uint64_t pid, const char *path, uint32_t loop)
{
    char sock[256];
    memset(f, 0, sizeof *f);
    int rc = App_resolve(pid, path, sock, sizeof sock);
    if (rc != EXIT_OK)
        return rc;
    uv_loop_init(&f->loop);
    Model_init(&f->model);
    Applier_init(&f->applier, &f->model);
    uv_timer_init(&f->loop, &f->timer);
    f->timer.data = f;
    uv_timer_start(&f->timer, fetch_timeout, FETCH_TIMEOUT_MS, 0);
    f->client.data = f;
    f->client.on_msg = fetch_msg;
    f->client.loop_id = loop;
    if (Client_connect(&f->client, &f->loop, sock, 100, true) != 0) {
        Sanitise_printf(stderr, "asynctop: %s\n", f->client.error);
        return EXIT_FAIL;
    }
    while (!f->timed_out && (f->client.state == CL_CONNECTING || f->client.state == CL_HELLO))
        uv_run(&f->loop, UV_RUN_ONCE);
    if (f->client.state != CL_LIVE) {
        if (f->timed_out)
            fprintf(stderr, "asynctop: no answer from %s within %d ms\n", sock, FETCH_TIMEOUT_MS);
        else
            Sanitise_printf(stderr, "asynctop: %s\n", f->client.error);
        int code = f->timed_out ? EXIT_NOANSWER : App_exitCode(f->client.end);
        return code == EXIT_OK ? EXIT_FAIL : code;
    }
    if (loop != 0 && !Model_loop(&f->model, loop)) {
        App_printLoops(stderr, &f->model, loop);
        return EXIT_USAGE;
    }
    return EXIT_OK;
}

/* Waits for the first update; returns EXIT_OK or an EXIT_* code. */
static int fetch_update(Fetch *f)
{
    while (!f->timed_out && !f->got_update && f->client.state == CL_LIVE)
        uv_run(&f->loop, UV_RUN_ONCE);
    if (f->got_update)
        return EXIT_OK;
    if (f->timed_out) {
        fprintf(stderr, "asynctop: the process sent no update within %d ms\n", FETCH_TIMEOUT_MS);
        return EXIT_NOANSWER;
    }
    Sanitise_printf(stderr, "asynctop: %s\n", f->client.error);
    return EXIT_FAIL;
}

static void fetch_close(Fetch *f)
{
    if (f->client.loop)
        Client_close(&f->client);
    if (f->timer.loop) {
        if (!uv_is_closing((uv_handle_t *)&f->timer))
            uv_close((uv_handle_t *)&f->timer, noop_close);
        uv_run(&f->loop, UV_RUN_DEFAULT);
        uv_loop_close(&f->loop);
    }
    Applier_done(&f->applier);
    Model_done(&f->model);
}

/* PID or -s PATH from the arguments; returns 0 or EXIT_USAGE. */
static int target_arg(const char *arg, const char *socket_path, uint64_t *pid)
{
    *pid = 0;
    if (!arg) {
        if (socket_path)
            return 0;
        fprintf(stderr, "asynctop: which process? give a PID (see `asynctop ls`) or -s PATH\n");
        return EXIT_USAGE;
    }
    char *end;
    errno = 0;
    unsigned long long v = strtoull(arg, &end, 10);
    if (errno || *end || end == arg || v == 0) {
        fprintf(stderr, "asynctop: '%s' is not a process id\n", arg);
        return EXIT_USAGE;
    }
    *pid = v;
    return 0;
}

/* Frees f after closing its connection and loop (NULL: nothing). */
static void fetch_free(Fetch *f)
{
    if (!f)
        return;
    fetch_close(f);
    free(f);
}

/* Connects to the process the arguments name (target: a PID, else -s PATH) on loop. *out is
 * set to a fetch for fetch_free whatever the result (NULL when none was allocated). Returns
 * EXIT_OK or an EXIT_* code with a message on stderr. */
static int fetch_target(const char *target, const char *socket_path, uint32_t loop, Fetch **out)
{
    uint64_t pid;
    *out = NULL;
    int rc = target_arg(target, socket_path, &pid);
    if (rc)
        return rc;
    *out = calloc(1, sizeof **out);
    if (!*out)
        return EXIT_FAIL;
    return fetch_open(*out, pid, target ? NULL : socket_path, loop);
}

static int cmd_ls(void)
{
    Target *t = calloc(DISCOVERY_MAX, sizeof *t);
    if (!t)
        return EXIT_FAIL;
    size_t n = Discovery_list(t, DISCOVERY_MAX);
    char dir[200];
    Discovery_dir(dir, sizeof dir);
    if (!n) {
        fprintf(stderr, "asynctop: no process found in %s\n", dir);
        free(t);
        return EXIT_NORUNTIME;
    }
    printf("%8s %-20s %9s %8s %s\n", "PID", "PROGRAM", "UPTIME", "TASKS", "STATUS");
    for (size_t i = 0; i < n; i++) {
        if (!t[i].alive) {
            printf("%8" PRIu64 " %-20s %9s %8s %s\n", t[i].pid, "-", "-", "-",
                   "stale socket (process gone)");
            continue;
        }
        Fetch *f = calloc(1, sizeof *f);
        if (!f)
            break;
        int rc = fetch_open(f, 0, t[i].path, 0);
        if (rc == EXIT_OK)
            rc = fetch_update(f);
        if (rc == EXIT_OK) {
            char up[32];
            uint64_t tasks = 0;
            for (int s = 0; s < TS_DONE; s++)
                tasks += f->model.loop.has_tasks_by_state ? f->model.loop.tasks_by_state[s]
                                                          : f->model.by_state[s];
            printf("%8" PRIu64 " ", t[i].pid);
            Sanitise_fput(stdout, f->model.program, 20); /* the process's own word */
            printf(" %9s %8" PRIu64 " %s\n", Duration_format(f->model.now_ns, up, sizeof up), tasks,
                   "answers");
        } else {
            printf("%8" PRIu64 " ", t[i].pid);
            Sanitise_fput(stdout, t[i].comm, 20); /* /proc/PID/comm: any bytes */
            printf(" %9s %8s %s\n", "-", "-",
                   f->client.end ? Client_endName(f->client.end) : "no answer");
        }
        fetch_free(f);
    }
    free(t);
    return EXIT_OK;
}

/* --loop N: 0 or EXIT_USAGE. */
static int loop_arg(const char *cmd, const char *s, uint32_t *loop)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno || *end || end == s || v > UINT32_MAX) {
        fprintf(stderr, "asynctop %s: --loop %s: a loop id (0 = main; see the Loops list, L)\n",
                cmd, s);
        return EXIT_USAGE;
    }
    *loop = (uint32_t)v;
    return 0;
}

static int cmd_snapshot(int argc, char **argv, const char *socket_path, uint32_t loop)
{
    const char *cmd = argv[0];
    const char *target = NULL, *filter = "";
    bool json = false, ascii = false, desc = false;
    int sort = TC_ID;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--json"))
            json = true;
        else if (!strcmp(argv[i], "--ascii"))
            ascii = true;
        else if (!strcmp(argv[i], "-r") || !strcmp(argv[i], "--reverse"))
            desc = true;
        else if ((!strcmp(argv[i], "--sort") || !strcmp(argv[i], "--filter")) && i + 1 < argc) {
            if (!strcmp(argv[i], "--filter"))
                filter = argv[++i];
            else if ((sort = TaskColumn_byName(argv[++i])) < 0) {
                fprintf(stderr, "asynctop: unknown column '%s' (", argv[i]);
                for (int c = 0; c < TC_COUNT; c++)
                    fprintf(stderr, "%s%s", c ? ", " : "", TaskColumn_info[c].name);
                fprintf(stderr, ")\n");
                return EXIT_USAGE;
            }
        } else if ((!strcmp(argv[i], "-s") || !strcmp(argv[i], "--socket")) && i + 1 < argc)
            socket_path = argv[++i];
        else if ((!strcmp(argv[i], "-l") || !strcmp(argv[i], "--loop")) && i + 1 < argc) {
            if (loop_arg(cmd, argv[++i], &loop))
                return EXIT_USAGE;
        } else if (argv[i][0] == '-') {
            fprintf(stderr, "asynctop %s: unknown option '%s'\n", cmd, argv[i]);
            return EXIT_USAGE;
        } else if (!target)
            target = argv[i];
        else {
            fprintf(stderr, "asynctop %s: unexpected argument '%s'\n", cmd, argv[i]);
            return EXIT_USAGE;
        }
    }
    if (!strcmp(cmd, "dump") && !json) {
        fprintf(stderr,
                "asynctop dump: only --json output exists; use `asynctop dump PID --json`\n");
        return EXIT_USAGE;
    }
    Fetch *f;
    int rc = fetch_target(target, socket_path, loop, &f);
    if (rc == EXIT_OK)
        rc = fetch_update(f);
    if (rc == EXIT_OK) {
        if (!strcmp(cmd, "ps"))
            Report_ps(stdout, &f->model, (TaskColumn)sort,
                      desc || (sort != TC_ID && TaskColumn_info[sort].descending), filter);
        else if (!strcmp(cmd, "pstree"))
            Report_pstree(stdout, &f->model, ascii);
        else
            Report_json(stdout, &f->model, &f->applier);
        if (fflush(stdout) != 0)
            rc = EXIT_FAIL;
    }
    fetch_free(f);
    return rc;
}

static int cmd_set(int argc, char **argv, const char *socket_path)
{
    const char *target = NULL;
    at_wire_config_t cfg;
    memset(&cfg, 0, sizeof cfg);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if ((!strcmp(a, "-s") || !strcmp(a, "--socket")) && i + 1 < argc) {
            socket_path = argv[++i];
        } else if (!strncmp(a, "slow=", 5)) {
            char err[128] = "";
            uint64_t ns = 0; /* Duration_parse leaves it alone on bad input */
            if (Duration_parse(a + 5, &ns, err, sizeof err) != 0 || ns == 0) {
                fprintf(stderr, "asynctop set: slow=%s: %s\n", a + 5,
                        ns == 0 && !err[0] ? "must be above 0" : err);
                return EXIT_USAGE;
            }
            cfg.has_slow_ns = true;
            cfg.slow_ns = ns;
        } else if (!strncmp(a, "debug=", 6)) {
            const char *v = a + 6;
            if (!strcmp(v, "on") || !strcmp(v, "1") || !strcmp(v, "true"))
                cfg.debug = true;
            else if (!strcmp(v, "off") || !strcmp(v, "0") || !strcmp(v, "false"))
                cfg.debug = false;
            else {
                fprintf(stderr, "asynctop set: debug=%s: use debug=on or debug=off\n", v);
                return EXIT_USAGE;
            }
            cfg.has_debug = true;
        } else if (!target && a[0] != '-' && !strchr(a, '=')) {
            target = a;
        } else {
            fprintf(stderr, "asynctop set: unknown setting '%s' (slow=DURATION, debug=on|off)\n",
                    a);
            return EXIT_USAGE;
        }
    }
    if (!cfg.has_slow_ns && !cfg.has_debug) {
        fprintf(stderr, "asynctop set: nothing to set (slow=50ms, debug=on|off)\n");
        return EXIT_USAGE;
    }
    Fetch *f;
    int rc = fetch_target(target, socket_path, 0, &f); /* settings are process-wide */
    if (rc == EXIT_OK) {
        at_wire_request_t req;
        memset(&req, 0, sizeof req);
        req.op = AT_WIRE_OP_SET_CONFIG;
        req.config = cfg;
        f->req_id = Client_request(&f->client, &req);
        while (!f->timed_out && !f->got_response && f->client.state == CL_LIVE)
            uv_run(&f->loop, UV_RUN_ONCE);
        if (!f->got_response) {
            Sanitise_printf(stderr, "asynctop set: %s\n",
                            f->timed_out ? "no answer from the process" : f->client.error);
            rc = f->timed_out ? EXIT_NOANSWER : EXIT_FAIL;
        } else if (f->status != 0) {
            Sanitise_printf(stderr, "asynctop set: the process refused: %s\n", f->reason);
            rc = EXIT_REFUSED;
        } else {
            char d[32];
            printf("slow=%s debug=%s\n", Duration_format(f->model.slow_threshold_ns, d, sizeof d),
                   f->model.debug ? "on" : "off");
        }
    }
    fetch_free(f);
    return rc;
}

int Subcommand_run(int argc, char **argv, const char *socket_path, uint32_t loop)
{
    const char *cmd = argv[0];
    if (!strcmp(cmd, "ls"))
        return cmd_ls();
    if (!strcmp(cmd, "ps") || !strcmp(cmd, "pstree") || !strcmp(cmd, "dump"))
        return cmd_snapshot(argc, argv, socket_path, loop);
    if (!strcmp(cmd, "set"))
        return cmd_set(argc, argv, socket_path);
    return -1;
}

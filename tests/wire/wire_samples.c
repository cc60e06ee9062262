/* wire_samples.c: sample messages covering every field of every v1 message, and deep equality. */
#include "wire_samples.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

/* ---- building blocks ---- */
static const at_wire_loc_t create_stack[] = {
    {0x55d0c0de1234u, "at_task_spawn", "runtime/tasks/task.c", 212},
    {0x55d0c0de5678u, "accept_loop", "examples/demo.c", 88},
    {0x7f00deadbeefu, "libuv.so.1+0x29270", NULL, 0, "4ce3abbc1319b90ebe42b74673ed4795653b2c56"},
};
static const at_wire_loc_t suspend_stack[] = {
    {0x55d0c0de9abcu, "at_await", "runtime/tasks/await.c", 40},
    {0x55d0c0de1111u, "handle_conn", "examples/demo.c", 131},
};
static const uint64_t lag_counts[] = {0, 0, 5, 9, 100, 2000, 65536, 70000, 1, 0, 3};
static const uint64_t site_hist[] = {1, 2, 3, 0, 4000000000u};
static const uint64_t step_counts[] = {7, 0, 12, 300};
static const at_wire_count_t handles[] = {{"tcp", 12}, {"timer", 3}, {"async", 1}};
static const at_wire_count_t dropped[] = {{"slow", 2}, {"exc", 0}, {"task", 70000}};
static const at_wire_site_t sites[] = {
    {1, {0x55d0c0de1234u, "at_task_spawn", "runtime/tasks/task.c", 212}},
    {2, {0x55d0c0de1111u, "handle_conn", "examples/demo.c", 131}},
    {3, {0x7f00deadbeefu, NULL, NULL, 0}},
    {4, {0x7f00deadbeefu, "libisc-9.18.so+0x29270", NULL, 0, "f2c9195589eb49e0c89a9e524d54db48"}},
    {300, {0xffffffffffffffffu, "parse_request \xc3\xa9t\xc3\xa9", "/src/parse.c", 4000000}},
};
static const uint32_t stack1_sites[] = {2, 1};
static const uint32_t stack2_sites[] = {300, 3, 2, 1};
static const at_wire_stack_t stacks[] = {
    {1, 2, stack1_sites},
    {2, 4, stack2_sites},
    {3, 0, NULL},
};
static const at_wire_task_t tasks_new[] = {
    {1, "main", AT_WIRE_TASK_RUNNING, AT_WIRE_WAIT_NONE, 0, 0, 123456789, 42, 0, 0, 1, 2, 0},
    {70000, "conn-12345", AT_WIRE_TASK_WAITING, AT_WIRE_WAIT_READ, 77, 5000000, 250000, 3, 1,
     4999000, 1, 2, 1, "read tcp fd 7"},
    {70001, NULL, AT_WIRE_TASK_READY, AT_WIRE_WAIT_FUTURE, 0xffffffffffu, 1u << 31, 0, 0, 70000,
     UINT64_MAX, 0, 0, 2},
};
static const at_wire_task_t tasks_changed[] = {
    {5, "worker-5", AT_WIRE_TASK_DONE, AT_WIRE_WAIT_NONE, 0, 0, 99, 1, 1, 10, 1, 2, 0},
    {6, "t\xe2\x82\xac", AT_WIRE_TASK_FAILED, AT_WIRE_WAIT_TASK, 5, 11, 12, 13, 1, 14, 3, 3, 3},
    {7, "", AT_WIRE_TASK_CANCELLED, 200, 1, 2, 3, 4, 5, 6, 7, 8, 9},
};
static const uint64_t tasks_gone[] = {5, 9, 100000};
static const uint64_t tasks_gone_state[] = {AT_WIRE_TASK_CANCELLED, AT_WIRE_TASK_DONE,
                                            AT_WIRE_TASK_FAILED};
static const at_wire_site_stats_t site_stats[] = {
    {2, AT_WIRE_CB_TASK_STEP, 1000, 5000000, 120000000, 1, {5, site_hist}, true, 1500},
    {300, AT_WIRE_CB_TIMER, 1, 1, 1, 0, {0, NULL}},
};
static const at_wire_profile_stack_t prof_stacks[] = {{2, 31}, {1, 12}, {3, 1}};
static const at_wire_slow_t slow[] = {
    {17,
     1000000000,
     250000000,
     AT_WIRE_CB_TASK_STEP,
     300,
     "parse_request",
     70000,
     2,
     1,
     {50, 5000000, 6, 3, prof_stacks}},
    {18, 2000000000, 100000001, AT_WIRE_CB_TIMER, 0, NULL, 0, 0, 0},
};
static const at_wire_exc_t exc[] = {
    {1, 3000000000u, AT_WIRE_EXC_NEVER_RETRIEVED, -104, "errno", "connection reset by peer", 0x1234,
     "future", 70000, 2, 1, "error"},
    {2, 3000000001u, AT_WIRE_EXC_NEVER_AWAITED, 0, NULL, "coroutine fetch() was never awaited", 0,
     NULL, 0, 0, 1, "warning"},
    {3, 4, AT_WIRE_EXC_DESTROYED_PENDING, 0, NULL, "task destroyed but it is pending", 70001,
     "task", 70001, 0, 2},
    {4, 5, AT_WIRE_EXC_UNCLOSED, 0, NULL, "unclosed tcp handle", 99, "tcp", 0, 0, 1},
    {5, 6, AT_WIRE_EXC_WRONG_THREAD, INT64_MIN, "app", "at_call_soon called from thread 4242", 0,
     NULL, 0, 1, 0},
    {6, 7, AT_WIRE_EXC_WARNING, INT64_MAX, "uv", "warning", 0, NULL, 0, 0, 0},
};
static const at_wire_inflight_t inflight[] = {
    {9, "http", "GET /users/7", 70000, 4999999, 2},
    {10, "fs", NULL, 0, 5000000, 0},
};
static const at_wire_loop_info_t loops[] = {{0, "main", 4242}, {1, NULL, 0}};
static const uint64_t inflight_gone[] = {8};
/* issue 9's loop picker: the optional elements (thread, kind, address; then the counters) */
static const at_wire_loop_info_t loops_ext[] = {
    {0, "main", 4242, "server", "at_loop", 0x55d0c0de9000u, true, 4000000000u, 1000000000u, 2500000,
     3, 70002},
    {7, NULL, 4250, "worker", "uv", 0x7f0012345678u, true, 250000000u, 4750000000u, 1200, 0, 2,
     3100000000u},
    {9, NULL, 4251, NULL, NULL, 0, false, 0, 0, 0, 0, 0},
    {11, NULL, 0, NULL, "uv", 0, false, 0, 0, 0, 0, 0},
};
static const uint64_t children[] = {70001, 70002};
static const char *const argv[] = {"./server", "--port", "8080", "--name=caf\xc3\xa9"};

#define HELLO(nm, ...)                                                                             \
    {                                                                                              \
        nm,                                                                                        \
        {                                                                                          \
            .type = AT_WIRE_HELLO, .u.hello = { __VA_ARGS__ }                                      \
        }                                                                                          \
    }
#define MSG(nm, ty, fld, ...)                                                                      \
    {                                                                                              \
        nm,                                                                                        \
        {                                                                                          \
            .type = ty, .u.fld = { __VA_ARGS__ }                                                   \
        }                                                                                          \
    }

static const wire_sample_t samples[] = {
    HELLO("hello", .version = 1, .pid = 4242, .program = "server", .n_argv = 4, .argv = argv,
          .runtime_version = "0.1.0", .start_time_ns = 1763740800123456789u, .now_ns = 5000000000u,
          .config = {true, 100000000, true, false}, .caps = (1u << AT_WIRE_CAP_COUNT) - 1,
          .n_loops = 2, .loops = loops),
    HELLO("hello_minimal", .version = 1, .pid = 1, .program = "", .n_argv = 0,
          .runtime_version = "0.1.0", .start_time_ns = 0, .now_ns = 0,
          .config = {true, 0, true, true}, .caps = 0),
    MSG("subscribe", AT_WIRE_SUBSCRIBE, subscribe, .version = 1, .interval_ms = 1000,
        .what = AT_WIRE_CAP_TASKS | AT_WIRE_CAP_SLOW | AT_WIRE_CAP_EXCEPTIONS | AT_WIRE_CAP_LOOP,
        .loop = 3),
    MSG("subscribe_all", AT_WIRE_SUBSCRIBE, subscribe, .version = 1, .interval_ms = 100),
    MSG("update_full", AT_WIRE_UPDATE, update, .version = 1, .seq = 0, .ts_ns = 5000000123u,
        .loop = 1, .full = true, .config = {true, 100000000, true, true}, .has_stats = true,
        .stats = {.busy_ns = 4000000000u,
                  .idle_ns = 1000000000u,
                  .iterations = 100000,
                  .callbacks = 2500000,
                  .slow = 3,
                  .errors = 6,
                  .lag = {11, lag_counts},
                  .lag_max_ns = 45,
                  .tasks_by_state = {1, 1, 70000, 2, 3, 4},
                  .n_handles = 3,
                  .handles = handles,
                  .exec_queued = 5,
                  .exec_running = 4,
                  .exec_threads = 4,
                  .exec_done = 1000,
                  .exec_wait_ns = 123456789},
        .running = {true,
                    4800000000u,
                    AT_WIRE_CB_TASK_STEP,
                    300,
                    "parse_request",
                    70000,
                    2,
                    "conn-12345",
                    {4, 5000000, 0, 1, prof_stacks}},
        .n_dropped = 3, .dropped = dropped, .n_sites = 5, .sites = sites, .n_stacks = 3,
        .stacks = stacks, .n_tasks_new = 3, .tasks_new = tasks_new, .n_tasks_changed = 3,
        .tasks_changed = tasks_changed, .n_tasks_gone = 3, .tasks_gone = tasks_gone,
        .n_site_stats = 2, .site_stats = site_stats, .n_slow = 2, .slow = slow, .n_exc = 6,
        .exc = exc, .n_inflight = 2, .inflight = inflight, .n_inflight_gone = 1,
        .inflight_gone = inflight_gone),
    MSG("update_delta", AT_WIRE_UPDATE, update, .version = 1, .seq = 7, .ts_ns = 12000000000u,
        .config = {true, 50000000, true, false}, .n_tasks_changed = 1,
        .tasks_changed = tasks_changed),
    MSG("update_loops", AT_WIRE_UPDATE, update, .version = 1, .seq = 8, .ts_ns = 13000000000u,
        .loop = 7, .config = {true, 50000000, true, false}, .n_tasks_gone = 3,
        .tasks_gone = tasks_gone, .n_loops = 4, .loops = loops_ext, .loop_gone = true,
        .n_tasks_gone_state = 3, .tasks_gone_state = tasks_gone_state),
    MSG("request_task_detail", AT_WIRE_REQUEST, request, .version = 1, .id = 1,
        .op = AT_WIRE_OP_TASK_DETAIL, .task = 70000),
    MSG("request_set_config", AT_WIRE_REQUEST, request, .version = 1, .id = 2,
        .op = AT_WIRE_OP_SET_CONFIG, .config = {true, 50000000, true, true}),
    MSG("request_set_slow", AT_WIRE_REQUEST, request, .version = 1, .id = 3,
        .op = AT_WIRE_OP_SET_CONFIG, .config = {true, 20000000, false, false}),
    MSG("request_cancel", AT_WIRE_REQUEST, request, .version = 1, .id = 4, .op = AT_WIRE_OP_CANCEL,
        .task = 70001),
    MSG("request_loop_stack", AT_WIRE_REQUEST, request, .version = 1, .id = 5,
        .op = AT_WIRE_OP_LOOP_STACK, .loop = 1),
    MSG("request_pause", AT_WIRE_REQUEST, request, .version = 1, .id = 6, .op = AT_WIRE_OP_PAUSE),
    MSG("request_resume", AT_WIRE_REQUEST, request, .version = 1, .id = UINT64_MAX,
        .op = AT_WIRE_OP_RESUME),
    MSG("request_unknown_op", AT_WIRE_REQUEST, request, .version = 1, .id = 8,
        .op = AT_WIRE_OP_UNKNOWN, .op_name = "frobnicate"),
    MSG("response_task_detail", AT_WIRE_RESPONSE, response, .version = 1, .id = 1,
        .op = AT_WIRE_OP_TASK_DETAIL, .status = 0, .has_detail = true,
        .detail = {.task = {70000, "conn-12345", AT_WIRE_TASK_WAITING, AT_WIRE_WAIT_READ, 77,
                            5000000, 250000, 3, 1, 4999000, 1, 2, 1},
                   .wait_desc = "read tcp fd 7",
                   .n_create = 3,
                   .create = create_stack,
                   .n_suspend = 2,
                   .suspend = suspend_stack,
                   .n_children = 2,
                   .children = children,
                   .step_hist = {4, step_counts},
                   .error = "boom"}),
    MSG("response_set_config", AT_WIRE_RESPONSE, response, .version = 1, .id = 2,
        .op = AT_WIRE_OP_SET_CONFIG, .has_config = true, .config = {true, 50000000, true, true}),
    MSG("response_loop_stack", AT_WIRE_RESPONSE, response, .version = 1, .id = 5,
        .op = AT_WIRE_OP_LOOP_STACK, .has_stack = true, .n_stack = 2, .stack = suspend_stack,
        .running = {true, 100, AT_WIRE_CB_IO, 2, NULL, 0, 0}),
    MSG("response_cancel", AT_WIRE_RESPONSE, response, .version = 1, .id = 4,
        .op = AT_WIRE_OP_CANCEL),
    MSG("response_failed", AT_WIRE_RESPONSE, response, .version = 1, .id = 9,
        .op = AT_WIRE_OP_TASK_DETAIL, .status = AT_WIRE_ST_NO_SUCH_TASK,
        .reason = "no task with id 123"),
    MSG("response_unsupported", AT_WIRE_RESPONSE, response, .version = 1, .id = 8,
        .op = AT_WIRE_OP_UNKNOWN, .op_name = "frobnicate", .status = AT_WIRE_ST_UNSUPPORTED,
        .reason = "unknown request op \"frobnicate\""),
    MSG("error", AT_WIRE_ERROR, error, .version = 1, .code = AT_WIRE_ST_TOO_LARGE,
        .reason = "a frame of 1048576 bytes announced (limit 65536)", .fatal = true),
    MSG("error_nonfatal", AT_WIRE_ERROR, error, .version = 1, .code = AT_WIRE_ST_RATE_LIMITED,
        .reason = "slow down", .fatal = false),
    MSG("bye", AT_WIRE_BYE, bye, .version = 1, .reason = "process exiting"),
    MSG("bye_empty", AT_WIRE_BYE, bye, .version = 1),
};

const wire_sample_t *wire_samples(size_t *n)
{
    *n = sizeof samples / sizeof samples[0];
    return samples;
}

/* ---- deep equality ---- */

typedef struct eq {
    char *why;
    size_t len;
    int ok;
} eq_t;

static void diff(eq_t *q, const char *path)
{
    if (q->ok) {
        q->ok = 0;
        snprintf(q->why, q->len, "%s differs", path);
    }
}

#define EQ_NUM(q, a, b, path)                                                                      \
    do {                                                                                           \
        if ((a) != (b))                                                                            \
            diff(q, path);                                                                         \
    } while (0)

static void eq_str(eq_t *q, const char *a, const char *b, const char *path)
{
    if ((a == NULL) != (b == NULL) || (a && strcmp(a, b) != 0))
        diff(q, path);
}

static void eq_loc(eq_t *q, const at_wire_loc_t *a, const at_wire_loc_t *b, const char *path)
{
    EQ_NUM(q, a->addr, b->addr, path);
    eq_str(q, a->func, b->func, path);
    eq_str(q, a->file, b->file, path);
    EQ_NUM(q, a->line, b->line, path);
    eq_str(q, a->build_id, b->build_id, path);
}

static void eq_locs(eq_t *q, uint32_t na, const at_wire_loc_t *a, uint32_t nb,
                    const at_wire_loc_t *b, const char *path)
{
    EQ_NUM(q, na, nb, path);
    for (uint32_t i = 0; q->ok && i < na; i++)
        eq_loc(q, &a[i], &b[i], path);
}

static void eq_ids(eq_t *q, uint32_t na, const uint64_t *a, uint32_t nb, const uint64_t *b,
                   const char *path)
{
    EQ_NUM(q, na, nb, path);
    for (uint32_t i = 0; q->ok && i < na; i++)
        EQ_NUM(q, a[i], b[i], path);
}

/* Histograms compare equal modulo trailing empty buckets (never sent). */
static void eq_hist(eq_t *q, const at_wire_hist_t *a, const at_wire_hist_t *b, const char *path)
{
    uint32_t na = a->n, nb = b->n;
    while (na && a->counts[na - 1] == 0)
        na--;
    while (nb && b->counts[nb - 1] == 0)
        nb--;
    eq_ids(q, na, a->counts, nb, b->counts, path);
}

static void eq_counts(eq_t *q, uint32_t na, const at_wire_count_t *a, uint32_t nb,
                      const at_wire_count_t *b, const char *path)
{
    EQ_NUM(q, na, nb, path);
    for (uint32_t i = 0; q->ok && i < na; i++) {
        eq_str(q, a[i].name, b[i].name, path);
        EQ_NUM(q, a[i].n, b[i].n, path);
    }
}

static void eq_config(eq_t *q, const at_wire_config_t *a, const at_wire_config_t *b,
                      const char *path)
{
    EQ_NUM(q, a->has_slow_ns, b->has_slow_ns, path);
    EQ_NUM(q, a->has_debug, b->has_debug, path);
    if (a->has_slow_ns)
        EQ_NUM(q, a->slow_ns, b->slow_ns, path);
    if (a->has_debug)
        EQ_NUM(q, a->debug, b->debug, path);
}

static void eq_task(eq_t *q, const at_wire_task_t *a, const at_wire_task_t *b, const char *path)
{
    EQ_NUM(q, a->id, b->id, path);
    eq_str(q, a->name, b->name, path);
    EQ_NUM(q, a->state, b->state, path);
    EQ_NUM(q, a->wait_kind, b->wait_kind, path);
    EQ_NUM(q, a->wait_obj, b->wait_obj, path);
    EQ_NUM(q, a->wait_since_us, b->wait_since_us, path);
    EQ_NUM(q, a->busy_ns, b->busy_ns, path);
    EQ_NUM(q, a->steps, b->steps, path);
    EQ_NUM(q, a->parent, b->parent, path);
    EQ_NUM(q, a->created_us, b->created_us, path);
    EQ_NUM(q, a->create_site, b->create_site, path);
    EQ_NUM(q, a->entry_site, b->entry_site, path);
    EQ_NUM(q, a->stack, b->stack, path);
    eq_str(q, a->wait_desc, b->wait_desc, path);
}

static void eq_tasks(eq_t *q, uint32_t na, const at_wire_task_t *a, uint32_t nb,
                     const at_wire_task_t *b, const char *path)
{
    EQ_NUM(q, na, nb, path);
    for (uint32_t i = 0; q->ok && i < na; i++)
        eq_task(q, &a[i], &b[i], path);
}

static void eq_profile(eq_t *q, const at_wire_profile_t *a, const at_wire_profile_t *b,
                       const char *path)
{
    EQ_NUM(q, a->samples, b->samples, path);
    EQ_NUM(q, a->interval_ns, b->interval_ns, path);
    EQ_NUM(q, a->other, b->other, path);
    EQ_NUM(q, a->n_stacks, b->n_stacks, path);
    for (uint32_t i = 0; q->ok && i < a->n_stacks; i++) {
        EQ_NUM(q, a->stacks[i].stack, b->stacks[i].stack, path);
        EQ_NUM(q, a->stacks[i].count, b->stacks[i].count, path);
    }
}

static void eq_running(eq_t *q, const at_wire_running_t *a, const at_wire_running_t *b,
                       const char *path)
{
    EQ_NUM(q, a->present, b->present, path);
    if (!a->present)
        return;
    EQ_NUM(q, a->since_ns, b->since_ns, path);
    EQ_NUM(q, a->kind, b->kind, path);
    EQ_NUM(q, a->site, b->site, path);
    eq_str(q, a->name, b->name, path);
    EQ_NUM(q, a->task, b->task, path);
    EQ_NUM(q, a->stack, b->stack, path);
    eq_str(q, a->task_name, b->task_name, path);
    eq_profile(q, &a->profile, &b->profile, "running.profile");
}

/* Loop info rows, the optional elements included. */
static void eq_loops(eq_t *q, uint32_t na, const at_wire_loop_info_t *a, uint32_t nb,
                     const at_wire_loop_info_t *b, const char *what)
{
    EQ_NUM(q, na, nb, what);
    for (uint32_t i = 0; q->ok && i < na; i++) {
        EQ_NUM(q, a[i].id, b[i].id, "loops.id");
        eq_str(q, a[i].name, b[i].name, "loops.name");
        EQ_NUM(q, a[i].tid, b[i].tid, "loops.tid");
        eq_str(q, a[i].thread, b[i].thread, "loops.thread");
        eq_str(q, a[i].kind, b[i].kind, "loops.kind");
        EQ_NUM(q, a[i].addr, b[i].addr, "loops.addr");
        EQ_NUM(q, a[i].has_stats, b[i].has_stats, "loops.has_stats");
        EQ_NUM(q, a[i].busy_ns, b[i].busy_ns, "loops.busy_ns");
        EQ_NUM(q, a[i].idle_ns, b[i].idle_ns, "loops.idle_ns");
        EQ_NUM(q, a[i].callbacks, b[i].callbacks, "loops.callbacks");
        EQ_NUM(q, a[i].slow, b[i].slow, "loops.slow");
        EQ_NUM(q, a[i].pending, b[i].pending, "loops.pending");
        EQ_NUM(q, a[i].running_ns, b[i].running_ns, "loops.running_ns");
    }
}

static void eq_update(eq_t *q, const at_wire_update_t *a, const at_wire_update_t *b)
{
    EQ_NUM(q, a->seq, b->seq, "update.seq");
    EQ_NUM(q, a->ts_ns, b->ts_ns, "update.ts_ns");
    EQ_NUM(q, a->loop, b->loop, "update.loop");
    EQ_NUM(q, a->full, b->full, "update.full");
    eq_config(q, &a->config, &b->config, "update.config");
    EQ_NUM(q, a->has_stats, b->has_stats, "update.has_stats");
    if (a->has_stats && q->ok) {
        const at_wire_loop_stats_t *s = &a->stats, *t = &b->stats;
        EQ_NUM(q, s->busy_ns, t->busy_ns, "stats.busy_ns");
        EQ_NUM(q, s->idle_ns, t->idle_ns, "stats.idle_ns");
        EQ_NUM(q, s->iterations, t->iterations, "stats.iterations");
        EQ_NUM(q, s->callbacks, t->callbacks, "stats.callbacks");
        EQ_NUM(q, s->slow, t->slow, "stats.slow");
        EQ_NUM(q, s->errors, t->errors, "stats.errors");
        eq_hist(q, &s->lag, &t->lag, "stats.lag");
        EQ_NUM(q, s->lag_max_ns, t->lag_max_ns, "stats.lag_max_ns");
        for (int i = 0; i < AT_WIRE_TASK_NSTATES; i++)
            EQ_NUM(q, s->tasks_by_state[i], t->tasks_by_state[i], "stats.tasks");
        eq_counts(q, s->n_handles, s->handles, t->n_handles, t->handles, "stats.handles");
        EQ_NUM(q, s->exec_queued, t->exec_queued, "stats.exec.queued");
        EQ_NUM(q, s->exec_running, t->exec_running, "stats.exec.running");
        EQ_NUM(q, s->exec_threads, t->exec_threads, "stats.exec.threads");
        EQ_NUM(q, s->exec_done, t->exec_done, "stats.exec.done");
        EQ_NUM(q, s->exec_wait_ns, t->exec_wait_ns, "stats.exec.wait_ns");
    }
    eq_running(q, &a->running, &b->running, "update.running");
    eq_counts(q, a->n_dropped, a->dropped, b->n_dropped, b->dropped, "update.dropped");
    EQ_NUM(q, a->n_sites, b->n_sites, "update.sites");
    for (uint32_t i = 0; q->ok && i < a->n_sites; i++) {
        EQ_NUM(q, a->sites[i].id, b->sites[i].id, "update.sites.id");
        eq_loc(q, &a->sites[i].loc, &b->sites[i].loc, "update.sites.loc");
    }
    EQ_NUM(q, a->n_stacks, b->n_stacks, "update.stacks");
    for (uint32_t i = 0; q->ok && i < a->n_stacks; i++) {
        EQ_NUM(q, a->stacks[i].id, b->stacks[i].id, "update.stacks.id");
        EQ_NUM(q, a->stacks[i].n_sites, b->stacks[i].n_sites, "update.stacks.n");
        for (uint32_t j = 0; q->ok && j < a->stacks[i].n_sites; j++)
            EQ_NUM(q, a->stacks[i].sites[j], b->stacks[i].sites[j], "update.stacks.sites");
    }
    eq_tasks(q, a->n_tasks_new, a->tasks_new, b->n_tasks_new, b->tasks_new, "update.tasks_new");
    eq_tasks(q, a->n_tasks_changed, a->tasks_changed, b->n_tasks_changed, b->tasks_changed,
             "update.tasks_changed");
    eq_ids(q, a->n_tasks_gone, a->tasks_gone, b->n_tasks_gone, b->tasks_gone, "update.tasks_gone");
    EQ_NUM(q, a->n_site_stats, b->n_site_stats, "update.site_stats");
    for (uint32_t i = 0; q->ok && i < a->n_site_stats; i++) {
        const at_wire_site_stats_t *s = &a->site_stats[i], *t = &b->site_stats[i];
        EQ_NUM(q, s->site, t->site, "site_stats.site");
        EQ_NUM(q, s->kind, t->kind, "site_stats.kind");
        EQ_NUM(q, s->count, t->count, "site_stats.count");
        EQ_NUM(q, s->total_ns, t->total_ns, "site_stats.total_ns");
        EQ_NUM(q, s->max_ns, t->max_ns, "site_stats.max_ns");
        EQ_NUM(q, s->has_min, t->has_min, "site_stats.has_min");
        EQ_NUM(q, s->min_ns, t->min_ns, "site_stats.min_ns");
        EQ_NUM(q, s->slow, t->slow, "site_stats.slow");
        eq_hist(q, &s->hist, &t->hist, "site_stats.hist");
    }
    EQ_NUM(q, a->n_slow, b->n_slow, "update.slow");
    for (uint32_t i = 0; q->ok && i < a->n_slow; i++) {
        const at_wire_slow_t *s = &a->slow[i], *t = &b->slow[i];
        EQ_NUM(q, s->seq, t->seq, "slow.seq");
        EQ_NUM(q, s->start_ns, t->start_ns, "slow.start_ns");
        EQ_NUM(q, s->dur_ns, t->dur_ns, "slow.dur_ns");
        EQ_NUM(q, s->kind, t->kind, "slow.kind");
        EQ_NUM(q, s->site, t->site, "slow.site");
        eq_str(q, s->name, t->name, "slow.name");
        EQ_NUM(q, s->task, t->task, "slow.task");
        EQ_NUM(q, s->stack, t->stack, "slow.stack");
        EQ_NUM(q, s->sched_stack, t->sched_stack, "slow.sched_stack");
        eq_profile(q, &s->profile, &t->profile, "slow.profile");
    }
    EQ_NUM(q, a->n_exc, b->n_exc, "update.exc");
    for (uint32_t i = 0; q->ok && i < a->n_exc; i++) {
        const at_wire_exc_t *s = &a->exc[i], *t = &b->exc[i];
        EQ_NUM(q, s->seq, t->seq, "exc.seq");
        EQ_NUM(q, s->time_ns, t->time_ns, "exc.time_ns");
        EQ_NUM(q, s->kind, t->kind, "exc.kind");
        EQ_NUM(q, s->code, t->code, "exc.code");
        eq_str(q, s->domain, t->domain, "exc.domain");
        eq_str(q, s->message, t->message, "exc.message");
        EQ_NUM(q, s->object, t->object, "exc.object");
        eq_str(q, s->obj_type, t->obj_type, "exc.obj_type");
        EQ_NUM(q, s->task, t->task, "exc.task");
        EQ_NUM(q, s->raise_stack, t->raise_stack, "exc.raise_stack");
        EQ_NUM(q, s->create_stack, t->create_stack, "exc.create_stack");
        eq_str(q, s->severity, t->severity, "exc.severity");
    }
    EQ_NUM(q, a->n_inflight, b->n_inflight, "update.inflight");
    for (uint32_t i = 0; q->ok && i < a->n_inflight; i++) {
        EQ_NUM(q, a->inflight[i].id, b->inflight[i].id, "inflight.id");
        eq_str(q, a->inflight[i].name, b->inflight[i].name, "inflight.name");
        EQ_NUM(q, a->inflight[i].task, b->inflight[i].task, "inflight.task");
        EQ_NUM(q, a->inflight[i].start_us, b->inflight[i].start_us, "inflight.start_us");
        eq_str(q, a->inflight[i].kind, b->inflight[i].kind, "inflight.kind");
        EQ_NUM(q, a->inflight[i].stack, b->inflight[i].stack, "inflight.stack");
    }
    eq_ids(q, a->n_inflight_gone, a->inflight_gone, b->n_inflight_gone, b->inflight_gone,
           "update.inflight_gone");
    eq_loops(q, a->n_loops, a->loops, b->n_loops, b->loops, "update.loops");
    EQ_NUM(q, a->loop_gone, b->loop_gone, "update.loop_gone");
    eq_ids(q, a->n_tasks_gone_state, a->tasks_gone_state, b->n_tasks_gone_state,
           b->tasks_gone_state, "update.tasks_gone_state");
}

int wire_msg_equal(const at_wire_msg_t *a, const at_wire_msg_t *b, char *why, size_t whylen)
{
    eq_t q = {why, whylen, 1};
    EQ_NUM(&q, a->type, b->type, "type");
    if (!q.ok)
        return 0;
    switch (a->type) {
    case AT_WIRE_HELLO: {
        const at_wire_hello_t *x = &a->u.hello, *y = &b->u.hello;
        EQ_NUM(&q, x->pid, y->pid, "hello.pid");
        eq_str(&q, x->program, y->program, "hello.program");
        EQ_NUM(&q, x->n_argv, y->n_argv, "hello.n_argv");
        for (uint32_t i = 0; q.ok && i < x->n_argv; i++)
            eq_str(&q, x->argv[i], y->argv[i], "hello.argv");
        eq_str(&q, x->runtime_version, y->runtime_version, "hello.runtime");
        EQ_NUM(&q, x->start_time_ns, y->start_time_ns, "hello.start_time_ns");
        EQ_NUM(&q, x->now_ns, y->now_ns, "hello.now_ns");
        eq_config(&q, &x->config, &y->config, "hello.config");
        EQ_NUM(&q, x->caps, y->caps, "hello.caps");
        eq_loops(&q, x->n_loops, x->loops, y->n_loops, y->loops, "hello.loops");
        break;
    }
    case AT_WIRE_SUBSCRIBE: {
        const at_wire_subscribe_t *x = &a->u.subscribe, *y = &b->u.subscribe;
        EQ_NUM(&q, x->interval_ms, y->interval_ms, "subscribe.interval_ms");
        EQ_NUM(&q, x->what, y->what, "subscribe.what");
        EQ_NUM(&q, x->loop, y->loop, "subscribe.loop");
        break;
    }
    case AT_WIRE_UPDATE:
        eq_update(&q, &a->u.update, &b->u.update);
        break;
    case AT_WIRE_REQUEST: {
        const at_wire_request_t *x = &a->u.request, *y = &b->u.request;
        EQ_NUM(&q, x->id, y->id, "request.id");
        EQ_NUM(&q, x->op, y->op, "request.op");
        if (x->op == AT_WIRE_OP_UNKNOWN)
            eq_str(&q, x->op_name ? x->op_name : "", y->op_name ? y->op_name : "",
                   "request.op_name");
        EQ_NUM(&q, x->task, y->task, "request.task");
        eq_config(&q, &x->config, &y->config, "request.config");
        EQ_NUM(&q, x->loop, y->loop, "request.loop");
        break;
    }
    case AT_WIRE_RESPONSE: {
        const at_wire_response_t *x = &a->u.response, *y = &b->u.response;
        EQ_NUM(&q, x->id, y->id, "response.id");
        EQ_NUM(&q, x->op, y->op, "response.op");
        if (x->op == AT_WIRE_OP_UNKNOWN)
            eq_str(&q, x->op_name ? x->op_name : "", y->op_name ? y->op_name : "",
                   "response.op_name");
        EQ_NUM(&q, x->status, y->status, "response.status");
        eq_str(&q, x->reason, y->reason, "response.reason");
        EQ_NUM(&q, x->has_detail, y->has_detail, "response.has_detail");
        if (x->has_detail && q.ok) {
            const at_wire_task_detail_t *d = &x->detail, *e = &y->detail;
            eq_task(&q, &d->task, &e->task, "detail.task");
            eq_str(&q, d->wait_desc, e->wait_desc, "detail.wait_desc");
            eq_locs(&q, d->n_create, d->create, e->n_create, e->create, "detail.create");
            eq_locs(&q, d->n_suspend, d->suspend, e->n_suspend, e->suspend, "detail.suspend");
            eq_ids(&q, d->n_children, d->children, e->n_children, e->children, "detail.children");
            eq_hist(&q, &d->step_hist, &e->step_hist, "detail.step_hist");
            eq_str(&q, d->error, e->error, "detail.error");
        }
        EQ_NUM(&q, x->has_config, y->has_config, "response.has_config");
        if (x->has_config)
            eq_config(&q, &x->config, &y->config, "response.config");
        EQ_NUM(&q, x->has_stack, y->has_stack, "response.has_stack");
        if (x->has_stack)
            eq_locs(&q, x->n_stack, x->stack, y->n_stack, y->stack, "response.stack");
        eq_running(&q, &x->running, &y->running, "response.running");
        break;
    }
    case AT_WIRE_ERROR:
        EQ_NUM(&q, a->u.error.code, b->u.error.code, "error.code");
        eq_str(&q, a->u.error.reason, b->u.error.reason, "error.reason");
        EQ_NUM(&q, a->u.error.fatal, b->u.error.fatal, "error.fatal");
        break;
    case AT_WIRE_BYE:
        eq_str(&q, a->u.bye.reason, b->u.bye.reason, "bye.reason");
        break;
    default:
        break;
    }
    return q.ok;
}

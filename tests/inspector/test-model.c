/* test-model.c: the target model and the update applier: validation, bounds,
 * lingering, snapshots and deltas, interned sites and stacks, rates. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "Applier.h"
#include "Model.h"
#include "Report.h"
#include "TaskColumn.h"
#include "TaskTree.h"
#include "TaskView.h"

static TaskRow row(uint64_t id, const char *name, int state)
{
    TaskRow r;
    memset(&r, 0, sizeof r);
    r.id = id;
    r.name = name;
    r.name_len = SIZE_MAX;
    r.state = state;
    return r;
}

static void test_upsert_find_remove(void **state)
{
    Model m;
    Model_init(&m);
    for (uint64_t i = 1; i <= 5000; i++) {
        TaskRow r = row(i * 7, "t", TS_WAITING);
        assert_int_equal(Model_upsertTask(&m, &r, 1), 0);
    }
    assert_int_equal(m.ntasks, 5000);
    assert_int_equal(m.by_state[TS_WAITING], 5000);
    assert_non_null(Model_findTask(&m, 7 * 4321));
    assert_null(Model_findTask(&m, 8));
    assert_null(Model_findTask(&m, 0));
    /* a change moves the state count */
    TaskRow r = row(14, "renamed", TS_RUNNING);
    Model_upsertTask(&m, &r, 1);
    assert_string_equal(Model_findTask(&m, 14)->name, "renamed");
    assert_int_equal(m.by_state[TS_WAITING], 4999);
    assert_int_equal(m.by_state[TS_RUNNING], 1);
    /* removal lingers, then purges */
    Model_removeTask(&m, 14, 1000, -1);
    assert_non_null(Model_findTask(&m, 14));
    assert_int_equal(m.by_state[TS_RUNNING], 0);
    /* it lingers with its final state, not the one it had while pending */
    assert_int_equal(Model_findTask(&m, 14)->state, TS_DONE);
    assert_string_equal(Model_findTask(&m, 14)->waits_on, "");
    assert_int_equal(Model_purge(&m, 1000 + MODEL_LINGER_MS - 1), 0);
    assert_int_equal(Model_purge(&m, 1000 + MODEL_LINGER_MS), 1);
    assert_null(Model_findTask(&m, 14));
    assert_non_null(Model_findTask(&m, 21)); /* the hash survived the purge */
    assert_int_equal(m.ntasks, 4999);
    /* a finished state lingers as well */
    r = row(21, "x", TS_DONE);
    Model_upsertTask(&m, &r, 2000);
    assert_int_equal(m.nlinger, 1);
    assert_int_equal(m.by_state[TS_WAITING], 4998);
    Model_done(&m);
}

static void test_validation(void **state)
{
    Model m;
    Model_init(&m);
    TaskRow r = row(0, "zero", TS_READY);
    assert_int_equal(Model_upsertTask(&m, &r, 1), -1);
    r = row(1, "bad state", TS_COUNT);
    assert_int_equal(Model_upsertTask(&m, &r, 1), -1);
    r = row(1, "neg", -1);
    assert_int_equal(Model_upsertTask(&m, &r, 1), -1);
    assert_int_equal(m.rejected, 3);
    /* strings: bad UTF-8 (U+FFFD), control characters kept as sent (every output sanitises,
     * test-sanitise.c), length bound, self-parent */
    char big[4000];
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    r = row(2, "a\x1b[31mb\xff\xc3\xa9", TS_READY);
    r.parent = 2;
    r.created_at = big;
    r.created_at_len = SIZE_MAX;
    assert_int_equal(Model_upsertTask(&m, &r, 1), 0);
    Task *t = Model_findTask(&m, 2);
    assert_string_equal(t->name, "a\x1b[31mb\xef\xbf\xbd\xc3\xa9");
    assert_int_equal(strlen(t->created_at), MODEL_MAX_STR);
    assert_int_equal(t->parent, 0);
    assert_string_equal(t->waits_on, "");
    /* explicit lengths do not read past them and stop at NUL */
    r = row(3, "abcdef", TS_READY);
    r.name_len = 3;
    Model_upsertTask(&m, &r, 1);
    assert_string_equal(Model_findTask(&m, 3)->name, "abc");
    Model_done(&m);
}

static void test_rings_and_sites(void **state)
{
    Model m;
    Model_init(&m);
    for (unsigned i = 0; i < MODEL_MAX_SLOW + 10; i++) {
        SlowEvent ev;
        memset(&ev, 0, sizeof ev);
        Model_setString(&ev.callback, i % 2 ? "odd" : "even", SIZE_MAX);
        ev.duration_ns = (i + 1) * 1000000ull;
        ev.when_ns = i;
        Stack_push(&ev.stack, "f", SIZE_MAX, "x.c", SIZE_MAX, 3, 0x10);
        Model_addSlow(&m, &ev);
        assert_null(ev.callback); /* ownership moved */
    }
    assert_int_equal(Model_slowCount(&m), MODEL_MAX_SLOW);
    assert_int_equal(Model_slowAt(&m, 0)->when_ns, MODEL_MAX_SLOW + 9);
    assert_int_equal(Model_slowAt(&m, MODEL_MAX_SLOW - 1)->when_ns, 10);
    assert_null(Model_slowAt(&m, MODEL_MAX_SLOW));
    assert_int_equal(m.nsites, 2);
    SlowSite *odd = Model_site(&m, "odd");
    assert_int_equal(odd->count, (MODEL_MAX_SLOW + 10) / 2);
    assert_int_equal(odd->max_ns, (MODEL_MAX_SLOW + 10) * 1000000ull);
    uint64_t p99 = SlowSite_percentile(odd, 99);
    assert_true(p99 <= odd->max_ns && p99 >= odd->max_ns / 2);
    /* stacks are bounded */
    Stack s = {0, NULL};
    for (int i = 0; i < 100; i++)
        Stack_push(&s, NULL, 0, NULL, 0, 0, 0);
    assert_int_equal(s.n, MODEL_MAX_FRAMES);
    assert_string_equal(s.f[0].func, "?");
    Stack_free(&s);
    /* exceptions: unknown kinds become warnings */
    ExcEvent e;
    memset(&e, 0, sizeof e);
    e.kind = 200;
    Model_addException(&m, &e);
    assert_int_equal(Model_excAt(&m, 0)->kind, EXC_WARNING);
    assert_string_equal(Model_excAt(&m, 0)->message, "");
    /* dropped counters: bounded, summed */
    for (int i = 0; i < 40; i++) {
        char name[16];
        snprintf(name, sizeof name, "k%d", i);
        Model_setDropped(&m, name, SIZE_MAX, 2);
    }
    assert_int_equal(m.ndropped, MODEL_MAX_DROPPED);
    assert_int_equal(Model_droppedTotal(&m), 2 * MODEL_MAX_DROPPED);
    Model_done(&m);
}

/* ---- the applier, on hand-built wire structs ---------------------------------- */

static const at_wire_site_t sites[] = {
    {1, {0x10, "handle_conn", "/src/server.c", 120, "0c29039453e58b2d"}},
    {2, {0x20, "at_stream_read", "io.c", 31, "0C29 not\x1b[2J hex"}}, /* dropped: not hex */
    {3, {0x30, NULL, NULL, 0}},
};
static const uint32_t stack1_sites[] = {2, 1};
static const at_wire_stack_t stacks[] = {{7, 2, stack1_sites}};

static at_wire_task_t wtask(uint64_t id, uint8_t st, uint64_t parent)
{
    at_wire_task_t t;
    memset(&t, 0, sizeof t);
    t.id = id;
    t.state = st;
    t.wait_kind = st == AT_WIRE_TASK_WAITING ? AT_WIRE_WAIT_READ : 0;
    t.wait_obj = 9;
    t.wait_since_us = 1000;
    t.created_us = 500;
    t.parent = parent;
    t.create_site = 1;
    t.entry_site = 1;
    t.stack = 7;
    return t;
}

static void test_applier_snapshot_delta(void **state)
{
    Model m;
    Applier a;
    Model_init(&m);
    Applier_init(&a, &m);
    at_wire_msg_t msg;
    memset(&msg, 0, sizeof msg);
    msg.type = AT_WIRE_HELLO;
    const char *argv[] = {"./srv", "--port", "80"};
    msg.u.hello = (at_wire_hello_t){.version = 1,
                                    .pid = 42,
                                    .program = "srv",
                                    .n_argv = 3,
                                    .argv = argv,
                                    .runtime_version = "0.1.0",
                                    .config = {true, 100000000, true, true}};
    assert_int_equal(Applier_apply(&a, &msg, 10), 0);
    assert_int_equal(m.pid, 42);
    assert_string_equal(m.argv, "./srv --port 80");
    assert_int_equal(m.slow_threshold_ns, 100000000);
    assert_true(m.debug);

    at_wire_task_t tasks[3] = {wtask(1, AT_WIRE_TASK_RUNNING, 0), wtask(2, AT_WIRE_TASK_WAITING, 1),
                               wtask(3, 77 /* unknown state */, 1)};
    tasks[1].name = "conn";
    uint64_t lag[80] = {0};
    lag[60] = 10;
    at_wire_count_t handles[] = {{"tcp", 3}};
    at_wire_count_t dropped[] = {{"slow", 4}};
    memset(&msg, 0, sizeof msg);
    msg.type = AT_WIRE_UPDATE;
    at_wire_update_t *u = &msg.u.update;
    u->full = true;
    u->ts_ns = 2000000000ull;
    u->config = (at_wire_config_t){true, 50000000, true, false};
    u->n_sites = 3;
    u->sites = sites;
    u->n_stacks = 1;
    u->stacks = stacks;
    u->n_tasks_new = 3;
    u->tasks_new = tasks;
    u->has_stats = true;
    u->stats.busy_ns = 1000;
    u->stats.idle_ns = 3000;
    u->stats.callbacks = 100;
    u->stats.lag = (at_wire_hist_t){80, lag};
    u->stats.n_handles = 1;
    u->stats.handles = handles;
    u->stats.tasks_by_state[AT_WIRE_TASK_WAITING] = 1;
    u->n_dropped = 1;
    u->dropped = dropped;
    u->running = (at_wire_running_t){true, 1900000000ull, AT_WIRE_CB_TIMER, 1, NULL, 2, 7};
    assert_int_equal(Applier_apply(&a, &msg, 20), 0);
    assert_int_equal(m.ntasks, 3);
    Task *t2 = Model_findTask(&m, 2);
    assert_string_equal(t2->name, "conn");
    assert_string_equal(t2->waits_on, "read #9");
    assert_string_equal(t2->created_at, "handle_conn server.c:120");
    assert_string_equal(t2->where, "at_stream_read io.c:31");
    assert_int_equal(t2->stack_key, 7);
    assert_int_equal(t2->wait_since_ns, 1000000);
    assert_string_equal(Model_findTask(&m, 1)->name, "handle_conn"); /* from entry site */
    assert_int_equal(Model_findTask(&m, 3)->state, TS_OTHER);
    assert_int_equal(m.slow_threshold_ns, 50000000);
    assert_false(m.debug);
    /* the callback running for 100 ms counts as busy: busy (100 ms + 1 us) of 100 ms + 4 us */
    assert_true(m.loop.utilisation > 0.99 && m.loop.utilisation <= 1.0);
    assert_int_equal(m.loop.nhandles, 1);
    assert_string_equal(m.loop.handles[0].name, "tcp");
    assert_int_equal(Model_droppedTotal(&m), 4);
    /* 10 samples in bucket 60 ([4 * 2^14, 5 * 2^14)): p99 interpolated near the bucket's top, not
     * its lower bound (a power of two, below every sample) */
    assert_true(m.loop.lag_p99_ns > at_wire_hist_lower(60) &&
                m.loop.lag_p99_ns < at_wire_hist_upper(60));
    assert_true((m.loop.lag_p99_ns & (m.loop.lag_p99_ns - 1)) != 0);
    assert_int_equal(m.loop.lag_p99_ns,
                     at_wire_hist_quantile(&(at_wire_hist_t){80, lag}, 0.99, 0, UINT64_MAX));
    /* running for 100 ms with a 50 ms threshold: blocked, with its stack */
    assert_true(m.blocked);
    assert_int_equal(m.blocked_for_ns, 100000000ull);
    assert_string_equal(m.blocked_callback, "handle_conn");
    assert_string_equal(m.blocked_task, "conn");
    assert_int_equal(m.blocked_stack.n, 2);

    /* a delta: task 2 changes, 3 goes, 4 arrives; a slow event and an exception */
    at_wire_task_t changed = wtask(2, AT_WIRE_TASK_READY, 1);
    at_wire_task_t added = wtask(4, AT_WIRE_TASK_WAITING, 99 /* unknown parent */);
    uint64_t gone[] = {3, 12345};
    at_wire_slow_t slow = {.seq = 1,
                           .start_ns = 5,
                           .dur_ns = 300000000,
                           .site = 1,
                           .task = 2,
                           .stack = 7,
                           .sched_stack = 999 /* unknown: ignored */};
    at_wire_exc_t exc = {.seq = 1,
                         .kind = AT_WIRE_EXC_NEVER_RETRIEVED,
                         .code = -104,
                         .domain = "uv",
                         .message = "reset",
                         .object = 5,
                         .obj_type = "future",
                         .raise_stack = 7};
    memset(&msg, 0, sizeof msg);
    msg.type = AT_WIRE_UPDATE;
    u = &msg.u.update;
    u->ts_ns = 3000000000ull;
    u->config = (at_wire_config_t){true, 50000000, true, false};
    u->n_tasks_changed = 1;
    u->tasks_changed = &changed;
    u->n_tasks_new = 1;
    u->tasks_new = &added;
    u->n_tasks_gone = 2;
    u->tasks_gone = gone;
    u->n_slow = 1;
    u->slow = &slow;
    u->n_exc = 1;
    u->exc = &exc;
    u->has_stats = true;
    u->stats.busy_ns = 100000000ull + 2000; /* the running callback ended: its 100 ms are in */
    u->stats.idle_ns = 4000;
    u->stats.callbacks = 1100;
    uint64_t gen = m.gen;
    assert_int_equal(Applier_apply(&a, &msg, 30), 0);
    assert_true(m.gen > gen);
    assert_false(m.blocked); /* no running callback now */
    assert_int_equal(Model_findTask(&m, 2)->state, TS_READY);
    assert_string_equal(Model_findTask(&m, 2)->waits_on, "");
    assert_true(Model_findTask(&m, 3)->gone_ms != 0); /* lingers */
    assert_non_null(Model_findTask(&m, 4));
    /* rates from differences: 1000 callbacks in 1 s; busy 1000 of 2000 */
    assert_true(m.loop.callbacks_per_s > 999 && m.loop.callbacks_per_s < 1001);
    assert_true(m.loop.utilisation > 0.49 && m.loop.utilisation < 0.51);
    const SlowEvent *se = Model_slowAt(&m, 0);
    assert_string_equal(se->callback, "handle_conn");
    assert_string_equal(se->task_name, "handle_conn"); /* renamed by the delta */
    assert_int_equal(se->stack.n, 2);
    assert_int_equal(se->scheduled_from.n, 0);
    const ExcEvent *ee = Model_excAt(&m, 0);
    assert_int_equal(ee->kind, EXC_NEVER_RETRIEVED);
    assert_int_equal(ee->code, -104);
    assert_string_equal(ee->domain, "uv");
    assert_string_equal(ee->severity, "error");
    assert_string_equal(ee->object, "future #5");
    assert_string_equal(ee->site, "at_stream_read io.c:31");

    /* a response to a set_config and to a task_detail */
    Model_clearDetail(&m, 2);
    at_wire_loc_t locs[] = {{1, "a", "a.c", 1}, {2, "b", NULL, 0}};
    uint64_t kids[] = {4};
    uint64_t steps[70] = {0};
    steps[64] = 3;
    memset(&msg, 0, sizeof msg);
    msg.type = AT_WIRE_RESPONSE;
    msg.u.response.op = AT_WIRE_OP_TASK_DETAIL;
    msg.u.response.has_detail = true;
    msg.u.response.detail.task = changed;
    msg.u.response.detail.n_suspend = 2;
    msg.u.response.detail.suspend = locs;
    msg.u.response.detail.n_children = 1;
    msg.u.response.detail.children = kids;
    msg.u.response.detail.step_hist = (at_wire_hist_t){70, steps};
    Applier_apply(&a, &msg, 40);
    assert_true(m.detail_ready);
    assert_int_equal(m.detail_suspend.n, 2);
    assert_string_equal(m.detail_suspend.f[1].func, "b");
    assert_int_equal(m.detail_nchildren, 1);
    uint64_t sum = 0;
    for (unsigned i = 0; i < MODEL_HIST_BUCKETS; i++)
        sum += m.detail_hist[i];
    assert_int_equal(sum, 3);
    memset(&msg, 0, sizeof msg);
    msg.type = AT_WIRE_RESPONSE;
    msg.u.response.op = AT_WIRE_OP_SET_CONFIG;
    msg.u.response.has_config = true;
    msg.u.response.config = (at_wire_config_t){true, 20000000, false, false};
    Applier_apply(&a, &msg, 50);
    assert_int_equal(m.slow_threshold_ns, 20000000);

    /* a new snapshot replaces tasks and the interned tables */
    memset(&msg, 0, sizeof msg);
    msg.type = AT_WIRE_UPDATE;
    msg.u.update.full = true;
    at_wire_task_t only = wtask(50, AT_WIRE_TASK_WAITING, 0);
    msg.u.update.n_tasks_new = 1;
    msg.u.update.tasks_new = &only;
    Applier_apply(&a, &msg, 60);
    assert_int_equal(m.ntasks, 1);
    assert_string_equal(Model_findTask(&m, 50)->created_at, "site #1"); /* table was dropped */
    /* other message types are not applied */
    memset(&msg, 0, sizeof msg);
    msg.type = AT_WIRE_BYE;
    assert_int_equal(Applier_apply(&a, &msg, 70), -1);
    Applier_done(&a);
    Model_done(&m);
}

static void test_hist(void **state)
{
    assert_int_equal(Hist_bucket(0), 0);
    assert_int_equal(Hist_bucket(1500), 1);
    assert_int_equal(Hist_bucket(UINT64_MAX), MODEL_HIST_BUCKETS - 1);
}

/* A loop blocked in one callback: busy_ns and idle_ns stand still between updates, the
 * running callback's time grows; the header must read 100%, not 0%. */
static void test_applier_blocked_utilisation(void **state)
{
    (void)state;
    Model m;
    Applier a;
    Model_init(&m);
    Applier_init(&a, &m);
    at_wire_msg_t msg;
    for (int i = 0; i < 4; i++) {
        memset(&msg, 0, sizeof msg);
        msg.type = AT_WIRE_UPDATE;
        at_wire_update_t *u = &msg.u.update;
        u->full = i == 0;
        u->ts_ns = 10000000000ull + (uint64_t)i * 500000000ull;
        u->config = (at_wire_config_t){true, 100000000, true, false};
        u->has_stats = true;
        u->stats.busy_ns = 2000000000ull;
        u->stats.idle_ns = 8000000000ull;
        u->stats.callbacks = 50;
        if (i > 0) /* blocked since 10 s */
            u->running = (at_wire_running_t){true, 10000000000ull, AT_WIRE_CB_TIMER, 0, NULL, 0, 0};
        assert_int_equal(Applier_apply(&a, &msg, 100 + (uint64_t)i * 500), 0);
        if (i == 0)
            assert_true(m.loop.utilisation > 0.19 && m.loop.utilisation < 0.21);
        else
            assert_true(m.loop.utilisation > 0.999);
    }
    assert_true(m.blocked);
    /* the callback returns after 1.7 s: busy grows by all of it, only the rest is new */
    memset(&msg, 0, sizeof msg);
    msg.type = AT_WIRE_UPDATE;
    msg.u.update.ts_ns = 12000000000ull;
    msg.u.update.has_stats = true;
    msg.u.update.stats.busy_ns = 2000000000ull + 1700000000ull;
    msg.u.update.stats.idle_ns = 8000000000ull + 300000000ull;
    assert_int_equal(Applier_apply(&a, &msg, 2100), 0);
    /* since the last update (running 1.5 s): 0.2 s busy, 0.3 s idle */
    assert_true(m.loop.utilisation > 0.39 && m.loop.utilisation < 0.41);
    assert_false(m.blocked);
    Applier_done(&a);
    Model_done(&m);
}

/* Wire additions: a row's wait description replaces "kind #obj"; the running callback's
 * task name is used even for a task the model does not hold. */
static void test_applier_wait_desc_and_running_task(void **state)
{
    (void)state;
    Model m;
    Applier a;
    Model_init(&m);
    Applier_init(&a, &m);
    at_wire_task_t rows[2] = {wtask(1, AT_WIRE_TASK_WAITING, 0), wtask(2, AT_WIRE_TASK_WAITING, 0)};
    rows[0].wait_desc = "sleep 5.000 s";
    at_wire_msg_t msg;
    memset(&msg, 0, sizeof msg);
    msg.type = AT_WIRE_UPDATE;
    at_wire_update_t *u = &msg.u.update;
    u->full = true;
    u->ts_ns = 5000000000ull;
    u->config = (at_wire_config_t){true, 100000000, true, false};
    u->n_tasks_new = 2;
    u->tasks_new = rows;
    u->running = (at_wire_running_t){true, 4000000000ull, AT_WIRE_CB_TASK_STEP, 0, "step", 77,
                                     0,    "crunch-7"};
    assert_int_equal(Applier_apply(&a, &msg, 10), 0);
    assert_string_equal(Model_findTask(&m, 1)->waits_on, "sleep 5.000 s");
    assert_string_equal(Model_findTask(&m, 2)->waits_on, "read #9"); /* no description */
    assert_true(m.blocked);
    assert_string_equal(m.blocked_task, "crunch-7"); /* task 77 is not in the model */
    Applier_done(&a);
    Model_done(&m);
}

static void test_applier_bounds(void **state)
{
    Model m;
    Applier a;
    Model_init(&m);
    Applier_init(&a, &m);
    /* sites with id 0 are refused; a huge interned stack is cut */
    uint32_t *many = calloc(10000, sizeof *many);
    for (int i = 0; i < 10000; i++)
        many[i] = 1;
    at_wire_site_t s[2] = {{0, {0, "zero", NULL, 0}}, {1, {0, "f", NULL, 0}}};
    at_wire_stack_t st = {5, 10000, many};
    at_wire_msg_t msg;
    memset(&msg, 0, sizeof msg);
    msg.type = AT_WIRE_UPDATE;
    msg.u.update.n_sites = 2;
    msg.u.update.sites = s;
    msg.u.update.n_stacks = 1;
    msg.u.update.stacks = &st;
    Applier_apply(&a, &msg, 1);
    assert_int_equal(m.rejected, 1);
    Stack out = {0, NULL};
    Applier_stack(&a, 5, &out);
    assert_int_equal(out.n, MODEL_MAX_FRAMES);
    Stack_free(&out);
    free(many);
    Applier_done(&a);
    Model_done(&m);
}

/* A task cancelled (or failed) and released within one exporter interval arrives only in
 * tasks_gone, its final state in tasks_gone_state: it must linger as that, not as done. */
static void test_applier_gone_final_state(void **state)
{
    Model m;
    Applier a;
    Model_init(&m);
    Applier_init(&a, &m);
    at_wire_task_t tasks[4] = {wtask(1, AT_WIRE_TASK_WAITING, 0), wtask(2, AT_WIRE_TASK_WAITING, 0),
                               wtask(3, AT_WIRE_TASK_WAITING, 0),
                               wtask(4, AT_WIRE_TASK_WAITING, 0)};
    at_wire_msg_t msg;
    memset(&msg, 0, sizeof msg);
    msg.type = AT_WIRE_UPDATE;
    at_wire_update_t *u = &msg.u.update;
    u->full = true;
    u->ts_ns = 1000000000ull;
    u->n_tasks_new = 4;
    u->tasks_new = tasks;
    assert_int_equal(Applier_apply(&a, &msg, 10), 0);
    assert_int_equal(m.by_state[TS_WAITING], 4);
    const uint64_t gone[] = {1, 2, 3};
    const uint64_t how[] = {AT_WIRE_TASK_CANCELLED, AT_WIRE_TASK_FAILED, AT_WIRE_TASK_WAITING};
    memset(&msg, 0, sizeof msg);
    msg.type = AT_WIRE_UPDATE;
    u->ts_ns = 2000000000ull;
    u->n_tasks_gone = 3;
    u->tasks_gone = gone;
    u->n_tasks_gone_state = 3;
    u->tasks_gone_state = how;
    assert_int_equal(Applier_apply(&a, &msg, 20), 0);
    assert_int_equal(Model_findTask(&m, 1)->state, TS_CANCELLED);
    assert_int_equal(Model_findTask(&m, 2)->state, TS_FAILED);
    assert_int_equal(Model_findTask(&m, 3)->state, TS_DONE); /* released pending: ended normally */
    for (uint64_t id = 1; id <= 3; id++) {
        assert_true(Model_findTask(&m, id)->gone_ms != 0);
        assert_string_equal(Model_findTask(&m, id)->waits_on, "");
    }
    /* no (or a mismatched) state list: as before, a pending task lingers as done */
    const uint64_t gone4[] = {4};
    u->tasks_gone = gone4;
    u->n_tasks_gone = 1;
    assert_int_equal(Applier_apply(&a, &msg, 30), 0);
    assert_int_equal(Model_findTask(&m, 4)->state, TS_DONE);
    assert_int_equal(m.by_state[TS_WAITING], 0);
    Applier_done(&a);
    Model_done(&m);
}

/* The loop table: hello lists the loops, updates bring their counters (rates between two),
 * selection steps through the live ones in id order and wraps, a loop missing from a later
 * list (or the update's loop_gone) is closed, closed loops are never revived, and switching
 * loops keeps what is about the process. */
static void test_loops_selection(void **state)
{
    Model m;
    Applier a;
    Model_init(&m);
    Applier_init(&a, &m);
    at_wire_msg_t msg;
    memset(&msg, 0, sizeof msg);
    msg.type = AT_WIRE_HELLO;
    at_wire_loop_info_t hl[] = {
        {.id = 0, .name = "main", .tid = 100, .thread = "srv", .kind = "uv", .addr = 0x1000},
        {.id = 7, .tid = 101, .thread = "worker\x01", .kind = "uv"},
        {.id = 3, .tid = 102}};
    msg.u.hello = (at_wire_hello_t){.version = 1,
                                    .pid = 100,
                                    .program = "srv",
                                    .runtime_version = "0.1.0",
                                    .config = {true, 100000000, true, false},
                                    .n_loops = 3,
                                    .loops = hl};
    assert_int_equal(Applier_apply(&a, &msg, 1), 0);
    assert_int_equal(m.nloops, 3);
    /* kept in id order, whatever order they came in */
    assert_int_equal(m.loops[0].id, 0);
    assert_int_equal(m.loops[1].id, 3);
    assert_int_equal(m.loops[2].id, 7);
    assert_string_equal(Model_loop(&m, 7)->thread, "worker\x01"); /* outputs sanitise */
    assert_int_equal(Model_liveLoops(&m), 3);
    assert_int_equal(m.loops_seen, 3);
    assert_int_equal(Model_loopPosition(&m, 0), 1);
    assert_int_equal(Model_loopPosition(&m, 7), 3);
    char d[160];
    LoopInfo_describe(Model_loop(&m, 0), d, sizeof d);
    assert_string_equal(d, "thread 100 'srv', uv loop 0x1000");
    LoopInfo_describe(Model_loop(&m, 3), d, sizeof d);
    assert_string_equal(d, "thread 102");

    /* stepping: next/previous in id order, wrapping */
    uint32_t id = 99;
    assert_true(Model_nextLoop(&m, 0, 1, &id));
    assert_int_equal(id, 3);
    assert_true(Model_nextLoop(&m, 3, 1, &id));
    assert_int_equal(id, 7);
    assert_true(Model_nextLoop(&m, 7, 1, &id));
    assert_int_equal(id, 0);
    assert_true(Model_nextLoop(&m, 0, -1, &id));
    assert_int_equal(id, 7);
    assert_true(Model_nextLoop(&m, 5, -1, &id)); /* from an id it does not hold */
    assert_int_equal(id, 3);

    /* an update on loop 7 with every loop's counters; a second one gives rates */
    at_wire_loop_info_t ul[] = {
        {.id = 0, .tid = 100, .has_stats = true, .busy_ns = 100, .idle_ns = 900, .callbacks = 10},
        {.id = 3, .tid = 102, .has_stats = true, .busy_ns = 0, .idle_ns = 0},
        {.id = 7,
         .tid = 101,
         .thread = "worker",
         .has_stats = true,
         .busy_ns = 500,
         .idle_ns = 500,
         .callbacks = 1000,
         .slow = 4,
         .pending = 12}};
    memset(&msg, 0, sizeof msg);
    msg.type = AT_WIRE_UPDATE;
    at_wire_update_t *u = &msg.u.update;
    u->full = true;
    u->loop = 7;
    u->ts_ns = 1000000000ull;
    u->config = (at_wire_config_t){true, 100000000, true, false};
    u->n_loops = 3;
    u->loops = ul;
    assert_int_equal(Applier_apply(&a, &msg, 2), 0);
    assert_int_equal(m.loop_id, 7);
    assert_false(m.loop_gone);
    const LoopInfo *w = Model_loop(&m, 7);
    assert_true(w->has_stats);
    assert_int_equal(w->pending, 12);
    assert_int_equal(w->slow, 4);
    assert_true(w->utilisation > 0.49 && w->utilisation < 0.51); /* since start: 500/1000 */
    ul[2].busy_ns = 1400; /* +900 busy, +100 idle in 0.5 s, +500 callbacks */
    ul[2].idle_ns = 600;
    ul[2].callbacks = 1500;
    u->full = false;
    u->seq = 1;
    u->ts_ns = 1500000000ull;
    assert_int_equal(Applier_apply(&a, &msg, 3), 0);
    assert_true(w->utilisation > 0.89 && w->utilisation < 0.91);
    assert_true(w->callbacks_per_s > 999 && w->callbacks_per_s < 1001);
    assert_true(Model_loop(&m, 0)->utilisation < 0.11); /* each loop its own figures */
    assert_false(LoopInfo_blocked(w, &m));
    /* stuck 0.3 s in one callback since (running_ns): counted busy, and blocked past the
     * threshold (100 ms) */
    ul[2].running_ns = 300000000ull;
    ul[2].idle_ns = 600;
    u->seq = 2;
    u->ts_ns = 2000000000ull;
    assert_int_equal(Applier_apply(&a, &msg, 4), 0);
    assert_true(w->utilisation > 0.99);
    assert_true(LoopInfo_blocked(w, &m));
    assert_int_equal(w->running_ns, 300000000ull);
    ul[2].running_ns = 0;

    /* switching loops keeps the process and the loop table, drops the loop's own state */
    TaskRow tr = row(5, "t", TS_WAITING);
    assert_int_equal(Model_upsertTask(&m, &tr, 3), 0);
    uint64_t gen = m.gen;
    Model_resetLoop(&m);
    assert_true(m.gen > gen); /* views built on the old tasks see they are stale */
    assert_int_equal(m.ntasks, 0);
    assert_int_equal(m.pid, 100);
    assert_string_equal(m.program, "srv");
    assert_int_equal(m.slow_threshold_ns, 100000000);
    assert_int_equal(m.nloops, 3);
    assert_int_equal(Model_loop(&m, 7)->pending, 12);
    Applier_done(&a);
    Applier_init(&a, &m);

    /* loop 3 is no longer listed: closed; stepping skips it; it is never revived */
    u->full = true;
    u->loop = 7;
    ul[1] = ul[2];
    u->n_loops = 2;
    assert_int_equal(Applier_apply(&a, &msg, 4), 0);
    assert_true(Model_loop(&m, 3)->gone);
    assert_int_equal(Model_liveLoops(&m), 2);
    assert_int_equal(Model_loopPosition(&m, 3), 0);
    assert_int_equal(Model_loopPosition(&m, 7), 2);
    assert_true(Model_nextLoop(&m, 0, 1, &id));
    assert_int_equal(id, 7);
    assert_true(Model_nextLoop(&m, 7, 1, &id));
    assert_int_equal(id, 0);
    at_wire_loop_info_t back[] = {{.id = 0}, {.id = 3}, {.id = 7}};
    u->loops = back;
    u->n_loops = 3;
    assert_int_equal(Applier_apply(&a, &msg, 5), 0);
    assert_true(Model_loop(&m, 3)->gone);
    assert_false(m.loop_gone);

    /* the loop shown closes (the update says so): fall back to the main loop */
    u->loop_gone = true;
    u->n_loops = 1;
    assert_int_equal(Applier_apply(&a, &msg, 6), 0);
    assert_true(m.loop_gone);
    assert_true(Model_loop(&m, 7)->gone);
    assert_true(Model_fallbackLoop(&m, &id));
    assert_int_equal(id, 0);
    assert_false(Model_nextLoop(&m, 0, 1, &id)); /* no other loop left */
    assert_int_equal(m.loops_seen, 3);           /* the header still names the loop */
    /* ... and when the main loop is gone too, the oldest live one; none: false */
    at_wire_loop_info_t late[] = {{.id = 9}};
    u->loops = late;
    assert_int_equal(Applier_apply(&a, &msg, 7), 0);
    assert_true(Model_fallbackLoop(&m, &id));
    assert_int_equal(id, 9);
    Model_setLoops(&m, NULL, 0, 0);
    assert_false(Model_fallbackLoop(&m, &id));
    assert_int_equal(Model_liveLoops(&m), 0);

    /* bounded: at most MODEL_MAX_LOOPS entries; closed ones make room (not the one shown) */
    m.loop_id = 100;
    LoopRow many[MODEL_MAX_LOOPS];
    for (uint32_t i = 0; i < MODEL_MAX_LOOPS; i++)
        many[i] = (LoopRow){.id = 100 + i};
    Model_setLoops(&m, many, MODEL_MAX_LOOPS, 0);
    assert_int_equal(m.nloops, MODEL_MAX_LOOPS);
    assert_int_equal(Model_liveLoops(&m), MODEL_MAX_LOOPS);
    uint64_t rejected = m.rejected;
    LoopRow one = {.id = 5000};
    Model_setLoops(&m, many, MODEL_MAX_LOOPS, 0); /* all live: nothing more fits */
    Model_setLoops(&m, &one, 1, 0);               /* now they are all closed: room */
    assert_int_equal(m.rejected, rejected);
    assert_non_null(Model_loop(&m, 5000));
    assert_int_equal(Model_liveLoops(&m), 1);
    Applier_done(&a);
    Model_done(&m);
}

/* Issue 14: a snapshot (after resume, or a resync) resends the runtime's event log; events
 * already delivered on this connection are recognised by seq and not added again, so the
 * count of slow events held matches the process's own count however often it is paused. */
static void test_applier_events_dedup(void **state)
{
    (void)state;
    Model m;
    Applier a;
    Model_init(&m);
    Applier_init(&a, &m);
    /* the log: slow events 1, 2, 4 and exception 3 (one sequence for both) */
    at_wire_slow_t slow[4];
    memset(slow, 0, sizeof slow);
    uint64_t slow_seq[] = {1, 2, 4, 5};
    for (int i = 0; i < 4; i++) {
        slow[i].seq = slow_seq[i];
        slow[i].dur_ns = 200000000ull;
        slow[i].name = "slow_cb";
    }
    at_wire_exc_t exc[2];
    memset(exc, 0, sizeof exc);
    exc[0].seq = 3;
    exc[0].message = "boom";
    exc[1].seq = 6;
    exc[1].message = "bang";
    at_wire_msg_t msg;
    for (int round = 0; round < 3; round++) { /* attach, then two pause/resume snapshots */
        memset(&msg, 0, sizeof msg);
        msg.type = AT_WIRE_UPDATE;
        at_wire_update_t *u = &msg.u.update;
        u->full = true;
        u->ts_ns = 1000000000ull * (uint64_t)(round + 1);
        u->config = (at_wire_config_t){true, 100000000, true, false};
        u->has_stats = true;
        u->stats.slow = 3;
        u->stats.errors = 1;
        u->n_slow = 3;
        u->slow = slow;
        u->n_exc = 1;
        u->exc = exc;
        assert_int_equal(Applier_apply(&a, &msg, 10 + (uint64_t)round), 0);
        assert_int_equal(m.nslow, 3);
        assert_int_equal(m.nexc, 1);
        assert_int_equal(Model_site(&m, "slow_cb")->count, 3);
        assert_int_equal(m.missed, 0);
    }
    /* a delta, then a snapshot resending the whole log with the new ones: only those count */
    memset(&msg, 0, sizeof msg);
    msg.type = AT_WIRE_UPDATE;
    msg.u.update.ts_ns = 5000000000ull;
    msg.u.update.n_slow = 1;
    msg.u.update.slow = &slow[3];
    assert_int_equal(Applier_apply(&a, &msg, 20), 0);
    assert_int_equal(m.nslow, 4);
    msg.u.update.full = true;
    msg.u.update.n_slow = 4;
    msg.u.update.slow = slow;
    msg.u.update.n_exc = 2;
    msg.u.update.exc = exc;
    assert_int_equal(Applier_apply(&a, &msg, 21), 0);
    assert_int_equal(m.nslow, 4);
    assert_int_equal(m.nexc, 2);
    assert_string_equal(Model_excAt(&m, 0)->message, "bang");
    assert_int_equal(m.missed, 0);
    Applier_done(&a);
    Model_done(&m);
}

/* Issue 14: one group is one row with the right count, and a group's task list keeps showing
 * its tasks across updates: groups are by stack content (not the stack's id, which may change
 * for the same frames), and tasks with no stack are grouped by where and the kind of wait
 * (not "read #100" vs "read #101", nor "sleep 0.603 s" vs "sleep 0.531 s"). */
static void test_applier_groups_stable(void **state)
{
    (void)state;
    Model m;
    Applier a;
    Model_init(&m);
    Applier_init(&a, &m);
    static const at_wire_stack_t two[] = {{7, 2, stack1_sites}, {8, 2, stack1_sites}};
    at_wire_task_t rows[9];
    for (int i = 0; i < 3; i++) /* three sleepers on stack 7 */
        rows[i] = wtask(1 + (uint64_t)i, AT_WIRE_TASK_WAITING, 0);
    for (int i = 3; i < 7; i++) { /* four readers with no stack yet, each on its own socket */
        rows[i] = wtask(10 + (uint64_t)i, AT_WIRE_TASK_WAITING, 0);
        rows[i].stack = 0;
        rows[i].wait_obj = 100 + (uint64_t)i;
    }
    for (int i = 7; i < 9; i++) { /* two sleepers whose description says the time left */
        rows[i] = wtask(20 + (uint64_t)i, AT_WIRE_TASK_WAITING, 0);
        rows[i].stack = 0;
        rows[i].wait_kind = AT_WIRE_WAIT_SLEEP;
        rows[i].wait_desc = i == 7 ? "sleep 0.603 s" : "sleep 0.531 s";
    }
    at_wire_msg_t msg;
    memset(&msg, 0, sizeof msg);
    msg.type = AT_WIRE_UPDATE;
    at_wire_update_t *u = &msg.u.update;
    u->full = true;
    u->ts_ns = 5000000000ull;
    u->n_sites = 3;
    u->sites = sites;
    u->n_stacks = 2;
    u->stacks = two;
    u->n_tasks_new = 9;
    u->tasks_new = rows;
    assert_int_equal(Applier_apply(&a, &msg, 10), 0);
    TaskGroups g;
    TaskGroups_init(&g);
    TaskGroups_update(&g, &m);
    assert_int_equal(g.n, 3);
    assert_int_equal(g.g[0].count, 4);
    assert_int_equal(g.g[1].count, 3);
    assert_int_equal(g.g[2].count, 2);
    /* Enter on the group of three */
    TaskView v;
    TaskView_init(&v);
    v.by_group = true;
    v.group_key = g.g[1].key;
    TaskView_update(&v, &m);
    assert_int_equal(v.n, 3);
    /* the next update: the same frames under another stack id, new times left */
    for (int i = 0; i < 3; i++)
        rows[i].stack = 8;
    rows[7].wait_desc = "sleep 0.402 s";
    rows[8].wait_desc = "sleep 0.330 s";
    memset(&msg, 0, sizeof msg);
    msg.type = AT_WIRE_UPDATE;
    u->ts_ns = 6000000000ull;
    u->n_tasks_changed = 9;
    u->tasks_changed = rows;
    assert_int_equal(Applier_apply(&a, &msg, 20), 0);
    TaskView_update(&v, &m);
    assert_int_equal(v.n, 3);
    TaskGroups_update(&g, &m);
    assert_int_equal(g.n, 3);
    assert_int_equal(g.g[2].count, 2);
    TaskView_done(&v);
    TaskGroups_done(&g);
    Applier_done(&a);
    Model_done(&m);
}

/* Issue 14: dump --json's task rows carry stack_id; the document has the table those ids
 * refer to, with symbolised frames (innermost first). */
static void test_json_stacks_table(void **state)
{
    (void)state;
    Model m;
    Applier a;
    Model_init(&m);
    Applier_init(&a, &m);
    at_wire_task_t rows[3] = {wtask(1, AT_WIRE_TASK_WAITING, 0), wtask(2, AT_WIRE_TASK_WAITING, 0),
                              wtask(3, AT_WIRE_TASK_READY, 0)};
    rows[2].stack = 0;
    at_wire_msg_t msg;
    memset(&msg, 0, sizeof msg);
    msg.type = AT_WIRE_UPDATE;
    at_wire_update_t *u = &msg.u.update;
    u->full = true;
    u->ts_ns = 5000000000ull;
    u->n_sites = 3;
    u->sites = sites;
    u->n_stacks = 1;
    u->stacks = stacks;
    u->n_tasks_new = 3;
    u->tasks_new = rows;
    assert_int_equal(Applier_apply(&a, &msg, 10), 0);
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    assert_non_null(f);
    Report_json(f, &m, &a);
    fclose(f);
    assert_non_null(strstr(buf, "\"stack_id\":7}"));
    /* each frame's module build-id: lowercase hex as sent, else null */
    assert_non_null(strstr(buf, "\"stacks\":{\"7\":[{\"func\":\"at_stream_read\",\"file\":"
                                "\"io.c\",\"line\":31,\"addr\":32,\"build_id\":null},"
                                "{\"func\":\"handle_conn\",\"file\":\"/src/server.c\",\"line\":120,"
                                "\"addr\":16,\"build_id\":\"0c29039453e58b2d\"}]}"));
    free(buf);
    Applier_done(&a);
    Model_done(&m);
}

/* The inspector's words for states and kinds are the wire's (wire_common.c), not copies of
 * them; the one exception is dump --json's "unclosed_resource". */
static void test_names_are_the_wires(void **state)
{
    for (int i = 0; i < AT_WIRE_TASK_NSTATES; i++)
        assert_string_equal(TaskState_name((unsigned)i), at_wire_task_state_name(i));
    assert_string_equal(TaskState_name(TS_OTHER), "other");
    for (int k = 0; at_wire_exc_kind_name(k); k++)
        if (k != AT_WIRE_EXC_UNCLOSED)
            assert_string_equal(ExcKind_name((unsigned)k), at_wire_exc_kind_name(k));
    assert_string_equal(ExcKind_name(AT_WIRE_EXC_UNCLOSED), "unclosed_resource");
    for (int k = 1; at_wire_wait_kind_name(k); k++)
        assert_string_equal(Applier_waitKindName((unsigned)k), at_wire_wait_kind_name(k));
    for (int k = 0; at_wire_cb_kind_name(k); k++)
        assert_string_equal(Applier_cbKindName((unsigned)k), at_wire_cb_kind_name(k));
    assert_string_equal(Applier_cbKindName(99), "callback");
    assert_string_equal(Applier_waitKindName(99), "wait?");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names_are_the_wires),
        cmocka_unit_test(test_upsert_find_remove),
        cmocka_unit_test(test_validation),
        cmocka_unit_test(test_rings_and_sites),
        cmocka_unit_test(test_applier_snapshot_delta),
        cmocka_unit_test(test_hist),
        cmocka_unit_test(test_applier_bounds),
        cmocka_unit_test(test_applier_blocked_utilisation),
        cmocka_unit_test(test_applier_wait_desc_and_running_task),
        cmocka_unit_test(test_loops_selection),
        cmocka_unit_test(test_applier_gone_final_state),
        cmocka_unit_test(test_applier_events_dedup),
        cmocka_unit_test(test_applier_groups_stable),
        cmocka_unit_test(test_json_stacks_table),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

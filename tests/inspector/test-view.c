/* test-view.c: sorting and filtering of the task table, the cycle-safe tree,
 * grouping by stack, the key table, and the ps/pstree/JSON reports. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "Action.h"
#include "Header.h"
#include "Model.h"
#include "Panel.h"
#include "Report.h"
#include "ScreenManager.h"
#include "Screens.h"
#include "TaskColumn.h"
#include "TaskTree.h"
#include "TaskView.h"

static void add(Model *m, uint64_t id, uint64_t parent, const char *name, int state,
                const char *waits, uint64_t busy, uint64_t stack)
{
    TaskRow r;
    memset(&r, 0, sizeof r);
    r.id = id;
    r.parent = parent;
    r.name = name;
    r.name_len = SIZE_MAX;
    r.waits_on = waits;
    r.waits_on_len = SIZE_MAX;
    r.state = state;
    r.busy_ns = busy;
    r.stack_key = stack;
    r.created_ns = 1000 * id;
    r.wait_since_ns = state == TS_WAITING ? 1000000 + id : 0;
    assert_int_equal(Model_upsertTask(m, &r, 1), 0);
}

static Model *fixture(void)
{
    Model *m = calloc(1, sizeof *m);
    Model_init(m);
    m->now_ns = 10000000000ull;
    add(m, 3, 0, "charlie", TS_WAITING, "read #1", 30, 7);
    add(m, 1, 0, "alpha", TS_RUNNING, "", 50, 0);
    add(m, 2, 1, "bravo", TS_WAITING, "lock #2", 10, 7);
    add(m, 4, 1, "delta", TS_READY, "", 40, 8);
    add(m, 5, 2, "echo-conn", TS_WAITING, "read #9", 20, 7);
    return m;
}

static void fixture_free(Model *m)
{
    Model_done(m);
    free(m);
}

static void ids(const TaskView *v, const uint64_t *want, uint32_t n)
{
    assert_int_equal(v->n, n);
    for (uint32_t i = 0; i < n; i++)
        assert_int_equal(v->rows[i]->id, want[i]);
}

static void test_sort(void **state)
{
    Model *m = fixture();
    TaskView v;
    TaskView_init(&v);
    assert_true(TaskView_update(&v, m));
    ids(&v, (uint64_t[]){1, 2, 3, 4, 5}, 5);
    assert_false(TaskView_update(&v, m)); /* nothing changed: no rebuild */
    TaskView_setSort(&v, TC_NAME, false);
    TaskView_update(&v, m);
    ids(&v, (uint64_t[]){1, 2, 3, 4, 5}, 5);
    TaskView_setSort(&v, TC_BUSY, true);
    TaskView_update(&v, m);
    ids(&v, (uint64_t[]){1, 4, 3, 5, 2}, 5);
    TaskView_setSort(&v, TC_BUSY, false);
    TaskView_update(&v, m);
    ids(&v, (uint64_t[]){2, 5, 3, 4, 1}, 5);
    /* waiting: non-waiting tasks count as 0; ties by id, inverted with the order */
    TaskView_setSort(&v, TC_WAITING, true);
    TaskView_update(&v, m);
    ids(&v, (uint64_t[]){2, 3, 5, 4, 1}, 5);
    TaskView_setSort(&v, TC_STATE, false);
    TaskView_update(&v, m);
    assert_int_equal(v.rows[0]->state, TS_READY);
    assert_int_equal(v.rows[4]->state, TS_WAITING);
    /* a model change rebuilds */
    add(m, 6, 0, "aaa", TS_READY, "", 0, 0);
    assert_true(TaskView_update(&v, m));
    assert_int_equal(v.n, 6);
    /* every column sorts and formats */
    for (int c = 0; c < TC_COUNT; c++) {
        TaskView_setSort(&v, (TaskColumn)c, c % 2);
        TaskView_update(&v, m);
        assert_int_equal(v.n, 6);
        for (uint32_t i = 1; i < v.n; i++) {
            int r = TaskColumn_compare((TaskColumn)c, v.rows[i - 1], v.rows[i], m);
            assert_true(c % 2 ? r > 0 : r < 0);
        }
        char buf[64];
        TaskColumn_format((TaskColumn)c, v.rows[0], m, buf, sizeof buf);
        assert_true(buf[0] != '\0');
        assert_int_equal(TaskColumn_byName(TaskColumn_info[c].name), c);
    }
    assert_int_equal(TaskColumn_byName("nope"), -1);
    TaskView_done(&v);
    fixture_free(m);
}

static void test_filter(void **state)
{
    Model *m = fixture();
    TaskView v;
    TaskView_init(&v);
    TaskView_setFilter(&v, "CONN");
    TaskView_update(&v, m);
    ids(&v, (uint64_t[]){5}, 1);
    TaskView_setFilter(&v, "read #");
    TaskView_update(&v, m);
    ids(&v, (uint64_t[]){3, 5}, 2);
    TaskView_setFilter(&v, "read"); /* "ready" matches too */
    TaskView_update(&v, m);
    ids(&v, (uint64_t[]){3, 4, 5}, 3);
    TaskView_setFilter(&v, "waiting");
    TaskView_update(&v, m);
    assert_int_equal(v.n, 3);
    TaskView_setFilter(&v, "4");
    TaskView_update(&v, m);
    ids(&v, (uint64_t[]){4}, 1);
    TaskView_setFilter(&v, "zzz");
    TaskView_update(&v, m);
    assert_int_equal(v.n, 0);
    assert_int_equal(TaskView_find(&v, 1), -1);
    TaskView_setFilter(&v, "");
    v.by_group = true;
    v.group_key = 7;
    TaskView_update(&v, m);
    ids(&v, (uint64_t[]){2, 3, 5}, 3);
    assert_int_equal(TaskView_find(&v, 5), 2);
    TaskView_done(&v);
    fixture_free(m);
}

static void test_tree(void **state)
{
    Model *m = fixture();
    /* a cycle (10 <-> 11), a self-loop candidate, and a long chain */
    add(m, 10, 11, "cyc-a", TS_WAITING, "", 0, 0);
    add(m, 11, 10, "cyc-b", TS_WAITING, "", 0, 0);
    add(m, 12, 12, "self", TS_WAITING, "", 0, 0); /* self-parent is cut by the model */
    for (uint64_t i = 0; i < 50000; i++)
        add(m, 100 + i, i ? 99 + i : 0, "chain", TS_WAITING, "", 0, 0);
    TaskTree t;
    TaskTree_init(&t);
    TaskTree_update(&t, m);
    assert_int_equal(t.n, m->ntasks); /* every task exactly once */
    uint8_t *seen = calloc(60000, 1);
    for (uint32_t i = 0; i < t.n; i++) {
        assert_int_equal(seen[t.rows[i].task->id], 0);
        seen[t.rows[i].task->id] = 1;
    }
    free(seen);
    /* pstree order: 1, its children 2 (then 5), 4 */
    assert_int_equal(t.rows[0].task->id, 1);
    assert_int_equal(t.rows[1].task->id, 2);
    assert_int_equal(t.rows[1].depth, 1);
    assert_false(t.rows[1].last);
    assert_int_equal(t.rows[2].task->id, 5);
    assert_int_equal(t.rows[2].depth, 2);
    assert_true(t.rows[2].more & 1u); /* 2 has a later sibling: a bar at depth 1 */
    assert_int_equal(t.rows[3].task->id, 4);
    assert_true(t.rows[3].last);
    /* the cycle appears once, marked, as a root */
    int cycles = 0;
    uint32_t maxdepth = 0;
    for (uint32_t i = 0; i < t.n; i++) {
        cycles += t.rows[i].cycle;
        if (t.rows[i].depth > maxdepth)
            maxdepth = t.rows[i].depth;
    }
    assert_int_equal(cycles, 1);
    assert_int_equal(maxdepth, 49999); /* the chain, iteratively */
    /* unchanged model: no rebuild; a change: rebuild */
    TaskRow *first = (TaskRow *)t.rows;
    TaskTree_update(&t, m);
    assert_ptr_equal((TaskRow *)t.rows, first);
    TaskTree_done(&t);
    fixture_free(m);
}

static void test_groups(void **state)
{
    Model *m = fixture();
    Model_removeTask(m, 3, 5, -1); /* lingering tasks are not grouped */
    TaskGroups g;
    TaskGroups_init(&g);
    TaskGroups_update(&g, m);
    assert_int_equal(g.g[0].key, 7);
    assert_int_equal(g.g[0].count, 2);
    assert_int_equal(g.g[0].example->id, 2);
    assert_int_equal(g.g[0].longest_wait_ns, m->now_ns - 1000002);
    uint32_t total = 0;
    for (uint32_t i = 0; i < g.n; i++) {
        total += g.g[i].count;
        if (i)
            assert_true(g.g[i - 1].count >= g.g[i].count);
    }
    assert_int_equal(total, 4);
    TaskGroups_done(&g);
    fixture_free(m);
}

static void test_keys(void **state)
{
    /* no two bindings for the same key on the same screen */
    for (unsigned i = 0; i < Action_nbindings; i++) {
        const KeyBinding *a = &Action_bindings[i];
        assert_non_null(a->fn);
        assert_true(a->help && a->help[0]);
        assert_true(a->keyname && a->keyname[0]);
        assert_true(a->scope != 0);
        for (unsigned j = i + 1; j < Action_nbindings; j++)
            if (Action_bindings[j].key == a->key)
                assert_int_equal(Action_bindings[j].scope & a->scope, 0);
    }
    /* the issue's keys are bound where they should be */
    const int everywhere[] = {'j', 'k', 'g', 'G', '\t', '/', '<', '>', 'i', ' ',
                              '?', 'q', '+', '-', 't',  'd', '1', '6', 27,  '\r'};
    for (size_t i = 0; i < sizeof everywhere / sizeof everywhere[0]; i++)
        assert_non_null(Action_lookup(SCR_TASKS, everywhere[i]));
    assert_non_null(Action_lookup(SCR_DETAIL, 'c'));
    assert_null(Action_lookup(SCR_LOOP, 'c'));
    assert_null(Action_lookup(SCR_LOOP, '/'));
    assert_null(Action_lookup(SCR_PICK, '+'));
    assert_non_null(Action_lookup(SCR_PICK, 'q'));
    assert_null(Action_lookup(SCR_TASKS, 'Z'));
    /* help: one line per distinct action, each key listed */
    char lines[128][96];
    unsigned n = Action_helpLines(lines, 128);
    assert_true(n > 20 && n < Action_nbindings);
    bool sort_line = false;
    for (unsigned i = 0; i < n; i++)
        if (strstr(lines[i], "> . F6") && strstr(lines[i], "next column"))
            sort_line = true;
    assert_true(sort_line);
    /* threshold steps */
    assert_int_equal(Action_thresholdStep(100000000, 1), 200000000);
    assert_int_equal(Action_thresholdStep(100000000, -1), 50000000);
    assert_int_equal(Action_thresholdStep(150000000, 1), 200000000);
    assert_int_equal(Action_thresholdStep(150000000, -1), 100000000);
    assert_int_equal(Action_thresholdStep(5000000000ull, 1), 5000000000ull);
    assert_int_equal(Action_thresholdStep(10000000, -1), 10000000);
    assert_int_equal(Action_thresholdStep(0, 1), 10000000);
    assert_int_equal(Action_thresholdStep(900000000000ull, -1), 5000000000ull);
}

static char *capture(void (*fn)(FILE *, Model *), Model *m)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    fn(f, m);
    fclose(f);
    return buf;
}

static void ps_default(FILE *f, Model *m)
{
    Report_ps(f, m, TC_ID, false, "");
}

static void json_no_applier(FILE *f, Model *m)
{
    Report_json(f, m, NULL);
}

static void pstree_ascii(FILE *f, Model *m)
{
    Report_pstree(f, m, true);
}

static void test_reports(void **state)
{
    Model *m = fixture();
    Model_setString(&m->program, "srv\"x", SIZE_MAX);
    m->pid = 77;
    SlowEvent ev;
    memset(&ev, 0, sizeof ev);
    Model_setString(&ev.callback, "cb\\1", SIZE_MAX);
    ev.duration_ns = 5;
    Model_addSlow(m, &ev);
    Model_removeTask(m, 4, 1, -1); /* gone tasks are not reported */
    char *ps = capture(ps_default, m);
    assert_non_null(strstr(ps, "ID NAME"));
    assert_non_null(strstr(ps, "echo-conn"));
    assert_null(strstr(ps, "delta"));
    int lines = 0;
    for (char *p = ps; *p; p++)
        lines += *p == '\n';
    assert_int_equal(lines, 5); /* title + 4 live tasks */
    free(ps);
    char *tree = capture(pstree_ascii, m);
    /* 4 (delta) is gone but still in the tree until purged, so bravo is not last */
    assert_string_equal(tree, "alpha(1) running\n"
                              "|- bravo(2) waiting on lock #2\n"
                              "|  `- echo-conn(5) waiting on read #9\n"
                              "charlie(3) waiting on read #1\n");
    free(tree);
    char *json = capture(json_no_applier, m);
    assert_non_null(strstr(json, "{\"process\":{\"pid\":77,\"program\":\"srv\\\"x\""));
    assert_non_null(strstr(json, "\"tasks\":[{\"id\":1,"));
    assert_non_null(strstr(
        json, "\"slow_callbacks\":[{\"time_ns\":0,\"duration_ns\":5,\"callback\":\"cb\\\\1\""));
    assert_non_null(strstr(json, "\"exceptions\":[]"));
    assert_non_null(strstr(json, "\"blocked\":null"));
    assert_null(strstr(json, "\"delta\""));
    assert_int_equal(json[strlen(json) - 1], '\n');
    free(json);
    fixture_free(m);
}

/* Issue 14: the CREATED AT cell keeps the file:line when it is narrow; PgDn/PgUp scroll a
 * page of text at once. */
static void test_created_at_fit_and_paging(void **state)
{
    (void)state;
    char out[64];
    TaskColumn_fitCreatedAt("at_spawn task.c:90", 24, out, sizeof out);
    assert_string_equal(out, "at_spawn task.c:90");
    TaskColumn_fitCreatedAt("at_spawn task.c:90", 17, out, sizeof out);
    assert_string_equal(out, "task.c:90");
    TaskColumn_fitCreatedAt("config asynctop-demo.c:123", 12, out, sizeof out);
    assert_string_equal(out, "..demo.c:123");
    assert_true(strlen(out) <= 12);
    TaskColumn_fitCreatedAt("f \xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9.c:7", 8, out, sizeof out);
    assert_string_equal(out, "..\xc3\xa9.c:7");
    TaskColumn_fitCreatedAt("f \xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9.c:7", 7, out, sizeof out);
    assert_string_equal(out, "...c:7"); /* not cut inside a character */

    /* running times are cut, never rounded up past what was reported */
    Header_seconds(349000000ull, out, sizeof out);
    assert_string_equal(out, "0.3 s");
    Header_seconds(360000000ull, out, sizeof out);
    assert_string_equal(out, "0.3 s");
    Header_seconds(1999999999ull, out, sizeof out);
    assert_string_equal(out, "1.9 s");

    Panel p;
    Panel_init(&p);
    Panel_setCount(&p, 40);
    p.height = 15;
    Panel_movePage(&p, 1);
    assert_int_equal(p.top, 14);
    assert_int_equal(p.selected, 14);
    Panel_movePage(&p, 1);
    assert_int_equal(p.top, 25); /* the last page shows full */
    assert_int_equal(p.selected, 28);
    Panel_movePage(&p, 1);
    assert_int_equal(p.top, 25);
    assert_int_equal(p.selected, 39);
    Panel_movePage(&p, -1);
    assert_int_equal(p.top, 11);
    assert_int_equal(p.selected, 25);
    Panel_movePage(&p, -1);
    Panel_movePage(&p, -1);
    assert_int_equal(p.top, 0);
    assert_int_equal(p.selected, 0);
}

/* Issue 16: a detail screen's frame without a file (a stripped program's module+0xoffset)
 * shows its module's build-id; a frame with file:line stays as it was. */
static void test_stack_lines_build_id(void **state)
{
    (void)state;
    Stack s = {0, NULL};
    Stack_push(&s, "handle_conn", SIZE_MAX, "/src/server.c", SIZE_MAX, 120, 0x10);
    Stack_setBuildId(&s, "0c29039453e58b2d");
    Stack_push(&s, "prog+0x2564", SIZE_MAX, NULL, 0, 0, 0x55d0c0de2564u);
    Stack_setBuildId(&s, "0c29039453e58b2d");
    Stack_push(&s, "libfoo.so+0x10", SIZE_MAX, NULL, 0, 0, 0x7f0000000010u);
    Stack_setBuildId(&s, "0c29 not hex"); /* the process's text: dropped */
    TextLines t;
    memset(&t, 0, sizeof t);
    TextLines_stack(&t, &s, "(none)");
    assert_int_equal(t.n, 3);
    assert_string_equal(t.text[0], "  #0  handle_conn  server.c:120");
    assert_string_equal(t.text[1], "  #1  prog+0x2564  0x55d0c0de2564  build-id 0c29039453e58b2d");
    assert_string_equal(t.text[2], "  #2  libfoo.so+0x10  0x7f0000000010");
    TextLines_free(&t);
    Stack_free(&s);
}

/* The key table's offline column: the keys that ask the process need a live connection and
 * say why not without one; moving around never does. */
static void test_keys_offline(void **state)
{
    const int ask[] = {'+', '=', '-', 't', 'd', ' '};
    for (size_t i = 0; i < sizeof ask / sizeof ask[0]; i++) {
        const KeyBinding *b = Action_lookup(SCR_TASKS, ask[i]);
        assert_non_null(b);
        assert_non_null(b->offline);
        assert_non_null(strstr(b->offline, "not connected"));
    }
    assert_non_null(strstr(Action_lookup(SCR_TASKS, '+')->offline, "threshold"));
    assert_non_null(strstr(Action_lookup(SCR_TASKS, 'd')->offline, "debug"));
    const int anytime[] = {'j', 'k', '\t', '1', '/', '<', 'i', 'c', 'q', '?', 27, '\r', 'L', 'r'};
    for (size_t i = 0; i < sizeof anytime / sizeof anytime[0]; i++) {
        const KeyBinding *b = Action_lookup(SCR_TASKS, anytime[i]);
        assert_non_null(b);
        assert_null(b->offline);
    }
}

/* The screen stack: tabs at the bottom, pushed screens over them, each pushed with its cursor
 * on the first row; a tab change empties the stack. */
static void test_screen_stack(void **state)
{
    ScreenManager sm;
    ScreenManager_init(&sm);
    assert_int_equal(ScreenManager_currentId(&sm), SCR_TASKS);
    for (int i = 0; i < SCR_COUNT; i++)
        assert_int_equal(ScreenManager_screen(&sm, (ScreenId)i)->cls->id, i);
    ScreenManager_setTab(&sm, SCR_SLOW);
    assert_int_equal(ScreenManager_currentId(&sm), SCR_SLOW);
    ScreenManager_setTab(&sm, SCR_NTABS); /* not a tab: ignored */
    assert_int_equal(ScreenManager_currentId(&sm), SCR_SLOW);
    Panel *p = &ScreenManager_screen(&sm, SCR_SLOW_DETAIL)->panel;
    Panel_setCount(p, 10);
    Panel_select(p, 5);
    ScreenManager_push(&sm, SCR_SLOW_DETAIL);
    assert_int_equal(ScreenManager_current(&sm)->cls->id, SCR_SLOW_DETAIL);
    assert_int_equal(p->selected, 0);
    ScreenManager_push(&sm, SCR_HELP);
    ScreenManager_push(&sm, SCR_HELP); /* already on top: not twice */
    ScreenManager_pop(&sm);
    assert_int_equal(ScreenManager_currentId(&sm), SCR_SLOW_DETAIL);
    ScreenManager_pop(&sm);
    assert_int_equal(ScreenManager_currentId(&sm), SCR_SLOW);
    ScreenManager_pop(&sm); /* on a tab: nothing */
    assert_int_equal(ScreenManager_currentId(&sm), SCR_SLOW);
    for (int i = 0; i < 2 * SCREENMANAGER_DEPTH; i++) /* a full stack keeps its deepest */
        ScreenManager_push(&sm, i % 2 ? SCR_HELP : SCR_LOOPS);
    assert_int_equal(sm.depth, SCREENMANAGER_DEPTH);
    ScreenManager_setTab(&sm, SCR_TREE);
    assert_int_equal(ScreenManager_currentId(&sm), SCR_TREE);
    ScreenManager_push(&sm, SCR_DETAIL);
    ScreenManager_popAll(&sm);
    assert_int_equal(ScreenManager_currentId(&sm), SCR_TREE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sort),
        cmocka_unit_test(test_filter),
        cmocka_unit_test(test_tree),
        cmocka_unit_test(test_groups),
        cmocka_unit_test(test_keys),
        cmocka_unit_test(test_keys_offline),
        cmocka_unit_test(test_screen_stack),
        cmocka_unit_test(test_reports),
        cmocka_unit_test(test_created_at_fit_and_paging),
        cmocka_unit_test(test_stack_lines_build_id),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

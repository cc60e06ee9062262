/* Report.c: `asynctop ps`, `pstree` and `dump --json` output (see Report.h). */
#include "Report.h"

#include "Duration.h"
#include "FlameView.h"
#include "Json.h"
#include "Sanitise.h"
#include "TaskTree.h"
#include "TaskView.h"

#include <stdlib.h>
#include <string.h>

unsigned Report_ps(FILE *f, Model *m, TaskColumn sort, bool descending, const char *filter)
{
    TaskView v;
    TaskView_init(&v);
    TaskView_setSort(&v, sort, descending);
    TaskView_setFilter(&v, filter);
    TaskView_update(&v, m);
    for (int c = 0; c < TC_COUNT; c++) {
        const ColumnInfo *ci = &TaskColumn_info[c];
        if (ci->width)
            fprintf(f, ci->right ? "%*s " : "%-*s ", ci->width, ci->title);
        else
            fprintf(f, "%s", ci->title);
    }
    fputc('\n', f);
    unsigned n = 0;
    for (uint32_t i = 0; i < v.n; i++) {
        const Task *t = v.rows[i];
        if (t->gone_ms)
            continue;
        for (int c = 0; c < TC_COUNT; c++) {
            char buf[MODEL_MAX_STR + 8];
            const ColumnInfo *ci = &TaskColumn_info[c];
            TaskColumn_format((TaskColumn)c, t, m, buf, sizeof buf);
            Sanitise_fput(f, buf, ci->right ? -ci->width : ci->width); /* the process's text */
            if (ci->width)
                fputc(' ', f);
        }
        fputc('\n', f);
        n++;
    }
    TaskView_done(&v);
    return n;
}

unsigned Report_pstree(FILE *f, Model *m, bool ascii)
{
    TaskTree tree;
    TaskTree_init(&tree);
    TaskTree_update(&tree, m);
    const char *mid = ascii ? "|- " : "\u251c\u2500 ", *last = ascii ? "`- " : "\u2514\u2500 ";
    const char *bar = ascii ? "|  " : "\u2502  ";
    unsigned n = 0;
    for (uint32_t i = 0; i < tree.n; i++) {
        const TreeRow *r = &tree.rows[i];
        if (r->task->gone_ms)
            continue;
        uint32_t depth = r->depth < TASKTREE_MAX_INDENT ? r->depth : TASKTREE_MAX_INDENT;
        for (uint32_t d = 1; d < depth; d++)
            fputs(r->more & (1u << (d - 1)) ? bar : "   ", f);
        if (depth)
            fputs(r->last ? last : mid, f);
        Sanitise_fput(f, r->task->name, 0); /* the process's text */
        fprintf(f, "(%llu) %s%s", (unsigned long long)r->task->id, TaskState_name(r->task->state),
                r->task->waits_on[0] ? " on " : "");
        Sanitise_fput(f, r->task->waits_on, 0);
        fprintf(f, "%s\n", r->cycle ? " [parent cycle]" : "");
        n++;
    }
    TaskTree_done(&tree);
    return n;
}

static void json_stack(Json *j, const char *key, const Stack *s)
{
    Json_key(j, key);
    Json_array(j);
    for (uint32_t i = 0; i < s->n; i++) {
        Json_object(j);
        Json_fieldStr(j, "func", s->f[i].func);
        Json_fieldStr(j, "file", s->f[i].file);
        Json_fieldU64(j, "line", s->f[i].line);
        Json_fieldU64(j, "addr", s->f[i].addr);
        Json_fieldStr(j, "build_id", s->f[i].build_id);
        Json_end(j, '}');
    }
    Json_end(j, ']');
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

/* "stacks": {"<stack_id>": [frames]} for every stack_id the live tasks of v refer to, in id
 * order; frames resolved through the applier's tables (empty without one). */
static void json_stacks(Json *j, const TaskView *v, const Applier *a)
{
    uint64_t *ids = calloc(v->n ? v->n : 1, sizeof *ids);
    if (!ids)
        abort();
    uint32_t n = 0;
    for (uint32_t i = 0; a && i < v->n; i++)
        if (!v->rows[i]->gone_ms && v->rows[i]->stack_key)
            ids[n++] = v->rows[i]->stack_key;
    qsort(ids, n, sizeof *ids, cmp_u64);
    Json_key(j, "stacks");
    Json_object(j);
    for (uint32_t i = 0; i < n; i++) {
        if (i && ids[i] == ids[i - 1])
            continue;
        char key[24];
        snprintf(key, sizeof key, "%llu", (unsigned long long)ids[i]);
        Stack st = {0, NULL};
        if (ids[i] <= UINT32_MAX)
            Applier_stack(a, (uint32_t)ids[i], &st);
        json_stack(j, key, &st);
        Stack_free(&st);
    }
    Json_end(j, '}');
    free(ids);
}

/* "process": who it is and its configuration. */
static void json_process(Json *j, const Model *m)
{
    Json_key(j, "process");
    Json_object(j);
    Json_fieldU64(j, "pid", m->pid);
    Json_fieldStr(j, "program", m->program);
    Json_fieldStr(j, "argv", m->argv);
    Json_fieldStr(j, "runtime", m->runtime_version);
    Json_fieldU64(j, "start_time_ns", m->start_wall_ns);
    Json_fieldU64(j, "uptime_ns", m->now_ns);
    Json_fieldU64(j, "slow_threshold_ns", m->slow_threshold_ns);
    Json_fieldBool(j, "debug", m->debug);
    Json_end(j, '}');
}

/* "loops": every loop of the process (the figures: since it started, from one update). */
static void json_loops(Json *j, const Model *m)
{
    Json_key(j, "loops");
    Json_array(j);
    for (uint32_t i = 0; i < m->nloops; i++) {
        const LoopInfo *li = &m->loops[i];
        Json_object(j);
        Json_fieldU64(j, "id", li->id);
        Json_fieldStr(j, "name", li->name);
        Json_fieldU64(j, "tid", li->tid);
        Json_fieldStr(j, "thread", li->thread);
        Json_fieldStr(j, "kind", li->kind);
        Json_fieldU64(j, "addr", li->addr);
        Json_fieldBool(j, "closed", li->gone);
        if (li->has_stats) {
            Json_fieldNum(j, "utilisation", li->utilisation);
            Json_fieldNum(j, "callbacks_per_s", li->callbacks_per_s);
            Json_fieldU64(j, "slow_total", li->slow);
            Json_fieldU64(j, "pending", li->pending);
        }
        Json_end(j, '}');
    }
    Json_end(j, ']');
}

/* An object of named counters {"name": value, ...}. */
static void json_counters(Json *j, const char *key, const Counter *c, uint32_t n)
{
    Json_key(j, key);
    Json_object(j);
    for (uint32_t i = 0; i < n; i++)
        Json_fieldU64(j, c[i].name, c[i].value);
    Json_end(j, '}');
}

/* "loop": the loop watched: its health, handles, executor, dropped counters, blocked state. */
static void json_loop(Json *j, const Model *m)
{
    const LoopStats *l = &m->loop;
    Json_key(j, "loop");
    Json_object(j);
    Json_fieldU64(j, "id", m->loop_id);
    Json_fieldNum(j, "utilisation", l->utilisation);
    Json_fieldNum(j, "callbacks_per_s", l->callbacks_per_s);
    Json_fieldU64(j, "lag_p50_ns", l->lag_p50_ns);
    Json_fieldU64(j, "lag_p99_ns", l->lag_p99_ns);
    Json_fieldU64(j, "iterations", l->iterations);
    Json_fieldU64(j, "slow_total", l->slow_total);
    Json_fieldU64(j, "errors_total", l->errors_total);
    json_counters(j, "handles", l->handles, l->nhandles);
    Json_key(j, "executor");
    Json_object(j);
    Json_fieldU64(j, "queued", l->exec_queue);
    Json_fieldU64(j, "running", l->exec_busy);
    Json_fieldU64(j, "threads", l->exec_threads);
    Json_fieldU64(j, "done", l->exec_done);
    Json_end(j, '}');
    json_counters(j, "dropped", m->dropped, m->ndropped);
    Json_key(j, "blocked");
    if (m->blocked) {
        Json_object(j);
        Json_fieldU64(j, "for_ns", m->blocked_for_ns);
        Json_fieldStr(j, "callback", m->blocked_callback);
        Json_fieldStr(j, "task", m->blocked_task);
        json_stack(j, "stack", &m->blocked_stack);
        FlameView_json(j, "profile", m->blocked_profile);
        Json_end(j, '}');
    } else {
        Json_null(j);
    }
    Json_end(j, '}');
}

/* "tasks": the live tasks in id order, then "stacks": the frames of the stacks they name. */
static void json_tasks(Json *j, Model *m, const Applier *a)
{
    TaskView v;
    TaskView_init(&v);
    TaskView_update(&v, m);
    Json_key(j, "tasks");
    Json_array(j);
    for (uint32_t i = 0; i < v.n; i++) {
        const Task *t = v.rows[i];
        if (t->gone_ms)
            continue;
        Json_object(j);
        Json_fieldU64(j, "id", t->id);
        Json_fieldStr(j, "name", t->name);
        Json_fieldStr(j, "state", TaskState_name(t->state));
        Json_fieldU64(j, "parent", t->parent);
        Json_fieldStr(j, "waits_on", t->waits_on);
        Json_fieldU64(j, "waiting_ns", Task_waitingNs(t, m));
        Json_fieldU64(j, "busy_ns", t->busy_ns);
        Json_fieldU64(j, "steps", t->steps);
        Json_fieldU64(j, "age_ns", Task_ageNs(t, m));
        Json_fieldStr(j, "created_at", t->created_at);
        Json_fieldStr(j, "suspended_at", t->where);
        Json_fieldU64(j, "stack_id", t->stack_key);
        Json_end(j, '}');
    }
    Json_end(j, ']');
    json_stacks(j, &v, a);
    TaskView_done(&v);
}

/* "slow_callbacks": the slow events held, oldest first. */
static void json_slow(Json *j, const Model *m)
{
    Json_key(j, "slow_callbacks");
    Json_array(j);
    for (uint64_t i = Model_slowCount(m); i-- > 0;) {
        const SlowEvent *e = Model_slowAt(m, i);
        Json_object(j);
        Json_fieldU64(j, "time_ns", e->when_ns);
        Json_fieldU64(j, "duration_ns", e->duration_ns);
        Json_fieldStr(j, "callback", e->callback);
        Json_fieldStr(j, "site", e->site);
        Json_fieldU64(j, "task_id", e->task_id);
        Json_fieldStr(j, "task", e->task_name);
        json_stack(j, "stack", &e->stack);
        json_stack(j, "scheduled_from", &e->scheduled_from);
        FlameView_json(j, "profile", e->profile);
        Json_end(j, '}');
    }
    Json_end(j, ']');
}

/* "exceptions": the exception events held, oldest first. */
static void json_exceptions(Json *j, const Model *m)
{
    Json_key(j, "exceptions");
    Json_array(j);
    for (uint64_t i = Model_excCount(m); i-- > 0;) {
        const ExcEvent *e = Model_excAt(m, i);
        Json_object(j);
        Json_fieldU64(j, "time_ns", e->when_ns);
        Json_fieldStr(j, "kind", ExcKind_name(e->kind));
        Json_fieldStr(j, "severity", e->severity);
        Json_key(j, "code"); /* the error's own code and domain, null when none was sent */
        if (e->code)
            Json_i64(j, e->code);
        else
            Json_null(j);
        Json_fieldStr(j, "domain", e->domain[0] ? e->domain : NULL);
        Json_fieldStr(j, "message", e->message);
        Json_fieldStr(j, "object", e->object);
        Json_fieldU64(j, "task_id", e->task_id);
        Json_fieldStr(j, "site", e->site);
        json_stack(j, "raised", &e->raised);
        json_stack(j, "created", &e->stack);
        Json_end(j, '}');
    }
    Json_end(j, ']');
}

void Report_json(FILE *f, Model *m, const Applier *a)
{
    Json j;
    Json_init(&j, f);
    Json_object(&j);
    json_process(&j, m);
    json_loops(&j, m);
    json_loop(&j, m);
    json_tasks(&j, m, a);
    json_slow(&j, m);
    json_exceptions(&j, m);
    Json_end(&j, '}');
}

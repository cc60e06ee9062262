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
        Json_key(j, "func");
        Json_str(j, s->f[i].func);
        Json_key(j, "file");
        Json_str(j, s->f[i].file);
        Json_key(j, "line");
        Json_u64(j, s->f[i].line);
        Json_key(j, "addr");
        Json_u64(j, s->f[i].addr);
        Json_key(j, "build_id");
        Json_str(j, s->f[i].build_id);
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

void Report_json(FILE *f, Model *m, const Applier *a)
{
    Json j;
    Json_init(&j, f);
    Json_object(&j);

    Json_key(&j, "process");
    Json_object(&j);
    Json_key(&j, "pid");
    Json_u64(&j, m->pid);
    Json_key(&j, "program");
    Json_str(&j, m->program);
    Json_key(&j, "argv");
    Json_str(&j, m->argv);
    Json_key(&j, "runtime");
    Json_str(&j, m->runtime_version);
    Json_key(&j, "start_time_ns");
    Json_u64(&j, m->start_wall_ns);
    Json_key(&j, "uptime_ns");
    Json_u64(&j, m->now_ns);
    Json_key(&j, "slow_threshold_ns");
    Json_u64(&j, m->slow_threshold_ns);
    Json_key(&j, "debug");
    Json_bool(&j, m->debug);
    Json_end(&j, '}');

    /* every loop of the process (the figures: since it started, from one update) */
    Json_key(&j, "loops");
    Json_array(&j);
    for (uint32_t i = 0; i < m->nloops; i++) {
        const LoopInfo *li = &m->loops[i];
        Json_object(&j);
        Json_key(&j, "id");
        Json_u64(&j, li->id);
        Json_key(&j, "name");
        Json_str(&j, li->name);
        Json_key(&j, "tid");
        Json_u64(&j, li->tid);
        Json_key(&j, "thread");
        Json_str(&j, li->thread);
        Json_key(&j, "kind");
        Json_str(&j, li->kind);
        Json_key(&j, "addr");
        Json_u64(&j, li->addr);
        Json_key(&j, "closed");
        Json_bool(&j, li->gone);
        if (li->has_stats) {
            Json_key(&j, "utilisation");
            Json_num(&j, li->utilisation);
            Json_key(&j, "callbacks_per_s");
            Json_num(&j, li->callbacks_per_s);
            Json_key(&j, "slow_total");
            Json_u64(&j, li->slow);
            Json_key(&j, "pending");
            Json_u64(&j, li->pending);
        }
        Json_end(&j, '}');
    }
    Json_end(&j, ']');

    const LoopStats *l = &m->loop;
    Json_key(&j, "loop");
    Json_object(&j);
    Json_key(&j, "id");
    Json_u64(&j, m->loop_id);
    Json_key(&j, "utilisation");
    Json_num(&j, l->utilisation);
    Json_key(&j, "callbacks_per_s");
    Json_num(&j, l->callbacks_per_s);
    Json_key(&j, "lag_p50_ns");
    Json_u64(&j, l->lag_p50_ns);
    Json_key(&j, "lag_p99_ns");
    Json_u64(&j, l->lag_p99_ns);
    Json_key(&j, "iterations");
    Json_u64(&j, l->iterations);
    Json_key(&j, "slow_total");
    Json_u64(&j, l->slow_total);
    Json_key(&j, "errors_total");
    Json_u64(&j, l->errors_total);
    Json_key(&j, "handles");
    Json_object(&j);
    for (uint32_t i = 0; i < l->nhandles; i++) {
        Json_key(&j, l->handles[i].name);
        Json_u64(&j, l->handles[i].value);
    }
    Json_end(&j, '}');
    Json_key(&j, "executor");
    Json_object(&j);
    Json_key(&j, "queued");
    Json_u64(&j, l->exec_queue);
    Json_key(&j, "running");
    Json_u64(&j, l->exec_busy);
    Json_key(&j, "threads");
    Json_u64(&j, l->exec_threads);
    Json_key(&j, "done");
    Json_u64(&j, l->exec_done);
    Json_end(&j, '}');
    Json_key(&j, "dropped");
    Json_object(&j);
    for (uint32_t i = 0; i < m->ndropped; i++) {
        Json_key(&j, m->dropped[i].name);
        Json_u64(&j, m->dropped[i].value);
    }
    Json_end(&j, '}');
    Json_key(&j, "blocked");
    if (m->blocked) {
        Json_object(&j);
        Json_key(&j, "for_ns");
        Json_u64(&j, m->blocked_for_ns);
        Json_key(&j, "callback");
        Json_str(&j, m->blocked_callback);
        Json_key(&j, "task");
        Json_str(&j, m->blocked_task);
        json_stack(&j, "stack", &m->blocked_stack);
        FlameView_json(&j, "profile", m->blocked_profile);
        Json_end(&j, '}');
    } else {
        Json_null(&j);
    }
    Json_end(&j, '}');

    TaskView v;
    TaskView_init(&v);
    TaskView_update(&v, m);
    Json_key(&j, "tasks");
    Json_array(&j);
    for (uint32_t i = 0; i < v.n; i++) {
        const Task *t = v.rows[i];
        if (t->gone_ms)
            continue;
        Json_object(&j);
        Json_key(&j, "id");
        Json_u64(&j, t->id);
        Json_key(&j, "name");
        Json_str(&j, t->name);
        Json_key(&j, "state");
        Json_str(&j, TaskState_name(t->state));
        Json_key(&j, "parent");
        Json_u64(&j, t->parent);
        Json_key(&j, "waits_on");
        Json_str(&j, t->waits_on);
        Json_key(&j, "waiting_ns");
        Json_u64(&j, Task_waitingNs(t, m));
        Json_key(&j, "busy_ns");
        Json_u64(&j, t->busy_ns);
        Json_key(&j, "steps");
        Json_u64(&j, t->steps);
        Json_key(&j, "age_ns");
        Json_u64(&j, Task_ageNs(t, m));
        Json_key(&j, "created_at");
        Json_str(&j, t->created_at);
        Json_key(&j, "suspended_at");
        Json_str(&j, t->where);
        Json_key(&j, "stack_id");
        Json_u64(&j, t->stack_key);
        Json_end(&j, '}');
    }
    Json_end(&j, ']');
    json_stacks(&j, &v, a);
    TaskView_done(&v);

    Json_key(&j, "slow_callbacks");
    Json_array(&j);
    for (uint64_t i = Model_slowCount(m); i-- > 0;) { /* oldest first */
        const SlowEvent *e = Model_slowAt(m, i);
        Json_object(&j);
        Json_key(&j, "time_ns");
        Json_u64(&j, e->when_ns);
        Json_key(&j, "duration_ns");
        Json_u64(&j, e->duration_ns);
        Json_key(&j, "callback");
        Json_str(&j, e->callback);
        Json_key(&j, "site");
        Json_str(&j, e->site);
        Json_key(&j, "task_id");
        Json_u64(&j, e->task_id);
        Json_key(&j, "task");
        Json_str(&j, e->task_name);
        json_stack(&j, "stack", &e->stack);
        json_stack(&j, "scheduled_from", &e->scheduled_from);
        FlameView_json(&j, "profile", e->profile);
        Json_end(&j, '}');
    }
    Json_end(&j, ']');

    Json_key(&j, "exceptions");
    Json_array(&j);
    for (uint64_t i = Model_excCount(m); i-- > 0;) {
        const ExcEvent *e = Model_excAt(m, i);
        Json_object(&j);
        Json_key(&j, "time_ns");
        Json_u64(&j, e->when_ns);
        Json_key(&j, "kind");
        Json_str(&j, ExcKind_name(e->kind));
        Json_key(&j, "severity");
        Json_str(&j, e->severity);
        Json_key(&j, "code"); /* the error's own code and domain, null when none was sent */
        if (e->code)
            Json_i64(&j, e->code);
        else
            Json_null(&j);
        Json_key(&j, "domain");
        Json_str(&j, e->domain[0] ? e->domain : NULL);
        Json_key(&j, "message");
        Json_str(&j, e->message);
        Json_key(&j, "object");
        Json_str(&j, e->object);
        Json_key(&j, "task_id");
        Json_u64(&j, e->task_id);
        Json_key(&j, "site");
        Json_str(&j, e->site);
        json_stack(&j, "raised", &e->raised);
        json_stack(&j, "created", &e->stack);
        Json_end(&j, '}');
    }
    Json_end(&j, ']');
    Json_end(&j, '}');
}

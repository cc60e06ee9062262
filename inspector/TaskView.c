/* TaskView.c: filtering and sorting of the task table (see TaskView.h). */
#include "TaskView.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void TaskView_init(TaskView *this)
{
    memset(this, 0, sizeof *this);
    this->sort = TC_ID;
    this->dirty = true;
}

void TaskView_done(TaskView *this)
{
    free(this->rows);
    memset(this, 0, sizeof *this);
}

void TaskView_setSort(TaskView *this, TaskColumn c, bool descending)
{
    if (c >= TC_COUNT)
        c = TC_ID;
    this->sort = c;
    this->descending = descending;
    this->dirty = true;
}

void TaskView_setFilter(TaskView *this, const char *text)
{
    snprintf(this->filter, sizeof this->filter, "%s", text ? text : "");
    this->dirty = true;
}

bool TaskView_matches(const Task *t, const char *f)
{
    if (!f[0])
        return true;
    char id[24];
    snprintf(id, sizeof id, "%llu", (unsigned long long)t->id);
    return strcasestr(t->name, f) || strcasestr(t->waits_on, f) || strcasestr(t->created_at, f) ||
           strcasestr(t->where, f) || strcasestr(TaskState_name(t->state), f) || strstr(id, f);
}

static uint64_t fnv(uint64_t h, const char *s)
{
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 0x100000001b3ull;
    return h;
}

size_t Task_waitKindLen(const Task *t)
{
    return strcspn(t->waits_on, " ");
}

uint64_t Task_groupKey(const Task *t)
{
    if (t->group_key)
        return t->group_key;
    if (t->stack_key)
        return t->stack_key;
    /* no stack (yet): where it waits and the kind of wait (the first word: "read" of
     * "read #100", "sleep" of "sleep 0.603 s"), not the object or the time left, which
     * differ from task to task and from update to update */
    uint64_t h = fnv(0xcbf29ce484222325ull, t->where);
    h ^= 0xff;
    for (size_t i = 0, n = Task_waitKindLen(t); i < n; i++)
        h = (h ^ (unsigned char)t->waits_on[i]) * 0x100000001b3ull;
    return h ? h : 1;
}

typedef struct SortCtx {
    TaskColumn c;
    bool desc;
    const Model *m;
} SortCtx;

static int cmp_rows(const void *a, const void *b, void *arg)
{
    const SortCtx *ctx = arg;
    int r = TaskColumn_compare(ctx->c, *(Task *const *)a, *(Task *const *)b, ctx->m);
    return ctx->desc ? -r : r;
}

bool TaskView_update(TaskView *this, const Model *m)
{
    if (!this->dirty && this->built_gen == m->gen && this->rows)
        return false;
    if (this->cap < m->ntasks) {
        this->cap = m->ntasks;
        this->rows = realloc(this->rows, this->cap * sizeof *this->rows);
        if (!this->rows)
            abort();
    } else if (!this->rows) {
        this->rows = malloc(sizeof *this->rows);
        if (!this->rows)
            abort();
    }
    uint32_t n = 0;
    for (uint32_t i = 0; i < m->ntasks; i++) {
        Task *t = m->tasks[i];
        if (this->by_group && Task_groupKey(t) != this->group_key)
            continue;
        if (!TaskView_matches(t, this->filter))
            continue;
        this->rows[n++] = t;
    }
    this->n = n;
    SortCtx ctx = {this->sort, this->descending, m};
    qsort_r(this->rows, n, sizeof *this->rows, cmp_rows, &ctx);
    this->built_gen = m->gen;
    this->dirty = false;
    return true;
}

int64_t TaskView_find(const TaskView *this, uint64_t id)
{
    for (uint32_t i = 0; i < this->n; i++)
        if (this->rows[i]->id == id)
            return i;
    return -1;
}

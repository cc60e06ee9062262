/* TaskColumn.c: the task table's column definitions, comparators and cell text. */
#include "TaskColumn.h"

#include "Duration.h"

#include <stdio.h>
#include <strings.h>
#include <string.h>

const ColumnInfo TaskColumn_info[TC_COUNT] = {
    [TC_ID] = {"id", "ID", "task id, unique in the process", 7, true, false},
    [TC_NAME] = {"name", "NAME", "task name given at spawn (or its entry function)", 16, false,
                 false},
    [TC_STATE] = {"state", "STATE", "running, ready, waiting; done/cancelled/failed linger dimmed",
                  9, false, false},
    [TC_WAITS_ON] = {"waits", "WAITS ON", "what the task is suspended on (future, lock, sleep...)",
                     16, false, false},
    [TC_WAITING] = {"waiting", "WAITING", "how long it has been waiting", 7, true, true},
    [TC_BUSY] = {"busy", "BUSY", "total time spent running its steps", 7, true, true},
    [TC_STEPS] = {"steps", "STEPS", "number of times it was resumed", 6, true, true},
    [TC_AGE] = {"age", "AGE", "time since it was spawned", 7, true, true},
    [TC_CREATED_AT] = {"created", "CREATED AT", "where it was spawned (function file:line)", 0,
                       false, false},
};

int TaskColumn_byName(const char *name)
{
    for (int i = 0; name && i < TC_COUNT; i++)
        if (!strcasecmp(name, TaskColumn_info[i].name))
            return i;
    return -1;
}

uint64_t Task_waitingNs(const Task *t, const Model *m)
{
    if (!t->wait_since_ns || t->state != TS_WAITING || m->now_ns < t->wait_since_ns)
        return 0;
    return m->now_ns - t->wait_since_ns;
}

uint64_t Task_ageNs(const Task *t, const Model *m)
{
    if (!t->created_ns || m->now_ns < t->created_ns)
        return 0;
    return m->now_ns - t->created_ns;
}

static int cmp_u64(uint64_t a, uint64_t b)
{
    return (a > b) - (a < b);
}

int TaskColumn_compare(TaskColumn c, const Task *a, const Task *b, const Model *m)
{
    int r = 0;
    switch (c) {
    case TC_ID:
        break;
    case TC_NAME:
        r = strcmp(a->name, b->name);
        break;
    case TC_STATE:
        r = cmp_u64(a->state, b->state);
        break;
    case TC_WAITS_ON:
        r = strcmp(a->waits_on, b->waits_on);
        break;
    case TC_WAITING:
        r = cmp_u64(Task_waitingNs(a, m), Task_waitingNs(b, m));
        break;
    case TC_BUSY:
        r = cmp_u64(a->busy_ns, b->busy_ns);
        break;
    case TC_STEPS:
        r = cmp_u64(a->steps, b->steps);
        break;
    case TC_AGE:
        /* older first when ascending by age means larger age: compare ages */
        r = cmp_u64(Task_ageNs(a, m), Task_ageNs(b, m));
        break;
    case TC_CREATED_AT:
        r = strcmp(a->created_at, b->created_at);
        break;
    case TC_COUNT:
        break;
    }
    return r ? r : cmp_u64(a->id, b->id);
}

void TaskColumn_format(TaskColumn c, const Task *t, const Model *m, char *buf, size_t len)
{
    char d[32];
    switch (c) {
    case TC_ID:
        snprintf(buf, len, "%llu", (unsigned long long)t->id);
        break;
    case TC_NAME:
        snprintf(buf, len, "%s", t->name);
        break;
    case TC_STATE:
        snprintf(buf, len, "%s", TaskState_name(t->state));
        break;
    case TC_WAITS_ON:
        snprintf(buf, len, "%s", t->waits_on[0] ? t->waits_on : "-");
        break;
    case TC_WAITING:
        if (t->state == TS_WAITING && t->wait_since_ns)
            snprintf(buf, len, "%s", Duration_format(Task_waitingNs(t, m), d, sizeof d));
        else
            snprintf(buf, len, "-");
        break;
    case TC_BUSY:
        snprintf(buf, len, "%s", Duration_format(t->busy_ns, d, sizeof d));
        break;
    case TC_STEPS:
        snprintf(buf, len, "%llu", (unsigned long long)t->steps);
        break;
    case TC_AGE:
        snprintf(buf, len, "%s",
                 t->created_ns ? Duration_format(Task_ageNs(t, m), d, sizeof d) : "-");
        break;
    case TC_CREATED_AT:
        snprintf(buf, len, "%s", t->created_at[0] ? t->created_at : "?");
        break;
    case TC_COUNT:
        buf[0] = '\0';
        break;
    }
}

void TaskColumn_fitCreatedAt(const char *s, size_t width, char *out, size_t len)
{
    if (!len)
        return;
    size_t n = strlen(s);
    if (n <= width) {
        snprintf(out, len, "%s", s);
        return;
    }
    const char *sp = strrchr(s, ' ');
    const char *loc = sp ? sp + 1 : s;
    size_t ln = strlen(loc);
    if (ln <= width || width < 3) {
        snprintf(out, len, "%s", loc);
        return;
    }
    const char *tail = loc + ln - (width - 2);
    while (*tail && ((unsigned char)*tail & 0xc0) == 0x80)
        tail++; /* do not start inside a UTF-8 sequence */
    snprintf(out, len, "..%s", tail);
}

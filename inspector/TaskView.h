/* TaskView.h: the filtered, sorted list of tasks a table shows, rebuilt only
 * when the model, the sort or the filter changed (never on a key press that
 * only moves the cursor). */
#ifndef ASYNCTOP_TASKVIEW_H
#define ASYNCTOP_TASKVIEW_H

#include "TaskColumn.h"

#define TASKVIEW_FILTER_MAX 128

typedef struct TaskView {
    Task **rows; /* borrowed from the model; valid until the model's gen changes */
    uint32_t n, cap;
    TaskColumn sort;
    bool descending;
    char filter[TASKVIEW_FILTER_MAX]; /* case-insensitive substring; "" = all */
    bool by_group;                    /* only tasks whose group key is group_key */
    uint64_t group_key;
    uint64_t built_gen; /* model gen the rows were built from */
    bool dirty;         /* sort/filter changed since the build */
} TaskView;

void TaskView_init(TaskView *this);
void TaskView_done(TaskView *this);
/* Rebuilds rows if the model changed or the view is dirty. Returns true if
 * it rebuilt. O(n log n) when it does, O(1) otherwise. */
bool TaskView_update(TaskView *this, const Model *m);
void TaskView_setSort(TaskView *this, TaskColumn c, bool descending);
void TaskView_setFilter(TaskView *this, const char *text);
/* Whether task t passes a filter text (empty text passes everything). */
bool TaskView_matches(const Task *t, const char *filter);
/* Index of task id in rows, -1 if absent. */
int64_t TaskView_find(const TaskView *this, uint64_t id);
/* The grouping key of a task: its suspension stack by content (group_key; else the stack id
 * for tasks that have no content key), or, when the runtime sent no stack, a hash of where it
 * waits and the kind of wait (the first word of waits_on: not the object number or the time
 * left, which differ per task and per update). Stable across updates while the stack is the
 * same. Never 0. */
uint64_t Task_groupKey(const Task *t);
/* Length of the first word of t->waits_on ("read" of "read #100"): the kind of wait. */
size_t Task_waitKindLen(const Task *t);

#endif

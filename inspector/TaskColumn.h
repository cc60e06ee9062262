/* TaskColumn.h: the columns of the task table, as data (htop's RowField idea):
 * adding a column is one enum value and one row in TaskColumn_info. */
#ifndef ASYNCTOP_TASKCOLUMN_H
#define ASYNCTOP_TASKCOLUMN_H

#include "Model.h"

typedef enum TaskColumn {
    TC_ID,
    TC_NAME,
    TC_STATE,
    TC_WAITS_ON,
    TC_WAITING,
    TC_BUSY,
    TC_STEPS,
    TC_AGE,
    TC_CREATED_AT,
    TC_COUNT
} TaskColumn;

typedef struct ColumnInfo {
    const char *name;        /* stable key: `--sort name`, JSON-free */
    const char *title;       /* header text */
    const char *description; /* for the help screen */
    int width;               /* columns; 0: takes the rest of the line */
    bool right;              /* right-aligned (numbers) */
    bool descending;         /* default sort direction */
} ColumnInfo;

extern const ColumnInfo TaskColumn_info[TC_COUNT];

/* Column whose name is `name` (case-insensitive), -1 if none. */
int TaskColumn_byName(const char *name);

/* Orders a and b by column c ascending (ties broken by id); m gives the
 * target clock for ages. */
int TaskColumn_compare(TaskColumn c, const Task *a, const Task *b, const Model *m);

/* Writes the cell text of t in column c into buf (NUL-terminated). */
void TaskColumn_format(TaskColumn c, const Task *t, const Model *m, char *buf, size_t len);
/* Columns the CREATED AT column gets when the cheap columns (STEPS, BUSY) can make room, and
 * at least (AGE, WAITS ON, STATE give way for this much only). */
#define TASKCOLUMN_CREATED_MIN   24
#define TASKCOLUMN_CREATED_FLOOR 12
/* A "func file:line" creation site fitted into width columns (one per byte: the text is
 * sanitised, multi-byte characters only make it shorter on screen): whole when it fits, else
 * "file:line" (the location matters more than the function, which the detail shows), else the
 * end of it after "..", so the line number always shows. */
void TaskColumn_fitCreatedAt(const char *created_at, size_t width, char *out, size_t len);

/* How long t has waited / lived on the target clock (0 when unknown). */
uint64_t Task_waitingNs(const Task *t, const Model *m);
uint64_t Task_ageNs(const Task *t, const Model *m);

#endif
